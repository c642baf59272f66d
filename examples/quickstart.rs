//! Quickstart: a repository whose methods are `#[db_op]`s, two named pools on a throwaway
//! PostgreSQL, and what the toolkit did when the server ended a connection mid-query.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! Uses the test kit's throwaway server (started from the installed PostgreSQL server binaries
//! in a temporary directory, removed on exit) unless `DATABASE_URL` points at a server where
//! you are a superuser. Settings can be changed without touching code:
//! `DB__POOLS__HTTP__MAX=8 cargo run --example quickstart`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use sqlx_resilience::{DbError, HasRuntime, Runtime, Tx, db_op};
use sqlx_resilience_testkit::PgServer;

// Every name the code may use, with its defaults: a typo in an op's attribute is a compile
// error, and configuration can tune these but never invent others. The pools are sized for a
// 2-core database server by HikariCP's formula, cores x 2 + 1 = 5 connections in all: 4 for
// requests, 1 for background work. The sizing report printed at the end does the same sum
// with this machine's cores.
sqlx_resilience::policies! {
    pool http { max = 4, min = 1, acquire_timeout = "10s" }
    pool background { max = 1, statement_timeout = "30s" }
    breaker harvest_stats { failures = 5, within = "60s", open_for = "30s", half_open = 3 }
    retry transient { attempts = 4, base = "50ms", max_delay = "2s" }
}

/// Harvest data: the runtime is found in the field of type `Runtime`.
#[derive(HasRuntime)]
struct HarvestRepo {
    rt: Runtime,
    /// How many times the report's body ran: once per attempt.
    report_runs: AtomicU32,
}

impl HarvestRepo {
    /// Schema and seed data, in one transaction on the background pool.
    #[db_op(pool = "background", tx, timeout = "10s")]
    async fn setup(&self, tx: &mut Tx<'_>) -> Result<(), DbError> {
        sqlx::raw_sql(
            "create table harvest (id bigserial primary key, estate bigint not null, \
             tonnes numeric not null, at timestamptz not null default now()); \
             insert into harvest (estate, tonnes) \
             select g % 12, (g % 97) / 10.0 from generate_series(1, 5000) g",
        )
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Statistics for one estate: read-only, so a lost connection is simply tried again.
    #[db_op(
        pool = "http",
        timeout = "5s",
        retry = "transient",
        breaker = "harvest_stats",
        read_only
    )]
    async fn statistics(
        &self,
        conn: &mut PgConnection,
        estate: i64,
    ) -> Result<(i64, f64), DbError> {
        let row = sqlx::query_as(
            "select count(*), coalesce(sum(tonnes), 0)::float8 from harvest where estate = $1",
        )
        .bind(estate)
        .fetch_one(conn)
        .await?;
        Ok(row)
    }

    /// The season's total, a slow report (`pg_sleep` stands in for a heavy query).
    #[db_op(pool = "http", timeout = "10s", retry = "transient", read_only)]
    async fn season_report(&self, conn: &mut PgConnection) -> Result<f64, DbError> {
        self.report_runs.fetch_add(1, Ordering::Relaxed);
        let tonnes = sqlx::query_scalar(
            "select coalesce(sum(tonnes), 0)::float8 from harvest, pg_sleep(1.5)",
        )
        .fetch_one(conn)
        .await?;
        Ok(tonnes)
    }

    /// A record from the field: serializable, run again whole on conflict.
    #[db_op(
        pool = "background",
        tx,
        isolation = "serializable",
        retry = "transient",
        deadline = "5s"
    )]
    async fn record(&self, tx: &mut Tx<'_>, estate: i64, tonnes: f64) -> Result<(), DbError> {
        sqlx::query("insert into harvest (estate, tonnes) values ($1, $2::float8::numeric)")
            .bind(estate)
            .bind(tonnes)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = PgServer::shared().await?;
    let db = server.create_database().await?;
    println!(
        "server: PostgreSQL {} on {}:{}",
        server.version_num(),
        server.host(),
        server.port()
    );

    // Every pool and policy declared above is found without being told; then DB__* variables.
    let rt = Runtime::builder()
        .url(db.url())
        .env_prefix("DB")
        .build()
        .await?;
    let repo = Arc::new(HarvestRepo {
        rt: rt.clone(),
        report_runs: AtomicU32::new(0),
    });
    repo.setup().await?;

    // 200 requests at once on 4 connections: the rest wait their turn in the pool.
    let mut reads = tokio::task::JoinSet::new();
    for n in 0..200_i64 {
        let repo = repo.clone();
        reads.spawn(async move { repo.statistics(n % 12).await });
    }
    while let Some(result) = reads.join_next().await {
        assert!(result??.0 > 0);
    }
    println!("http: 200 statistics queries answered");

    for n in 0..30_i64 {
        repo.record(n % 12, 1.5).await?;
    }
    println!("background: 30 harvest records written");

    // The fault: while the report runs, the server ends every connection to the database
    // (pg_terminate_backend, as an administrator or a failover would).
    let report = tokio::spawn({
        let repo = repo.clone();
        async move { repo.season_report().await }
    });
    wait_for_the_report(db.url()).await?;
    let ended = server.terminate_backends(db.name()).await?;
    let tonnes = report.await??;
    let runs = repo.report_runs.load(Ordering::Relaxed);
    println!("fault: the server ended {ended} connection(s) while the report ran");
    println!("the report ran {runs} times and answered {tonnes:.1} t");
    // A connection that died in the pool is replaced and the op runs once more on its own; any
    // further attempt is the retry policy's.
    let retries = rt.retry_policy("transient").expect("declared").metrics();
    for (kind, n) in &retries.retries {
        println!("retry transient: ran a call again {n} time(s) after {kind}");
    }

    // A connection goes back to its pool just after the call returns; let every one arrive.
    let waited = Instant::now();
    while rt.pool_stats().iter().any(|s| s.in_use > 0) {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "a connection never came back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!();
    for stats in rt.pool_stats() {
        println!("{stats}");
    }
    println!();
    for report in rt.sizing_report() {
        print!("{report}");
    }
    rt.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}

/// Waits until the report's query runs on the server (`pg_stat_activity`).
async fn wait_for_the_report(url: &str) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect(url).await?;
    let waited = Instant::now();
    loop {
        let running: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity where datname = current_database() \
             and state = 'active' and query like '%pg_sleep%' and pid <> pg_backend_pid()",
        )
        .fetch_one(&mut conn)
        .await?;
        if running > 0 {
            return conn.close().await;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "the report never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
