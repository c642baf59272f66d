use std::fmt;
use std::time::Duration;

/// Where an op or a policy is declared in source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    /// Source file.
    pub file: &'static str,
    /// Line.
    pub line: u32,
    /// Column.
    pub column: u32,
}

impl Location {
    /// The caller's location.
    #[track_caller]
    pub fn caller() -> Self {
        let l = std::panic::Location::caller();
        Location {
            file: l.file(),
            line: l.line(),
            column: l.column(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

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

/// Everything an op declares: its name and the policies it runs under. `#[db_op]` builds one
/// as a `static`; the op builder builds one at run time.
#[derive(Debug, Clone, PartialEq)]
pub struct OpSpec {
    /// The op's name, as seen in errors, telemetry and `pg_stat_activity`.
    pub name: &'static str,
    /// The pool (the runtime's default pool when `None`).
    pub pool: Option<&'static str>,
    /// Timeout of each attempt.
    pub timeout: Option<Duration>,
    /// Deadline of the whole call, across attempts, waits and retry delays.
    pub deadline: Option<Duration>,
    /// Retry policy.
    pub retry: Option<&'static str>,
    /// Circuit breaker.
    pub breaker: Option<&'static str>,
    /// Rate limiter.
    pub limiter: Option<&'static str>,
    /// Bulkhead.
    pub bulkhead: Option<&'static str>,
    /// Running it twice has the effect of running it once.
    pub idempotent: bool,
    /// It only reads.
    pub read_only: bool,
    /// It runs in a transaction.
    pub tx: Option<TxSpec>,
    /// Log a warning when a call takes longer.
    pub slow: Option<Duration>,
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
            breaker: None,
            limiter: None,
            bulkhead: None,
            idempotent: false,
            read_only: false,
            tx: None,
            slow: None,
            location,
        }
    }

    /// Whether running again after a lost connection cannot apply a write twice.
    pub fn safe_to_rerun(&self) -> bool {
        self.idempotent || self.read_only || self.tx.is_some_and(|t| t.read_only)
    }
}
