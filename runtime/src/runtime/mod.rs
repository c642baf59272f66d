//! The [`Runtime`]: named pools and policies, the op API, graceful shutdown.

mod budget;
mod builder;
mod host;
mod ops;
#[cfg(test)]
mod resolve_tests;
mod shutdown;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Notify;

pub use self::builder::RuntimeBuilder;
#[doc(hidden)]
pub use self::ops::{run_cached_static, run_static, run_tx_static};
use crate::breaker::CircuitBreaker;
use crate::bulkhead::Bulkhead;
use crate::config::RuntimeConfig;
use crate::error::{Error, PolicyKind, Result};
use crate::limiter::RateLimiter;
use crate::op::{Resolved, StaticOp};
use crate::pool::{BudgetCheck, Pool, PoolStats, SizingReport};
use crate::retry::RetryPolicy;

/// Holds the named pools and policies; every op runs through it. Cheap to clone (an `Arc`
/// inside). Several runtimes can live side by side, each with its own pools.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) id: u64,
    pub(crate) config: RuntimeConfig,
    pub(crate) pools: HashMap<Arc<str>, Pool>,
    pub(crate) pool_order: Vec<Arc<str>>,
    pub(crate) default_pool: Option<Pool>,
    pub(crate) breakers: HashMap<Arc<str>, Arc<CircuitBreaker>>,
    pub(crate) retries: HashMap<Arc<str>, Arc<RetryPolicy>>,
    pub(crate) limiters: HashMap<Arc<str>, Arc<RateLimiter>>,
    pub(crate) bulkheads: HashMap<Arc<str>, Arc<Bulkhead>>,
    pub(crate) budget: Vec<BudgetCheck>,
    pub(crate) closing: AtomicBool,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) drained: Notify,
    /// Every `#[db_op]` op resolved against this runtime, by the op's index: set once, right
    /// after the runtime is built; a call reads it with one index, no lock, no lookup.
    pub(crate) ops: std::sync::OnceLock<Vec<Option<Arc<Resolved>>>>,
    /// Where the ops and pools report what happens (`crate::observer`).
    pub(crate) observer: Arc<dyn crate::observer::Observer>,
    /// One health watch per database server the pools point at (`crate::recovery`).
    pub(crate) servers: crate::recovery::Servers,
    /// Injected faults, when `faults.enabled` (`crate::faults`).
    pub(crate) faults: Option<Arc<crate::faults::Faults>>,
    /// The result cache of read-only ops (`crate::cache`).
    pub(crate) cache: crate::cache::ResultCache,
    /// The background write queues, one per pool (`crate::background`).
    pub(crate) background: crate::background::BackgroundWrites,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("id", &self.shared.id)
            .field("pools", &self.shared.pool_order)
            .field("closing", &self.shared.closing.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Lets `#[db_op]` methods find the runtime through `self`.
///
/// ```
/// use sqlx_resilience_runtime::{HasRuntime, Runtime};
///
/// struct HarvestRepo { rt: Runtime }
/// impl HasRuntime for HarvestRepo {
///     fn runtime(&self) -> &Runtime { &self.rt }
/// }
/// ```
pub trait HasRuntime {
    /// The runtime this value's ops run on.
    fn runtime(&self) -> &Runtime;
}

impl HasRuntime for Runtime {
    fn runtime(&self) -> &Runtime {
        self
    }
}

impl<T: HasRuntime + ?Sized> HasRuntime for &T {
    fn runtime(&self) -> &Runtime {
        (**self).runtime()
    }
}

impl<T: HasRuntime + ?Sized> HasRuntime for Arc<T> {
    fn runtime(&self) -> &Runtime {
        (**self).runtime()
    }
}

impl<T: HasRuntime + ?Sized> HasRuntime for Box<T> {
    fn runtime(&self) -> &Runtime {
        (**self).runtime()
    }
}

impl Runtime {
    pub(crate) fn next_id() -> u64 {
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    }

    /// Where the runtime's ops and pools report what happens.
    pub(crate) fn observer(&self) -> &dyn crate::observer::Observer {
        &*self.shared.observer
    }

    /// The resolved configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.shared.config
    }

    /// The injected faults, to arm and disarm from code (tests, test endpoints), when the
    /// configuration enables them (`faults.enabled = true`, never in a profile
    /// `faults.forbidden_in` names); `None` otherwise.
    pub fn faults(&self) -> Option<&crate::faults::Faults> {
        self.shared.faults.as_deref()
    }

    /// The result cache of read-only ops: statistics and invalidation.
    pub fn cache(&self) -> &crate::cache::ResultCache {
        &self.shared.cache
    }

    /// The background write queues: statistics and the dropped-write hook.
    pub fn background(&self) -> &crate::background::BackgroundWrites {
        &self.shared.background
    }

    /// A pool by name.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.shared.pools.get(name)
    }

    /// Every pool, in name order.
    pub fn pools(&self) -> impl Iterator<Item = &Pool> {
        self.shared
            .pool_order
            .iter()
            .filter_map(|n| self.shared.pools.get(n))
    }

    /// The pool ops use when they name none.
    pub fn default_pool(&self) -> Option<&Pool> {
        self.shared.default_pool.as_ref()
    }

    /// A circuit breaker by name (for manual reset and force-open, metrics and events).
    pub fn breaker(&self, name: &str) -> Option<&Arc<CircuitBreaker>> {
        self.shared.breakers.get(name)
    }

    /// Every circuit breaker, in name order.
    pub fn breakers(&self) -> Vec<&Arc<CircuitBreaker>> {
        sorted(&self.shared.breakers)
    }

    /// A retry policy by name.
    pub fn retry_policy(&self, name: &str) -> Option<&Arc<RetryPolicy>> {
        self.shared.retries.get(name)
    }

    /// Every retry policy, in name order.
    pub fn retry_policies(&self) -> Vec<&Arc<RetryPolicy>> {
        sorted(&self.shared.retries)
    }

    /// A rate limiter by name.
    pub fn limiter(&self, name: &str) -> Option<&Arc<RateLimiter>> {
        self.shared.limiters.get(name)
    }

    /// Every rate limiter, in name order.
    pub fn limiters(&self) -> Vec<&Arc<RateLimiter>> {
        sorted(&self.shared.limiters)
    }

    /// A bulkhead by name.
    pub fn bulkhead(&self, name: &str) -> Option<&Arc<Bulkhead>> {
        self.shared.bulkheads.get(name)
    }

    /// Every bulkhead, in name order.
    pub fn bulkheads(&self) -> Vec<&Arc<Bulkhead>> {
        sorted(&self.shared.bulkheads)
    }

    /// Statistics of every pool.
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        self.pools().map(Pool::stats).collect()
    }

    /// The health of every database server the pools point at: down or up, since when, and
    /// the probes made (see `crate::recovery`).
    pub fn servers(&self) -> Vec<crate::recovery::ServerStatus> {
        self.shared
            .servers
            .all()
            .iter()
            .map(|s| s.status())
            .collect()
    }

    /// The connection budget checks made at start-up (one per server).
    pub fn budget(&self) -> &[BudgetCheck] {
        &self.shared.budget
    }

    /// Sizing advice for each server: HikariCP's formula against the configured pools and the
    /// server's budget.
    pub fn sizing_report(&self) -> Vec<SizingReport> {
        let s = &self.shared.config.settings;
        self.shared
            .budget
            .iter()
            .map(|b| {
                SizingReport::new(
                    b.clone(),
                    s.server_cores.or_else(local_cores),
                    s.effective_spindles,
                )
            })
            .collect()
    }

    pub(crate) fn resolve_pool(&self, name: Option<&str>, op: &str) -> Result<&Pool> {
        match name {
            Some(name) => self
                .shared
                .pools
                .get(name)
                .ok_or_else(|| self.undeclared(PolicyKind::Pool, name, op)),
            None => self
                .shared
                .default_pool
                .as_ref()
                .ok_or_else(|| Error::Config {
                    key: "default_pool".into(),
                    value: "(not set)".into(),
                    expected: format!(
                        "a default pool for op `{op}`, which names none (pools: {})",
                        self.shared
                            .config
                            .declared
                            .names(PolicyKind::Pool)
                            .join(", ")
                    ),
                    origin: format!("op `{op}`"),
                }),
        }
    }

    pub(crate) fn declares(&self, kind: PolicyKind, name: &str) -> bool {
        let s = &self.shared;
        match kind {
            PolicyKind::Pool => s.pools.contains_key(name),
            PolicyKind::Breaker => s.breakers.contains_key(name),
            PolicyKind::Retry => s.retries.contains_key(name),
            PolicyKind::Limiter => s.limiters.contains_key(name),
            PolicyKind::Bulkhead => s.bulkheads.contains_key(name),
        }
    }

    pub(crate) fn undeclared(&self, kind: PolicyKind, name: &str, op: &str) -> Error {
        let names = self.shared.config.declared.names(kind);
        Error::undeclared(kind, name, format!("op `{op}`"), &names)
    }

    /// A `#[db_op]` op resolved against this runtime: from the table built with the runtime,
    /// or, for an op that does not fit it, resolved again to say why.
    #[inline]
    pub(crate) fn resolved(&self, op: &'static StaticOp) -> Result<Cow<'_, Resolved>> {
        let index = op.index();
        if let Some(Some(resolved)) = self.shared.ops.get().and_then(|ops| ops.get(index)) {
            return Ok(Cow::Borrowed(&**resolved));
        }
        Resolved::new(self, op.spec.clone()).map(Cow::Owned)
    }

    /// Whether `shutdown` has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.closing.load(Ordering::Acquire)
    }
}

fn sorted<T>(map: &HashMap<Arc<str>, T>) -> Vec<&T> {
    let mut entries: Vec<(&Arc<str>, &T)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries.into_iter().map(|(_, v)| v).collect()
}

/// Cores of this machine, used for sizing advice when the server runs here too.
fn local_cores() -> Option<u32> {
    std::thread::available_parallelism()
        .ok()
        .and_then(|n| u32::try_from(n.get()).ok())
}
