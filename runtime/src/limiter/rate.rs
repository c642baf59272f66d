use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use governor::Quota;
use tokio::time::Instant;

use super::clock::{self, TokioClock};
use super::config::LimiterConfig;
use super::keyed::{Gcra, KeyedCells, Refusal, check, gcra};
use crate::settings::{Invalid, Section};

/// A rate limiter refused a call; the op runner turns this into `Error::RateLimited`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimiterRejected {
    /// When a permit would be available (for a new key on a full per-key limiter: when a
    /// tracked key goes idle).
    pub retry_after: Duration,
}

impl fmt::Display for LimiterRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rate limited (retry after {:?})",
            crate::error::rounded(self.retry_after)
        )
    }
}

/// A snapshot of a limiter, from [`RateLimiter::metrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimiterMetrics {
    /// Calls permitted.
    pub permitted: u64,
    /// Calls rejected.
    pub rejected: u64,
    /// Calls permitted after waiting.
    pub waited: u64,
    /// Rejections of a new key because `max_keys` busy keys were tracked (included in
    /// `rejected`).
    pub keys_refused: u64,
    /// Keys tracked now (per-key limiters).
    pub keys: usize,
}

/// A named rate limiter on governor's GCRA, driven by tokio's clock. See the
/// [module documentation](super).
pub struct RateLimiter {
    name: Arc<str>,
    config: LimiterConfig,
    clock: TokioClock,
    global: Gcra,
    keys: Option<KeyedCells>,
    permitted: AtomicU64,
    rejected: AtomicU64,
    waited: AtomicU64,
    keys_refused: AtomicU64,
}

impl RateLimiter {
    /// A limiter with these settings.
    ///
    /// # Panics
    ///
    /// When `config` does not pass [`Section::validate`] (`per_second` unset); the runtime
    /// validates first. See [`RateLimiter::try_new`].
    pub fn new(name: impl Into<Arc<str>>, config: LimiterConfig) -> Self {
        let name = name.into();
        match Self::try_new(name.clone(), config) {
            Ok(l) => l,
            Err(e) => panic!(
                "invalid settings for limiter `{name}`: `{}` = {}: expected {}",
                e.key, e.value, e.expected
            ),
        }
    }

    /// A limiter with these settings, or the setting that does not fit.
    pub fn try_new(name: impl Into<Arc<str>>, config: LimiterConfig) -> Result<Self, Invalid> {
        config.validate()?;
        let per_second = config.per_second.unwrap_or(1.0);
        let period = Duration::from_secs_f64(1.0 / per_second).max(Duration::from_nanos(1));
        let burst = NonZeroU32::new(config.effective_burst()).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        let clock = TokioClock::new();
        Ok(RateLimiter {
            name: name.into(),
            global: gcra(quota, clock),
            keys: config
                .per_key
                .then(|| KeyedCells::new(quota, clock, config.max_keys)),
            clock,
            config,
            permitted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            waited: AtomicU64::new(0),
            keys_refused: AtomicU64::new(0),
        })
    }

    /// The limiter's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The settings in force.
    pub fn config(&self) -> &LimiterConfig {
        &self.config
    }

    /// Takes a permit without waiting, whatever `wait` says.
    pub fn try_acquire(&self, key: Option<&str>) -> Result<(), LimiterRejected> {
        match self.check(key) {
            Ok(()) => {
                self.permitted.fetch_add(1, Relaxed);
                Ok(())
            }
            Err(refusal) => Err(self.reject(refusal)),
        }
    }

    /// Takes a permit for `key` (per-key limiters; ignored otherwise).
    ///
    /// Without `wait`, rejects at once when no permit is free. With `wait`, sleeps until the
    /// next permit if it comes before both `max_wait` and `deadline`; if it comes later,
    /// rejects at once (it never sleeps and then fails). Waiters are not queued: each sleeps
    /// until the permit it was told about and checks again, so under contention a waiter may
    /// find the permit taken, wait again or give up, and order is not guaranteed.
    ///
    /// Cancellation safe: nothing is held while waiting.
    pub fn acquire(
        &self,
        key: Option<&str>,
        deadline: Option<Instant>,
    ) -> impl Future<Output = Result<(), LimiterRejected>> {
        // The same future as `acquire_at`'s, not one wrapped in another.
        self.acquire_from(key, deadline, None)
    }

    /// [`acquire`](Self::acquire) for a caller that has just read the clock: the first check
    /// is made at `now` instead of reading the clock again (a check after a wait reads it).
    /// `now` should be a fresh reading (the runner's, taken as the call starts): the bucket is
    /// judged as of that instant.
    pub fn acquire_at(
        &self,
        key: Option<&str>,
        deadline: Option<Instant>,
        now: Instant,
    ) -> impl Future<Output = Result<(), LimiterRejected>> {
        self.acquire_from(key, deadline, Some(now))
    }

    async fn acquire_from(
        &self,
        key: Option<&str>,
        deadline: Option<Instant>,
        mut reading: Option<Instant>,
    ) -> Result<(), LimiterRejected> {
        let mut limit = None;
        let mut waited = false;
        loop {
            let checked = match reading {
                Some(now) => clock::at(now, || self.check(key)),
                None => self.check(key),
            };
            let refusal = match checked {
                Ok(()) => {
                    self.permitted.fetch_add(1, Relaxed);
                    if waited {
                        self.waited.fetch_add(1, Relaxed);
                    }
                    return Ok(());
                }
                Err(refusal) => refusal,
            };
            if !self.config.wait {
                return Err(self.reject(refusal));
            }
            let now = reading.take().unwrap_or_else(Instant::now);
            let limit = *limit.get_or_insert_with(|| {
                let by_wait = now + self.config.max_wait;
                deadline.map_or(by_wait, |d| d.min(by_wait))
            });
            let wait = refusal.wait().max(Duration::from_nanos(1));
            if now + wait > limit {
                return Err(self.reject(refusal));
            }
            waited = true;
            tokio::time::sleep_until(now + wait).await;
        }
    }

    /// A snapshot of the limiter's counters.
    pub fn metrics(&self) -> LimiterMetrics {
        LimiterMetrics {
            permitted: self.permitted.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            waited: self.waited.load(Relaxed),
            keys_refused: self.keys_refused.load(Relaxed),
            keys: self.keys.as_ref().map_or(0, KeyedCells::len),
        }
    }

    fn check(&self, key: Option<&str>) -> Result<(), Refusal> {
        match (key, &self.keys) {
            (Some(key), Some(keys)) => keys.check(key),
            _ => check(&self.global, &self.clock).map_err(Refusal::Rate),
        }
    }

    fn reject(&self, refusal: Refusal) -> LimiterRejected {
        self.rejected.fetch_add(1, Relaxed);
        if let Refusal::TooManyKeys(_) = refusal {
            self.keys_refused.fetch_add(1, Relaxed);
        }
        LimiterRejected {
            retry_after: refusal.wait(),
        }
    }
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
