//! `overhead`: what the op API costs on a real round trip. Point selects
//! (`select abalance from pgbench_accounts where aid = $1`, after `pgbench -i -s 1`) through a
//! prebuilt `Op` (timeout, deadline, retry policy and breaker) and through raw sqlx on the
//! same pool, at one caller and at 64; raw sqlx on sqlx's default pool options (a ping before
//! every acquire) at 64; and `pgbench -S -M prepared -c 64 -j 2` on the same server.
//!
//! Every pool has the same size, the high concurrency (64; 16 at the small size, which only
//! checks that every path runs). After a warm-up, the client-side paths run in short slices
//! (500 ms at 64 callers, 250 ms at one) in rotating order, twelve slices each, and pgbench
//! runs for 3 s once per round of four slices; each figure is the median of its slices or
//! runs, so drift on a shared machine hits every path alike.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};
use sqlx_resilience_runtime::{Error, Op};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::figures::{median, ms, round1, round3};
use super::load::connect;
use super::report::OverheadReport;
use super::setup::Size;
use crate::binaries::Search;
use crate::{PgServer, Result, TestDb};

const SELECT: &str = "select abalance from pgbench_accounts where aid = $1";

/// Rows of `pgbench_accounts` at scale 1.
const ACCOUNTS: u32 = 100_000;

/// The high concurrency at full size: callers, pool size and pgbench clients (small: 16).
const CONCURRENCY: u32 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    RawC1,
    WrappedC1,
    Raw,
    Wrapped,
    SqlxDefaults,
    Pgbench,
}

impl Measure {
    fn name(self) -> &'static str {
        match self {
            Measure::RawC1 => "raw_c1",
            Measure::WrappedC1 => "wrapped_c1",
            Measure::Raw => "raw",
            Measure::Wrapped => "wrapped",
            Measure::SqlxDefaults => "sqlx_defaults",
            Measure::Pgbench => "pgbench",
        }
    }
}

/// Where the measured things run.
struct Bench {
    db: TestDb,
    /// The runtime's pool, with the runtime's default settings but its size.
    pool: PgPool,
    op: Op,
    /// sqlx's `PgPoolOptions` defaults but the size.
    sqlx_defaults: PgPool,
    pgbench: Option<PathBuf>,
    /// The high concurrency.
    concurrency: u32,
    /// Length of each pgbench run.
    pgbench_seconds: u32,
}

pub(super) async fn run(size: Size) -> Result<OverheadReport> {
    let server = PgServer::start().await?;
    let db = server.create_database().await?;
    let concurrency = size.pick(16, CONCURRENCY);
    let pgbench = find_pgbench();
    match &pgbench {
        Some(path) => {
            tracing::info!(pgbench = %path.display(), "initialising with pgbench -i -s 1");
            pgbench_run(path, &db, &["-i", "-s", "1", "-q"]).await?;
        }
        None => {
            tracing::warn!(
                "pgbench not found next to the server binaries or on PATH; vs_pgbench will be null"
            );
            create_accounts(&db).await?;
        }
    }
    // The drill's runtime: its breaker and retry policy on a pool as large as the concurrency.
    let rt = super::setup::runtime(db.url(), &[("max", concurrency.into())]).await?;
    let op = rt
        .op("drill::point_select")
        .pool("drill")
        .timeout(Duration::from_secs(5))
        .deadline(Duration::from_secs(10))
        .retry("drill")
        .breaker("drill")
        .read_only(true)
        .build()?;
    let pool = rt.pool("drill").expect("the drill pool").sqlx().clone();
    let options: PgConnectOptions = db.url().parse().map_err(|e: sqlx::Error| {
        Error::test_kit(
            "build sqlx's default pool",
            sqlx_resilience_runtime::redact(&e.to_string()),
            "this is a bug in the drill",
        )
    })?;
    let sqlx_defaults = PgPoolOptions::new()
        .max_connections(concurrency)
        .connect_lazy_with(options);
    let bench = Bench {
        db,
        pool,
        op,
        sqlx_defaults,
        pgbench,
        concurrency,
        pgbench_seconds: size.pick(1, 3),
    };
    let slice = size.pick(Duration::from_millis(250), Duration::from_millis(500));
    let slice_c1 = size.pick(Duration::from_millis(150), Duration::from_millis(250));
    let (rounds, per_round) = size.pick((1u32, 1u32), (3, 4));

    tracing::info!("warming up: every connection of both pools opened and prepared");
    let warm = size.pick(Duration::from_millis(300), Duration::from_secs(1));
    for m in [Measure::Raw, Measure::Wrapped, Measure::SqlxDefaults] {
        // Opening many connections at once on a busy machine may outlast an acquire timeout;
        // the warm-up only has to leave the pools full.
        if let Err(e) = bench.client(m, warm).await {
            tracing::info!(measure = m.name(), "warm-up: {e}");
        }
    }

    // Short slices, in rotating order, so drift on a shared machine hits every path alike;
    // pgbench (which opens its connections each run) once per round.
    let mut samples: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let mut turn = 0usize;
    for round in 0..rounds {
        for _ in 0..per_round {
            let mut high = [Measure::Raw, Measure::Wrapped, Measure::SqlxDefaults];
            high.rotate_left(turn % 3);
            let mut low = [Measure::RawC1, Measure::WrappedC1];
            low.rotate_left(turn % 2);
            turn += 1;
            for m in high {
                let figure = bench.client(m, slice).await?;
                samples.entry(m.name()).or_default().push(figure.round());
            }
            for m in low {
                let figure = bench.client(m, slice_c1).await?;
                samples.entry(m.name()).or_default().push(figure.round());
            }
        }
        if let Some(tps) = bench.pgbench().await? {
            samples
                .entry(Measure::Pgbench.name())
                .or_default()
                .push(round1(tps));
        }
        let so_far = |m: Measure| samples.get(m.name()).map(|v| median(v)).unwrap_or(0.0);
        tracing::info!(
            round,
            raw = so_far(Measure::Raw),
            wrapped = so_far(Measure::Wrapped),
            sqlx_defaults = so_far(Measure::SqlxDefaults),
            raw_c1 = so_far(Measure::RawC1),
            wrapped_c1 = so_far(Measure::WrappedC1),
            pgbench = so_far(Measure::Pgbench),
            "medians so far, ops/s"
        );
    }
    let pgbench_seconds = bench.pgbench_seconds;
    bench.sqlx_defaults.close().await;
    let _ = rt.shutdown(Duration::from_secs(5)).await;
    drop(bench);

    let fig = |m: Measure| samples.get(m.name()).map(|v| median(v));
    let raw = fig(Measure::Raw).unwrap_or(0.0);
    let wrapped = fig(Measure::Wrapped).unwrap_or(0.0);
    let raw_c1 = fig(Measure::RawC1).unwrap_or(0.0);
    let wrapped_c1 = fig(Measure::WrappedC1).unwrap_or(0.0);
    let sqlx_defaults = fig(Measure::SqlxDefaults).unwrap_or(0.0);
    let pgbench = fig(Measure::Pgbench);
    let over = |a: f64, b: f64| if b > 0.0 { round3(a / b) } else { 0.0 };
    Ok(OverheadReport {
        scenario: "overhead",
        raw_ops_s: round1(raw),
        wrapped_ops_s: round1(wrapped),
        ratio: over(wrapped, raw),
        defaults_vs_sqlx_defaults: over(wrapped, sqlx_defaults),
        vs_pgbench: pgbench.map(|p| over(wrapped, p)),
        raw_ops_s_c1: round1(raw_c1),
        wrapped_ops_s_c1: round1(wrapped_c1),
        ratio_c1: over(wrapped_c1, raw_c1),
        sqlx_defaults_ops_s: round1(sqlx_defaults),
        pgbench_tps: pgbench.map(round1),
        sqlx_defaults_vs_pgbench: pgbench.map(|p| over(sqlx_defaults, p)),
        raw_vs_pgbench: pgbench.map(|p| over(raw, p)),
        concurrency,
        pool_max: concurrency,
        slice_ms: ms(slice),
        slice_c1_ms: ms(slice_c1),
        slices: rounds * per_round,
        pgbench_seconds,
        samples,
    })
}

impl Bench {
    /// Ops per second of one client-side measurement.
    async fn client(&self, m: Measure, time: Duration) -> Result<f64> {
        let concurrency = match m {
            Measure::RawC1 | Measure::WrappedC1 => 1,
            _ => self.concurrency,
        };
        let figure = match m {
            Measure::Raw | Measure::RawC1 => {
                let pool = self.pool.clone();
                throughput(concurrency, time, move |aid| raw(pool.clone(), aid)).await
            }
            Measure::SqlxDefaults => {
                let pool = self.sqlx_defaults.clone();
                throughput(concurrency, time, move |aid| raw(pool.clone(), aid)).await
            }
            Measure::Wrapped | Measure::WrappedC1 => {
                let op = self.op.clone();
                throughput(concurrency, time, move |aid| wrapped(op.clone(), aid)).await
            }
            Measure::Pgbench => unreachable!("pgbench is measured by pgbench"),
        };
        figure.map_err(|(failed, first)| {
            Error::test_kit(
                "measure point selects",
                format!(
                    "{failed} selects failed during `{}`; the first: {}",
                    m.name(),
                    sqlx_resilience_runtime::redact(&first)
                ),
                "the server should answer every select",
            )
        })
    }

    /// pgbench's tps at the high concurrency, if pgbench is installed.
    async fn pgbench(&self) -> Result<Option<f64>> {
        let Some(path) = &self.pgbench else {
            return Ok(None);
        };
        let secs = self.pgbench_seconds.to_string();
        let clients = self.concurrency.to_string();
        let out = pgbench_run(
            path,
            &self.db,
            &[
                "-S", "-M", "prepared", "-n", "-c", &clients, "-j", "2", "-T", &secs,
            ],
        )
        .await?;
        parse_tps(&out).map(Some).ok_or_else(|| {
            Error::test_kit(
                "run pgbench",
                format!("no tps line in its output:\n{out}"),
                "check the pgbench version",
            )
        })
    }
}

async fn raw(pool: PgPool, aid: i32) -> std::result::Result<(), String> {
    sqlx::query_scalar::<_, i32>(SELECT)
        .bind(aid)
        .fetch_one(&pool)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

async fn wrapped(op: Op, aid: i32) -> std::result::Result<(), String> {
    op.run(move |conn| {
        Box::pin(async move {
            let balance: i32 = sqlx::query_scalar(SELECT)
                .bind(aid)
                .fetch_one(conn.as_mut())
                .await?;
            Ok::<_, Error>(balance)
        })
    })
    .await
    .map(drop)
    .map_err(|e| e.to_string())
}

/// Runs `call` back to back from `concurrency` tasks for `time`; ops per second, or the
/// number of failed calls and the first failure.
async fn throughput<F, Fut>(
    concurrency: u32,
    time: Duration,
    call: F,
) -> std::result::Result<f64, (u64, String)>
where
    F: Fn(i32) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = std::result::Result<(), String>> + Send + 'static,
{
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let first = Arc::new(std::sync::Mutex::new(None::<String>));
    let started = Instant::now();
    let end = started + time;
    let mut tasks = JoinSet::new();
    for task in 0..concurrency {
        let call = call.clone();
        let (done, failed) = (Arc::clone(&done), Arc::clone(&failed));
        let first = Arc::clone(&first);
        tasks.spawn(async move {
            let mut aid = task.wrapping_mul(7919) % ACCOUNTS;
            let (mut ok, mut bad) = (0u64, 0u64);
            while Instant::now() < end {
                aid = (aid + 7_717) % ACCOUNTS;
                let id = i32::try_from(aid).unwrap_or(0) + 1;
                match call(id).await {
                    Ok(()) => ok += 1,
                    Err(e) => {
                        bad += 1;
                        first
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e);
                    }
                }
            }
            done.fetch_add(ok, Ordering::Relaxed);
            failed.fetch_add(bad, Ordering::Relaxed);
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    match failed.load(Ordering::Relaxed) {
        0 => Ok(done.load(Ordering::Relaxed) as f64 / elapsed),
        n => Err((
            n,
            first
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .unwrap_or_default(),
        )),
    }
}

/// pgbench next to the server binaries, else on `PATH`.
fn find_pgbench() -> Option<PathBuf> {
    let beside = Search::from_env(None)
        .find()
        .ok()
        .map(|b| b.bindir.join("pgbench"))
        .filter(|p| p.is_file());
    beside.or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join("pgbench"))
            .find(|p| p.is_file())
    })
}

/// Runs pgbench on the drill's database (the password goes by environment, not argument);
/// returns its output.
async fn pgbench_run(path: &PathBuf, db: &TestDb, args: &[&str]) -> Result<String> {
    const ACTION: &str = "run pgbench";
    let (url, password) = without_password(db.url());
    let mut cmd = tokio::process::Command::new(path);
    cmd.args(args).arg(&url).kill_on_drop(true);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .map_err(|_| Error::test_kit(ACTION, "no end within 120 s", "check the server"))?
        .map_err(|e| {
            Error::test_kit(
                ACTION,
                format!("cannot run {}: {e}", path.display()),
                "check the installation",
            )
        })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(Error::test_kit(
            ACTION,
            format!(
                "pgbench {} failed ({}):\n{text}",
                args.join(" "),
                out.status
            ),
            "read pgbench's message above",
        ));
    }
    Ok(text)
}

/// The `tps = ...` figure of pgbench's report (without connection time where it says so).
fn parse_tps(out: &str) -> Option<f64> {
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("tps = ")).collect();
    let line = lines
        .iter()
        .find(|l| l.contains("without initial connection"))
        .or_else(|| lines.last())?;
    line["tps = ".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `url` without its password, and the password.
fn without_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return (url.to_owned(), None);
    };
    let userinfo = &authority[..at];
    let Some((user, password)) = userinfo.split_once(':') else {
        return (url.to_owned(), None);
    };
    (
        format!("{scheme}://{user}@{}", &rest[at + 1..]),
        Some(password.to_owned()),
    )
}

/// `pgbench_accounts` as `pgbench -i -s 1` creates it, for machines without pgbench.
async fn create_accounts(db: &TestDb) -> Result<()> {
    const ACTION: &str = "create pgbench_accounts";
    let mut conn = connect(db.url(), ACTION).await?;
    let result = sqlx::raw_sql(
        "create table pgbench_accounts (aid int primary key, bid int, abalance int, filler char(84));
         insert into pgbench_accounts select g, 1, 0, '' from generate_series(1, 100000) g;
         vacuum analyze pgbench_accounts;",
    )
    .execute(&mut conn)
    .await;
    let _ = conn.close().await;
    result.map(drop).map_err(|e| {
        Error::test_kit(
            ACTION,
            sqlx_resilience_runtime::redact(&e.to_string()),
            crate::error::SERVER_HINT,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_tps_without_connection_time() {
        let out = "number of transactions actually processed: 1000\n\
                   latency average = 1.2 ms\n\
                   initial connection time = 30.1 ms\n\
                   tps = 41230.123456 (without initial connection time)\n";
        assert_eq!(parse_tps(out), Some(41230.123456));
        assert_eq!(parse_tps("nothing"), None);
    }

    #[test]
    fn the_password_leaves_the_url() {
        assert_eq!(
            without_password("postgres://app:s3cret@127.0.0.1:5432/db?sslmode=disable"),
            (
                "postgres://app@127.0.0.1:5432/db?sslmode=disable".to_owned(),
                Some("s3cret".to_owned())
            )
        );
        assert_eq!(
            without_password("postgres://app@h/db"),
            ("postgres://app@h/db".to_owned(), None)
        );
    }
}
