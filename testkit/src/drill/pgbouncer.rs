//! `pgbouncer`: many application instances behind a real PgBouncer in transaction mode with
//! 20 server connections, 1,000 callers (each with a client connection of its own) running
//! reads, writes and transactions through the op API with `pooler = "transaction"`; then the
//! same load, on the same server, straight to PostgreSQL over the same 20 server connections
//! (2 per instance). Reports how many ops succeeded, how many failed with a prepared-statement
//! error (the failure sqlx's named statements meet behind a transaction pooler), and the
//! throughput through PgBouncer against the direct one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::Connection;
use sqlx_resilience_runtime::{Error, Op, PolicyKind, Runtime, Value};

use super::figures::round1;
use super::load::connect;
use super::setup::{APP, Size, close};
use crate::{PgBouncer, PgBouncerOptions, PgServer, Result, ServerOptions, TestDb};

/// Server connections PgBouncer keeps (`default_pool_size`), and the direct run's total.
const SERVER_CONNECTIONS: u32 = 20;

/// The `pgbouncer` drill's figures.
#[derive(Debug, Clone, Serialize)]
pub struct PgBouncerReport {
    /// `pgbouncer`.
    pub scenario: &'static str,
    /// Callers at once, each with a client connection of its own through PgBouncer.
    pub callers: u32,
    /// Application instances (runtimes) the callers are spread over.
    pub instances: u32,
    /// Server connections, through PgBouncer and direct.
    pub server_connections: u32,
    /// Seconds each run lasted.
    pub secs: f64,
    /// Ops through PgBouncer (a third each reads, writes, transactions).
    pub ops: u64,
    /// Of them, ok.
    pub ok: u64,
    /// Failures whose error chain mentions a prepared statement.
    pub prepared_statement_errors: u64,
    /// The first failure through PgBouncer, if any (redacted).
    pub first_error: Option<String>,
    /// Ops a second through PgBouncer.
    pub ops_s: f64,
    /// Ops straight to the server.
    pub direct_ops: u64,
    /// Of them, ok.
    pub direct_ok: u64,
    /// Ops a second straight to the server.
    pub direct_ops_s: f64,
    /// Throughput through PgBouncer against straight to the server.
    pub vs_direct: f64,
}

/// What one run counted.
#[derive(Debug, Default)]
struct Tally {
    ops: AtomicU64,
    ok: AtomicU64,
    prepared: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Tally {
    fn record(&self, result: std::result::Result<(), Error>) {
        self.ops.fetch_add(1, Relaxed);
        match result {
            Ok(()) => {
                self.ok.fetch_add(1, Relaxed);
            }
            Err(e) => {
                let text = chain(&e);
                if text.contains("prepared statement") {
                    self.prepared.fetch_add(1, Relaxed);
                }
                let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| sqlx_resilience_runtime::redact(&text));
            }
        }
    }
}

/// An error with its sources, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The three ops of one instance.
#[derive(Clone)]
struct Ops {
    read: Op,
    write: Op,
    tx: Op,
}

pub(super) async fn run(size: Size) -> Result<PgBouncerReport> {
    let callers = size.pick(200u32, 1_000);
    let instances = size.pick(4u32, 10);
    let secs = Duration::from_secs(size.pick(5, 30));
    let server = PgServer::start_with(ServerOptions::new()).await?;
    let db = server.create_database().await?;
    {
        let mut conn = connect(db.url(), "create the pgbouncer drill's table").await?;
        let made = sqlx::raw_sql(
            "create table items (id bigserial primary key, n int not null);
             insert into items (n) select g from generate_series(1, 1000) g;",
        )
        .execute(&mut conn)
        .await;
        let _ = conn.close().await;
        made.map_err(|e| Error::test_kit("create the drill's table", e, "a bug in the drill"))?;
    }
    let options = PgBouncerOptions::new()
        .default_pool_size(SERVER_CONNECTIONS)
        .max_client_conn(callers + 100);
    let bouncer = PgBouncer::start_with(&server, options).await?;

    // Straight to the server first, then through PgBouncer, each on a fresh table state.
    let per_instance = SERVER_CONNECTIONS / instances;
    let direct = phase(db.url(), &db, instances, callers, per_instance, false, secs).await?;
    truncate(&db).await?;
    let through = bouncer.url(&db);
    let pooled = phase(
        &through,
        &db,
        instances,
        callers,
        callers / instances,
        true,
        secs,
    )
    .await?;

    let rate = |t: &Tally| t.ops.load(Relaxed) as f64 / secs.as_secs_f64();
    let (ops_s, direct_ops_s) = (rate(&pooled), rate(&direct));
    let first_error = pooled
        .first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(PgBouncerReport {
        scenario: "pgbouncer",
        callers,
        instances,
        server_connections: SERVER_CONNECTIONS,
        secs: secs.as_secs_f64(),
        ops: pooled.ops.load(Relaxed),
        ok: pooled.ok.load(Relaxed),
        prepared_statement_errors: pooled.prepared.load(Relaxed),
        first_error,
        ops_s: round1(ops_s),
        direct_ops: direct.ops.load(Relaxed),
        direct_ok: direct.ok.load(Relaxed),
        direct_ops_s: round1(direct_ops_s),
        vs_direct: if direct_ops_s > 0.0 {
            (ops_s / direct_ops_s * 1000.0).round() / 1000.0
        } else {
            0.0
        },
    })
}

/// Back to the table's first 1,000 rows between the runs.
async fn truncate(db: &TestDb) -> Result<()> {
    let mut conn = connect(db.url(), "reset the pgbouncer drill's table").await?;
    let done = sqlx::raw_sql("delete from items where id > 1000")
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    done.map(drop)
        .map_err(|e| Error::test_kit("reset the drill's table", e, "a bug in the drill"))
}

/// One run: `instances` runtimes on `url`, each with a pool of `max` connections (all opened
/// before the clock starts), `callers` spread over them, for `secs`.
async fn phase(
    url: &str,
    db: &TestDb,
    instances: u32,
    callers: u32,
    max: u32,
    behind_pooler: bool,
    secs: Duration,
) -> Result<Tally> {
    let mut runtimes = Vec::new();
    for _ in 0..instances {
        runtimes.push(instance(url, max, behind_pooler).await?);
    }
    let tally = Arc::new(Tally::default());
    let start = Instant::now() + Duration::from_millis(200);
    let stop = start + secs;
    let mut tasks = Vec::new();
    for caller in 0..callers {
        let (ops, tally) = (
            runtimes[(caller % instances) as usize].1.clone(),
            tally.clone(),
        );
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let mut i = u64::from(caller);
            while Instant::now() < stop {
                i = i.wrapping_add(1);
                let n = i32::try_from(i % 1000).unwrap_or(0) + 1;
                let result = match i % 3 {
                    0 => read(&ops.read, n).await,
                    1 => write(&ops.write, n).await,
                    _ => transaction(&ops.tx, n).await,
                };
                tally.record(result);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    tracing::info!(
        behind_pooler,
        database = db.name(),
        ops = tally.ops.load(Relaxed),
        ok = tally.ok.load(Relaxed),
        "pgbouncer drill run finished"
    );
    for (rt, _) in &runtimes {
        close(rt).await;
    }
    Arc::try_unwrap(tally).map_err(|_| {
        Error::test_kit(
            "count the drill's ops",
            "a caller still holds the tally",
            "a bug in the drill",
        )
    })
}

/// One application instance: a runtime whose pool opens all `max` connections at start-up.
async fn instance(url: &str, max: u32, behind_pooler: bool) -> Result<(Runtime, Ops)> {
    let pooler = if behind_pooler { "transaction" } else { "none" };
    let settings: [(&str, Value); 7] = [
        ("application_name", APP.into()),
        ("max", max.into()),
        ("min", max.into()),
        ("pooler", pooler.into()),
        ("acquire_timeout", "20s".into()),
        ("startup_timeout", "120s".into()),
        ("outage_waiters", 100_000u32.into()),
    ];
    let rt = Runtime::builder()
        .url(url)
        .env_vars(Vec::<(String, String)>::new())
        .pool("drill", &settings)
        .declare(
            PolicyKind::Retry,
            "drill",
            &[
                ("attempts", 3u32.into()),
                ("base", "25ms".into()),
                ("max_delay", "250ms".into()),
            ],
        )
        .build()
        .await?;
    let op = |name: &'static str| {
        rt.op(name)
            .pool("drill")
            .timeout(Duration::from_secs(10))
            .deadline(Duration::from_secs(20))
            .retry("drill")
    };
    let ops = Ops {
        read: op("pgbouncer::read").read_only(true).build()?,
        write: op("pgbouncer::write").build()?,
        tx: op("pgbouncer::transaction").build()?,
    };
    Ok((rt, ops))
}

async fn read(op: &Op, n: i32) -> std::result::Result<(), Error> {
    op.run(|c| {
        Box::pin(async move {
            let _: Option<(i32,)> = sqlx::query_as("select n from items where id = $1")
                .bind(i64::from(n))
                .fetch_optional(c.as_mut())
                .await?;
            Ok::<_, Error>(())
        })
    })
    .await
}

async fn write(op: &Op, n: i32) -> std::result::Result<(), Error> {
    op.run(|c| {
        Box::pin(async move {
            sqlx::query("insert into items (n) values ($1)")
                .bind(n)
                .execute(c.as_mut())
                .await?;
            Ok::<_, Error>(())
        })
    })
    .await
}

async fn transaction(op: &Op, n: i32) -> std::result::Result<(), Error> {
    op.run_tx(|tx| {
        Box::pin(async move {
            sqlx::query("insert into items (n) values ($1)")
                .bind(-n)
                .execute(&mut **tx)
                .await?;
            let _: (i64,) = sqlx::query_as("select count(*) from items where id <= $1")
                .bind(i64::from(n))
                .fetch_one(&mut **tx)
                .await?;
            Ok::<_, Error>(())
        })
    })
    .await
}
