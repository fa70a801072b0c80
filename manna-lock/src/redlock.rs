//! Redlock: one lock over N independent Redis masters, held by a quorum.

use std::fmt;
use std::time::{Duration, Instant};

use crate::error::{LockError, Result};
use crate::lock::{random_token, sealed, wait_for, LockBackend, LockGuard, LockOptions, LockToken};
use crate::{DistributedLock, LockConfig};

/// The Redlock algorithm over N independent Redis masters (not replicas of
/// one another), with the same guard API as [`DistributedLock`].
///
/// A lock is held when a quorum (N/2 + 1) of masters accepted the same
/// random token within its validity, `ttl - elapsed - drift`, where the
/// drift allowance is 1 % of the ttl plus 2 ms. On failure the partial
/// holds are released at once.
///
/// # What it does not guarantee
///
/// - **Fencing across failover.** The fencing token is the largest of the
///   quorum's per-master counters. It increases while the same masters
///   keep their data, but a master that restarts empty (or fails over to a
///   replica that had not caught up) can let a second holder in with a
///   token that is not larger. Use fencing tokens from a single Redis, or
///   from the storage itself, where that matters.
/// - **Clocks.** Validity assumes the masters' clocks run at about the same
///   rate as the client's (bounded drift), and that no process pauses
///   longer than the validity; a paused holder is not stopped, only no
///   longer protected.
///
/// # When to pick it
///
/// Over a single [`DistributedLock`] when the lock must survive one Redis
/// master going down (with 3 masters: any one). If a lock that briefly
/// stops working while Redis restarts is acceptable, one Redis is simpler,
/// faster (one round trip instead of one per master, made in turn), and
/// gives strictly increasing fencing tokens.
///
/// ```no_run
/// use manna_lock::{LockConfig, LockOptions, Redlock};
/// let redlock = Redlock::from_urls(
///     &["redis://10.0.0.1:6379", "redis://10.0.0.2:6379", "redis://10.0.0.3:6379"],
///     LockConfig::default(),
/// )?;
/// let guard = redlock.lock("billing:run", LockOptions::new())?;
/// guard.check()?;
/// # Ok::<(), manna_lock::LockError>(())
/// ```
#[derive(Clone)]
pub struct Redlock {
    masters: Vec<DistributedLock>,
}

impl fmt::Debug for Redlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redlock")
            .field("masters", &self.masters.len())
            .finish()
    }
}

impl Redlock {
    /// One client per master URL, each with `config` (keep its timeouts
    /// short: a dead master costs up to one connect timeout per call).
    pub fn from_urls(urls: &[&str], config: LockConfig) -> Result<Self> {
        if urls.is_empty() {
            return Err(LockError::Config(
                "Redlock needs at least one Redis master".into(),
            ));
        }
        let masters = urls
            .iter()
            .map(|url| DistributedLock::from_url_with(url, config.clone()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { masters })
    }

    /// N/2 + 1.
    pub fn quorum(&self) -> usize {
        self.masters.len() / 2 + 1
    }

    fn drift(ttl: Duration) -> Duration {
        ttl / 100 + Duration::from_millis(2)
    }

    /// One attempt. `Ok((token, validity))` with a quorum; otherwise the
    /// partial holds are released and the error says why.
    fn try_lock(&self, resource: &str, ttl: Duration) -> Result<(LockToken, Duration)> {
        let token = random_token()?;
        let start = Instant::now();
        let mut held = 0;
        let mut fence = 0;
        let mut errors = 0;
        let mut last_error = None;
        for master in &self.masters {
            match master.try_acquire(resource, &token, ttl) {
                Ok(0) => {}
                Ok(f) => {
                    held += 1;
                    fence = fence.max(f);
                }
                Err(e) => {
                    errors += 1;
                    last_error = Some(e);
                }
            }
        }
        let token = LockToken { token, fence };
        let validity = ttl.checked_sub(start.elapsed() + Self::drift(ttl));
        match validity {
            Some(validity) if held >= self.quorum() && !validity.is_zero() => Ok((token, validity)),
            _ => {
                self.release_all(resource, &token);
                let needed = self.quorum();
                match last_error {
                    // Too few masters answered to ever make a quorum: fail, do not wait.
                    Some(e) if self.masters.len() - errors < needed => Err(LockError::NoQuorum {
                        resource: resource.to_owned(),
                        reachable: self.masters.len() - errors,
                        needed,
                        last_error: e.to_string(),
                    }),
                    _ => Err(LockError::Busy {
                        resource: resource.to_owned(),
                    }),
                }
            }
        }
    }

    fn release_all(&self, resource: &str, token: &LockToken) -> usize {
        self.masters
            .iter()
            .filter(|m| matches!(m.release_lock(resource, token), Ok(true)))
            .count()
    }

    /// One attempt without waiting: [`LockError::Busy`] when another holds
    /// a quorum, [`LockError::NoQuorum`] when too few masters answer.
    pub fn acquire_lock(&self, resource: &str, ttl: Duration) -> Result<LockToken> {
        self.try_lock(resource, ttl).map(|(token, _)| token)
    }

    /// Takes the lock, waiting up to `options.wait` with backoff, like
    /// [`DistributedLock::lock`]. Too few reachable masters fails at once.
    pub fn lock(&self, resource: &str, options: LockOptions) -> Result<LockGuard<Redlock>> {
        wait_for(self, resource, options, |ttl| self.try_lock(resource, ttl))
    }

    /// Releases on every master; true when a quorum still held it.
    pub fn release_lock(&self, resource: &str, token: &LockToken) -> Result<bool> {
        Ok(self.release_all(resource, token) >= self.quorum())
    }
}

impl sealed::Sealed for Redlock {}

impl LockBackend for Redlock {
    fn extend_lock(&self, resource: &str, token: &LockToken, ttl: Duration) -> Result<bool> {
        let start = Instant::now();
        let extended = self
            .masters
            .iter()
            .filter(|m| matches!(m.extend_lock(resource, token, ttl), Ok(true)))
            .count();
        let in_time = start.elapsed() + Self::drift(ttl) < ttl;
        Ok(extended >= self.quorum() && in_time)
    }

    fn release_lock(&self, resource: &str, token: &LockToken) -> Result<bool> {
        Redlock::release_lock(self, resource, token)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.masters[0].backoff(attempt)
    }

    fn holds(&self, resource: &str, token: &LockToken) -> Result<bool> {
        let holding = self
            .masters
            .iter()
            .filter(|m| matches!(LockBackend::holds(*m, resource, token), Ok(true)))
            .count();
        Ok(holding >= self.quorum())
    }
}
