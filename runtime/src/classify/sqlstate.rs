use std::io;

use super::{Classification, FailureKind, Reach};

/// Classifies a failure reported by sqlx.
///
/// The verdict on [`Reach`] assumes the error came from running a statement; connect and
/// acquire failures (I/O while connecting, `PoolTimedOut`, 53300, 57P03, authentication) are
/// reported as [`Reach::NotSent`] because the runtime sees them before the body runs.
pub fn classify(error: &sqlx::Error) -> Classification {
    use FailureKind::*;
    match error {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned());
            match code {
                Some(code) => classify_sqlstate(&code, db.message()),
                None => Classification::of_kind(Unknown, None, Reach::Rejected),
            }
        }
        sqlx::Error::Io(io) => {
            let reach = match io.kind() {
                // Nothing was connected, so nothing was sent.
                io::ErrorKind::ConnectionRefused
                | io::ErrorKind::AddrNotAvailable
                | io::ErrorKind::NotFound
                | io::ErrorKind::HostUnreachable
                | io::ErrorKind::NetworkUnreachable => Reach::NotSent,
                _ => Reach::Unknown,
            };
            Classification::of_kind(ConnectionLost, None, reach)
        }
        sqlx::Error::Tls(_) => Classification::of_kind(ConnectionLost, None, Reach::NotSent),
        sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => {
            Classification::of_kind(ConnectionLost, None, Reach::Unknown)
        }
        sqlx::Error::PoolTimedOut => Classification::of_kind(Backpressure, None, Reach::NotSent),
        sqlx::Error::PoolClosed => Classification::of_kind(ShuttingDown, None, Reach::NotSent),
        sqlx::Error::RowNotFound => Classification::of_kind(NotFound, None, Reach::Rejected),
        sqlx::Error::Configuration(_) | sqlx::Error::InvalidArgument(_) => {
            Classification::of_kind(Configuration, None, Reach::NotSent)
        }
        sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Encode(_)
        | sqlx::Error::Decode(_)
        | sqlx::Error::InvalidSavePointStatement
        | sqlx::Error::BeginFailed => Classification::of_kind(Permanent, None, Reach::Rejected),
        _ => Classification::of_kind(Unknown, None, Reach::Unknown),
    }
}

/// Classifies a SQLSTATE (with the server's message, which tells the reasons for 57014 apart).
pub fn classify_sqlstate(code: &str, message: &str) -> Classification {
    use FailureKind::*;
    if let Some(c) = super::pooler::classify_pooler(code, message) {
        return c;
    }
    let owned = Some(code.to_owned());
    let (kind, reach) = match code {
        // Contention: the statement was rejected, the transaction rolled back.
        "40001" | "40P01" | "55P03" => (Contention, Reach::Rejected),
        // 40003 statement_completion_unknown: the server itself does not know.
        "40003" => (ConnectionLost, Reach::Unknown),
        // Backpressure at connect time: nothing ran.
        "53300" => (Backpressure, Reach::NotSent),
        // 57P03 cannot_connect_now: the server is starting up, shutting down or in crash
        // recovery. It is unavailable, not saturated: nothing ran, and it counts against a
        // breaker (which then recovers when a probe reaches the server).
        "57P03" => (ServerShutdown, Reach::NotSent),
        // Server going away. A statement interrupted by shutdown is rolled back, but earlier
        // statements of the same body may have committed: the op decides.
        "57P01" | "57P02" => (ServerShutdown, Reach::Unknown),
        // 57P04 database_dropped, 57P05 idle_session_timeout: the session is gone.
        "57P04" | "57P05" => (ConnectionLost, Reach::Unknown),
        "25006" => (Failover, Reach::Rejected),
        "57014" => {
            if message.contains("statement timeout") {
                (StatementTimeout, Reach::Rejected)
            } else {
                (Canceled, Reach::Rejected)
            }
        }
        // idle_in_transaction_session_timeout ends the session.
        "25P03" => (ConnectionLost, Reach::Unknown),
        // A database closed to connections (`ALLOW_CONNECTIONS false`, as during maintenance)
        // is unavailable, like a server that cannot be reached; nothing ran. Other 55000
        // errors (such as `currval` before `nextval`) are the application's.
        "55000" if message.contains("not currently accepting connections") => {
            (ConnectionLost, Reach::NotSent)
        }
        _ => match &code[..code.len().min(2)] {
            "08" => {
                // Connection exceptions; 08001/08004 happen while connecting.
                let reach = if matches!(code, "08001" | "08004") {
                    Reach::NotSent
                } else {
                    Reach::Unknown
                };
                (ConnectionLost, reach)
            }
            "23" => (Constraint, Reach::Rejected),
            "28" => (Permanent, Reach::NotSent),
            "53" | "58" | "XX" => (ServerFailure, Reach::Rejected),
            "0A" | "22" | "2B" | "2D" | "34" | "3D" | "3F" | "42" | "44" | "P0" | "25" => {
                (Permanent, Reach::Rejected)
            }
            _ => (Unknown, Reach::Rejected),
        },
    };
    Classification::of_kind(kind, owned, reach)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(code: &str) -> FailureKind {
        classify_sqlstate(code, "").kind
    }

    #[test]
    fn contention_codes_are_transient_and_leave_the_connection() {
        for code in ["40001", "40P01", "55P03"] {
            let c = classify_sqlstate(code, "");
            assert_eq!(c.kind, FailureKind::Contention, "{code}");
            assert!(c.transient, "{code}");
            assert!(!c.evict, "{code}");
            assert!(!c.counts_for_breaker, "{code}");
            assert_eq!(c.reach, Reach::Rejected, "{code}");
        }
    }

    #[test]
    fn a_database_closed_to_connections_is_unavailable_not_an_application_error() {
        let closed = classify_sqlstate(
            "55000",
            "database \"app\" is not currently accepting connections",
        );
        assert_eq!(closed.kind, FailureKind::ConnectionLost);
        assert!(closed.transient && closed.counts_for_breaker);
        assert_eq!(closed.reach, Reach::NotSent);
        let currval = classify_sqlstate("55000", "currval of sequence \"s\" is not yet defined");
        assert!(!currval.counts_for_breaker);
        assert!(!currval.transient);
    }

    #[test]
    fn backpressure_codes_never_trip_a_breaker() {
        let c = classify_sqlstate("53300", "");
        assert_eq!(c.kind, FailureKind::Backpressure);
        assert!(c.transient && !c.counts_for_breaker);
        assert_eq!(c.reach, Reach::NotSent);
        let pool = classify(&sqlx::Error::PoolTimedOut);
        assert_eq!(pool.kind, FailureKind::Backpressure);
        assert!(!pool.counts_for_breaker);
    }

    #[test]
    fn shutdown_and_connection_codes_evict_and_count() {
        for code in [
            "57P01", "57P02", "08006", "08003", "08000", "08P01", "57P05",
        ] {
            let c = classify_sqlstate(code, "");
            assert!(c.evict, "{code}");
            assert!(c.counts_for_breaker, "{code}");
            assert!(c.transient, "{code}");
        }
        assert_eq!(kind("57P01"), FailureKind::ServerShutdown);
        // Starting up, shutting down, in recovery: unavailable, not saturated.
        let starting = classify_sqlstate("57P03", "the database system is starting up");
        assert_eq!(starting.kind, FailureKind::ServerShutdown);
        assert_eq!(starting.reach, Reach::NotSent);
        assert!(starting.transient && starting.counts_for_breaker);
        assert_eq!(kind("57P02"), FailureKind::ServerShutdown);
        assert_eq!(kind("08006"), FailureKind::ConnectionLost);
        assert_eq!(classify_sqlstate("08001", "").reach, Reach::NotSent);
        assert_eq!(classify_sqlstate("08006", "").reach, Reach::Unknown);
    }

    #[test]
    fn failover_evicts_and_is_transient() {
        let c = classify_sqlstate("25006", "cannot execute INSERT in a read-only transaction");
        assert_eq!(c.kind, FailureKind::Failover);
        assert!(c.evict && c.transient && c.counts_for_breaker);
    }

    #[test]
    fn query_canceled_tells_statement_timeout_from_a_cancel() {
        let timeout = classify_sqlstate("57014", "canceling statement due to statement timeout");
        assert_eq!(timeout.kind, FailureKind::StatementTimeout);
        assert!(
            !timeout.transient,
            "the server's statement_timeout is not retried by default"
        );
        assert!(timeout.counts_for_breaker);
        let cancel = classify_sqlstate("57014", "canceling statement due to user request");
        assert_eq!(cancel.kind, FailureKind::Canceled);
        assert!(!cancel.transient && !cancel.counts_for_breaker);
    }

    #[test]
    fn constraint_class_never_retries_and_never_trips() {
        for code in ["23505", "23503", "23502", "23514", "23P01"] {
            let c = classify_sqlstate(code, "");
            assert_eq!(c.kind, FailureKind::Constraint, "{code}");
            assert!(!c.transient && !c.counts_for_breaker && !c.evict, "{code}");
        }
    }

    #[test]
    fn permanent_codes() {
        for code in [
            "42601", "42P01", "42501", "22P02", "22012", "0A000", "3D000", "28P01",
        ] {
            let c = classify_sqlstate(code, "");
            assert_eq!(c.kind, FailureKind::Permanent, "{code}");
            assert!(!c.transient && !c.counts_for_breaker, "{code}");
        }
        assert_eq!(classify_sqlstate("28P01", "").reach, Reach::NotSent);
    }

    #[test]
    fn server_failures_count_but_are_not_retried() {
        for code in ["XX000", "58030", "53200", "53100"] {
            let c = classify_sqlstate(code, "");
            assert_eq!(c.kind, FailureKind::ServerFailure, "{code}");
            assert!(c.counts_for_breaker && !c.transient, "{code}");
        }
    }

    #[test]
    fn driver_errors() {
        let refused = classify(&sqlx::Error::Io(io::Error::from(
            io::ErrorKind::ConnectionRefused,
        )));
        assert_eq!(refused.kind, FailureKind::ConnectionLost);
        assert_eq!(refused.reach, Reach::NotSent);
        let reset = classify(&sqlx::Error::Io(io::Error::from(
            io::ErrorKind::ConnectionReset,
        )));
        assert_eq!(reset.reach, Reach::Unknown);
        assert!(reset.evict && reset.transient && reset.counts_for_breaker);
        let eof = classify(&sqlx::Error::Io(io::Error::from(
            io::ErrorKind::UnexpectedEof,
        )));
        assert_eq!(eof.kind, FailureKind::ConnectionLost);
        let nf = classify(&sqlx::Error::RowNotFound);
        assert_eq!(nf.kind, FailureKind::NotFound);
        assert!(!nf.counts_for_breaker && !nf.transient);
        let decode = classify(&sqlx::Error::ColumnNotFound("x".into()));
        assert_eq!(decode.kind, FailureKind::Permanent);
        assert_eq!(
            classify(&sqlx::Error::PoolClosed).kind,
            FailureKind::ShuttingDown
        );
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in FailureKind::ALL {
            assert_eq!(FailureKind::from_name(kind.as_str()), Some(kind));
        }
    }
}
