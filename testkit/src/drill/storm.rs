//! `storm`: 2000 callers at once over a 30-connection pool, each op keeping the server busy for
//! 5 ms, in several waves. The ideal completion time of a wave is what 30 connections need
//! for 2000 queries of 5 ms: ceil(2000 / 30) x 5 ms. Every op must succeed, and the p99 of the
//! callers' latencies shows how close to the ideal the pool hands connections on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;

use super::load::{Load, Outcome, Plan, Workload, check_writes, report, write_keys};
use super::report::{LoadReport, ms, percentile};
use super::{BreakerOpens, Limits, Size, close, ops, runtime, server_and_database};
use crate::Result;

/// How long each query keeps the server busy.
const QUERY: Duration = Duration::from_millis(5);

pub(super) async fn run(size: Size) -> Result<LoadReport> {
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
    let (read, write) = ops(&rt, limits)?;
    let mut w = Workload::new(read, write, limits.deadline);
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
    for wave in 1..=waves {
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
            ideal_ms = ms(ideal),
            "wave done"
        );
        wave_ms.push(ms(span));
        samples.extend(done);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    close(&rt).await;
    let (acked, unacked) = write_keys(&samples);
    let table = check_writes(db.url(), &acked, &unacked).await?;
    let extra = BTreeMap::from([
        ("ideal_ms", Json::from(ms(ideal))),
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
