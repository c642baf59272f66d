use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::events::{EventSink, PoolEventKind};

/// Who holds a connection: an op's name and where it is declared, or a caller's location.
#[derive(Debug, Clone)]
pub(crate) struct Holder {
    pub(crate) op: Option<Arc<str>>,
    pub(crate) location: Option<crate::location::Location>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.op, &self.location) {
            (Some(op), Some(loc)) => write!(f, "op `{op}` ({loc})"),
            (Some(op), None) => write!(f, "op `{op}`"),
            (None, Some(loc)) => write!(f, "caller at {loc}"),
            (None, None) => f.write_str("unknown caller"),
        }
    }
}

struct Checkout {
    holder: Holder,
    since: Instant,
    warned: bool,
}

/// Tracks checked-out connections when a leak threshold is set (HikariCP's
/// leakDetectionThreshold): a connection held longer logs one warning naming its holder.
///
/// A scanner task wakes every quarter threshold; the op path pays one short lock to register
/// and one to remove a checkout, and nothing when no threshold is set.
pub(crate) struct LeakWatch {
    threshold: Duration,
    next_id: AtomicU64,
    checkouts: Mutex<HashMap<u64, Checkout>>,
}

impl std::fmt::Debug for LeakWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeakWatch")
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

impl LeakWatch {
    pub(crate) fn new(threshold: Duration) -> Self {
        LeakWatch {
            threshold,
            next_id: AtomicU64::new(0),
            checkouts: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn register(&self, holder: Holder) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let checkout = Checkout {
            holder,
            since: Instant::now(),
            warned: false,
        };
        self.lock().insert(id, checkout);
        id
    }

    pub(crate) fn release(&self, id: u64) {
        let removed = self.lock().remove(&id);
        if let Some(c) = removed
            && c.warned
        {
            tracing::info!(
                holder = %c.holder,
                held_ms = c.since.elapsed().as_millis() as u64,
                "connection previously reported as a possible leak was returned"
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Checkout>> {
        self.checkouts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Warns once for each checkout of pool `pool` held past the threshold, counting each in
    /// `leaks` and reporting it to `events`; returns how many were new.
    pub(crate) fn scan(&self, pool: &str, leaks: &AtomicU64, events: &EventSink) -> usize {
        let now = Instant::now();
        let mut found = Vec::new();
        for c in self.lock().values_mut() {
            let held = now.saturating_duration_since(c.since);
            if !c.warned && held >= self.threshold {
                c.warned = true;
                found.push((c.holder.clone(), held));
            }
        }
        for (holder, held) in &found {
            tracing::warn!(
                pool = %pool,
                holder = %holder,
                held_ms = held.as_millis() as u64,
                threshold_ms = self.threshold.as_millis() as u64,
                "possible connection leak: {holder} has held a connection of pool `{}` for {:?}, \
                 longer than the leak threshold of {:?}; make sure it is returned (dropped) \
                 or raise leak_threshold",
                pool,
                held,
                self.threshold,
            );
            leaks.fetch_add(1, Ordering::Relaxed);
            events.emit(PoolEventKind::Leak {
                held: *held,
                holder: holder.to_string(),
            });
        }
        found.len()
    }

    /// Runs the scanner every quarter of `threshold` (within 10 ms and 5 s) until `scan`, which
    /// scans the pool's watch, says the pool is gone or closed.
    pub(crate) fn spawn_scanner(
        threshold: Duration,
        mut scan: impl FnMut() -> bool + Send + 'static,
    ) {
        let period = (threshold / 4).clamp(Duration::from_millis(10), Duration::from_secs(5));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if !scan() {
                    return;
                }
            }
        });
    }
}
