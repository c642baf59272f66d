//! PgBouncer's own errors. PgBouncer reports them as `FATAL` with SQLSTATE 08P01
//! (protocol_violation; newer releases pass a server's own SQLSTATE through in a few places)
//! and closes the client connection, so the SQLSTATE alone says "connection lost, outcome
//! unknown". The message tells the cases apart, several of which say nothing was sent: the
//! texts below are PgBouncer's (`src/client.c`, `src/objects.c`, `src/janitor.c`, 1.17 and
//! later; "pgbouncer cannot connect to server" before 1.17).

use super::{Classification, FailureKind, Reach};

/// The verdict on a PgBouncer error, or `None` when `message` is not one of the texts below.
pub(super) fn classify_pooler(code: &str, message: &str) -> Option<Classification> {
    use FailureKind::*;
    if code != "08P01" {
        return None;
    }
    let has = |text: &str| message.contains(text);
    let (kind, reach) = if has("no more connections allowed") {
        // max_client_conn (or the database's / user's max_db_connections): refused at login.
        (Backpressure, Reach::NotSent)
    } else if message == "query_wait_timeout" {
        // Waited for a server connection longer than query_wait_timeout: the query never
        // left PgBouncer. The pooler is saturated, or cannot reach the server (which the
        // probe of a down server tells apart); the client connection is closed.
        (Backpressure, Reach::NotSent)
    } else if has("server login has been failing")
        || has("pgbouncer cannot connect to server")
        || has("client_login_timeout (server down)")
        || (has("database \"") && has("\" is disabled"))
    {
        // The server behind PgBouncer cannot be reached (server_login_retry), or the database
        // is closed to clients (DISABLE): unavailable, nothing ran.
        (ConnectionLost, Reach::NotSent)
    } else if has("is not currently accepting connections") {
        // The server's reason for refusing PgBouncer's login, passed on to the clients
        // waiting for it (under PgBouncer's SQLSTATE): unavailable, nothing ran.
        (ConnectionLost, Reach::NotSent)
    } else if has("the database system is") {
        // 57P03's texts (starting up, shutting down, in recovery), passed on the same way.
        (ServerShutdown, Reach::NotSent)
    } else if has("too many connections") || has("connection slots are reserved") {
        // 53300's texts, passed on the same way.
        (Backpressure, Reach::NotSent)
    } else if has("unsupported startup parameter") {
        // The startup packet carried a parameter PgBouncer refuses: `pooler` is not set, or
        // ignore_startup_parameters lacks it.
        (Configuration, Reach::NotSent)
    } else if has("no such user")
        || has("no such database")
        || has("password authentication failed")
        || has("SASL authentication failed")
    {
        (Permanent, Reach::NotSent)
    } else if has("server shutting down") {
        (ServerShutdown, Reach::NotSent)
    } else {
        // "server conn crashed?", "admin forced disconnect" (KILL), "query_timeout",
        // "client_idle_timeout", ...: the connection is gone while a statement may have been
        // in flight, as for any other 08 error.
        return None;
    };
    let mut c = Classification::of_kind(kind, Some(code.to_owned()), reach);
    // PgBouncer closes the client connection after every FATAL error.
    c.evict = true;
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgbouncer_messages_tell_what_ran_and_what_to_do() {
        let c = |m: &str| classify_pooler("08P01", m).expect(m);
        let full = c("no more connections allowed (max_client_conn)");
        assert_eq!(
            (full.kind, full.reach),
            (FailureKind::Backpressure, Reach::NotSent)
        );
        assert!(full.transient && !full.counts_for_breaker && full.evict);
        let wait = c("query_wait_timeout");
        assert_eq!(
            (wait.kind, wait.reach),
            (FailureKind::Backpressure, Reach::NotSent)
        );
        for down in [
            "server login has been failing, try again later (server_login_retry)",
            "server login has been failing, cached error: connect failed (server_login_retry)",
            "pgbouncer cannot connect to server",
            "database \"app\" is disabled",
            "database \"app\" is not currently accepting connections",
        ] {
            let d = c(down);
            assert_eq!(
                (d.kind, d.reach),
                (FailureKind::ConnectionLost, Reach::NotSent)
            );
            assert!(d.transient && d.counts_for_breaker, "{down}");
        }
        let refused = c("unsupported startup parameter: options");
        assert_eq!(refused.kind, FailureKind::Configuration);
        assert!(!refused.transient);
        assert!(classify_pooler("08P01", "server conn crashed?").is_none());
        assert!(classify_pooler("08P01", "query_timeout").is_none());
        assert!(classify_pooler("53300", "query_wait_timeout").is_none());
    }
}
