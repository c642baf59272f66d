//! `replica-lag`: reads through a pool with two streaming replicas and `max_lag = "1s"`,
//! while a writer appends to a sequence table; replay is paused on both replicas for a while
//! (10 s at full size), then resumed.
//!
//! A read is stale when it misses a write acknowledged more than `max_lag` before the read
//! began: the writer inserts ids 1, 2, 3, ... one at a time and notes when each was
//! acknowledged; each read returns `max(id)` and whether it ran on a standby
//! (`pg_is_in_recovery()`), and is checked against the highest id acknowledged before its
//! start minus `max_lag`. The share of reads served by replicas is reported before, during
//! and after the pause. As a control, one reader reads straight from a replica with plain
//! sqlx (no lag check): its stale reads show the check would catch them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::Connection;
use sqlx_resilience_runtime::{Error, Runtime, Value};

use super::setup::Size;
use crate::{ReplicaSet, Result, ServerOptions};

const MAX_LAG: Duration = Duration::from_secs(1);
const READERS: usize = 8;

/// The figures of `replica-lag`.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaLagReport {
    /// `replica-lag`.
    pub scenario: &'static str,
    /// Reads through the op API.
    pub reads: u64,
    /// Reads that failed (goal: 0).
    pub failed_reads: u64,
    /// Reads that missed a write acknowledged more than `max_lag` before they began (goal:
    /// 0).
    pub stale_reads: u64,
    /// Share of the ok reads served by a replica before the pause, in percent.
    pub replica_share_before: f64,
    /// The same while replay was paused.
    pub replica_share_during: f64,
    /// The same after replay resumed.
    pub replica_share_after: f64,
    /// Writes acknowledged.
    pub writes: u64,
    /// Control: reads straight from replica 1 with plain sqlx, and how many were stale by
    /// the same rule.
    pub direct_reads: u64,
    /// See `direct_reads`.
    pub direct_stale_reads: u64,
    /// The pool's `max_lag`.
    pub max_lag_ms: u64,
    /// How long replay was paused.
    pub paused_ms: u64,
    /// The longest lag the pool reported for a replica during the run.
    pub worst_reported_lag_ms: f64,
    /// The whole run.
    pub elapsed_ms: u64,
}

/// When each id was acknowledged, in order.
#[derive(Default)]
struct Acks(Mutex<Vec<(Instant, i64)>>);

impl Acks {
    /// The highest id acknowledged at or before `at`.
    fn before(&self, at: Instant) -> i64 {
        let acks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = acks.partition_point(|(t, _)| *t <= at);
        if n == 0 { 0 } else { acks[n - 1].1 }
    }
}

/// One read: when it began, where it ran, whether it was stale.
struct Read {
    began: Instant,
    on_replica: bool,
    stale: bool,
}

pub(super) async fn run(size: Size) -> Result<ReplicaLagReport> {
    let (before, paused, after) = size.pick((2, 4, 3), (5, 10, 10));
    let (before, paused, after) = (
        Duration::from_secs(before),
        Duration::from_secs(paused),
        Duration::from_secs(after),
    );
    let started = Instant::now();
    let set =
        ReplicaSet::start_with(2, ServerOptions::new().setting("synchronous_commit", "on")).await?;
    let db = set.create_database().await?;
    let urls = format!("{}, {}", set.replica_url(0, &db), set.replica_url(1, &db));
    let settings: Vec<(&str, Value)> = vec![
        ("application_name", super::setup::APP.into()),
        ("max", 12u32.into()),
        ("replicas", urls.into()),
        ("replica_max", 8u32.into()),
        ("max_lag", "1s".into()),
    ];
    let rt = Runtime::builder()
        .url(db.url())
        .env_vars(Vec::<(String, String)>::new())
        .pool("drill", &settings)
        .build()
        .await?;
    rt.op("drill::schema")
        .pool("drill")
        .run(|c| {
            Box::pin(async move {
                sqlx::query("CREATE TABLE seq (id bigint PRIMARY KEY)")
                    .execute(c.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await?;
    for i in 0..2 {
        set.wait_caught_up(i, Duration::from_secs(60)).await?;
    }
    // Until the monitor has measured the replicas.
    let ready = Instant::now();
    while rt
        .pool("drill")
        .and_then(|p| p.replica_report())
        .is_none_or(|r| r.replicas.iter().any(|s| !s.serving))
        && ready.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let acks = Arc::new(Acks::default());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn(write_loop(rt.clone(), acks.clone(), stop.clone()));
    let mut readers = Vec::new();
    for _ in 0..READERS {
        readers.push(tokio::spawn(read_loop(
            rt.clone(),
            acks.clone(),
            stop.clone(),
        )));
    }
    let direct = tokio::spawn(direct_loop(
        set.replica_url(0, &db),
        acks.clone(),
        stop.clone(),
    ));
    let worst_lag = tokio::spawn(watch_lag(rt.clone(), stop.clone()));

    tokio::time::sleep(before).await;
    let pause_at = Instant::now();
    for i in 0..2 {
        set.pause_replay(i).await?;
    }
    tracing::info!("replay paused on both replicas");
    tokio::time::sleep(paused).await;
    let resume_at = Instant::now();
    for i in 0..2 {
        set.resume_replay(i).await?;
    }
    tracing::info!("replay resumed");
    tokio::time::sleep(after).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let writes = writer.await.unwrap_or(0);
    let mut reads = Vec::new();
    let mut failed = 0;
    for r in readers {
        let (ok, bad) = r.await.unwrap_or_default();
        reads.extend(ok);
        failed += bad;
    }
    let (direct_reads, direct_stale) = direct.await.unwrap_or((0, 0));
    let worst_reported_lag_ms = worst_lag.await.unwrap_or(0.0);
    let _ = rt.shutdown(Duration::from_secs(5)).await;

    let share = |from: Instant, to: Instant| {
        let phase: Vec<&Read> = reads
            .iter()
            .filter(|r| r.began >= from && r.began < to)
            .collect();
        let on = phase.iter().filter(|r| r.on_replica).count();
        (on as f64 * 1000.0 / phase.len().max(1) as f64).round() / 10.0
    };
    let far = Instant::now() + Duration::from_secs(3600);
    Ok(ReplicaLagReport {
        scenario: "replica-lag",
        reads: reads.len() as u64 + failed,
        failed_reads: failed,
        stale_reads: reads.iter().filter(|r| r.stale).count() as u64,
        replica_share_before: share(started, pause_at),
        replica_share_during: share(pause_at, resume_at),
        replica_share_after: share(resume_at, far),
        writes,
        direct_reads,
        direct_stale_reads: direct_stale,
        max_lag_ms: MAX_LAG.as_millis() as u64,
        paused_ms: resume_at.duration_since(pause_at).as_millis() as u64,
        worst_reported_lag_ms: (worst_reported_lag_ms * 10.0).round() / 10.0,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

fn stopped(stop: &std::sync::atomic::AtomicBool) -> bool {
    stop.load(std::sync::atomic::Ordering::Relaxed)
}

/// Appends ids 1, 2, 3, ... one at a time; returns how many were acknowledged.
async fn write_loop(rt: Runtime, acks: Arc<Acks>, stop: Arc<std::sync::atomic::AtomicBool>) -> u64 {
    let mut id = 0i64;
    while !stopped(&stop) {
        let next = id + 1;
        let written = rt
            .op("drill::seq_write")
            .pool("drill")
            .idempotent(true)
            .timeout(Duration::from_secs(2))
            .run(|c| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO seq VALUES ($1) ON CONFLICT DO NOTHING")
                        .bind(next)
                        .execute(c.as_mut())
                        .await?;
                    Ok::<_, Error>(())
                })
            })
            .await;
        match written {
            Ok(()) => {
                id = next;
                acks.0
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((Instant::now(), id));
            }
            Err(e) => tracing::warn!(error = %e, "sequence write failed"),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    id as u64
}

/// Reads `max(id)` through a `read_only` op until stopped: the reads, and how many failed.
async fn read_loop(
    rt: Runtime,
    acks: Arc<Acks>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Vec<Read>, u64) {
    let mut reads = Vec::new();
    let mut failed = 0;
    while !stopped(&stop) {
        let began = Instant::now();
        let got = rt
            .op("drill::seq_read")
            .pool("drill")
            .read_only(true)
            .timeout(Duration::from_secs(2))
            .run(|c| {
                Box::pin(async move {
                    let row: (bool, i64) =
                        sqlx::query_as("SELECT pg_is_in_recovery(), coalesce(max(id), 0) FROM seq")
                            .fetch_one(c.as_mut())
                            .await?;
                    Ok::<_, Error>(row)
                })
            })
            .await;
        match got {
            Ok((on_replica, seen)) => {
                let must_see = began.checked_sub(MAX_LAG).map_or(0, |t| acks.before(t));
                reads.push(Read {
                    began,
                    on_replica,
                    stale: seen < must_see,
                });
            }
            Err(e) => {
                failed += 1;
                tracing::warn!(error = %e, "read failed");
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (reads, failed)
}

/// The control: reads straight from a replica, no lag check. (reads, stale reads)
async fn direct_loop(
    url: String,
    acks: Arc<Acks>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (u64, u64) {
    let Ok(mut conn) = sqlx::PgConnection::connect(&url).await else {
        return (0, 0);
    };
    let (mut reads, mut stale) = (0, 0);
    while !stopped(&stop) {
        let began = Instant::now();
        if let Ok(seen) = sqlx::query_scalar::<_, i64>("SELECT coalesce(max(id), 0) FROM seq")
            .fetch_one(&mut conn)
            .await
        {
            reads += 1;
            let must_see = began.checked_sub(MAX_LAG).map_or(0, |t| acks.before(t));
            if seen < must_see {
                stale += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = conn.close().await;
    (reads, stale)
}

/// The longest lag the pool reported for any replica, in ms.
async fn watch_lag(rt: Runtime, stop: Arc<std::sync::atomic::AtomicBool>) -> f64 {
    let mut worst: f64 = 0.0;
    while !stopped(&stop) {
        if let Some(r) = rt.pool("drill").and_then(|p| p.replica_report()) {
            for s in &r.replicas {
                worst = worst.max(s.lag_ms.unwrap_or(0.0));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worst
}
