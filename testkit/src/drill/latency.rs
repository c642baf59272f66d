//! `latency`: 200 ms added each way between client and server, with a 100 ms op timeout, so
//! every attempt is abandoned by its client. One read in four keeps the server busy for 10 s
//! (`pg_sleep`), well past the timeout, so abandoned work is visible on the server (and keep
//! failing after the latency is gone, as a slow report query would); the other reads and the
//! writes are quick, and a write is often applied after its client gave up. The ops have no
//! breaker here, so every op meets the latency: each insert cut off after it was sent ends
//! as an unknown outcome and is not run again; upserts and transactions are retried safely.
//!
//! `server_active_after_ms` is measured, not inferred: every statement carries a tag in its
//! text, the client notes when it gives up on each one, and a direct (not proxied) admin
//! connection polls `pg_stat_activity` every 10 ms for active statements of the drill's
//! `application_name`, noting when each tag was last seen. The figure is the longest time any
//! abandoned statement was still seen active after its client gave up.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;
use sqlx::Connection;
use tokio::sync::watch;
use tokio::time::Instant;

use super::figures::ms;
use super::load::{
    Abandoned, Load, Outcome, Plan, Workload, WriteKind, check_writes, connect, report, tag_of,
};
use super::load_report::LoadReport;
use super::setup::{
    APP, BreakerOpens, Limits, Options, Size, close, ops, runtime, server_and_database,
};
use crate::{Direction, FaultProxy, Result};

/// How often `pg_stat_activity` is read.
const POLL: Duration = Duration::from_millis(10);

/// After the load, how long nothing may be active before the watch ends...
const QUIET: Duration = Duration::from_secs(1);

/// ...and the longest it goes on regardless.
const WATCH_LIMIT: Duration = Duration::from_secs(15);

pub(super) async fn run(size: Size, options: Options) -> Result<LoadReport> {
    let (server, db) = server_and_database().await?;
    let proxy = FaultProxy::start(server.tcp_addr()).await?;
    let workers = size.pick(6u32, 8);
    // Four connections a worker, opened before the latency is added: a timeout closes the
    // connection it cut off, and a new one takes longer than a deadline to open through the
    // latency, so the ops sent (and abandoned) are those that find an open one.
    let connections = workers * 4;
    // The pool opens its connections before the latency is added.
    let rt = runtime(
        &db.url_via(proxy.addr()),
        &[
            ("max", connections.into()),
            ("min", connections.into()),
            ("acquire_timeout", "5s".into()),
        ],
    )
    .await?;
    let limits = Limits {
        timeout: Duration::from_millis(100),
        // Short, so that each worker calls many ops while the latency lasts, and many of its
        // inserts are cut off after they were sent.
        deadline: Duration::from_secs(1),
    };
    let abandoned = Arc::new(Abandoned::default());
    // No breaker: every op meets the latency, so every statement sent is abandoned by its
    // client, and every insert among them ends as an unknown outcome.
    let mut w = Workload::new(ops(&rt, limits, false)?, limits.deadline);
    w.retry_unknown = options.retry_unknown_outcomes;
    w.read_sleep = Duration::from_secs(10);
    w.slow_every = 4;
    w.write_every = 2;
    // Mostly inserts: each one cut off after it was sent is an unknown outcome.
    w.kinds = &[
        WriteKind::Insert,
        WriteKind::Insert,
        WriteKind::Insert,
        WriteKind::Upsert,
        WriteKind::Transaction,
    ];
    w.tracked = Some(Arc::clone(&abandoned));
    let workload = Arc::new(w);
    let opens = BreakerOpens::watch(&rt)?;

    let (stop, stopped) = watch::channel(false);
    let watcher = tokio::spawn(watch_activity(db.admin_url().to_owned(), stopped));

    let slow = size.pick(Duration::from_secs(4), Duration::from_secs(8));
    let after = size.pick(Duration::from_secs(2), Duration::from_secs(3));
    proxy.set_latency(Direction::Both, Duration::from_millis(200));
    tracing::info!(?slow, "200 ms added each way; op timeout 100 ms");
    let plan = Plan {
        workers: workers as usize,
        ops_per_worker: 100_000,
        duration: slow + after,
        pace: Some(Duration::from_millis(20)),
    };
    let (load, started) = Load::start(&workload, plan);
    tokio::time::sleep_until(started + slow).await;
    proxy.heal().await?;
    let ready = Instant::now();
    tracing::info!("latency removed");
    let samples = load.finish().await?;
    let _ = stop.send(true);
    let seen = watcher
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    close(&rt).await;
    drop(proxy);

    let given_up = abandoned.given_up();
    let mut worst = Duration::ZERO;
    let mut seen_active = 0u64;
    for (tag, gave_up) in &given_up {
        if let Some(last) = seen.last.get(tag) {
            seen_active += 1;
            worst = worst.max(last.saturating_duration_since(*gave_up));
        }
    }
    tracing::info!(
        abandoned = given_up.len(),
        seen_active,
        worst_ms = ms(worst),
        "abandoned statements watched on the server"
    );
    let table = check_writes(db.url(), &samples).await?;
    let extra = BTreeMap::from([
        ("server_active_after_ms", Json::from(ms(worst))),
        ("abandoned_statements", Json::from(given_up.len() as u64)),
        ("abandoned_seen_active", Json::from(seen_active)),
        ("still_active_at_end", Json::from(seen.still_active)),
    ]);
    Ok(report(Outcome {
        scenario: "latency",
        samples: &samples,
        ready: Some(ready),
        deadline: limits.deadline,
        table,
        breaker_opens: opens.count(),
        extra,
    }))
}

/// What the watch of `pg_stat_activity` saw.
#[derive(Debug, Default)]
struct Seen {
    /// When each tagged statement was last seen active.
    last: HashMap<u64, Instant>,
    /// Statements still active when the watch gave up.
    still_active: u64,
}

/// Polls `pg_stat_activity` until `stopped` and then [`QUIET`] without any active statement
/// of the drill (at most [`WATCH_LIMIT`] after the stop).
async fn watch_activity(admin_url: String, mut stopped: watch::Receiver<bool>) -> Result<Seen> {
    const ACTION: &str = "watch pg_stat_activity";
    let mut conn = connect(&admin_url, ACTION).await?;
    let mut seen = Seen::default();
    let mut stop_at: Option<Instant> = None;
    let mut last_active = Instant::now();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let rows: Vec<(String,)> = sqlx::query_as(
            "select query from pg_stat_activity where application_name = $1 and state = 'active'",
        )
        .bind(APP)
        .fetch_all(&mut conn)
        .await
        .map_err(|e| {
            sqlx_resilience_runtime::Error::test_kit(
                ACTION,
                sqlx_resilience_runtime::redact(&e.to_string()),
                crate::error::SERVER_HINT,
            )
        })?;
        let now = Instant::now();
        if !rows.is_empty() {
            last_active = now;
        }
        for (query,) in &rows {
            if let Some(tag) = tag_of(query) {
                seen.last.insert(tag, now);
            }
        }
        if stop_at.is_none() && *stopped.borrow_and_update() {
            stop_at = Some(now);
        }
        if let Some(at) = stop_at {
            if now.saturating_duration_since(last_active) >= QUIET {
                break;
            }
            if now.saturating_duration_since(at) >= WATCH_LIMIT {
                seen.still_active = rows.len() as u64;
                break;
            }
        }
    }
    let _ = conn.close().await;
    Ok(seen)
}
