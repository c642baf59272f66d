use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

/// Upper bounds (microseconds) of the acquire-wait histogram's buckets; the last bucket holds
/// everything slower.
pub const WAIT_BUCKETS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000,
];

/// A lock-free histogram with fixed exponential buckets.
///
/// Written here rather than taken from a crate because it sits on the acquire path of every
/// op: recording is one relaxed atomic add per field, with no allocation or lock, which the
/// well-kept histogram crates (hdrhistogram, metrics-util's summaries) do not offer for
/// concurrent writers.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; WAIT_BUCKETS_US.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
    max_us: AtomicU64,
}

impl Histogram {
    pub(crate) fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let idx = WAIT_BUCKETS_US.partition_point(|&b| b < us);
        self.buckets[idx].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.max_us.fetch_max(us, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> WaitHistogram {
        let buckets: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let count = self.count.load(Relaxed);
        let sum_us = self.sum_us.load(Relaxed);
        WaitHistogram {
            bounds_us: WAIT_BUCKETS_US.to_vec(),
            p50_us: quantile(&buckets, count, 0.50),
            p99_us: quantile(&buckets, count, 0.99),
            max_us: self.max_us.load(Relaxed),
            mean_us: sum_us.checked_div(count).unwrap_or(0),
            count,
            buckets,
        }
    }
}

/// The bucket bound at or above quantile `q` (an upper estimate).
fn quantile(buckets: &[u64], count: u64, q: f64) -> u64 {
    if count == 0 {
        return 0;
    }
    let target = ((count as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= target {
            return WAIT_BUCKETS_US.get(i).copied().unwrap_or(u64::MAX);
        }
    }
    u64::MAX
}

/// How long callers waited for connections.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitHistogram {
    /// Upper bounds of the buckets in microseconds; `buckets` has one more entry for slower.
    pub bounds_us: Vec<u64>,
    /// Waits per bucket.
    pub buckets: Vec<u64>,
    /// Waits recorded.
    pub count: u64,
    /// Mean wait.
    pub mean_us: u64,
    /// Median (upper bucket bound).
    pub p50_us: u64,
    /// 99th percentile (upper bucket bound; `u64::MAX` when in the overflow bucket).
    pub p99_us: u64,
    /// Longest wait.
    pub max_us: u64,
}

/// Counters a pool keeps for itself, and its suspicion of idle connections.
#[derive(Debug)]
pub(crate) struct Counters {
    /// Base of `suspect_until_us`.
    pub(crate) epoch: std::time::Instant,
    /// Until when (µs after `epoch`) every reused connection is pinged before use: set when a
    /// connection is found dead, because its idle siblings probably died with it.
    pub(crate) suspect_until_us: AtomicU64,
    /// When the pool last connected directly to find out why it could not open connections.
    pub(crate) probed_at_us: AtomicU64,
    /// What that probe found.
    pub(crate) probe_unreachable: AtomicBool,
    pub(crate) waiting: AtomicU32,
    pub(crate) in_use: AtomicU32,
    pub(crate) acquired: AtomicU64,
    pub(crate) acquire_timeouts: AtomicU64,
    pub(crate) opened: AtomicU64,
    pub(crate) evicted: AtomicU64,
    pub(crate) handed_on: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) leaks: AtomicU64,
    pub(crate) validations: AtomicU64,
    pub(crate) validation_failures: AtomicU64,
    pub(crate) wait: Histogram,
    pub(crate) use_time: Histogram,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            epoch: std::time::Instant::now(),
            suspect_until_us: AtomicU64::new(0),
            probed_at_us: AtomicU64::new(0),
            probe_unreachable: AtomicBool::new(false),
            waiting: AtomicU32::new(0),
            in_use: AtomicU32::new(0),
            acquired: AtomicU64::new(0),
            acquire_timeouts: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            handed_on: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            leaks: AtomicU64::new(0),
            validations: AtomicU64::new(0),
            validation_failures: AtomicU64::new(0),
            wait: Histogram::default(),
            use_time: Histogram::default(),
        }
    }
}

impl Counters {
    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Pings every reused connection for the next `window`.
    pub(crate) fn suspect_idle(&self, window: Duration) {
        let until = self
            .now_us()
            .saturating_add(u64::try_from(window.as_micros()).unwrap_or(u64::MAX));
        self.suspect_until_us.fetch_max(until, Relaxed);
    }

    /// Whether reused connections must be pinged now.
    pub(crate) fn suspicious(&self) -> bool {
        let until = self.suspect_until_us.load(Relaxed);
        until != 0 && self.now_us() < until
    }
}

/// A snapshot of one pool's state and counters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolStats {
    /// The pool's name.
    pub name: String,
    /// Open connections (idle and in use).
    pub size: u32,
    /// Idle connections.
    pub idle: u32,
    /// Connections handed out to callers.
    pub in_use: u32,
    /// Callers waiting for a connection.
    pub waiting: u32,
    /// Maximum connections.
    pub max: u32,
    /// Minimum connections.
    pub min: u32,
    /// `in_use / max` in percent.
    pub utilization_pct: f64,
    /// Connections handed out since start.
    pub acquired: u64,
    /// Callers that gave up waiting.
    pub acquire_timeouts: u64,
    /// Connections opened since start.
    pub opened: u64,
    /// Connections closed since start (opened minus open now).
    pub closed: u64,
    /// Connections discarded after a failure or timeout.
    pub evicted: u64,
    /// Connections handed straight from an op that ended well to a waiting caller,
    /// without going back through the pool (only while the pool is saturated).
    pub handed_on: u64,
    /// Failures to connect or to use a connection.
    pub errors: u64,
    /// Connections held longer than the leak threshold.
    pub leaks: u64,
    /// Pings before use.
    pub validations: u64,
    /// Pings that found a dead connection (which was replaced).
    pub validation_failures: u64,
    /// Acquire waits.
    pub acquire_wait: WaitHistogram,
    /// How long connections were held.
    pub use_time: WaitHistogram,
}

impl std::fmt::Display for PoolStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pool {:<12} size {:>4} idle {:>4} in use {:>4} waiting {:>4} max {:>4} util {:>5.1}% \
             acquired {:>7} timeouts {:>4} opened {:>5} closed {:>5} evicted {:>4} errors {:>4} \
             wait p50 {} p99 {}",
            self.name,
            self.size,
            self.idle,
            self.in_use,
            self.waiting,
            self.max,
            self.utilization_pct,
            self.acquired,
            self.acquire_timeouts,
            self.opened,
            self.closed,
            self.evicted,
            self.errors,
            fmt_us(self.acquire_wait.p50_us),
            fmt_us(self.acquire_wait.p99_us),
        )
    }
}

fn fmt_us(us: u64) -> String {
    match us {
        u64::MAX => "slow".to_owned(),
        us if us >= 1_000_000 => format!("{:.1}s", us as f64 / 1e6),
        us if us >= 1_000 => format!("{:.1}ms", us as f64 / 1e3),
        us => format!("{us}us"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_bucket_bounds() {
        let h = Histogram::default();
        for _ in 0..98 {
            h.record(Duration::from_micros(80));
        }
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(10));
        let s = h.snapshot();
        assert_eq!(s.count, 100);
        assert_eq!(s.p50_us, 100);
        assert_eq!(s.p99_us, 5_000);
        assert_eq!(s.max_us, 10_000_000);
        assert_eq!(s.buckets.iter().sum::<u64>(), 100);
        assert_eq!(*s.buckets.last().unwrap(), 1);
    }

    #[test]
    fn empty_histogram() {
        let s = Histogram::default().snapshot();
        assert_eq!((s.count, s.p50_us, s.p99_us, s.mean_us), (0, 0, 0, 0));
    }
}
