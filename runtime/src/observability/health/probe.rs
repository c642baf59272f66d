use std::time::Duration;

use serde::Serialize;
use sqlx::{Connection, PgConnection, Row};
use tokio::time::Instant;

use crate::pool::Pool;

/// One database server as the health check found it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DatabaseHealth {
    /// The server and database, password redacted (`host:port/database`).
    pub server: String,
    /// The pools that use it.
    pub pools: Vec<String>,
    /// Whether it answered within the health timeout.
    pub reachable: bool,
    /// The round trip of the probe query, in milliseconds.
    pub round_trip_ms: Option<f64>,
    /// Time to open the probe's connection when no idle pooled connection was free, in
    /// milliseconds.
    pub connect_ms: Option<f64>,
    /// `server_version` as the server reports it.
    pub server_version: Option<String>,
    /// Why it is unreachable.
    pub error: Option<String>,
}

/// Probes the server of `pools` with one query, within `timeout`: on an idle connection of
/// any of them when one is free (so a busy pool is not made busier and no connection is
/// opened), otherwise on a new connection that is closed afterwards.
pub(crate) async fn probe(pools: &[Pool], timeout: Duration) -> DatabaseHealth {
    let pool = &pools[0];
    let options = pool.sqlx().connect_options();
    let server = format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or_default()
    );
    let mut health = DatabaseHealth {
        server,
        pools: pools.iter().map(|p| p.name().to_owned()).collect(),
        reachable: false,
        round_trip_ms: None,
        connect_ms: None,
        server_version: None,
        error: None,
    };
    let mut pooled = pools
        .iter()
        .filter(|p| !p.is_closed())
        .find_map(|p| p.sqlx().try_acquire());
    let mut connect_ms = None;
    let work = async {
        // An idle pooled connection first. One that died while idle (the server restarted,
        // the network reset it) says nothing of the server now: it is closed and the probe
        // goes on with a new connection, within the same timeout.
        if let Some(c) = pooled.as_mut() {
            match ask(c).await {
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    c.close_on_drop();
                    tracing::debug!(error = %e, "health probe: an idle connection was dead");
                }
            }
        }
        drop(pooled.take());
        let started = Instant::now();
        // Closing politely could hang on a server that stopped answering: dropped instead.
        let mut fresh = PgConnection::connect_with(&options).await?;
        connect_ms = Some(ms(started.elapsed()));
        ask(&mut fresh).await
    };
    let outcome = tokio::time::timeout(timeout, work).await;
    match outcome {
        Ok(Ok((version, rtt))) => {
            health.reachable = true;
            health.round_trip_ms = Some(ms(rtt));
            health.server_version = Some(version);
        }
        Ok(Err(e)) => {
            health.error = Some(crate::redact::redact(&e.to_string()));
        }
        Err(_) => {
            health.error = Some(format!(
                "no answer within {timeout:?} (monitor.health_timeout)"
            ));
            // The query may still be in flight: never hand that connection out again.
            if let Some(c) = pooled.as_mut() {
                c.close_on_drop();
            }
        }
    }
    health.connect_ms = connect_ms;
    health
}

/// The probe's one query: the server's version, and how long it took.
async fn ask(conn: &mut PgConnection) -> Result<(String, Duration), sqlx::Error> {
    let started = Instant::now();
    // A simple query: one round trip and no prepared statement, so it works through a
    // transaction pooler on whichever server connection serves it.
    let version: String = sqlx::raw_sql("select current_setting('server_version')")
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    Ok((version, started.elapsed()))
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
