//! Every op declared with `#[db_op]`, collected when the program links, so the runtime can
//! list them and check each against its configuration at start-up.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::resolve::Resolved;
use super::spec::{OpSpec, StaticOp};
use crate::config::OpsCheck;
use crate::error::{Error, PolicyKind, Result};
use crate::runtime::Runtime;

/// One op declared with `#[db_op]`; `#[db_op]` submits it with `inventory`. Not public API.
#[doc(hidden)]
#[derive(Debug)]
pub struct OpRegistration(pub &'static StaticOp);

inventory::collect!(OpRegistration);

/// Every op declared with `#[db_op]` in the program, in name order.
pub(crate) fn registered() -> Vec<&'static StaticOp> {
    let mut ops: Vec<&'static StaticOp> =
        inventory::iter::<OpRegistration>().map(|r| r.0).collect();
    ops.sort_by(|a, b| {
        a.spec
            .name
            .cmp(b.spec.name)
            .then(a.spec.location.line.cmp(&b.spec.location.line))
    });
    ops
}

/// Every op declared with `#[db_op]` in the program, with its spec, in name order.
pub fn declared_ops() -> Vec<&'static OpSpec> {
    registered().into_iter().map(|op| &op.spec).collect()
}

/// Every registered op resolved against `rt`, by index: what a call finds with one index and
/// no lookup. An op that does not fit this runtime (a pool it does not declare) has no entry;
/// calling it resolves it again to report why.
pub(crate) fn resolve_all(rt: &Runtime) -> Vec<Option<Arc<Resolved>>> {
    let mut table: Vec<Option<Arc<Resolved>>> = Vec::new();
    for op in inventory::iter::<OpRegistration>().map(|r| r.0) {
        let index = op.index();
        if table.len() <= index {
            table.resize(index + 1, None);
        }
        table[index] = Resolved::new(rt, op.spec.clone()).ok().map(Arc::new);
    }
    table
}

/// One op and what the runtime makes of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpInfo {
    /// The op's name.
    pub name: &'static str,
    /// Where it is declared.
    pub location: String,
    /// The pool it runs on (the default pool when it names none).
    pub pool: Option<String>,
    /// Timeout of each attempt.
    pub timeout: Option<Duration>,
    /// Deadline of the whole call.
    pub deadline: Option<Duration>,
    /// Retry policy.
    pub retry: Option<&'static str>,
    /// Circuit breaker.
    pub breaker: Option<&'static str>,
    /// Rate limiter.
    pub limiter: Option<&'static str>,
    /// Bulkhead.
    pub bulkhead: Option<&'static str>,
    /// Declared idempotent.
    pub idempotent: bool,
    /// Declared read-only.
    pub read_only: bool,
    /// Runs in a transaction.
    pub tx: bool,
    /// Slow-call threshold.
    pub slow: Option<Duration>,
    /// What does not fit this runtime's configuration, in plain words.
    pub problems: Vec<String>,
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
            && spec.retry_scope != super::spec::RetryScope::BeforeSend
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
