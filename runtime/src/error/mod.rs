//! The one error type of sqlx-resilience.
//!
//! Every failure names what failed, where (op, pool, policy) and what to do about it.
//! Messages are lowercase, have no trailing period and never repeat their `#[source]`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

mod wait;

pub use self::wait::WaitEnd;
use crate::classify::FailureKind;
use crate::host_target::TargetSessionAttrs;

/// `Result` with [`Error`] as its default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The name users give [`Error`] in repository signatures: `Result<Stats, DbError>`.
pub type DbError = Error;

/// Where a failure happened: the op and the pool it ran on, when known.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Site {
    /// The op's name (`module::function` for annotated functions).
    pub op: Option<Arc<str>>,
    /// The pool the op ran on.
    pub pool: Option<Arc<str>>,
}

impl Site {
    /// A site for the named op on the named pool.
    pub fn new(op: impl Into<Arc<str>>, pool: impl Into<Arc<str>>) -> Self {
        Site {
            op: Some(op.into()),
            pool: Some(pool.into()),
        }
    }

    /// A site that names only a pool (start-up, pool maintenance).
    pub fn pool(pool: impl Into<Arc<str>>) -> Self {
        Site {
            op: None,
            pool: Some(pool.into()),
        }
    }
}

impl fmt::Debug for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.op, &self.pool) {
            (Some(op), Some(pool)) => write!(f, "op `{op}` on pool `{pool}`"),
            (Some(op), None) => write!(f, "op `{op}`"),
            (None, Some(pool)) => write!(f, "pool `{pool}`"),
            (None, None) => f.write_str("runtime"),
        }
    }
}

/// The kinds of named policies code declares and configuration tunes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PolicyKind {
    /// A named connection pool.
    Pool,
    /// A circuit breaker.
    Breaker,
    /// A retry policy.
    Retry,
    /// A rate limiter.
    Limiter,
    /// A bulkhead (concurrency limit).
    Bulkhead,
}

impl PolicyKind {
    /// Every kind, in declaration order.
    pub const ALL: [PolicyKind; 5] = [
        PolicyKind::Pool,
        PolicyKind::Breaker,
        PolicyKind::Retry,
        PolicyKind::Limiter,
        PolicyKind::Bulkhead,
    ];

    /// The singular word used in messages and in `policies!` (`pool`, `breaker`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Pool => "pool",
            PolicyKind::Breaker => "breaker",
            PolicyKind::Retry => "retry",
            PolicyKind::Limiter => "limiter",
            PolicyKind::Bulkhead => "bulkhead",
        }
    }

    /// The section that holds this kind in configuration files (`pools`, `breakers`, ...).
    pub fn section(self) -> &'static str {
        match self {
            PolicyKind::Pool => "pools",
            PolicyKind::Breaker => "breakers",
            PolicyKind::Retry => "retries",
            PolicyKind::Limiter => "limiters",
            PolicyKind::Bulkhead => "bulkheads",
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every failure sqlx-resilience reports.
///
/// Its `Debug` is its message followed by its causes, one per line, so that the panic of a
/// start-up `.expect(..)` reads like the error it carries.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is invalid.
    #[error("invalid configuration: `{key}` = {value} (from {origin}): expected {expected}")]
    Config {
        /// The full key, such as `pools.http.max`.
        key: String,
        /// The offending value as written.
        value: String,
        /// What would have been accepted.
        expected: String,
        /// Where the value came from: code, a file path, or an environment variable.
        origin: String,
    },

    /// A configuration source could not be read or parsed.
    #[error("cannot read configuration from {origin}: {message}")]
    ConfigSource {
        /// The file or environment variable.
        origin: String,
        /// What went wrong, with the line where it is known.
        message: String,
    },

    /// Several configuration problems, found together in one pass over every source, so that
    /// one start-up shows all of them (a single problem is reported as itself).
    #[error(
        "{} problems in the configuration; fix each:{}",
        .problems.len(),
        numbered(.problems)
    )]
    ConfigProblems {
        /// Each problem, in the order its source applies: code, files, environment.
        problems: Vec<Error>,
    },

    /// A name is used or configured that code does not declare.
    #[error(
        "{kind} `{name}` (from {origin}) is not declared{suggestion}; declared {kind}s: \
         {declared}; declare it in `policies!` or fix the name"
    )]
    UndeclaredName {
        /// The kind of policy.
        kind: PolicyKind,
        /// The unknown name.
        name: String,
        /// Where the name came from.
        origin: String,
        /// The declared names of that kind, comma-separated (or `none`).
        declared: String,
        /// ` (did you mean `http`?)` when a declared name is close, else empty.
        suggestion: String,
    },

    /// Connecting to the database failed.
    #[error(
        "{site}: cannot connect to {target}; check that the server is up and the URL and credentials are right"
    )]
    Connect {
        /// The pool that tried to connect.
        site: Site,
        /// The server, with any password redacted.
        target: String,
        /// What sqlx reported.
        #[source]
        source: sqlx::Error,
    },

    /// The password for a new connection could not be had from `password_file` or the pool's
    /// password provider. Nothing was sent to the server.
    #[error("{site}: cannot get the password from {source_name}: {reason}; {hint}")]
    Credentials {
        /// The pool that was about to connect.
        site: Site,
        /// `password_file PATH`, or "the password provider".
        source_name: String,
        /// Why: the file's or the provider's error (never the password).
        reason: String,
        /// What to do.
        hint: String,
    },

    /// Pool maxima exceed the server's connection budget.
    #[error(
        "connection budget exceeded: {arithmetic}; lower the pool maxima, the instance count, or raise max_connections"
    )]
    Budget {
        /// The arithmetic: what the pools ask for against what the server allows.
        arithmetic: String,
    },

    /// No connection became free within the pool's acquire timeout.
    #[error(
        "{site}: no connection within {:?} ({in_use}/{max} in use, {waiting} waiting); {}",
        rounded(*.waited),
        if *.unreachable {
            "the pool could not open new connections: check that the server is reachable"
        } else {
            "raise the pool's max, lower concurrency, or find slow ops holding connections"
        }
    )]
    AcquireTimeout {
        /// Where.
        site: Site,
        /// How long the caller waited.
        waited: Duration,
        /// Connections in use when it gave up.
        in_use: u32,
        /// The pool's maximum.
        max: u32,
        /// Other callers waiting when it gave up.
        waiting: u32,
        /// The pool could not open connections (it was below its maximum), or its connections
        /// were tied up by the pool's own round trips while no caller got one: the server is
        /// unreachable rather than the pool exhausted.
        unreachable: bool,
    },

    /// The pool was closed (the runtime shut down).
    #[error("{site}: the pool is closed; the runtime was shut down")]
    PoolClosed {
        /// Where.
        site: Site,
    },

    /// One attempt ran past its timeout. Returned when nothing the attempt may have written
    /// can be half-done: the op is read-only or idempotent, or its transaction was rolled back.
    /// An op that may have written gets [`Error::UnknownOutcome`] with this as its source.
    #[error(
        "{site}: attempt {attempt} timed out after {:?}; raise the op's timeout or make its \
         queries faster",
        rounded(*.timeout)
    )]
    Timeout {
        /// Where.
        site: Site,
        /// The per-attempt timeout.
        timeout: Duration,
        /// Which attempt (1-based).
        attempt: u32,
    },

    /// The whole call ran out of time (its deadline), across attempts and waits.
    #[error(
        "{site}: deadline of {:?} exceeded after {attempts} attempt(s); \
         raise the op's deadline or look at the last failure{}",
        rounded(*.deadline),
        last_failure(.last)
    )]
    DeadlineExceeded {
        /// Where.
        site: Site,
        /// The deadline of the whole call.
        deadline: Duration,
        /// Attempts started before it ran out.
        attempts: u32,
        /// The failure of the last attempt, when there was one.
        last: Option<Box<Error>>,
    },

    /// A circuit breaker is open and rejected the call without running it.
    #[error(
        "{site}: circuit breaker `{breaker}` is open{}; the database is failing, calls resume \
         when a probe succeeds",
        retry_after_text(.retry_after)
    )]
    BreakerOpen {
        /// Where.
        site: Site,
        /// The breaker's name.
        breaker: Arc<str>,
        /// When the breaker will let a probe through, if known.
        retry_after: Option<Duration>,
    },

    /// The database server is down (a probe confirmed it unreachable), and the call could not
    /// wait for it any longer. Calls resume the moment a probe reaches the server.
    #[error(
        "{site}: the database at {server} is unavailable, unreachable since {} ({:?} ago); {wait}{}; \
         calls resume as soon as the server answers a probe",
        humantime::format_rfc3339_millis(*.since),
        crate::error::rounded(*.down_for),
        waited_text(*.waited, .breaker)
    )]
    Unavailable {
        /// Where.
        site: Site,
        /// `host:port/database`.
        server: Arc<str>,
        /// When the outage began (the first failure seen).
        since: std::time::SystemTime,
        /// How long the outage had lasted when the call gave up.
        down_for: Duration,
        /// How long the call waited for the server.
        waited: Duration,
        /// Why it stopped waiting.
        wait: WaitEnd,
        /// The breaker that was open because the server was unreachable, if the call met one.
        breaker: Option<Arc<str>>,
    },

    /// A multi-host pool has no host that suits its `target_session_attrs` (its primary
    /// failed over, or none answered yet), and the call's deadline (or acquire timeout)
    /// ended before one did.
    #[error(
        "{site}: failover in progress: {} ({reason}) since {} ({:?} ago); none of {} \
         answered as `{target}` within the {:?} this call waited; calls resume once a host \
         does: give ops a deadline longer than a failover takes to ride it out",
        old_host.as_ref().map_or_else(|| "no host in use yet".to_owned(), |h| format!("host {h} stopped being usable")),
        humantime::format_rfc3339_millis(*.since),
        crate::error::rounded(.since.elapsed().unwrap_or_default()),
        .hosts.join(", "),
        crate::error::rounded(*.waited)
    )]
    Failover {
        /// Where.
        site: Site,
        /// The host the pool used before, if it had one.
        old_host: Option<Box<str>>,
        /// Every host of the pool, `host:port`, followed by why it failed last when it did
        /// (`host:port (last failure: ...)`, without secrets), so a wrong password or a
        /// refused connection shows through.
        hosts: Box<[String]>,
        /// What the pool asks of a host.
        target: TargetSessionAttrs,
        /// When the failover began.
        since: std::time::SystemTime,
        /// How long the call waited.
        waited: Duration,
        /// What started it (a read-only error, a lost connection, ...), without secrets.
        reason: Box<str>,
    },

    /// A rate limiter rejected the call.
    #[error(
        "{site}: rate limiter `{limiter}` rejected the call{}; slow down or raise its rate",
        retry_after_text(.retry_after)
    )]
    RateLimited {
        /// Where.
        site: Site,
        /// The limiter's name.
        limiter: Arc<str>,
        /// When a permit would be available.
        retry_after: Option<Duration>,
    },

    /// A bulkhead was full and shed the call.
    #[error(
        "{site}: bulkhead `{bulkhead}` is full ({max_concurrent} running, {max_queue} queued); \
         the call was shed; lower load or raise the bulkhead's limits"
    )]
    BulkheadFull {
        /// Where.
        site: Site,
        /// The bulkhead's name.
        bulkhead: Arc<str>,
        /// Its concurrency limit.
        max_concurrent: u32,
        /// Its queue limit.
        max_queue: u32,
    },

    /// The database (or the driver) reported a failure.
    #[error("{site}: {kind} after {attempts} attempt(s){}", kind.advice_suffix())]
    Database {
        /// Where.
        site: Site,
        /// What kind of failure it was.
        kind: FailureKind,
        /// Attempts made.
        attempts: u32,
        /// What sqlx reported.
        #[source]
        source: sqlx::Error,
    },

    /// An op that may write and is not idempotent was cut off after its body began: by a lost
    /// connection, by its timeout or deadline, or during `COMMIT`. What it wrote may or may not
    /// have been applied, so it is not run again.
    #[error(
        "{site}: cut off after its body began; what it wrote may or may not have been applied, \
         so its outcome is unknown and it was not run again; check whether it was applied, or \
         declare the op idempotent"
    )]
    UnknownOutcome {
        /// Where.
        site: Site,
        /// What cut the op off: [`Error::Database`] (the connection was lost),
        /// [`Error::Timeout`] or [`Error::DeadlineExceeded`].
        #[source]
        source: Box<Error>,
    },

    /// A bulk load ([`Op::copy_in`](crate::Op::copy_in)) stopped at a batch that failed; the
    /// batches before it are committed.
    #[error(
        "COPY through op `{op}` stopped at a batch of {batch_rows} rows after {committed_rows} \
         rows in {committed_batches} batches were committed: {source}; the rest was not \
         written (unless the error is an unknown outcome): fix the cause and load again from \
         row {committed_rows}"
    )]
    Copy {
        /// The op.
        op: &'static str,
        /// Rows committed before the failure.
        committed_rows: u64,
        /// Batches committed before the failure.
        committed_batches: u64,
        /// Rows in the batch that failed.
        batch_rows: u64,
        /// Why the batch failed (with its site).
        #[source]
        source: Box<Error>,
    },

    /// Declared ops do not fit the runtime's configuration (with `ops_check = "error"`).
    #[error(
        "ops do not fit the runtime's configuration; fix the names or the configuration:\n{report}"
    )]
    Misconfigured {
        /// One line per op: its name, location and problems.
        report: String,
    },

    /// The runtime is shutting down and refuses new work.
    #[error("{site}: the runtime is shutting down and refuses new work")]
    ShuttingDown {
        /// Where.
        site: Site,
    },

    /// Shutdown's deadline passed with work still in flight.
    #[error(
        "shutdown deadline of {:?} passed with {in_flight} op(s) still running; they were abandoned",
        rounded(*.deadline)
    )]
    ShutdownTimeout {
        /// The deadline given to `shutdown`.
        deadline: Duration,
        /// Ops still running.
        in_flight: usize,
    },

    /// A pool's background queue was full under `background_when_full = "reject"`; the write
    /// was not queued (and was reported to the dropped-write hook).
    #[error(
        "{site}: the background queue is full ({capacity} writes queued or running); the write \
         was not queued: the database is slow or down, or writes come faster than it takes \
         them: raise `background_capacity` or `background_workers`, or choose another \
         `background_when_full`"
    )]
    BackgroundFull {
        /// Where.
        site: Site,
        /// The queue's capacity.
        capacity: u32,
    },

    /// Shutdown's deadline passed before every accepted background write was made; each one
    /// not made was reported to the dropped-write hook.
    #[error(
        "shutdown deadline of {:?} passed with {unwritten} background write(s) not made; each \
         was reported to the dropped-write hook: give shutdown more time, or look at why the \
         database did not take them",
        rounded(*.deadline)
    )]
    BackgroundUnwritten {
        /// The deadline given to `shutdown`.
        deadline: Duration,
        /// Writes still queued or running at the deadline.
        unwritten: u64,
    },

    /// A body error that did not come from the database, carried through the runtime.
    #[error("{site}: {message}")]
    Op {
        /// Where.
        site: Site,
        /// The message.
        message: String,
    },

    /// The test kit could not start, stop or control a server.
    #[error("test kit: cannot {action}: {detail}; {hint}")]
    TestKit {
        /// What it tried.
        action: String,
        /// What went wrong.
        detail: String,
        /// What to do.
        hint: String,
    },
}

fn waited_text(waited: Duration, breaker: &Option<Arc<str>>) -> String {
    let mut text = String::new();
    if !waited.is_zero() {
        text.push_str(&format!(" after {:?}", rounded(waited)));
    }
    if let Some(b) = breaker {
        text.push_str(&format!(" (circuit breaker `{b}` is open until then)"));
    }
    text
}

/// A duration rounded to the millisecond, for messages.
pub(crate) fn rounded(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn retry_after_text(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(" (retry after {:?})", rounded(*d)),
        None => String::new(),
    }
}

fn last_failure(last: &Option<Box<Error>>) -> String {
    match last {
        Some(e) => format!("; last failure: {e}"),
        None => String::new(),
    }
}

impl From<sqlx::Error> for Error {
    /// A failure from a body's `?`: classified now, with the site filled in by the runtime.
    fn from(source: sqlx::Error) -> Self {
        let kind = crate::classify::classify(&source).kind;
        Error::Database {
            site: Site::default(),
            kind,
            attempts: 1,
            source,
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            write!(f, "\n  caused by: {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// `\n  1. first\n  2. second`: one problem per line, for `Error::ConfigProblems`.
fn numbered(problems: &[Error]) -> String {
    problems
        .iter()
        .enumerate()
        .map(|(i, p)| format!("\n  {}. {p}", i + 1))
        .collect()
}

impl Error {
    /// One configuration problem as itself, several as [`Error::ConfigProblems`].
    pub(crate) fn config_problems(mut problems: Vec<Error>) -> Option<Self> {
        match problems.len() {
            0 => None,
            1 => problems.pop(),
            _ => Some(Error::ConfigProblems { problems }),
        }
    }

    /// A name of `kind` that code does not declare, with the declared ones and the closest.
    pub(crate) fn undeclared(
        kind: PolicyKind,
        name: &str,
        origin: impl Into<String>,
        declared: &[&str],
    ) -> Self {
        Error::UndeclaredName {
            kind,
            name: name.to_owned(),
            origin: origin.into(),
            declared: if declared.is_empty() {
                "none".into()
            } else {
                declared.join(", ")
            },
            suggestion: sqlx_resilience_schema::closest(name, declared)
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default(),
        }
    }

    /// A shorthand for a configuration error.
    pub fn config(
        key: impl Into<String>,
        value: impl fmt::Display,
        expected: impl Into<String>,
        origin: impl Into<String>,
    ) -> Self {
        Error::Config {
            key: key.into(),
            // Values may be URLs with passwords.
            value: crate::redact::redact(&value.to_string()),
            expected: expected.into(),
            origin: origin.into(),
        }
    }

    /// A test-kit failure: what it tried, what went wrong, what to do.
    pub fn test_kit(
        action: impl Into<String>,
        detail: impl fmt::Display,
        hint: impl Into<String>,
    ) -> Self {
        Error::TestKit {
            action: action.into(),
            detail: detail.to_string(),
            hint: hint.into(),
        }
    }

    /// The site of this failure, when it has one.
    pub fn site(&self) -> Option<&Site> {
        match self {
            Error::Connect { site, .. }
            | Error::Credentials { site, .. }
            | Error::AcquireTimeout { site, .. }
            | Error::PoolClosed { site }
            | Error::Timeout { site, .. }
            | Error::DeadlineExceeded { site, .. }
            | Error::BreakerOpen { site, .. }
            | Error::Unavailable { site, .. }
            | Error::Failover { site, .. }
            | Error::RateLimited { site, .. }
            | Error::BulkheadFull { site, .. }
            | Error::Database { site, .. }
            | Error::UnknownOutcome { site, .. }
            | Error::ShuttingDown { site }
            | Error::BackgroundFull { site, .. }
            | Error::Op { site, .. } => Some(site),
            _ => None,
        }
    }

    /// Fills in the site where the failure did not know it (a body's `?` on a sqlx error).
    pub fn with_site(mut self, new: &Site) -> Self {
        if let Some(site) = self.site_mut() {
            if site.op.is_none() {
                site.op.clone_from(&new.op);
            }
            if site.pool.is_none() {
                site.pool.clone_from(&new.pool);
            }
        }
        self
    }

    fn site_mut(&mut self) -> Option<&mut Site> {
        match self {
            Error::Connect { site, .. }
            | Error::Credentials { site, .. }
            | Error::AcquireTimeout { site, .. }
            | Error::PoolClosed { site }
            | Error::Timeout { site, .. }
            | Error::DeadlineExceeded { site, .. }
            | Error::BreakerOpen { site, .. }
            | Error::Unavailable { site, .. }
            | Error::Failover { site, .. }
            | Error::RateLimited { site, .. }
            | Error::BulkheadFull { site, .. }
            | Error::Database { site, .. }
            | Error::UnknownOutcome { site, .. }
            | Error::ShuttingDown { site }
            | Error::BackgroundFull { site, .. }
            | Error::Op { site, .. } => Some(site),
            _ => None,
        }
    }

    /// The kind of failure, for telemetry and for callers that branch on it.
    pub fn kind(&self) -> FailureKind {
        match self {
            Error::Database { kind, .. } => *kind,
            Error::Copy { source, .. } => source.kind(),
            Error::Connect { source, .. } => crate::classify::classify(source).kind,
            Error::AcquireTimeout {
                unreachable: true, ..
            } => FailureKind::ConnectionLost,
            Error::AcquireTimeout { .. } => FailureKind::Backpressure,
            Error::Timeout { .. } | Error::DeadlineExceeded { .. } => FailureKind::Deadline,
            Error::BreakerOpen { .. } => FailureKind::BreakerOpen,
            Error::Unavailable { .. } => FailureKind::Unavailable,
            Error::Failover { .. } => FailureKind::Failover,
            Error::RateLimited { .. }
            | Error::BulkheadFull { .. }
            | Error::BackgroundFull { .. } => FailureKind::Rejected,
            Error::UnknownOutcome { .. } => FailureKind::UnknownOutcome,
            Error::PoolClosed { .. } | Error::ShuttingDown { .. } => FailureKind::ShuttingDown,
            Error::Config { .. }
            | Error::ConfigSource { .. }
            | Error::ConfigProblems { .. }
            | Error::UndeclaredName { .. }
            | Error::Budget { .. }
            | Error::Credentials { .. }
            | Error::Misconfigured { .. } => FailureKind::Configuration,
            _ => FailureKind::Unknown,
        }
    }

    /// The SQLSTATE the server reported, if this failure carries one.
    pub fn sqlstate(&self) -> Option<String> {
        match self {
            Error::Database { source, .. } | Error::Connect { source, .. } => source
                .as_database_error()
                .and_then(|e| e.code())
                .map(|c| c.into_owned()),
            Error::UnknownOutcome { source, .. } | Error::Copy { source, .. } => source.sqlstate(),
            Error::DeadlineExceeded {
                last: Some(last), ..
            } => last.sqlstate(),
            _ => None,
        }
    }

    /// The underlying sqlx error, if this failure came from the driver.
    pub fn as_sqlx(&self) -> Option<&sqlx::Error> {
        match self {
            Error::Database { source, .. } | Error::Connect { source, .. } => Some(source),
            Error::UnknownOutcome { source, .. } => source.as_sqlx(),
            _ => None,
        }
    }
}

/// How the runtime sees the error type of an op's body.
///
/// Bodies return `Result<T, E>`. The runtime classifies a failure (retry it? does it count
/// against the breaker?) only when it can find an [`Error`] inside `E`. Implemented for
/// [`Error`] itself; implement it for an application error type that wraps [`Error`]:
///
/// ```
/// use sqlx_resilience_runtime::{Error, OpError};
///
/// #[derive(Debug)]
/// enum AppError { Db(Error), NotAllowed }
/// impl From<Error> for AppError { fn from(e: Error) -> Self { AppError::Db(e) } }
/// impl OpError for AppError {
///     fn db_error(&mut self) -> Option<&mut Error> {
///         match self { AppError::Db(e) => Some(e), _ => None }
///     }
/// }
/// ```
///
/// A failure without an [`Error`] inside is the application's own: it is returned at once,
/// never retried, and does not count against a circuit breaker.
#[diagnostic::on_unimplemented(
    message = "the error type `{Self}` hides database failures from the op's retry policy and circuit breaker",
    label = "`{Self}` does not implement `OpError`",
    note = "a retry policy and a breaker must tell a lost connection from a constraint violation or an application error: return `Result<T, DbError>` (sqlx errors convert with `?`), or implement `sqlx_resilience::OpError` for `{Self}` so the runtime finds the `DbError` inside"
)]
pub trait OpError: From<Error> + Send {
    /// The database failure inside this error, if it is one. Mutable so the runtime can add
    /// the op, pool and attempt count to it.
    fn db_error(&mut self) -> Option<&mut Error>;
}

impl OpError for Error {
    fn db_error(&mut self) -> Option<&mut Error> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_site_and_say_what_to_do() {
        let e = Error::AcquireTimeout {
            site: Site::new("harvest::statistics", "http"),
            waited: Duration::from_secs(2),
            in_use: 150,
            max: 150,
            waiting: 37,
            unreachable: false,
        };
        let text = e.to_string();
        assert!(
            text.starts_with("op `harvest::statistics` on pool `http`"),
            "{text}"
        );
        assert!(text.contains("150/150 in use, 37 waiting"), "{text}");
        assert!(text.contains("raise the pool's max"), "{text}");
    }

    #[test]
    fn with_site_fills_only_what_is_missing() {
        let e = Error::from(sqlx::Error::RowNotFound).with_site(&Site::new("a::b", "http"));
        assert_eq!(e.site(), Some(&Site::new("a::b", "http")));
        let e = e.with_site(&Site::new("other", "ws"));
        assert_eq!(e.site(), Some(&Site::new("a::b", "http")));
    }

    #[test]
    fn durations_in_messages_are_rounded_to_milliseconds() {
        let e = Error::AcquireTimeout {
            site: Site::pool("http"),
            waited: Duration::from_nanos(494_401_977),
            in_use: 1,
            max: 1,
            waiting: 0,
            unreachable: false,
        };
        let text = e.to_string();
        assert!(text.contains("no connection within 494ms ("), "{text}");
        let e = Error::RateLimited {
            site: Site::pool("http"),
            limiter: "api".into(),
            retry_after: Some(Duration::from_nanos(1_500_400_000)),
        };
        assert!(e.to_string().contains("(retry after 1.5s)"), "{e}");
    }

    #[test]
    fn deadline_message_carries_the_last_failure() {
        let last = Error::Timeout {
            site: Site::new("op", "p"),
            timeout: Duration::from_millis(100),
            attempt: 3,
        };
        let e = Error::DeadlineExceeded {
            site: Site::new("op", "p"),
            deadline: Duration::from_millis(300),
            attempts: 3,
            last: Some(Box::new(last)),
        };
        let text = e.to_string();
        assert!(text.contains("after 3 attempt(s)"), "{text}");
        assert!(
            text.contains("last failure: op `op` on pool `p`: attempt 3 timed out"),
            "{text}"
        );
    }
}
