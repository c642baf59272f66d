use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{RwLock, RwLockWriteGuard};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter as Governor};

use super::clock::TokioClock;

/// One GCRA cell: governor's direct limiter on the tokio clock.
pub(super) type Gcra = Governor<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Nanos>>;

pub(super) fn gcra(quota: Quota, clock: TokioClock) -> Gcra {
    Governor::direct_with_clock(quota, clock)
}

/// Checks one cell; on refusal, the wait until it would conform.
pub(super) fn check(cell: &Gcra, clock: &TokioClock) -> Result<(), Duration> {
    cell.check()
        .map_err(|not_until| not_until.wait_time_from(clock.now()))
}

/// Why a keyed check was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The key's own rate is exceeded; a permit comes after this wait.
    Rate(Duration),
    /// The key is new and `max_keys` busy keys are tracked; one goes idle after this wait.
    TooManyKeys(Duration),
}

impl Refusal {
    pub(super) fn wait(self) -> Duration {
        match self {
            Refusal::Rate(d) | Refusal::TooManyKeys(d) => d,
        }
    }
}

#[derive(Debug)]
struct Entry {
    cell: Gcra,
    /// When the key last got a permit, in clock nanoseconds.
    last: AtomicU64,
}

/// One GCRA cell per key, bounded to `max_keys`.
///
/// Not governor's keyed limiter: its `check_key` takes an owned key (an allocation per call
/// for string keys) and it cannot tell a new key from a known one, so it can bound memory only
/// by pruning, never by refusing. Here known keys are checked under a read lock; a new key
/// takes the write lock. When `max_keys` keys are tracked, keys idle for a full burst
/// replenishment (indistinguishable from fresh ones: governor's `retain_recent` rule) are
/// pruned; if none is idle, the new key is refused with the time until one will be. Evicting
/// a busy key instead would hand its tenant a fresh burst, so a flood of new keys could reset
/// everybody's limits.
#[derive(Debug)]
pub(super) struct KeyedCells {
    map: RwLock<HashMap<Box<str>, Entry>>,
    quota: Quota,
    clock: TokioClock,
    max_keys: usize,
    /// Nanoseconds without a permit after which a key's cell is as good as fresh.
    idle_after: u64,
    /// No key goes idle before this reading: refuse new keys without scanning until then.
    full_until: AtomicU64,
}

impl KeyedCells {
    pub(super) fn new(quota: Quota, clock: TokioClock, max_keys: u32) -> Self {
        let idle = quota.burst_size_replenished_in();
        KeyedCells {
            map: RwLock::new(HashMap::new()),
            quota,
            clock,
            max_keys: max_keys.max(1) as usize,
            idle_after: u64::try_from(idle.as_nanos()).unwrap_or(u64::MAX),
            full_until: AtomicU64::new(0),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn check_entry(&self, entry: &Entry) -> Result<(), Refusal> {
        check(&entry.cell, &self.clock).map_err(Refusal::Rate)?;
        entry.last.store(self.clock.now().as_u64(), Relaxed);
        Ok(())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<Box<str>, Entry>> {
        // Entries are atomics and cells; a panic cannot leave them half-updated.
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn check(&self, key: &str) -> Result<(), Refusal> {
        {
            let map = self.map.read().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = map.get(key) {
                return self.check_entry(entry);
            }
        }
        let now = self.clock.now().as_u64();
        let full_until = self.full_until.load(Relaxed);
        if now < full_until && self.len() >= self.max_keys {
            return Err(Refusal::TooManyKeys(Duration::from_nanos(full_until - now)));
        }
        let mut map = self.write();
        if let Some(entry) = map.get(key) {
            return self.check_entry(entry);
        }
        if map.len() >= self.max_keys {
            let idle_after = self.idle_after;
            map.retain(|_, e| now.saturating_sub(e.last.load(Relaxed)) < idle_after);
            if map.len() >= self.max_keys {
                let soonest = map
                    .values()
                    .map(|e| e.last.load(Relaxed).saturating_add(idle_after))
                    .min()
                    .unwrap_or(now)
                    .max(now + 1);
                self.full_until.store(soonest, Relaxed);
                return Err(Refusal::TooManyKeys(Duration::from_nanos(soonest - now)));
            }
        }
        let entry = Entry {
            cell: gcra(self.quota, self.clock),
            last: AtomicU64::new(now),
        };
        let result = self.check_entry(&entry);
        map.insert(key.into(), entry);
        result
    }
}
