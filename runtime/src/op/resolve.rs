use std::sync::Arc;

use super::host::Host;
use super::spec::{Isolation, Name, OpSpec, TxSpec};
use crate::breaker::CircuitBreaker;
use crate::bulkhead::Bulkhead;
use crate::error::{PolicyKind, Result, Site};
use crate::limiter::RateLimiter;
use crate::observer::OpObserver;
use crate::pool::Pool;
use crate::retry::RetryPolicy;

/// An op with its names looked up: what the runner needs for every attempt.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) spec: OpSpec,
    pub(crate) name: Arc<str>,
    /// How its transactions begin, whichever way it is run in one.
    pub(crate) tx: TxSpec,
    pub(crate) pool: Pool,
    pub(crate) breaker: Option<Arc<CircuitBreaker>>,
    pub(crate) retry: Option<Arc<RetryPolicy>>,
    pub(crate) limiter: Option<Arc<RateLimiter>>,
    pub(crate) bulkhead: Option<Arc<Bulkhead>>,
    /// The op and pool, for errors and leak reports.
    pub(crate) site_cached: Site,
    /// Where its calls report what happens.
    pub(crate) observer: Arc<dyn OpObserver>,
    /// The runtime's injected faults, when enabled.
    pub(crate) faults: Option<Arc<crate::faults::Faults>>,
}

impl Resolved {
    /// What replica routing needs to know of this op.
    pub(crate) fn replica_call(&self) -> crate::pool::replica::Call<'_> {
        crate::pool::replica::Call {
            pool: &self.pool,
            read_only: self.tx.read_only,
            serializable: self.tx.isolation == Some(Isolation::Serializable),
            max_lag: self.spec.max_lag,
        }
    }

    pub(crate) fn new(rt: &dyn Host, spec: OpSpec) -> Result<Resolved> {
        let pool = rt
            .resolve_pool(spec.pool.map(|n| n.as_str()), spec.name)?
            .clone();
        let lookup = |kind: PolicyKind, name: Option<Name>| -> Result<Option<&'static str>> {
            let Some(name) = name else { return Ok(None) };
            if let Name::Declared(p) = name
                && p.kind() != kind
            {
                return Err(rt.undeclared(kind, p.name(), spec.name));
            }
            let name = name.as_str();
            if rt.declares(kind, name) {
                Ok(Some(name))
            } else {
                Err(rt.undeclared(kind, name, spec.name))
            }
        };
        let breaker = lookup(PolicyKind::Breaker, spec.breaker)?.and_then(|n| rt.breaker(n));
        let retry = lookup(PolicyKind::Retry, spec.retry)?.and_then(|n| rt.retry(n));
        let limiter = lookup(PolicyKind::Limiter, spec.limiter)?.and_then(|n| rt.limiter(n));
        let bulkhead = lookup(PolicyKind::Bulkhead, spec.bulkhead)?.and_then(|n| rt.bulkhead(n));
        let name: Arc<str> = Arc::from(spec.name);
        let site_cached = Site {
            op: Some(name.clone()),
            pool: Some(pool.name_arc().clone()),
        };
        let observer = rt
            .observer()
            .op(spec.name, pool.name(), &pool.sqlx().connect_options());
        Ok(Resolved {
            observer,
            faults: rt.faults(),
            tx: spec.tx_options(),
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
