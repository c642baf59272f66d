use std::fmt;

/// What kind of failure happened. The names are stable: telemetry and the drills report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FailureKind {
    /// The connection broke: I/O error, class 08, protocol error, EOF.
    ConnectionLost,
    /// Contention between transactions: 40001 serialization failure, 40P01 deadlock,
    /// 55P03 lock not available (lock_timeout).
    Contention,
    /// The server or pool is saturated: 53300 too many connections, pool acquire timeout.
    Backpressure,
    /// The server is shutting down, crashed or is not yet accepting connections: 57P01,
    /// 57P02, 57P03 (starting up, shutting down, in recovery).
    ServerShutdown,
    /// A write reached a server that is read-only now: 25006, the primary was demoted.
    Failover,
    /// Our own deadline: the client gave up on an attempt or on the whole call.
    Deadline,
    /// The server's statement_timeout cancelled the statement (57014).
    StatementTimeout,
    /// Someone cancelled the statement on the server (57014, user request).
    Canceled,
    /// A constraint violation (class 23): the data says no; never retried.
    Constraint,
    /// A query that must return a row returned none.
    NotFound,
    /// The server failed internally or ran out of a resource (classes XX, 58, 53 other than
    /// 53300).
    ServerFailure,
    /// A failure that running again will not fix: syntax, permissions, data errors,
    /// authentication, configuration, decoding.
    Permanent,
    /// A circuit breaker rejected the call.
    BreakerOpen,
    /// The database server is down (a probe confirmed it unreachable) and the call could not
    /// wait for it any longer: `Error::Unavailable`.
    Unavailable,
    /// A rate limiter or bulkhead rejected the call.
    Rejected,
    /// The connection was lost after a write was sent.
    UnknownOutcome,
    /// The runtime is shutting down.
    ShuttingDown,
    /// Configuration is invalid.
    Configuration,
    /// The op's own outcome, not a database failure: its error type returned an error that
    /// holds no [`Error`](crate::Error) (`OpError::db_error` gave `None`), such as "already
    /// checked out". Never retried and never counted by a breaker.
    Application,
    /// Anything else.
    Unknown,
}

impl FailureKind {
    /// Every kind.
    pub const ALL: [FailureKind; 20] = [
        FailureKind::ConnectionLost,
        FailureKind::Contention,
        FailureKind::Backpressure,
        FailureKind::ServerShutdown,
        FailureKind::Failover,
        FailureKind::Deadline,
        FailureKind::StatementTimeout,
        FailureKind::Canceled,
        FailureKind::Constraint,
        FailureKind::NotFound,
        FailureKind::ServerFailure,
        FailureKind::Permanent,
        FailureKind::BreakerOpen,
        FailureKind::Unavailable,
        FailureKind::Rejected,
        FailureKind::UnknownOutcome,
        FailureKind::ShuttingDown,
        FailureKind::Configuration,
        FailureKind::Application,
        FailureKind::Unknown,
    ];

    /// The stable name used in telemetry, drills and configuration (`connection_lost`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::ConnectionLost => "connection_lost",
            FailureKind::Contention => "contention",
            FailureKind::Backpressure => "backpressure",
            FailureKind::ServerShutdown => "server_shutdown",
            FailureKind::Failover => "failover",
            FailureKind::Deadline => "deadline",
            FailureKind::StatementTimeout => "statement_timeout",
            FailureKind::Canceled => "canceled",
            FailureKind::Constraint => "constraint",
            FailureKind::NotFound => "not_found",
            FailureKind::ServerFailure => "server_failure",
            FailureKind::Permanent => "permanent",
            FailureKind::BreakerOpen => "breaker_open",
            FailureKind::Unavailable => "unavailable",
            FailureKind::Rejected => "rejected",
            FailureKind::UnknownOutcome => "unknown_outcome",
            FailureKind::ShuttingDown => "shutting_down",
            FailureKind::Configuration => "configuration",
            FailureKind::Application => "application",
            FailureKind::Unknown => "unknown",
        }
    }

    /// Parses [`FailureKind::as_str`] back.
    pub fn from_name(name: &str) -> Option<FailureKind> {
        FailureKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Kinds worth another attempt by default (subject to the op being safe to run again).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            FailureKind::ConnectionLost
                | FailureKind::Contention
                | FailureKind::Backpressure
                | FailureKind::ServerShutdown
                | FailureKind::Failover
                | FailureKind::Deadline
        )
    }

    /// Kinds after which the connection is discarded, not returned to the pool.
    pub fn evicts_connection(self) -> bool {
        matches!(
            self,
            FailureKind::ConnectionLost
                | FailureKind::ServerShutdown
                | FailureKind::Failover
                | FailureKind::Deadline
                | FailureKind::UnknownOutcome
        )
    }

    /// Kinds that say the database is unhealthy. Data, application and backpressure failures,
    /// and our own rejections, never count.
    pub fn counts_for_breaker(self) -> bool {
        matches!(
            self,
            FailureKind::ConnectionLost
                | FailureKind::ServerShutdown
                | FailureKind::Failover
                | FailureKind::Deadline
                | FailureKind::StatementTimeout
                | FailureKind::ServerFailure
                | FailureKind::UnknownOutcome
        )
    }

    /// Kinds that say the server could not be reached or was going away (lost connections,
    /// refused connects, class 08, 57P0x, a database closed to connections, a server already
    /// found down). A breaker opened by them recovers as soon as a probe reaches the server
    /// (`breaker::Recovery::ServerProbe`); every other kind that opens a breaker recovers by
    /// its timer.
    pub fn means_unreachable(self) -> bool {
        matches!(
            self,
            FailureKind::ConnectionLost | FailureKind::ServerShutdown | FailureKind::Unavailable
        )
    }

    /// What to do, appended to error messages.
    pub(crate) fn advice_suffix(self) -> &'static str {
        match self {
            FailureKind::ConnectionLost => {
                "; the connection was discarded; check the network and the server's log"
            }
            FailureKind::Contention => {
                "; another transaction got in the way; run it again or reduce contention on the rows involved"
            }
            FailureKind::Backpressure => {
                "; the server or pool is saturated; lower concurrency or raise the limits"
            }
            FailureKind::ServerShutdown => {
                "; the server is restarting or crashed; calls succeed again when it is back"
            }
            FailureKind::Failover => {
                "; the server is read-only now (failover); connections are being replaced"
            }
            FailureKind::Deadline => "; raise the op's timeout or make the query faster",
            FailureKind::StatementTimeout => {
                "; the server's statement_timeout stopped it; raise it or make the query faster"
            }
            FailureKind::Canceled => {
                "; the statement was cancelled on the server by another session"
            }
            FailureKind::Constraint => "; the data violates a constraint; this is not retried",
            FailureKind::NotFound => "; no row matched",
            FailureKind::ServerFailure => {
                "; the server reported an internal or resource failure; see its log"
            }
            FailureKind::Permanent => {
                "; running it again will not help; fix the query, the data or the permissions"
            }
            _ => "",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            FailureKind::ConnectionLost => "connection lost",
            FailureKind::Contention => "contention",
            FailureKind::Backpressure => "backpressure",
            FailureKind::ServerShutdown => "server shutting down",
            FailureKind::Failover => "failover",
            FailureKind::Deadline => "deadline exceeded",
            FailureKind::StatementTimeout => "statement timeout",
            FailureKind::Canceled => "statement cancelled",
            FailureKind::Constraint => "constraint violation",
            FailureKind::NotFound => "row not found",
            FailureKind::ServerFailure => "server failure",
            FailureKind::Permanent => "permanent failure",
            FailureKind::BreakerOpen => "circuit breaker open",
            FailureKind::Unavailable => "database unavailable",
            FailureKind::Rejected => "rejected",
            FailureKind::UnknownOutcome => "unknown outcome",
            FailureKind::ShuttingDown => "shutting down",
            FailureKind::Configuration => "configuration error",
            FailureKind::Application => "the op's own outcome",
            FailureKind::Unknown => "unknown failure",
        };
        f.pad(text)
    }
}
