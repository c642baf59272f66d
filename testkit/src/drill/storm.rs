//! `storm`: 2000 callers at once over a 30-connection pool, each op keeping the server busy for
//! 5 ms, in several waves. The ideal completion time of a wave is what 30 connections need
//! for 2000 queries of 5 ms: ceil(2000 / 30) x 5 ms. Every op must succeed, and the p99 of the
//! callers' latencies shows how close to the ideal the pool hands connections on.
//!
//! Between the waves through the op API, the same statements run as a "floor" wave: 30
//! connections without any pool, each taking the next of the 2000 ops as soon as it is done,
//! and the caller latencies that implies (every caller arrived at the start). `floor_ms`, the
//! median p99 of those waves, is what this machine allows at best; `p99_ms` above it is what
//! the pool and the op API cost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value as Json;
use sqlx::{Connection, PgConnection};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::figures::{median, ms, percentile, round1};
use super::load::{Load, Outcome, Plan, Workload, check_writes, connect, report};
use super::load_report::LoadReport;
use super::setup::{BreakerOpens, Limits, Options, Size, close, ops, runtime, server_and_database};
use crate::Result;

/// How long each query keeps the server busy.
const QUERY: Duration = Duration::from_millis(5);

pub(super) async fn run(size: Size, options: Options) -> Result<LoadReport> {
    let (_server, db) = server_and_database().await?;
    let callers = size.pick(300u32, 2000);
    let pool_max = size.pick(10u32, 30);
    let waves = size.pick(2u32, 5);
    let rt = runtime(
        db.url(),
        &[
            ("max", pool_max.into()),
            ("min", pool_max.into()),
            ("acquire_timeout", "10s".into()),
        ],
    )
    .await?;
    let limits = Limits {
        timeout: Duration::from_secs(5),
        deadline: Duration::from_secs(10),
    };
    let mut w = Workload::new(ops(&rt, limits, true)?, limits.deadline);
    w.retry_unknown = options.retry_unknown_outcomes;
    w.read_sleep = QUERY;
    w.write_sleep = QUERY;
    let workload = Arc::new(w);
    let opens = BreakerOpens::watch(&rt)?;
    let ideal = QUERY * callers.div_ceil(pool_max);
    let plan = Plan {
        workers: callers as usize,
        ops_per_worker: 1,
        duration: Duration::from_secs(60),
        pace: None,
    };
    let mut samples = Vec::new();
    let mut wave_ms = Vec::new();
    let mut floor_p99 = Vec::new();
    let mut wave_p99 = Vec::new();
    let mut floor_conns = Vec::new();
    for _ in 0..pool_max {
        floor_conns.push(connect(db.url(), "open the floor wave's connections").await?);
    }
    for wave in 1..=waves {
        let took = floor_wave(&mut floor_conns, callers, &workload).await?;
        floor_p99.push(ms(percentile(&took, 0.99)));
        tokio::time::sleep(Duration::from_millis(200)).await;

        let load = Load::spawn(&workload, plan);
        // Let every caller reach the gate.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = load.go();
        let done = load.finish().await?;
        let span = done
            .iter()
            .map(|s| s.end)
            .max()
            .map(|end| end.saturating_duration_since(started))
            .unwrap_or_default();
        let mut took: Vec<Duration> = done.iter().map(|s| s.took()).collect();
        took.sort();
        tracing::info!(
            wave,
            span_ms = ms(span),
            p99_ms = ms(percentile(&took, 0.99)),
            floor_p99_ms = floor_p99.last().copied().unwrap_or_default(),
            ideal_ms = ms(ideal),
            "wave done"
        );
        wave_ms.push(ms(span));
        wave_p99.push(ms(percentile(&took, 0.99)));
        samples.extend(done);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for conn in floor_conns {
        let _ = conn.close().await;
    }
    close(&rt).await;
    let table = check_writes(db.url(), &samples).await?;
    let extra = BTreeMap::from([
        ("ideal_ms", Json::from(ms(ideal))),
        ("floor_ms", Json::from(round1(median(&floor_p99)))),
        // The same statistic as `floor_ms` (the median of the waves' p99s), for comparing
        // with it; `p99_ms` is over every op of every wave, so the slowest wave sets it.
        ("p99_wave_median_ms", Json::from(round1(median(&wave_p99)))),
        ("wave_p99_ms", Json::from(wave_p99)),
        ("callers", Json::from(callers)),
        ("pool_max", Json::from(pool_max)),
        ("waves", Json::from(waves)),
        ("wave_ms", Json::from(wave_ms)),
    ]);
    Ok(report(Outcome {
        scenario: "storm",
        samples: &samples,
        ready: None,
        deadline: limits.deadline,
        table,
        breaker_opens: opens.count(),
        extra,
    }))
}

/// One wave without pool or op API: `conns` connections each run the next of `callers` ops
/// (the drill's mix of reads and writes) until all are done. Returns each op's completion
/// time from the start, which is its caller's latency when every caller arrived at once.
async fn floor_wave(
    conns: &mut Vec<PgConnection>,
    callers: u32,
    workload: &Arc<Workload>,
) -> Result<Vec<Duration>> {
    let next = Arc::new(AtomicU32::new(0));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for mut conn in conns.drain(..) {
        let next = Arc::clone(&next);
        let workload = Arc::clone(workload);
        tasks.spawn(async move {
            let mut done = Vec::new();
            let sleep = QUERY.as_secs_f64();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= callers {
                    break;
                }
                let result = if n.is_multiple_of(4) {
                    sqlx::query("select drill_upsert($1, -1, $2)")
                        .bind(workload.next_key())
                        .bind(sleep)
                        .execute(&mut conn)
                        .await
                } else {
                    sqlx::query("select drill_read($1, $2)")
                        .bind(i64::from(n % 1000) + 1)
                        .bind(sleep)
                        .execute(&mut conn)
                        .await
                };
                if let Err(e) = result {
                    return Err((conn, e));
                }
                done.push(started.elapsed());
            }
            Ok((conn, done))
        });
    }
    let mut took = Vec::new();
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok((conn, done))) => {
                conns.push(conn);
                took.extend(done);
            }
            Ok(Err((conn, e))) => {
                conns.push(conn);
                failure = Some(e);
            }
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => {}
        }
    }
    if let Some(e) = failure {
        return Err(sqlx_resilience_runtime::Error::test_kit(
            "run the storm's floor wave",
            sqlx_resilience_runtime::redact(&e.to_string()),
            crate::error::SERVER_HINT,
        ));
    }
    took.sort();
    Ok(took)
}
