use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

use crate::histogram::{Histogram, Recorder};

/// The former name of [`histogram::BUCKETS_US`](crate::histogram::BUCKETS_US), kept so that
/// code written against it compiles.
pub const WAIT_BUCKETS_US: [u64; 16] = crate::histogram::BUCKETS_US;

/// The former name of [`histogram::Histogram`](crate::histogram::Histogram), kept so that
/// code written against it compiles.
pub type WaitHistogram = Histogram;

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
    /// What that probe found (a `Stuck`).
    pub(crate) probe_stuck: AtomicU8,
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
    pub(crate) wait: Recorder,
    pub(crate) use_time: Recorder,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            epoch: std::time::Instant::now(),
            suspect_until_us: AtomicU64::new(0),
            probed_at_us: AtomicU64::new(0),
            probe_stuck: AtomicU8::new(0),
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
            wait: Recorder::default(),
            use_time: Recorder::default(),
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
    pub acquire_wait: Histogram,
    /// How long connections were held.
    pub use_time: Histogram,
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
