//! # manna-lock
//!
//! Distributed locks on Redis over an r2d2 pool: 128-bit random tokens,
//! fencing tokens, acquire / extend / release in one round trip each
//! (a `MULTI` transaction and two Lua scripts), automatic extension for long
//! work, and bounded waits. No Diesel.
//!
//! ```no_run
//! use std::time::Duration;
//! use manna_lock::{DistributedLock, LockError, LockOptions};
//!
//! let locks = DistributedLock::from_url("redis://127.0.0.1:6379/0")?;
//! {
//!     let guard = locks.lock("plaid:item:42", LockOptions::new().ttl(Duration::from_secs(30)).wait(Duration::from_secs(10)))?;
//!     let fence: u64 = guard.fencing_token();   // strictly increasing per resource
//!     guard.extend(Duration::from_secs(30))?;
//!     guard.check()?;                          // Err(LockError::Lost) once the lock is known to be gone
//! }                                            // released on drop
//! let token = locks.acquire_lock("resource", Duration::from_secs(5))?; // no waiting: Err(LockError::Busy)
//! let released: bool = locks.release_lock("resource", &token)?;
//! # Ok::<(), LockError>(())
//! ```
//!
//! ## What a lock on one Redis guarantees, and what it does not
//!
//! Mutual exclusion holds while the holder finishes within its validity
//! (the ttl, renewed by extensions) and Redis keeps its data. A holder that
//! pauses (GC, swap, a stopped VM) longer than the ttl can wake up after
//! another took the lock: protect writes with the **fencing token** (the
//! storage refuses a token smaller than the last it saw). A Redis that
//! restarts without persistence, or fails over to a replica that had not
//! received the key, forgets locks.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod lock;
mod manager;
mod redlock;

use std::sync::Mutex;

pub use error::{LockError, Result};
pub use lock::{DistributedLock, LockBackend, LockConfig, LockGuard, LockOptions, LockToken};
pub use manager::RedisManager;
pub use redlock::Redlock;

/// The process-wide lock client, built from `REDIS_URL` on first use.
/// A configuration error is returned and not cached.
///
/// ```no_run
/// let locks = manna_lock::get_distributed_lock()?;
/// let guard = locks.lock("jobs:nightly", manna_lock::LockOptions::new())?;
/// # Ok::<(), manna_lock::LockError>(())
/// ```
pub fn get_distributed_lock() -> Result<&'static DistributedLock> {
    static GLOBAL: Mutex<Option<&'static DistributedLock>> = Mutex::new(None);
    let mut global = GLOBAL.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(locks) = *global {
        return Ok(locks);
    }
    let url = std::env::var("REDIS_URL").map_err(|_| {
        LockError::Config("REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0)".into())
    })?;
    let locks: &'static DistributedLock = Box::leak(Box::new(DistributedLock::from_url(&url)?));
    *global = Some(locks);
    Ok(locks)
}
