//! `restart`: a fast restart of the server in the middle of the load. Also runs `kill9`,
//! which differs only in how the server goes down.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;
use tokio::time::Instant;

use super::figures::ms;
use super::load::{Load, Outcome, Plan, check_writes, report};
use super::load_report::LoadReport;
use super::setup::{
    BreakerOpens, Limits, Options, Size, close, runtime, server_and_database, workload,
};
use crate::{RestartMode, Result};

/// How the server goes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// `pg_ctl restart -m fast`: sessions end with 57P01, a shutdown checkpoint, a start.
    FastRestart,
    /// SIGKILL to the postmaster, then a start with crash recovery.
    Kill9,
}

pub(super) async fn run(size: Size, options: Options) -> Result<LoadReport> {
    server_fault(size, Fault::FastRestart, options).await
}

/// Runs the load, takes the server down and up again in the middle of it, and reports.
pub(super) async fn server_fault(size: Size, fault: Fault, options: Options) -> Result<LoadReport> {
    let scenario = match fault {
        Fault::FastRestart => "restart",
        Fault::Kill9 => "kill9",
    };
    let (server, db) = server_and_database().await?;
    let workers = size.pick(4u32, 16);
    let rt = runtime(
        db.url(),
        &[
            ("max", workers.into()),
            ("min", workers.into()),
            ("acquire_timeout", "5s".into()),
        ],
    )
    .await?;
    let limits = Limits {
        timeout: Duration::from_secs(1),
        deadline: Duration::from_secs(5),
    };
    let workload = workload(&rt, limits, options)?;
    let opens = BreakerOpens::watch(&rt)?;
    let plan = Plan {
        workers: workers as usize,
        ops_per_worker: 100_000,
        duration: size.pick(Duration::from_secs(4), Duration::from_secs(12)),
        pace: Some(size.pick(Duration::from_millis(10), Duration::from_millis(5))),
    };
    let (load, started) = Load::start(&workload, plan);
    tokio::time::sleep_until(
        started + size.pick(Duration::from_millis(1500), Duration::from_secs(4)),
    )
    .await;
    let down = Instant::now();
    match fault {
        Fault::FastRestart => {
            tracing::info!("restarting the server (fast shutdown)");
            server.restart(RestartMode::Fast).await?;
        }
        Fault::Kill9 => {
            tracing::info!("killing the postmaster with SIGKILL, then starting it");
            server.kill9_and_start().await?;
        }
    }
    let ready = Instant::now();
    tracing::info!(down_ms = ms(ready - down), "server ready again");
    let samples = load.finish().await?;
    close(&rt).await;
    let table = check_writes(db.url(), &samples).await?;
    let extra = BTreeMap::from([("server_down_ms", Json::from(ms(ready - down)))]);
    Ok(report(Outcome {
        scenario,
        samples: &samples,
        ready: Some(ready),
        deadline: limits.deadline,
        table,
        breaker_opens: opens.count(),
        extra,
    }))
}
