//! The prober: one task per server while it is unreachable, asking it with a connection
//! attempt and `select 1` until it answers.

use std::sync::Weak;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use rand::RngExt;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use crate::classify::{FailureKind, classify};

/// The delay after the first failed probe. Short: a restart takes well under a second.
pub(super) const FIRST: Duration = Duration::from_millis(50);

/// The longest delay between probes: a server that comes back is noticed within this (plus
/// one connect), whatever the outage's length. One connection attempt per 250 ms to a server
/// that is down costs it nothing; callers that wait for it are the ones who gain.
pub(super) const MAX: Duration = Duration::from_millis(250);

/// Delays are spread by ±20% so that several runtimes' probers do not fall into step.
const JITTER: f64 = 0.2;

/// What the prober needs of the server it asks about (implemented by the server's watch,
/// `Server`), so that the prober knows nothing of the watch beyond it.
pub(super) trait Probed {
    /// The connect options and time limit of a probe, or `None` once the runtime closed.
    fn probe_target(&self) -> Option<(PgConnectOptions, Duration)>;

    /// A probe is starting: its number, for its verdict.
    fn probe_starting(&self) -> u64;

    /// A probe reached the server: the outage is over.
    fn answered(&self, probe: u64);

    /// A probe did not reach the server: it is down.
    fn probe_failed(&self, probe: u64, error: String);
}

/// Probes the server until it answers (or the runtime closes), waiting `first` before the
/// first probe.
pub(super) async fn run<S: Probed>(server: Weak<S>, first: Duration) {
    let mut delays = ExponentialBuilder::new()
        .with_min_delay(FIRST)
        .with_factor(2.0)
        .with_max_delay(MAX)
        .without_max_times()
        .build();
    let mut delay = first;
    loop {
        if !delay.is_zero() {
            tokio::time::sleep(jittered(delay)).await;
        }
        let Some(target) = server.upgrade().and_then(|s| s.probe_target()) else {
            return;
        };
        let (options, limit) = target;
        let number = match server.upgrade() {
            Some(s) => s.probe_starting(),
            None => return,
        };
        let answer = probe(&options, limit).await;
        let Some(server) = server.upgrade() else {
            return;
        };
        match answer {
            Ok(()) => {
                server.answered(number);
                return;
            }
            Err(error) => server.probe_failed(number, error),
        }
        delay = delays.next().unwrap_or(MAX).min(MAX);
    }
}

/// One probe: connect, `select 1`, close. `Ok` when the server answered, even with an error
/// that says it is reachable (too many connections, a wrong password): only unreachable and
/// shutting-down servers are down.
async fn probe(options: &PgConnectOptions, limit: Duration) -> Result<(), String> {
    let attempt = async {
        let mut conn = PgConnection::connect_with(options).await?;
        // A simple query: no prepared statement left behind on a pooler's server connection.
        let answer = sqlx::raw_sql("select 1").execute(&mut conn).await;
        let _ = conn.close().await;
        answer.map(drop)
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if !unreachable(&e) => Ok(()),
        Ok(Err(e)) => Err(crate::redact::redact(&e.to_string())),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

/// Does this failure say the server cannot be reached (or is going away)?
pub(crate) fn unreachable(error: &sqlx::Error) -> bool {
    matches!(
        classify(error).kind,
        FailureKind::ConnectionLost | FailureKind::ServerShutdown
    )
}

fn jittered(delay: Duration) -> Duration {
    let factor = rand::rng().random_range((1.0 - JITTER)..=(1.0 + JITTER));
    delay.mul_f64(factor)
}
