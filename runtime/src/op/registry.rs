//! Every op declared with `#[db_op]`, collected when the program links, so the runtime can
//! list them and check each against its configuration at start-up.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::host::Host;
use super::resolve::Resolved;
use super::spec::{OpSpec, StaticOp};

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
pub(crate) fn resolve_all(rt: &dyn Host) -> Vec<Option<Arc<Resolved>>> {
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
