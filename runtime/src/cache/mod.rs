//! The result cache of read-only ops, on moka.
//!
//! An op declared with a time to live (`#[db_op(read_only, cache = "5m")]`, or
//! [`OpBuilder::cache`](crate::OpBuilder::cache) and `run_cached`) keeps its successful results,
//! keyed by the op and its arguments, for that long. On a miss, one caller runs the op and
//! every other caller of the same key waits for its result (moka's `try_get_with`), so a burst
//! makes one query. Errors are not kept: when the fill fails, its caller gets its error, and
//! each caller that waited runs the op itself, through the op's policies (an open breaker
//! refuses them at once). The cache holds at most `cache_max_entries` entries of every op
//! together, the least recently used leaving first.
//!
//! [`ResultCache::invalidate_op`] drops every entry of an op, [`ResultCache::invalidate`] one
//! key; a fill that began before either is not kept. Hits, misses and the hit ratio are in
//! [`ResultCache::stats`], the health report and the metrics.
//!
//! Only ops declared read-only may be cached: a result read from the cache skips the op, and
//! an op that writes would skip its write. `#[db_op]` refuses `cache` without `read_only` when
//! the code compiles; the op builder refuses it when the op runs.

mod key;
mod stats;

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;

use self::key::CacheKey;
pub use self::key::{CacheKeyPart, key_part};
use self::stats::OpCounters;
pub use self::stats::{CacheStats, OpCacheStats};

/// A cached result, of the op's own type.
type Value = Arc<dyn Any + Send + Sync>;

/// Each entry lives for its op's time to live.
struct PerOpTtl;

impl Expiry<CacheKey, Value> for PerOpTtl {
    fn expire_after_create(&self, key: &CacheKey, _: &Value, _: Instant) -> Option<Duration> {
        Some(key.ttl)
    }
}

/// The fill failed; its caller has the error.
#[derive(Debug)]
struct FillFailed;

/// A runtime's result cache: see the [module documentation](self).
pub struct ResultCache {
    entries: Cache<CacheKey, Value>,
    max_entries: u64,
    ops: RwLock<HashMap<&'static str, Arc<OpCounters>>>,
}

impl std::fmt::Debug for ResultCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultCache")
            .field("entries", &self.entries.entry_count())
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}

impl ResultCache {
    /// A cache of at most `max_entries` results.
    pub(crate) fn new(max_entries: u64) -> ResultCache {
        ResultCache {
            entries: Cache::builder()
                .max_capacity(max_entries)
                .expire_after(PerOpTtl)
                .support_invalidation_closures()
                .build(),
            max_entries,
            ops: RwLock::new(HashMap::new()),
        }
    }

    fn counters(&self, op: &'static str, ttl: Duration) -> Arc<OpCounters> {
        if let Some(c) = self.ops.read().unwrap_or_else(|e| e.into_inner()).get(op) {
            return c.clone();
        }
        self.ops
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(op)
            .or_insert_with(|| Arc::new(OpCounters::new(ttl)))
            .clone()
    }

    /// The result of `op` for `key`: from the cache, from another caller's fill of the same
    /// key, or from `run` (whose success is kept for `ttl`).
    pub(crate) async fn get_or_run<K, T, E, F, Fut>(
        &self,
        op: &'static str,
        ttl: Duration,
        key: K,
        run: F,
    ) -> Result<T, E>
    where
        K: CacheKeyPart,
        T: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let counters = self.counters(op, ttl);
        let generation = counters.generation();
        let key = CacheKey::new(op, ttl, key);
        // Whichever of the fill and the fallback below runs takes the op from here.
        let run = Mutex::new(Some(run));
        let take = || {
            run.lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .expect("an op's call runs it at most once")
        };
        let error = Mutex::new(None);
        let filled = AtomicBool::new(false);
        let fill = async {
            filled.store(true, Ordering::Relaxed);
            match take()().await {
                Ok(value) => Ok(Arc::new(value) as Value),
                Err(e) => {
                    *error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                    Err(FillFailed)
                }
            }
        };
        match self.entries.try_get_with(key.clone(), fill).await {
            Ok(value) => {
                let filled = filled.load(Ordering::Relaxed);
                if filled {
                    counters.miss();
                    if counters.generation() != generation {
                        // Invalidated while it ran: what it read may be what was replaced.
                        self.entries.invalidate(&key).await;
                    }
                } else {
                    counters.hit();
                }
                match value.downcast_ref::<T>() {
                    Some(value) => Ok(value.clone()),
                    // Two ops of one name with different result types: run this one as if
                    // uncached rather than answer with the other's.
                    None if filled => unreachable!("the fill stored this call's own type"),
                    None => take()().await,
                }
            }
            Err(_) => {
                counters.miss();
                let own = error.lock().unwrap_or_else(|e| e.into_inner()).take();
                match own {
                    Some(e) => Err(e),
                    None => take()().await,
                }
            }
        }
    }

    /// Drops every entry of `op`, and keeps none of the fills of `op` running now.
    pub fn invalidate_op(&self, op: &str) {
        if let Some(c) = self.ops.read().unwrap_or_else(|e| e.into_inner()).get(op) {
            c.invalidated();
        }
        let op = op.to_owned();
        self.entries
            .invalidate_entries_if(move |k, _| k.op == op)
            .expect("the cache is built with invalidation closures");
    }

    /// Drops the entry of `op` for `key`, and keeps none of the fills of `op` running now.
    /// The key is the op's arguments as a tuple, in order, each owned (`&str` as `String`):
    /// `(42_i64,)` for an op taking `estate: i64`, `()` for one taking none.
    pub async fn invalidate<K: CacheKeyPart>(&self, op: &'static str, key: K) {
        if let Some(c) = self.ops.read().unwrap_or_else(|e| e.into_inner()).get(op) {
            c.invalidated();
        }
        self.entries
            .invalidate(&CacheKey::new(op, Duration::ZERO, key))
            .await;
    }

    /// Drops every entry.
    pub fn invalidate_all(&self) {
        for c in self.ops.read().unwrap_or_else(|e| e.into_inner()).values() {
            c.invalidated();
        }
        self.entries.invalidate_all();
    }

    /// Size, totals and each cached op's hits and misses.
    pub fn stats(&self) -> CacheStats {
        let ops: BTreeMap<_, _> = self
            .ops
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(op, c)| (*op, c.stats(op)))
            .collect();
        let ops: Vec<OpCacheStats> = ops.into_values().collect();
        let hits = ops.iter().map(|o| o.hits).sum();
        let misses = ops.iter().map(|o| o.misses).sum();
        CacheStats {
            entries: self.entries.entry_count(),
            max_entries: self.max_entries,
            hits,
            misses,
            hit_ratio: stats::ratio(hits, misses),
            ops,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    #[tokio::test]
    async fn a_burst_on_a_miss_runs_once_and_errors_are_not_kept() {
        let cache = Arc::new(ResultCache::new(100));
        let runs = Arc::new(AtomicU32::new(0));
        let calls = (0..20).map(|_| {
            let (cache, runs) = (cache.clone(), runs.clone());
            tokio::spawn(async move {
                cache
                    .get_or_run("op", Duration::from_secs(60), (1_i64,), || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, String>(7_i64)
                    })
                    .await
            })
        });
        for call in calls.collect::<Vec<_>>() {
            assert_eq!(call.await.unwrap(), Ok(7));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let s = cache.stats();
        assert_eq!((s.hits, s.misses), (19, 1));

        let failing = || async { Err::<i64, _>("down".to_owned()) };
        let ttl = Duration::from_secs(60);
        assert!(
            cache
                .get_or_run("op", ttl, (2_i64,), failing)
                .await
                .is_err()
        );
        let ok = || async { Ok::<_, String>(8_i64) };
        assert_eq!(cache.get_or_run("op", ttl, (2_i64,), ok).await, Ok(8));

        cache.invalidate("op", (1_i64,)).await;
        let nine = || async { Ok::<_, String>(9_i64) };
        assert_eq!(cache.get_or_run("op", ttl, (1_i64,), nine).await, Ok(9));
        cache.invalidate_op("op");
        let ten = || async { Ok::<_, String>(10_i64) };
        assert_eq!(cache.get_or_run("op", ttl, (2_i64,), ten).await, Ok(10));
    }
}
