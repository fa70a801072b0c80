//! The one error type of this crate.

use std::time::Duration;

/// What can go wrong taking, extending or releasing a lock.
///
/// ```
/// use manna_lock::LockError;
/// let e = LockError::Busy { resource: "plaid:item:42".into() };
/// assert_eq!(e.to_string(), "lock on \"plaid:item:42\" is held by another owner");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// `acquire_lock` (no waiting): someone else holds the lock.
    #[error("lock on {resource:?} is held by another owner")]
    Busy {
        /// The resource.
        resource: String,
    },
    /// `lock` waited its whole `wait` and the lock stayed taken.
    #[error("timed out after {waited:?} waiting for the lock on {resource:?}")]
    Timeout {
        /// The resource.
        resource: String,
        /// How long it waited.
        waited: Duration,
    },
    /// The lock is known to be gone: it expired, another owner took it, or an
    /// extension failed. Work done under it is no longer protected.
    #[error(
        "lock on {resource:?} was lost (expired, taken over, or Redis unreachable while extending)"
    )]
    Lost {
        /// The resource.
        resource: String,
    },
    /// Redlock: too few masters answered to make a quorum.
    #[error("lock on {resource:?} needs {needed} Redis masters but only {reachable} answered (last error: {last_error})")]
    NoQuorum {
        /// The resource.
        resource: String,
        /// Masters that answered.
        reachable: usize,
        /// The quorum.
        needed: usize,
        /// What the last failing master said.
        last_error: String,
    },
    /// Redis could not be reached, or a checkout from the pool timed out.
    #[error("cannot get a Redis connection: {0}")]
    Pool(#[from] r2d2::Error),
    /// Redis answered with an error, or the connection failed mid-command.
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// Bad configuration (for example, no `REDIS_URL`).
    #[error("lock configuration: {0}")]
    Config(String),
}

/// The result type of this crate.
pub type Result<T, E = LockError> = std::result::Result<T, E>;
