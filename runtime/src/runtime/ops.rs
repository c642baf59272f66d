//! The op API's entry points on a [`Runtime`]: `rt.op(..)`, what generated code calls, and the
//! list of declared ops. The runner (`crate::op`) sees the runtime only through the
//! `op::Host` trait, which `host.rs` implements.

use std::future::Future;

use super::Runtime;
use crate::cache::CacheKeyPart;
use crate::config::OpsCheck;
use crate::error::{Error, PolicyKind, Result};
use crate::op::{
    Body, BoxFuture, Conn, Location, OpBuilder, OpInfo, OpSpec, RetryScope, StaticOp, Tx, cached,
    execute_erased, in_tx, plain, registered,
};

impl Runtime {
    /// Starts an op named `name`. Op names are static strings: they label telemetry, and
    /// labels must stay bounded.
    #[track_caller]
    pub fn op(&self, name: &'static str) -> OpBuilder<'_> {
        OpBuilder::new(self, OpSpec::named(name, Location::caller()))
    }

    /// Starts an op from a full spec (what `#[db_op]` declares).
    pub fn op_spec(&self, spec: OpSpec) -> OpBuilder<'_> {
        OpBuilder::new(self, spec)
    }
}

/// Runs a `#[db_op]` body: its op was resolved when the runtime was built, and is found by
/// index. Not public API: generated code calls it.
#[doc(hidden)]
pub async fn run_static<'env, T, E, F>(
    rt: &'env Runtime,
    op: &'static StaticOp,
    access: fn(&mut E) -> Option<&mut Error>,
    body: F,
) -> Result<T, E>
where
    F: for<'c> FnMut(&'c mut Conn<'env>) -> BoxFuture<'c, Result<T, E>> + Send + 'env,
    T: Send + 'env,
    E: From<Error> + Send + 'env,
{
    let mut body = plain(body, access);
    let ok = run_declared(rt, op, &mut body).await;
    body.finish(ok)
}

/// Runs a transactional `#[db_op]` body (see [`run_static`]). Not public API.
#[doc(hidden)]
pub async fn run_tx_static<'env, T, E, G>(
    rt: &'env Runtime,
    op: &'static StaticOp,
    access: fn(&mut E) -> Option<&mut Error>,
    body: G,
) -> Result<T, E>
where
    G: for<'c> FnMut(&'c mut Tx<'env>) -> BoxFuture<'c, Result<T, E>> + Send + 'env,
    T: Send + 'env,
    E: From<Error> + Send + 'env,
{
    let mut body = in_tx(body, access);
    let ok = run_declared(rt, op, &mut body).await;
    body.finish(ok)
}

/// Finds a declared op's resolution and runs it; true when it succeeded. The body keeps the
/// value or error. Written once, not per op: the generic entry points above only wrap it.
async fn run_declared<'env>(
    rt: &Runtime,
    op: &'static StaticOp,
    body: &mut dyn Body<'env>,
) -> bool {
    match rt.resolved(op) {
        Ok(resolved) => execute_erased(rt, &resolved, None, body).await,
        Err(error) => {
            body.fail(error);
            false
        }
    }
}

/// Runs a cached `#[db_op]`: `run` is the op's uncached call. Not public API: generated code
/// calls it.
#[doc(hidden)]
pub async fn run_cached_static<K, T, E, F, Fut>(
    rt: &Runtime,
    op: &'static StaticOp,
    key: K,
    run: F,
) -> Result<T, E>
where
    K: CacheKeyPart,
    T: Clone + Send + Sync + 'static,
    E: From<Error>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    cached(rt, &op.spec, key, run).await
}

impl Runtime {
    /// Every op declared with `#[db_op]` in the program, with what does not fit this runtime.
    pub fn ops(&self) -> Vec<OpInfo> {
        registered()
            .into_iter()
            .map(|op| self.op_info(&op.spec))
            .collect()
    }

    /// Checks one op against this runtime (also for ops built with the op builder).
    pub fn op_info(&self, spec: &OpSpec) -> OpInfo {
        let mut problems = Vec::new();
        let pool_name = match spec.pool {
            Some(name) => Some(name.as_str().to_owned()),
            None => self.default_pool().map(|p| p.name().to_owned()),
        };
        let pool = pool_name.as_deref().and_then(|n| self.pool(n));
        match (spec.pool, pool) {
            (Some(name), None) => problems.push(
                self.undeclared(PolicyKind::Pool, name.as_str(), spec.name)
                    .to_string(),
            ),
            (None, None) => problems.push(
                "names no pool and the runtime has no default pool: name one, or set default_pool"
                    .to_owned(),
            ),
            _ => {}
        }
        for (kind, name) in [
            (PolicyKind::Breaker, spec.breaker),
            (PolicyKind::Retry, spec.retry),
            (PolicyKind::Limiter, spec.limiter),
            (PolicyKind::Bulkhead, spec.bulkhead),
        ] {
            if let Some(name) = name.map(|n| n.as_str())
                && !self.declares(kind, name)
            {
                problems.push(self.undeclared(kind, name, spec.name).to_string());
            }
        }
        if let (Some(pool), Some(timeout)) = (pool, spec.timeout.or(spec.deadline))
            && let Some(server) = pool.config().statement_timeout
            && server < timeout
        {
            problems.push(format!(
                "pool `{}` has statement_timeout {:?}, shorter than the op's {:?}: the server \
                 stops its statements first and the op's own limit never fires; raise the pool's \
                 statement_timeout or lower the op's timeout",
                pool.name(),
                server,
                timeout
            ));
        }
        if spec.retry.is_some()
            && !spec.safe_to_rerun()
            && spec.tx.is_none()
            && spec.retry_scope != RetryScope::BeforeSend
        {
            problems.push(
                "has a retry policy but may write and is not idempotent: only failures before a \
                 statement is sent are retried; declare it idempotent or read_only, or make it a \
                 transaction, for the policy to cover more"
                    .to_owned(),
            );
        }
        if let Some(limiter) = spec.limiter.and_then(|n| self.limiter(n.as_str()))
            && limiter.config().per_key
        {
            problems.push(format!(
                "limiter `{}` limits per key, but this op passes no key: all its calls share one \
                 limit; pass a key with OpBuilder::limiter_key or use a limiter without per_key",
                limiter.name()
            ));
        }
        OpInfo {
            name: spec.name,
            location: spec.location.to_string(),
            pool: pool_name,
            timeout: spec.timeout,
            deadline: spec.deadline,
            retry: spec.retry.map(|n| n.as_str()),
            breaker: spec.breaker.map(|n| n.as_str()),
            limiter: spec.limiter.map(|n| n.as_str()),
            bulkhead: spec.bulkhead.map(|n| n.as_str()),
            idempotent: spec.idempotent,
            read_only: spec.read_only,
            tx: spec.tx.is_some(),
            slow: spec.slow,
            problems,
        }
    }

    /// Checks every declared op; an error lists each op that does not fit, with its problems.
    pub fn check_ops(&self) -> Result<()> {
        let bad: Vec<String> = self
            .ops()
            .into_iter()
            .filter(|op| !op.problems.is_empty())
            .map(|op| {
                format!(
                    "op `{}` ({}): {}",
                    op.name,
                    op.location,
                    op.problems.join("; ")
                )
            })
            .collect();
        if bad.is_empty() {
            Ok(())
        } else {
            Err(Error::Misconfigured {
                report: bad.join("\n"),
            })
        }
    }

    /// The start-up check, as configured by `ops_check`.
    pub(crate) fn check_ops_at_start(&self) -> Result<()> {
        match self.config().settings.ops_check {
            OpsCheck::Off => Ok(()),
            OpsCheck::Warn => {
                for op in self.ops() {
                    for problem in &op.problems {
                        tracing::warn!(op = op.name, location = %op.location, "op does not fit the runtime: {problem}");
                    }
                }
                Ok(())
            }
            OpsCheck::Error => self.check_ops(),
        }
    }
}
