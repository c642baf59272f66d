//! `exhaust`: connections leak. Code outside the op API takes connections with
//! `Pool::acquire()` and keeps them: first half of the pool, then all of it, then gives them
//! back. The pool has a leak threshold, so each leaked connection is reported with the place
//! that took it.
//!
//! What should happen: with half the pool leaked, the rest keeps serving; with all of it
//! leaked, ops fail within their deadline on the acquire timeout (backpressure, which does not
//! trip the breaker); once the connections are back, ops succeed at once.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value as Json, json};
use sqlx_resilience_runtime::{Error, Pool, PooledConn};
use tokio::time::Instant;

use super::figures::{ms, percentile};
use super::load::{Load, Outcome, Plan, Sample, check_writes, report};
use super::load_report::LoadReport;
use super::setup::{
    BreakerOpens, Limits, Options, Size, close, runtime, server_and_database, workload,
};
use crate::Result;

pub(super) async fn run(size: Size, options: Options) -> Result<LoadReport> {
    let (_server, db) = server_and_database().await?;
    let pool_max = size.pick(6u32, 10);
    let workers = size.pick(3u32, 6);
    let rt = runtime(
        db.url(),
        &[
            ("max", pool_max.into()),
            ("min", pool_max.into()),
            ("acquire_timeout", "1s".into()),
            ("leak_threshold", "1s".into()),
        ],
    )
    .await?;
    let limits = Limits {
        timeout: Duration::from_secs(1),
        deadline: Duration::from_secs(2),
    };
    let workload = workload(&rt, limits, options)?;
    let opens = BreakerOpens::watch(&rt)?;
    let pool = rt.pool("drill").expect("the drill's pool").clone();

    let normal = size.pick(Duration::from_secs(1), Duration::from_secs(2));
    let part = size.pick(Duration::from_secs(2), Duration::from_secs(4));
    let exhausted = size.pick(Duration::from_millis(2500), Duration::from_secs(3));
    let returned = size.pick(Duration::from_secs(2), Duration::from_secs(3));
    let plan = Plan {
        workers: workers as usize,
        ops_per_worker: 100_000,
        duration: normal + part + exhausted + returned,
        pace: Some(Duration::from_millis(10)),
    };
    let (load, started) = Load::start(&workload, plan);

    tokio::time::sleep_until(started + normal).await;
    let half = pool_max / 2;
    tracing::info!(leaked = half, of = pool_max, "leaking half the pool");
    let part_at = Instant::now();
    let mut leaked = leak(&pool, half as usize, Vec::new()).await?;

    tokio::time::sleep_until(part_at + part).await;
    tracing::info!(
        leaked = pool_max,
        of = pool_max,
        "leaking the rest of the pool"
    );
    let exhausted_from = Instant::now();
    leaked = leak(&pool, pool_max as usize, leaked).await?;
    let exhausted_at = Instant::now();
    tracing::info!(
        took_ms = ms(exhausted_at - exhausted_from),
        "the whole pool is leaked"
    );

    tokio::time::sleep_until(exhausted_at + exhausted).await;
    let holding = leaked.len();
    drop(leaked);
    let ready = Instant::now();
    tracing::info!(returned = holding, "leaked connections returned");

    let samples = load.finish().await?;
    let stats = pool.stats();
    close(&rt).await;
    let table = check_writes(db.url(), &samples).await?;
    let phase = |from: Instant, to: Instant| phase(&samples, from, to);
    let end = samples.iter().map(|s| s.end).max().unwrap_or(ready);
    let extra = BTreeMap::from([
        ("leaked_connections", Json::from(holding as u64)),
        ("leak_warnings", Json::from(stats.leaks)),
        ("acquire_timeouts", Json::from(stats.acquire_timeouts)),
        (
            "phases",
            json!({
                "normal": phase(started, part_at),
                "part_leaked": phase(part_at, exhausted_from),
                "exhausted": phase(exhausted_at, ready),
                "returned": phase(ready, end),
            }),
        ),
    ]);
    Ok(report(Outcome {
        scenario: "exhaust",
        samples: &samples,
        ready: Some(ready),
        deadline: limits.deadline,
        table,
        breaker_opens: opens.count(),
        extra,
    }))
}

/// Takes connections with `Pool::acquire()` until `held` holds `count`, as leaking code would
/// (each acquire waits its turn behind the ops).
async fn leak(pool: &Pool, count: usize, mut held: Vec<PooledConn>) -> Result<Vec<PooledConn>> {
    let mut failures = 0;
    while held.len() < count {
        match pool.acquire().await {
            Ok(conn) => held.push(conn),
            Err(e) if failures < 20 => {
                failures += 1;
                tracing::debug!(error = %e, "leaking a connection: acquire failed; trying again");
            }
            Err(e) => {
                return Err(Error::test_kit(
                    "leak connections",
                    format!("{} acquires failed; the last: {e}", failures + 1),
                    "the pool never freed a connection; this is a bug in the drill or the pool",
                ));
            }
        }
    }
    Ok(held)
}

/// Ops that started in `[from, to)`: how many, how many succeeded, their p99.
fn phase(samples: &[Sample], from: Instant, to: Instant) -> Json {
    let mut took: Vec<Duration> = Vec::new();
    let mut ok = 0u64;
    for s in samples.iter().filter(|s| s.start >= from && s.start < to) {
        took.push(s.took());
        ok += u64::from(s.outcome.is_ok());
    }
    took.sort();
    json!({ "ops": took.len(), "ok": ok, "p99_ms": ms(percentile(&took, 0.99)) })
}
