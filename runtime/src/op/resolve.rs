use std::sync::Arc;

use super::spec::OpSpec;
use crate::breaker::CircuitBreaker;
use crate::bulkhead::Bulkhead;
use crate::error::{PolicyKind, Result, Site};
use crate::limiter::RateLimiter;
use crate::pool::Pool;
use crate::retry::RetryPolicy;
use crate::runtime::Runtime;

/// An op with its names looked up: what the runner needs for every attempt.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) spec: OpSpec,
    pub(crate) name: Arc<str>,
    pub(crate) pool: Pool,
    pub(crate) breaker: Option<Arc<CircuitBreaker>>,
    pub(crate) retry: Option<Arc<RetryPolicy>>,
    pub(crate) limiter: Option<Arc<RateLimiter>>,
    pub(crate) bulkhead: Option<Arc<Bulkhead>>,
    /// The op and pool, for errors and leak reports.
    pub(crate) site_cached: Site,
    /// The op's span attributes, duration histograms and counters.
    pub(crate) telemetry: Arc<crate::telemetry::OpTelemetry>,
}

impl Resolved {
    pub(crate) fn new(rt: &Runtime, spec: OpSpec) -> Result<Resolved> {
        let pool = rt.resolve_pool(spec.pool, spec.name)?.clone();
        let lookup =
            |kind: PolicyKind, name: Option<&'static str>| -> Result<Option<&'static str>> {
                Ok(name)
                    .map(|n| n.filter(|n| *n != "none"))
                    .and_then(|n| match n {
                        Some(n) if !rt.declares(kind, n) => Err(rt.undeclared(kind, n, spec.name)),
                        other => Ok(other),
                    })
            };
        let breaker =
            lookup(PolicyKind::Breaker, spec.breaker)?.map(|n| rt.shared.breakers[n].clone());
        let retry = lookup(PolicyKind::Retry, spec.retry)?.map(|n| rt.shared.retries[n].clone());
        let limiter =
            lookup(PolicyKind::Limiter, spec.limiter)?.map(|n| rt.shared.limiters[n].clone());
        let bulkhead =
            lookup(PolicyKind::Bulkhead, spec.bulkhead)?.map(|n| rt.shared.bulkheads[n].clone());
        let name: Arc<str> = Arc::from(spec.name);
        let site_cached = Site {
            op: Some(name.clone()),
            pool: Some(pool.name_arc().clone()),
        };
        let telemetry = rt.shared.telemetry.op(spec.name, &pool);
        Ok(Resolved {
            telemetry,
            spec,
            name,
            pool,
            breaker,
            retry,
            limiter,
            bulkhead,
            site_cached,
        })
    }

    pub(crate) fn site(&self) -> Site {
        self.site_cached.clone()
    }
}
