//! Hits and misses, per op and in total.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// One cached op's counters.
#[derive(Debug)]
pub(crate) struct OpCounters {
    pub(crate) ttl: Duration,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Bumped by every invalidation of the op: a fill that began before one is not kept.
    generation: AtomicU64,
}

impl OpCounters {
    pub(crate) fn new(ttl: Duration) -> OpCounters {
        OpCounters {
            ttl,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        }
    }

    pub(crate) fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn invalidated(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn stats(&self, op: &'static str) -> OpCacheStats {
        let hits = self.hits.load(Ordering::Relaxed);
        let misses = self.misses.load(Ordering::Relaxed);
        OpCacheStats {
            op,
            ttl_ms: u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX),
            hits,
            misses,
            hit_ratio: ratio(hits, misses),
        }
    }
}

/// `hits / (hits + misses)`, or `None` before the first call.
pub(crate) fn ratio(hits: u64, misses: u64) -> Option<f64> {
    let calls = hits + misses;
    (calls > 0).then(|| hits as f64 / calls as f64)
}

/// One cached op's figures since the runtime started.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct OpCacheStats {
    /// The op.
    pub op: &'static str,
    /// How long its results are kept, in milliseconds.
    pub ttl_ms: u64,
    /// Calls answered without running the op: from the cache, or from another caller's fill
    /// of the same key that they waited for.
    pub hits: u64,
    /// Calls that ran the op.
    pub misses: u64,
    /// `hits / (hits + misses)`; `None` before the first call.
    pub hit_ratio: Option<f64>,
}

/// The result cache's figures: size, totals and each cached op.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CacheStats {
    /// Entries held (approximate: expired entries leave on moka's next maintenance).
    pub entries: u64,
    /// The most entries held (`cache_max_entries`); the least recently used leave first.
    pub max_entries: u64,
    /// Hits of every op.
    pub hits: u64,
    /// Misses of every op.
    pub misses: u64,
    /// `hits / (hits + misses)` of every op; `None` before the first cached call.
    pub hit_ratio: Option<f64>,
    /// Each op called with a cache, in name order.
    pub ops: Vec<OpCacheStats>,
}
