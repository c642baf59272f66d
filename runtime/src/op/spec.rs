use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::config::Policy;
pub use crate::location::Location;

/// Transaction isolation levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isolation {
    /// `READ COMMITTED` (PostgreSQL's default).
    ReadCommitted,
    /// `REPEATABLE READ`.
    RepeatableRead,
    /// `SERIALIZABLE`.
    Serializable,
}

impl Isolation {
    /// The SQL words.
    pub fn as_sql(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "READ COMMITTED",
            Isolation::RepeatableRead => "REPEATABLE READ",
            Isolation::Serializable => "SERIALIZABLE",
        }
    }
}

/// How a transactional op begins its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TxSpec {
    /// Isolation level (the server's default when `None`).
    pub isolation: Option<Isolation>,
    /// `READ ONLY` transaction.
    pub read_only: bool,
}

/// What an op's retry policy may run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetryScope {
    /// What the op's declaration allows: every failure the policy retries for an idempotent,
    /// read-only or transactional op; only failures before anything was sent otherwise (and
    /// `#[db_op]` then asks for [`RetryScope::BeforeSend`] to be written).
    #[default]
    Declared,
    /// Declared knowingly for an op that may write and cannot run again: only failures before
    /// anything reached the server (connect, acquire) run again (`retry_scope = "before_send"`).
    BeforeSend,
}

/// A pool or policy an op names: a typed reference to what `policies!` declared (what
/// `#[db_op]` generates, checked when the code compiles), or a name given at run time to the
/// op builder (checked when the op is built).
#[derive(Debug, Clone, Copy)]
pub enum Name {
    /// Declared with `policies!`.
    Declared(&'static Policy),
    /// A name, looked up when the op is built.
    Text(&'static str),
}

impl Name {
    /// The name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Name::Declared(p) => p.name(),
            Name::Text(n) => n,
        }
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&'static str> for Name {
    fn from(name: &'static str) -> Name {
        Name::Text(name)
    }
}

impl From<&'static Policy> for Name {
    fn from(policy: &'static Policy) -> Name {
        Name::Declared(policy)
    }
}

/// Everything an op declares: its name and the policies it runs under. `#[db_op]` builds one
/// as a `static`; the op builder builds one at run time.
#[derive(Debug, Clone, PartialEq)]
pub struct OpSpec {
    /// The op's name, as seen in errors, telemetry and `pg_stat_activity`.
    pub name: &'static str,
    /// The pool (the runtime's default pool when `None`).
    pub pool: Option<Name>,
    /// Timeout of each attempt.
    pub timeout: Option<Duration>,
    /// Deadline of the whole call, across attempts, waits and retry delays.
    pub deadline: Option<Duration>,
    /// Retry policy.
    pub retry: Option<Name>,
    /// What the retry policy may run again.
    pub retry_scope: RetryScope,
    /// Circuit breaker.
    pub breaker: Option<Name>,
    /// Rate limiter.
    pub limiter: Option<Name>,
    /// Bulkhead.
    pub bulkhead: Option<Name>,
    /// Running it twice has the effect of running it once.
    pub idempotent: bool,
    /// It only reads.
    pub read_only: bool,
    /// It runs in a transaction.
    pub tx: Option<TxSpec>,
    /// Log a warning when a call takes longer.
    pub slow: Option<Duration>,
    /// For a `read_only` op of a pool with replicas: the most replication lag it accepts
    /// (the pool's `max_lag` when `None`).
    pub max_lag: Option<Duration>,
    /// How long its results are kept in the runtime's result cache (`crate::cache`); only a
    /// read-only op may have one.
    pub cache: Option<Duration>,
    /// Where it is declared.
    pub location: Location,
}

impl OpSpec {
    /// A spec with a name and no policies.
    pub const fn named(name: &'static str, location: Location) -> Self {
        OpSpec {
            name,
            pool: None,
            timeout: None,
            deadline: None,
            retry: None,
            retry_scope: RetryScope::Declared,
            breaker: None,
            limiter: None,
            bulkhead: None,
            idempotent: false,
            read_only: false,
            tx: None,
            slow: None,
            max_lag: None,
            cache: None,
            location,
        }
    }

    /// Whether running again after a lost connection cannot apply a write twice.
    pub fn safe_to_rerun(&self) -> bool {
        self.idempotent || self.read_only || self.tx.is_some_and(|t| t.read_only)
    }

    /// Whether the op is declared read-only (on the op, or its transaction).
    pub fn is_read_only(&self) -> bool {
        self.read_only || self.tx.is_some_and(|t| t.read_only)
    }

    /// How a transaction of this op begins: its isolation, and `READ ONLY` when the op is
    /// declared read-only (in `tx` or on the op: either makes the transaction read-only).
    /// Every way of running the op in a transaction begins it this way.
    pub fn tx_options(&self) -> TxSpec {
        let tx = self.tx.unwrap_or_default();
        TxSpec {
            isolation: tx.isolation,
            read_only: tx.read_only || self.read_only,
        }
    }
}

/// An op declared with `#[db_op]`: its spec in a `static`, registered when the program links,
/// with an index into every runtime's table of resolved ops, so a call finds its pool and
/// policies with one index and no lookup. Not public API: generated code builds it.
#[doc(hidden)]
#[derive(Debug)]
pub struct StaticOp {
    /// The op's spec.
    pub spec: OpSpec,
    index: AtomicUsize,
}

/// Indexes of static ops, handed out in order of first use (every registered op gets one when
/// the first runtime is built).
static NEXT_INDEX: AtomicUsize = AtomicUsize::new(0);

const UNINDEXED: usize = usize::MAX;

impl StaticOp {
    /// A static op.
    pub const fn new(spec: OpSpec) -> StaticOp {
        StaticOp {
            spec,
            index: AtomicUsize::new(UNINDEXED),
        }
    }

    /// This op's index in every runtime's table of resolved ops.
    #[inline]
    pub(crate) fn index(&self) -> usize {
        let index = self.index.load(Ordering::Acquire);
        if index != UNINDEXED {
            return index;
        }
        let fresh = NEXT_INDEX.fetch_add(1, Ordering::AcqRel);
        match self
            .index
            .compare_exchange(UNINDEXED, fresh, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => fresh,
            Err(taken) => taken,
        }
    }
}
