//! `failover`: the load (reads, idempotent upserts, plain inserts, transactions) through one
//! multi-host pool (`target_session_attrs=read-write`) on a three-node Patroni cluster with
//! synchronous replication; a switchover, then, once the cluster is whole again, a kill -9 of
//! the leader's postgres. Writes are counted on the primary at the end.
//!
//! `recovery_ms` is the worse of the two faults, each measured from the moment a direct
//! connection (polled every 10 ms) first finds a new leader out of recovery to the end of
//! the first write acknowledged after it. `late_ops` counts ops that took longer than their
//! deadline plus 10%; `longest_gap_ms` is the longest time, within a phase, with no op ending
//! well.
//!
//! Plain sqlx runs the same faults side by side (see [`failover_sqlx`](super::failover_sqlx)):
//! its `sqlx_*` fields count its requests and the time from the new leader to its first
//! acknowledged write (`null`: none in the phase).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;
use sqlx::Connection;
use tokio::time::Instant;

use super::failover_sqlx::{self as plain, PlainSide};
use super::figures::ms;
use super::load::{Load, Outcome, Plan, Sample, check_writes, create_schema, report};
use super::load_report::LoadReport;
use super::setup::{Limits, Options, Size, close, runtime, workload};
use crate::{PatroniCluster, PatroniOptions, Result};

/// How long the cluster may take to settle (election, every replica streaming).
const SETTLE: Duration = Duration::from_secs(180);

pub(super) async fn run(size: Size, options: Options) -> Result<LoadReport> {
    let cluster = PatroniCluster::start_with(PatroniOptions::new().synchronous_mode(true)).await?;
    let db = cluster.create_database().await?;
    let leader = cluster.wait_for_leader(SETTLE).await?;
    create_schema(&cluster.url(&leader, &db)).await?;
    let leader_url = cluster.url(&leader, &db);
    let url = format!(
        "{}&target_session_attrs=read-write",
        cluster.multi_host_url(&db)
    );
    let workers = size.pick(4u32, 16);
    let rt = runtime(
        &url,
        &[
            ("max", workers.into()),
            ("min", workers.into()),
            ("acquire_timeout", "10s".into()),
        ],
    )
    .await?;
    // A kill -9 failover takes Patroni a few seconds (the killed leader's lock must go):
    // ops get a deadline long enough to ride it out.
    let limits = Limits {
        timeout: Duration::from_secs(2),
        deadline: Duration::from_secs(15),
    };
    let workload = workload(&rt, limits, options)?;
    let sqlx_side = PlainSide::open(&leader_url, &leader_url, workers).await?;
    let phase = size.pick(Duration::from_secs(8), Duration::from_secs(20));
    let plan = Plan {
        workers: workers as usize,
        ops_per_worker: 1_000_000,
        duration: phase,
        pace: Some(size.pick(Duration::from_millis(10), Duration::from_millis(5))),
    };

    // Phase 1: switchover.
    cluster.wait_for_sync_standby(SETTLE).await?;
    let pace = plan.pace.unwrap_or_default();
    let (load, started) = Load::start(&workload, plan);
    let sqlx_load = sqlx_side.start(plan.workers, phase, pace, limits.deadline);
    tokio::time::sleep_until(started + phase / 4).await;
    let old = cluster.wait_for_leader(SETTLE).await?;
    let watch = tokio::spawn(first_new_primary(cluster_urls(&cluster, &db, &old)));
    tracing::info!(leader = %old, "switchover");
    cluster.switchover(None).await?;
    let switched = watch.await.ok().flatten();
    let mut samples = load.finish().await?;
    let mut sqlx_samples = plain::finish(sqlx_load).await;
    let sqlx_switch_recovery = plain::recovery(&sqlx_samples, switched);
    let switch_recovery = recovery(&samples, switched);
    let switch_gap = longest_gap(&samples);

    // Phase 2: kill -9 of the leader's postgres, once the cluster is whole again.
    cluster.wait_for_replicas_streaming(SETTLE).await?;
    cluster.wait_for_sync_standby(SETTLE).await?;
    let (load, started) = Load::start(&workload, plan);
    let sqlx_load = sqlx_side.start(plan.workers, phase, pace, limits.deadline);
    tokio::time::sleep_until(started + phase / 4).await;
    let old = cluster.wait_for_leader(SETTLE).await?;
    let watch = tokio::spawn(first_new_primary(cluster_urls(&cluster, &db, &old)));
    tracing::info!(leader = %old, "kill -9 of the leader's postgres");
    cluster.kill_leader_postgres().await?;
    let killed = watch.await.ok().flatten();
    let second = load.finish().await?;
    let sqlx_second = plain::finish(sqlx_load).await;
    let sqlx_kill_recovery = plain::recovery(&sqlx_second, killed);
    sqlx_samples.extend(sqlx_second);
    let kill_recovery = recovery(&second, killed);
    let kill_gap = longest_gap(&second);
    samples.extend(second);
    samples.sort_by_key(|s| s.start);

    let failovers = rt.pool("drill").and_then(|p| p.failovers()).unwrap_or(0);
    close(&rt).await;
    sqlx_side.close().await;
    let leader = cluster.wait_for_leader(SETTLE).await?;
    let table = check_writes(&cluster.url(&leader, &db), &samples).await?;
    let sqlx_lost = plain::lost_writes(&cluster.url(&leader, &db), &sqlx_samples).await?;
    let sqlx_ok = sqlx_samples.iter().filter(|s| s.ok).count();
    let sqlx_writes = sqlx_samples.iter().filter(|s| s.write.is_some()).count();
    let sqlx_writes_ok = sqlx_samples
        .iter()
        .filter(|s| matches!(s.write, Some((_, true))))
        .count();
    let late_limit = limits.deadline.mul_f64(1.1);
    let late = samples.iter().filter(|s| s.took() > late_limit).count() as u64;
    let worst = match (switch_recovery, kill_recovery) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    };
    let mut report = report(Outcome {
        scenario: "failover",
        samples: &samples,
        ready: None,
        deadline: limits.deadline,
        table,
        breaker_opens: 0,
        extra: BTreeMap::new(),
    });
    report.recovery_ms = worst.map(ms);
    let opt = |d: Option<Duration>| d.map_or(Json::Null, |d| Json::from(ms(d)));
    report.extra = BTreeMap::from([
        (
            "unreported_unknown",
            Json::from(report.applied_but_reported_failed),
        ),
        ("late_ops", Json::from(late)),
        ("longest_gap_ms", Json::from(ms(switch_gap.max(kill_gap)))),
        ("switchover_recovery_ms", opt(switch_recovery)),
        ("kill9_recovery_ms", opt(kill_recovery)),
        ("switchover_gap_ms", Json::from(ms(switch_gap))),
        ("kill9_gap_ms", Json::from(ms(kill_gap))),
        ("pool_failovers", Json::from(failovers)),
        ("sqlx_ops", Json::from(sqlx_samples.len())),
        ("sqlx_ok", Json::from(sqlx_ok)),
        ("sqlx_failed", Json::from(sqlx_samples.len() - sqlx_ok)),
        ("sqlx_writes", Json::from(sqlx_writes)),
        ("sqlx_writes_ok", Json::from(sqlx_writes_ok)),
        ("sqlx_lost_writes", Json::from(sqlx_lost)),
        ("sqlx_switchover_recovery_ms", opt(sqlx_switch_recovery)),
        ("sqlx_kill9_recovery_ms", opt(sqlx_kill_recovery)),
    ]);
    Ok(report)
}

/// The superuser URLs of every node but `old`.
fn cluster_urls(cluster: &PatroniCluster, db: &str, old: &str) -> Vec<String> {
    cluster
        .nodes()
        .iter()
        .filter(|n| n.name() != old)
        .map(|n| cluster.admin_url(n.name(), db))
        .collect()
}

/// When one of `urls` is first found out of recovery (polled every 10 ms, for up to 3
/// minutes).
async fn first_new_primary(urls: Vec<String>) -> Option<Instant> {
    let give_up = Instant::now() + SETTLE;
    let mut conns: Vec<Option<sqlx::PgConnection>> = urls.iter().map(|_| None).collect();
    while Instant::now() < give_up {
        for (url, conn) in urls.iter().zip(conns.iter_mut()) {
            if conn.is_none() {
                *conn = sqlx::PgConnection::connect(url).await.ok();
            }
            let Some(c) = conn.as_mut() else {
                continue;
            };
            match sqlx::query_scalar::<_, bool>("select pg_is_in_recovery()")
                .fetch_one(&mut *c)
                .await
            {
                Ok(false) => return Some(Instant::now()),
                Ok(true) => {}
                Err(_) => *conn = None,
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// From `ready` to the end of the first write acknowledged after it.
fn recovery(samples: &[Sample], ready: Option<Instant>) -> Option<Duration> {
    let ready = ready?;
    samples
        .iter()
        .filter(|s| s.key.is_some() && s.outcome.is_ok() && s.end >= ready)
        .map(|s| s.end - ready)
        .min()
}

/// The longest time between two ops that ended well (from the first op's start).
fn longest_gap(samples: &[Sample]) -> Duration {
    let mut ends: Vec<Instant> = samples
        .iter()
        .filter(|s| s.outcome.is_ok())
        .map(|s| s.end)
        .collect();
    ends.sort();
    let Some(first) = samples.iter().map(|s| s.start).min() else {
        return Duration::ZERO;
    };
    let mut last = first;
    let mut gap = Duration::ZERO;
    for end in ends {
        gap = gap.max(end.saturating_duration_since(last));
        last = last.max(end);
    }
    gap
}
