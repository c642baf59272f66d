//! Applying a fault to the call it hits, on the call's own connection.

use sqlx::AssertSqlSafe;
use tokio::time::Instant;

use super::{Effect, Fault};
use crate::pool::PooledConn;
use crate::timeout::within;

/// What became of a call a fault hit.
pub(crate) enum Injected {
    /// The latency passed and the body runs now.
    Proceed,
    /// The server raised the fault's error, or ended the session.
    Failed(sqlx::Error),
    /// The call's time ran out during the added latency or the fault's statement.
    TimedOut,
}

/// Applies `fault` on `conn` within `until`: the latency first, then the error the server
/// raises (`RAISE ... USING ERRCODE`) or the end of the session (`pg_terminate_backend`).
pub(crate) async fn apply(
    fault: &Fault,
    conn: &mut PooledConn,
    until: Option<Instant>,
) -> Injected {
    if let Some(delay) = fault.latency
        && within(until, tokio::time::sleep(delay)).await.is_none()
    {
        return Injected::TimedOut;
    }
    let sql = match &fault.effect {
        Effect::LatencyOnly => return Injected::Proceed,
        // The code was checked when the fault was armed: five digits or capital letters.
        Effect::SqlState(code) => format!(
            "DO $$BEGIN RAISE EXCEPTION USING ERRCODE = '{code}', \
             MESSAGE = 'fault injected by sqlx-resilience: SQLSTATE {code}'; END$$"
        ),
        Effect::DropConnection => "select pg_terminate_backend(pg_backend_pid())".to_owned(),
    };
    let conn: &mut sqlx::PgConnection = conn;
    match within(until, sqlx::raw_sql(AssertSqlSafe(sql)).execute(conn)).await {
        None => Injected::TimedOut,
        Some(Err(error)) => Injected::Failed(error),
        // The server always refuses these statements; should one pass, the body runs.
        Some(Ok(_)) => Injected::Proceed,
    }
}
