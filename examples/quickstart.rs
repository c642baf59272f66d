//! Quickstart: three named pools on a throwaway PostgreSQL, a repository whose methods are
//! `#[db_op]`s, and what the pools report afterwards.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! Uses the test kit's throwaway server (started from the installed PostgreSQL server binaries
//! in a temporary directory, removed on exit) unless `DATABASE_URL` points at a server where
//! you are a superuser. The pools are seed 000's (http 150, ws 30, background 20), scaled down
//! to what the server's `max_connections` allows (`budget.mode = "scale"`). Settings can be
//! changed without touching code: `DB__POOLS__HTTP__MAX=40 cargo run --example quickstart`.

use std::time::Duration;

use sqlx::PgConnection;
use sqlx_resilience::{DbError, HasRuntime, Runtime, Tx, db_op};
use sqlx_resilience_testkit::PgServer;

// Every name the code may use, with its defaults: a typo in an op's attribute is a compile
// error, and configuration can tune these but never invent others.
sqlx_resilience::policies! {
    pool http { max = 150, min = 10, acquire_timeout = "10s" }
    pool ws { max = 30 }
    pool background { max = 20, statement_timeout = "30s" }
    breaker harvest_stats { failures = 5, within = "60s", open_for = "30s", half_open = 3 }
    retry transient { attempts = 4, base = "50ms", max_delay = "2s" }
}

/// Harvest data, the way seed 000's repositories used it.
struct HarvestRepo {
    rt: Runtime,
}

impl HasRuntime for HarvestRepo {
    fn runtime(&self) -> &Runtime {
        &self.rt
    }
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

    /// A record from a live subscription: serializable, run again whole on conflict.
    #[db_op(
        pool = "ws",
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

    let rt = Runtime::builder()
        .url(db.url())
        .policies(policies::declared())
        .set("budget.mode", "scale")
        .env_prefix("DB")
        .build()
        .await?;
    let repo = std::sync::Arc::new(HarvestRepo { rt: rt.clone() });

    repo.setup().await?;

    let mut reads = tokio::task::JoinSet::new();
    for n in 0..200_i64 {
        let repo = repo.clone();
        reads.spawn(async move { repo.statistics(n % 12).await });
    }
    let mut answered = 0;
    while let Some(result) = reads.join_next().await {
        let (rows, _tonnes) = result??;
        assert!(rows > 0);
        answered += 1;
    }
    println!("http: {answered} statistics queries answered");

    for n in 0..30_i64 {
        repo.record(n % 12, 1.5).await?;
    }
    println!("ws: 30 harvest records written");

    println!();
    for stats in rt.pool_stats() {
        println!("{stats}");
    }
    println!();
    for report in rt.sizing_report() {
        print!("{report}");
    }
    println!();
    println!("ops:");
    for op in rt.ops() {
        println!(
            "  {:<48} pool {:<11} {}",
            op.name,
            op.pool.as_deref().unwrap_or("-"),
            op.location
        );
    }
    rt.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}
