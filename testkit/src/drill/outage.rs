//! `outage`: the same request mix through the op API and through plain sqlx 0.9 on its
//! defaults, side by side on one server, while the server is stopped (then started) or the
//! network is blackholed (then healed), for outages of several lengths, at low and high
//! concurrency. One JSON object per case.
//!
//! Each caller sends a request every [`CADENCE`] (or as soon as the previous one returns, when
//! that takes longer): a read, an idempotent update, and a non-idempotent insert with a
//! client-chosen key into a table without a unique constraint, so a write applied twice is
//! two rows. Lost (acknowledged, absent) and duplicated writes are counted in the table on a
//! separate connection at the end of each case.
//!
//! Our side runs the README's headline policies (`ours`) with a per-attempt timeout and
//! a deadline ([`TIMEOUT`], [`DEADLINE`]) on a pool of 10 (sqlx's default size). Plain sqlx
//! uses `PgPoolOptions::new()` as it comes: 10 connections, a 30 s acquire timeout, a ping
//! before every acquire, no statement timeout, no retries.
//!
//! Stop cases connect straight to the server (a stopped server refuses connections);
//! blackhole cases go through the test kit's proxy for both sides.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgPool};
use sqlx_resilience_runtime::{Error, Op, PolicyKind, Runtime, Value};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::figures::{ms, percentile, round1};
use super::load::connect;
use super::setup::{Size, close};
use crate::{FaultProxy, PgServer, Result, ServerOptions, ShutdownMode};

/// How often each caller sends a request.
const CADENCE: Duration = Duration::from_millis(20);
/// Our per-attempt timeout: long enough for a statement caught by a 2 s blackhole to finish
/// when the network heals, as plain sqlx's (which has none) does.
const TIMEOUT: Duration = Duration::from_secs(3);
/// Our deadline for the whole call: above the 2 s outage, so short outages fit in it.
const DEADLINE: Duration = Duration::from_secs(5);
/// Load before the fault, and after the server is ready again.
const BEFORE: Duration = Duration::from_secs(1);
const AFTER: Duration = Duration::from_secs(3);

const SCHEMA: &str = r#"
create table outage_items (id bigint primary key, v bigint not null);
insert into outage_items select g, g from generate_series(1, 1000) g;
create table outage_writes (side text not null, key bigint not null);
create index outage_writes_key on outage_writes (side, key);
"#;

/// How the database goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `pg_ctl stop -m fast`, then `pg_ctl start` after the outage.
    Stop,
    /// The network drops everything, then heals.
    Blackhole,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Stop => "stop",
            Fault::Blackhole => "blackhole",
        }
    }
}

/// One case: a fault of one length at one concurrency.
#[derive(Debug, Clone, Copy)]
struct Case {
    fault: Fault,
    outage: Duration,
    callers: usize,
}

impl Case {
    fn name(&self) -> String {
        let len = if self.outage.subsec_millis() == 0 {
            format!("{}s", self.outage.as_secs())
        } else {
            format!("{}s", self.outage.as_secs_f64())
        };
        format!("{}-{len}-c{}", self.fault.name(), self.callers)
    }
}

/// The figures of one case (one JSON line).
#[derive(Debug, Clone, Serialize)]
pub struct OutageCase {
    /// `fault-length-cN`, e.g. `stop-2s-c4`.
    pub case: String,
    /// `stop` or `blackhole`.
    pub fault: &'static str,
    /// Callers on each side.
    pub callers: usize,
    /// The outage's planned length: the server stopped, or the network blackholed, this long.
    pub outage_ms: f64,
    /// Measured: from the fault's start to the server being ready again (`pg_ctl start`
    /// returned, or the network healed).
    pub down_ms: f64,
    /// Our requests, all told.
    pub ours_requests: u64,
    /// Our requests made before the server was ready again that failed.
    pub ours_errors_during: u64,
    /// Our requests made after the server was ready again that failed (goal: 0).
    pub ours_errors_after_ready: u64,
    /// Of [`OutageCase::ours_errors_during`], those that returned after the server was ready
    /// again: requests that spent their whole deadline in the outage and ran out just after
    /// its end, before anything could notice the server was back.
    pub ours_errors_ended_after_ready: u64,
    /// From the server being ready to the end of our first request that succeeded after it.
    pub ours_ready_to_first_ok_ms: Option<f64>,
    /// 99th percentile of our requests' latency (failed ones included).
    pub ours_p99_ms: f64,
    /// Median latency of our failed requests.
    pub ours_fail_p50_ms: Option<f64>,
    /// 99th percentile latency of our failed requests.
    pub ours_fail_p99_ms: Option<f64>,
    /// Our failures by kind.
    pub ours_errors: BTreeMap<&'static str, u64>,
    /// Our non-idempotent inserts reported as unknown outcomes (never retried).
    pub ours_unknown_outcome: u64,
    /// How many times our breaker opened.
    pub ours_breaker_opens: u64,
    /// Plain sqlx's requests.
    pub sqlx_requests: u64,
    /// Plain sqlx's requests made before the server was ready again that failed.
    pub sqlx_errors_during: u64,
    /// Plain sqlx's requests made after the server was ready again that failed.
    pub sqlx_errors_after_ready: u64,
    /// Of [`OutageCase::sqlx_errors_during`], those that returned after the server was ready.
    pub sqlx_errors_ended_after_ready: u64,
    /// From the server being ready to plain sqlx's first success after it.
    pub sqlx_ready_to_first_ok_ms: Option<f64>,
    /// 99th percentile of plain sqlx's requests' latency.
    pub sqlx_p99_ms: f64,
    /// Median latency of plain sqlx's failed requests.
    pub sqlx_fail_p50_ms: Option<f64>,
    /// 99th percentile latency of plain sqlx's failed requests.
    pub sqlx_fail_p99_ms: Option<f64>,
    /// Our acknowledged inserts absent from the table (goal: 0).
    pub lost_writes: u64,
    /// Rows beyond the first for any of our insert keys (goal: 0).
    pub duplicate_writes: u64,
    /// Plain sqlx's acknowledged inserts absent from the table.
    pub sqlx_lost_writes: u64,
    /// Rows beyond the first for any of plain sqlx's insert keys.
    pub sqlx_duplicate_writes: u64,
}

/// The cases of a size: every fault, length and concurrency at full size; at small size the
/// short outages at low concurrency, and one long one.
fn cases(size: Size) -> Vec<Case> {
    let (lengths, callers): (&[u64], &[usize]) = match size {
        Size::Full => (&[500, 2_000, 10_000, 60_000], &[4, 64]),
        Size::Small => (&[500, 2_000, 8_000], &[4]),
    };
    let mut cases = Vec::new();
    for fault in [Fault::Stop, Fault::Blackhole] {
        for &len in lengths {
            for &callers in callers {
                cases.push(Case {
                    fault,
                    outage: Duration::from_millis(len),
                    callers,
                });
            }
        }
    }
    cases
}

/// Runs every case of `size` on one dedicated server.
pub(super) async fn run(size: Size) -> Result<Vec<OutageCase>> {
    run_cases(size, &[]).await
}

/// Runs the cases of `size` named in `only` (every case when it is empty).
pub(super) async fn run_cases(size: Size, only: &[String]) -> Result<Vec<OutageCase>> {
    let all = cases(size);
    let names: Vec<String> = all.iter().map(Case::name).collect();
    if let Some(unknown) = only.iter().find(|n| !names.contains(n)) {
        return Err(Error::test_kit(
            "choose the outage drill's cases",
            format!("no case `{unknown}` at this size"),
            format!("choose among {}", names.join(", ")),
        ));
    }
    let chosen: Vec<Case> = all
        .into_iter()
        .filter(|c| only.is_empty() || only.contains(&c.name()))
        .collect();
    let server =
        PgServer::start_with(ServerOptions::new().setting("synchronous_commit", "on")).await?;
    let db = server.create_database().await?;
    {
        let mut conn = connect(db.url(), "create the outage drill's tables").await?;
        let made = sqlx::raw_sql(SCHEMA).execute(&mut conn).await;
        let _ = conn.close().await;
        made.map_err(|e| {
            Error::test_kit(
                "create the outage drill's tables",
                sqlx_resilience_runtime::redact(&e.to_string()),
                crate::error::SERVER_HINT,
            )
        })?;
    }
    let proxy = FaultProxy::start(server.tcp_addr()).await?;
    let mut out = Vec::new();
    for case in chosen {
        tracing::info!(case = %case.name(), "outage case starting");
        let url = match case.fault {
            Fault::Stop => db.url().to_owned(),
            Fault::Blackhole => db.url_via(proxy.addr()),
        };
        let figures = run_case(case, &server, &proxy, &url, db.url()).await?;
        tracing::info!(
            case = %figures.case,
            ours_errors_after_ready = figures.ours_errors_after_ready,
            ours_ready_to_first_ok_ms = ?figures.ours_ready_to_first_ok_ms,
            "outage case finished"
        );
        out.push(figures);
    }
    Ok(out)
}

/// What one request did.
#[derive(Debug, Clone, Copy)]
struct Sample {
    end: Instant,
    took: Duration,
    failure: Option<&'static str>,
    /// The key of an insert, and whether it was acknowledged.
    insert: Option<(i64, bool)>,
}

async fn run_case(
    case: Case,
    server: &PgServer,
    proxy: &FaultProxy,
    url: &str,
    direct_url: &str,
) -> Result<OutageCase> {
    let name = case.name();
    let rt = ours(url).await?;
    let ops = Arc::new(OurOps::new(&rt)?);
    let opens = super::setup::BreakerOpens::watch_named(&rt, "db")?;
    let plain = PgPoolOptions::new().connect(url).await.map_err(|e| {
        Error::test_kit(
            "open plain sqlx's pool",
            sqlx_resilience_runtime::redact(&e.to_string()),
            crate::error::SERVER_HINT,
        )
    })?;
    let ours_side: Arc<str> = Arc::from(format!("{name}/ours"));
    let sqlx_side: Arc<str> = Arc::from(format!("{name}/sqlx"));

    let stop = Arc::new(AtomicBool::new(false));
    let keys = Arc::new(AtomicI64::new(1));
    let mut tasks: JoinSet<(bool, Vec<Sample>)> = JoinSet::new();
    for i in 0..case.callers {
        let (ours_ops, side, halt, next) = (
            Arc::clone(&ops),
            Arc::clone(&ours_side),
            Arc::clone(&stop),
            Arc::clone(&keys),
        );
        tasks.spawn(async move {
            let samples = caller(i, &halt, &next, |n, k| ours_ops.request(n, k, &side)).await;
            (true, samples)
        });
        let (pool, side, halt, next) = (
            plain.clone(),
            Arc::clone(&sqlx_side),
            Arc::clone(&stop),
            Arc::clone(&keys),
        );
        tasks.spawn(async move {
            let samples = caller(i, &halt, &next, |n, k| plain_request(&pool, n, k, &side)).await;
            (false, samples)
        });
    }

    tokio::time::sleep(BEFORE).await;
    let fault_at = Instant::now();
    match case.fault {
        Fault::Stop => {
            server.stop(ShutdownMode::Fast).await?;
            tokio::time::sleep(case.outage).await;
            server.start_again().await?;
        }
        Fault::Blackhole => {
            proxy.blackhole();
            tokio::time::sleep(case.outage).await;
            proxy.heal().await?;
        }
    }
    let ready = Instant::now();
    tracing::info!(case = %name, down_ms = ms(ready - fault_at), "server ready again");
    tokio::time::sleep(AFTER).await;
    stop.store(true, Ordering::Relaxed);
    let (mut ours_samples, mut sqlx_samples) = (Vec::new(), Vec::new());
    while let Some(joined) = tasks.join_next().await {
        let (is_ours, samples) = joined
            .map_err(|e| Error::test_kit("join a drill caller", e, "this is a bug in the drill"))?;
        if is_ours {
            ours_samples.extend(samples);
        } else {
            sqlx_samples.extend(samples);
        }
    }
    let breaker_opens = opens.count();
    close(&rt).await;
    plain.close().await;

    let ours_table = count_writes(direct_url, &ours_side, &ours_samples).await?;
    let sqlx_table = count_writes(direct_url, &sqlx_side, &sqlx_samples).await?;
    let o = Side::of(&ours_samples, ready);
    let p = Side::of(&sqlx_samples, ready);
    Ok(OutageCase {
        case: name,
        fault: case.fault.name(),
        callers: case.callers,
        outage_ms: ms(case.outage),
        down_ms: round1(ms(ready - fault_at)),
        ours_requests: o.requests,
        ours_errors_during: o.errors_during,
        ours_errors_after_ready: o.errors_after_ready,
        ours_errors_ended_after_ready: o.errors_ended_after_ready,
        ours_ready_to_first_ok_ms: o.ready_to_first_ok_ms,
        ours_p99_ms: o.p99_ms,
        ours_fail_p50_ms: o.fail_p50_ms,
        ours_fail_p99_ms: o.fail_p99_ms,
        ours_unknown_outcome: o.errors.get("unknown_outcome").copied().unwrap_or(0),
        ours_errors: o.errors,
        ours_breaker_opens: breaker_opens,
        sqlx_requests: p.requests,
        sqlx_errors_during: p.errors_during,
        sqlx_errors_after_ready: p.errors_after_ready,
        sqlx_errors_ended_after_ready: p.errors_ended_after_ready,
        sqlx_ready_to_first_ok_ms: p.ready_to_first_ok_ms,
        sqlx_p99_ms: p.p99_ms,
        sqlx_fail_p50_ms: p.fail_p50_ms,
        sqlx_fail_p99_ms: p.fail_p99_ms,
        lost_writes: ours_table.0,
        duplicate_writes: ours_table.1,
        sqlx_lost_writes: sqlx_table.0,
        sqlx_duplicate_writes: sqlx_table.1,
    })
}

/// Our runtime: the README's headline breaker (one for all ops) and retry policy, one pool
/// of 10 with the pool's defaults otherwise.
async fn ours(url: &str) -> Result<Runtime> {
    let breaker: [(&str, Value); 3] = [
        ("failure_rate", 50u32.into()),
        ("window", "30s".into()),
        ("minimum_calls", 20u32.into()),
    ];
    let retry: [(&str, Value); 3] = [
        ("attempts", 4u32.into()),
        ("base", "50ms".into()),
        ("max_delay", "2s".into()),
    ];
    Runtime::builder()
        .url(url)
        .env_vars(Vec::<(String, String)>::new())
        .pool(
            "app",
            &[
                ("max", 10u32.into()),
                ("application_name", "outage-drill".into()),
            ],
        )
        .declare(PolicyKind::Breaker, "db", &breaker)
        .declare(PolicyKind::Retry, "transient", &retry)
        .build()
        .await
}

/// Our three ops.
#[derive(Debug)]
struct OurOps {
    read: Op,
    update: Op,
    insert: Op,
}

impl OurOps {
    fn new(rt: &Runtime) -> Result<OurOps> {
        let op = |name: &'static str| {
            rt.op(name)
                .pool("app")
                .timeout(TIMEOUT)
                .deadline(DEADLINE)
                .retry("transient")
                .breaker("db")
        };
        Ok(OurOps {
            read: op("outage::read").read_only(true).build()?,
            update: op("outage::update").idempotent(true).build()?,
            insert: op("outage::insert").build()?,
        })
    }

    /// Request `n` of a caller: a read, an idempotent update or an insert.
    async fn request(&self, n: u64, key: i64, side: &str) -> std::result::Result<(), Error> {
        let id = key % 1000 + 1;
        match n % 4 {
            0 | 1 => {
                self.read
                    .run(move |c| {
                        Box::pin(async move {
                            sqlx::query("select v from outage_items where id = $1")
                                .bind(id)
                                .fetch_one(c.as_mut())
                                .await?;
                            Ok::<_, Error>(())
                        })
                    })
                    .await
            }
            2 => {
                self.update
                    .run(move |c| {
                        Box::pin(async move {
                            sqlx::query("update outage_items set v = $1 where id = $1")
                                .bind(id)
                                .execute(c.as_mut())
                                .await?;
                            Ok::<_, Error>(())
                        })
                    })
                    .await
            }
            _ => {
                self.insert
                    .run(move |c| {
                        Box::pin(async move {
                            sqlx::query("insert into outage_writes (side, key) values ($1, $2)")
                                .bind(side)
                                .bind(key)
                                .execute(c.as_mut())
                                .await?;
                            Ok::<_, Error>(())
                        })
                    })
                    .await
            }
        }
    }
}

/// The same request through plain sqlx.
async fn plain_request(
    pool: &PgPool,
    n: u64,
    key: i64,
    side: &str,
) -> std::result::Result<(), Error> {
    let id = key % 1000 + 1;
    let done = match n % 4 {
        0 | 1 => sqlx::query("select v from outage_items where id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .map(drop),
        2 => sqlx::query("update outage_items set v = $1 where id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(drop),
        _ => sqlx::query("insert into outage_writes (side, key) values ($1, $2)")
            .bind(side)
            .bind(key)
            .execute(pool)
            .await
            .map(drop),
    };
    done.map_err(Error::from)
}

/// One caller: a request every [`CADENCE`] until told to stop.
async fn caller<F, Fut>(
    index: usize,
    stop: &AtomicBool,
    keys: &AtomicI64,
    request: F,
) -> Vec<Sample>
where
    F: Fn(u64, i64) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), Error>>,
{
    let mut samples = Vec::new();
    // Callers start out of step.
    let offset = u32::try_from(index % 20).unwrap_or(0);
    tokio::time::sleep(CADENCE / 20 * offset).await;
    let mut n = index as u64;
    while !stop.load(Ordering::Relaxed) {
        let key = keys.fetch_add(1, Ordering::Relaxed);
        let start = Instant::now();
        let result = request(n, key).await;
        let end = Instant::now();
        let insert = (n % 4 == 3).then_some((key, result.is_ok()));
        if let Err(e) = &result {
            tracing::debug!(caller = index, took_ms = ms(end - start), error = %e, "request failed");
        }
        samples.push(Sample {
            end,
            took: end - start,
            failure: result.err().map(|e| e.kind().as_str()),
            insert,
        });
        n += 1;
        let next = start + CADENCE;
        if next > Instant::now() {
            tokio::time::sleep_until(next).await;
        }
    }
    samples
}

/// One side's figures.
struct Side {
    requests: u64,
    errors_during: u64,
    errors_after_ready: u64,
    errors_ended_after_ready: u64,
    ready_to_first_ok_ms: Option<f64>,
    p99_ms: f64,
    fail_p50_ms: Option<f64>,
    fail_p99_ms: Option<f64>,
    errors: BTreeMap<&'static str, u64>,
}

impl Side {
    fn of(samples: &[Sample], ready: Instant) -> Side {
        let mut all: Vec<Duration> = samples.iter().map(|s| s.took).collect();
        all.sort();
        let mut failed: Vec<Duration> = samples
            .iter()
            .filter(|s| s.failure.is_some())
            .map(|s| s.took)
            .collect();
        failed.sort();
        let mut errors = BTreeMap::new();
        for kind in samples.iter().filter_map(|s| s.failure) {
            *errors.entry(kind).or_insert(0) += 1;
        }
        let first_ok = samples
            .iter()
            .filter(|s| s.failure.is_none() && s.end >= ready)
            .map(|s| s.end)
            .min();
        let pct = |v: &[Duration], q: f64| (!v.is_empty()).then(|| round1(ms(percentile(v, q))));
        let failures = |f: &dyn Fn(&Sample) -> bool| {
            samples
                .iter()
                .filter(|s| s.failure.is_some() && f(s))
                .count() as u64
        };
        Side {
            requests: samples.len() as u64,
            errors_during: failures(&|s| s.end - s.took < ready),
            errors_after_ready: failures(&|s| s.end - s.took >= ready),
            errors_ended_after_ready: failures(&|s| s.end - s.took < ready && s.end >= ready),
            ready_to_first_ok_ms: first_ok.map(|t| round1(ms(t - ready))),
            p99_ms: pct(&all, 0.99).unwrap_or(0.0),
            fail_p50_ms: pct(&failed, 0.5),
            fail_p99_ms: pct(&failed, 0.99),
            errors,
        }
    }
}

/// (lost, duplicated) among one side's inserts, counted in the table.
async fn count_writes(url: &str, side: &str, samples: &[Sample]) -> Result<(u64, u64)> {
    const ACTION: &str = "count the outage drill's writes";
    let acked: Vec<i64> = samples
        .iter()
        .filter_map(|s| s.insert)
        .filter(|(_, ok)| *ok)
        .map(|(k, _)| k)
        .collect();
    let mut conn = connect(url, ACTION).await?;
    let row: std::result::Result<(i64, i64), sqlx::Error> = sqlx::query_as(
        "select \
           (select count(*) from unnest($2::int8[]) k \
             where not exists (select 1 from outage_writes w where w.side = $1 and w.key = k)), \
           (select count(*) - count(distinct key) from outage_writes where side = $1)",
    )
    .bind(side)
    .bind(&acked)
    .fetch_one(&mut conn)
    .await;
    let _ = conn.close().await;
    let (lost, dup) = row.map_err(|e| {
        Error::test_kit(
            ACTION,
            sqlx_resilience_runtime::redact(&e.to_string()),
            crate::error::SERVER_HINT,
        )
    })?;
    Ok((
        u64::try_from(lost).unwrap_or(0),
        u64::try_from(dup).unwrap_or(0),
    ))
}
