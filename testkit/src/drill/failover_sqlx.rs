//! Plain sqlx 0.9 through the `failover` drill's faults, side by side with the op API in the
//! same run: the same workers, pace and deadline, reads and keyed idempotent upserts.
//!
//! sqlx has no multi-host URLs, so this side is given the address of the leader at the start,
//! as an application without a proxy or a DNS switch in front of its cluster would be. Each
//! request is bounded by the drill's deadline (`tokio::time::timeout`), which plain sqlx does
//! not have of its own, so that a worker cannot hang the drill.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::Result;
use sqlx_resilience_runtime::Error;

const SCHEMA: &str = "create table failover_sqlx (key bigint primary key)";

/// What one request did.
#[derive(Debug, Clone, Copy)]
pub(super) struct PlainSample {
    pub(super) end: Instant,
    pub(super) ok: bool,
    /// The key of an upsert, and whether it was acknowledged.
    pub(super) write: Option<(i64, bool)>,
}

/// The plain sqlx side: its pool on the first leader and the keys it has used.
pub(super) struct PlainSide {
    pool: PgPool,
    keys: Arc<AtomicI64>,
}

impl PlainSide {
    /// Creates the side's table through `admin_url` and opens its pool on `leader_url` with
    /// sqlx's defaults (but `max` connections, like our side).
    pub(super) async fn open(admin_url: &str, leader_url: &str, max: u32) -> Result<PlainSide> {
        let failure = |action: &'static str, e: sqlx::Error| {
            Error::test_kit(
                action,
                sqlx_resilience_runtime::redact(&e.to_string()),
                crate::error::SERVER_HINT,
            )
        };
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url)
            .await
            .map_err(|e| failure("create plain sqlx's table", e))?;
        sqlx::raw_sql(SCHEMA)
            .execute(&mut conn)
            .await
            .map_err(|e| failure("create plain sqlx's table", e))?;
        let pool = PgPoolOptions::new()
            .max_connections(max)
            .connect(leader_url)
            .await
            .map_err(|e| failure("open plain sqlx's pool", e))?;
        Ok(PlainSide {
            pool,
            keys: Arc::new(AtomicI64::new(1)),
        })
    }

    /// Runs `workers` for `duration`, each a request per `pace`, one in four an upsert.
    pub(super) fn start(
        &self,
        workers: usize,
        duration: Duration,
        pace: Duration,
        deadline: Duration,
    ) -> JoinSet<Vec<PlainSample>> {
        let stop = Instant::now() + duration;
        let mut tasks = JoinSet::new();
        for worker in 0..workers {
            let (pool, keys) = (self.pool.clone(), Arc::clone(&self.keys));
            tasks.spawn(async move {
                let mut samples = Vec::new();
                let mut n = worker;
                while Instant::now() < stop {
                    n += 1;
                    let write = (n % 4 == 0).then(|| keys.fetch_add(1, Ordering::Relaxed));
                    let request = async {
                        match write {
                            Some(key) => sqlx::query(
                                "insert into failover_sqlx (key) values ($1) \
                                 on conflict (key) do nothing",
                            )
                            .bind(key)
                            .execute(&pool)
                            .await
                            .map(drop),
                            None => sqlx::query("select v from drill_items where id = $1")
                                .bind((n % 1000 + 1) as i64)
                                .fetch_one(&pool)
                                .await
                                .map(drop),
                        }
                    };
                    let ok = matches!(tokio::time::timeout(deadline, request).await, Ok(Ok(())));
                    samples.push(PlainSample {
                        end: Instant::now(),
                        ok,
                        write: write.map(|key| (key, ok)),
                    });
                    tokio::time::sleep(pace).await;
                }
                samples
            });
        }
        tasks
    }

    pub(super) async fn close(self) {
        self.pool.close().await;
    }
}

/// Waits for the side's workers.
pub(super) async fn finish(mut tasks: JoinSet<Vec<PlainSample>>) -> Vec<PlainSample> {
    let mut samples = Vec::new();
    while let Some(done) = tasks.join_next().await {
        samples.extend(done.unwrap_or_default());
    }
    samples
}

/// From `ready` to the first upsert acknowledged after it; `None` when none was.
pub(super) fn recovery(samples: &[PlainSample], ready: Option<Instant>) -> Option<Duration> {
    let ready = ready?;
    samples
        .iter()
        .filter(|s| matches!(s.write, Some((_, true))) && s.end >= ready)
        .map(|s| s.end - ready)
        .min()
}

/// Acknowledged upserts whose row is not in the table, counted on `url` (the leader's).
pub(super) async fn lost_writes(url: &str, samples: &[PlainSample]) -> Result<i64> {
    let acked: Vec<i64> = samples
        .iter()
        .filter_map(|s| match s.write {
            Some((key, true)) => Some(key),
            _ => None,
        })
        .collect();
    let failure = |e: sqlx::Error| {
        Error::test_kit(
            "count plain sqlx's writes",
            sqlx_resilience_runtime::redact(&e.to_string()),
            crate::error::SERVER_HINT,
        )
    };
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .map_err(failure)?;
    sqlx::query_scalar(
        "select count(*) from unnest($1::int8[]) k \
         where not exists (select 1 from failover_sqlx f where f.key = k)",
    )
    .bind(&acked)
    .fetch_one(&mut conn)
    .await
    .map_err(failure)
}
