//! `blackhole`: the network between client and server forwards nothing for a while (5 s at
//! full size), then heals. Every connection goes through the test kit's fault proxy.
//!
//! What should happen: attempts time out and their connections are closed, new connections
//! hang until the acquire limit, every op returns by its deadline, the breaker opens once
//! failures dominate its window, and after the heal the half-open probes close it again.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;
use tokio::time::Instant;

use super::figures::{ms, round1};
use super::load::{Load, Outcome, Plan, check_writes, report};
use super::load_report::LoadReport;
use super::setup::{
    BreakerOpens, Limits, Options, Size, close, runtime, server_and_database, workload,
};
use crate::{FaultProxy, Result};

pub(super) async fn run(size: Size, options: Options) -> Result<LoadReport> {
    let (server, db) = server_and_database().await?;
    let proxy = FaultProxy::start(server.tcp_addr()).await?;
    let workers = size.pick(8u32, 16);
    let rt = runtime(
        &db.url_via(proxy.addr()),
        &[
            ("max", workers.into()),
            ("min", workers.into()),
            ("acquire_timeout", "2s".into()),
            ("connect_timeout", "2s".into()),
        ],
    )
    .await?;
    let limits = Limits {
        timeout: Duration::from_millis(500),
        deadline: Duration::from_secs(2),
    };
    let workload = workload(&rt, limits, options)?;
    let opens = BreakerOpens::watch(&rt)?;
    let before = size.pick(Duration::from_millis(1500), Duration::from_secs(2));
    let hole = size.pick(Duration::from_secs(3), Duration::from_secs(5));
    let after = size.pick(Duration::from_millis(2500), Duration::from_secs(4));
    let plan = Plan {
        workers: workers as usize,
        ops_per_worker: 100_000,
        duration: before + hole + after,
        pace: Some(size.pick(Duration::from_millis(20), Duration::from_millis(10))),
    };
    let (load, started) = Load::start(&workload, plan);
    tokio::time::sleep_until(started + before).await;
    tracing::info!(?hole, "blackholing the network");
    proxy.blackhole();
    tokio::time::sleep(hole).await;
    proxy.heal().await?;
    let ready = Instant::now();
    tracing::info!(breaker_opens = opens.count(), "network healed");
    let samples = load.finish().await?;
    close(&rt).await;
    drop(proxy);
    let table = check_writes(db.url(), &samples).await?;
    let mut report = report(Outcome {
        scenario: "blackhole",
        samples: &samples,
        ready: Some(ready),
        deadline: limits.deadline,
        table,
        breaker_opens: opens.count(),
        extra: BTreeMap::new(),
    });
    let pct = report.worst_lateness_ms * 100.0 / ms(limits.deadline);
    report.extra = BTreeMap::from([
        ("breaker_opened", Json::from(report.breaker_opens > 0)),
        ("worst_lateness_pct", Json::from(round1(pct))),
        ("blackhole_ms", Json::from(ms(hole))),
    ]);
    Ok(report)
}
