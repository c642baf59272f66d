//! Quickstart: three named pools on a throwaway PostgreSQL, queries through them, and what the
//! pools report afterwards.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! Uses the test kit's throwaway server (started from the installed PostgreSQL server binaries
//! in a temporary directory, removed on exit) unless `DATABASE_URL` points at a server where
//! you are a superuser. The pools are seed 000's (http 150, ws 30, background 20), scaled down
//! to whatever the server's `max_connections` allows.

use std::time::Duration;

use sqlx_resilience::{Error, Isolation, PolicyKind, Runtime};
use sqlx_resilience_testkit::PgServer;

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
        .pool(
            "http",
            &[
                ("max", 150u32.into()),
                ("min", 4u32.into()),
                ("acquire_timeout", "2s".into()),
            ],
        )
        .pool("ws", &[("max", 30u32.into())])
        .pool(
            "background",
            &[("max", 20u32.into()), ("statement_timeout", "30s".into())],
        )
        .declare(
            PolicyKind::Breaker,
            "harvest_stats",
            &[
                ("failures", 5u32.into()),
                ("within", "60s".into()),
                ("open_for", "30s".into()),
                ("half_open", 3u32.into()),
            ],
        )
        .declare(
            PolicyKind::Retry,
            "transient",
            &[
                ("attempts", 4u32.into()),
                ("base", "50ms".into()),
                ("max_delay", "2s".into()),
            ],
        )
        .set("budget.mode", "scale")
        .env_prefix("DB")
        .build()
        .await?;

    // Background pool: schema and seed data in one transaction.
    rt.op("quickstart::setup")
        .pool("background")
        .timeout(Duration::from_secs(10))
        .run_tx(|tx| {
            Box::pin(async move {
                sqlx::raw_sql(
                    "create table harvest (id bigserial primary key, estate bigint not null, \
                     tonnes numeric not null, at timestamptz not null default now()); \
                     insert into harvest (estate, tonnes) \
                     select g % 12, (g % 97) / 10.0 from generate_series(1, 5000) g",
                )
                .execute(tx.as_mut())
                .await?;
                Ok::<_, Error>(())
            })
        })
        .await?;

    // HTTP pool: many concurrent read-only statistics queries, with a breaker and retries.
    let stats = rt
        .op("quickstart::statistics")
        .pool("http")
        .timeout(Duration::from_secs(5))
        .retry("transient")
        .breaker("harvest_stats")
        .read_only(true)
        .build()?;
    let mut reads = tokio::task::JoinSet::new();
    for estate in 0..200_i64 {
        let stats = stats.clone();
        reads.spawn(async move {
            let estate = estate % 12;
            stats
                .run(|conn| {
                    Box::pin(async move {
                        let (n, total): (i64, f64) = sqlx::query_as(
                            "select count(*), coalesce(sum(tonnes), 0)::float8 from harvest where estate = $1",
                        )
                        .bind(estate)
                        .fetch_one(conn.as_mut())
                        .await?;
                        Ok::<_, Error>((estate, n, total))
                    })
                })
                .await
        });
    }
    let mut answered = 0;
    while let Some(r) = reads.join_next().await {
        let (_estate, n, _total) = r??;
        assert!(n > 0);
        answered += 1;
    }
    println!("http: {answered} statistics queries answered");

    // WS pool: short writes, each in a serializable transaction that runs again on conflict.
    for estate in 0..30_i64 {
        rt.op("quickstart::record")
            .pool("ws")
            .isolation(Isolation::Serializable)
            .retry("transient")
            .deadline(Duration::from_secs(5))
            .run_tx(|tx| {
                Box::pin(async move {
                    sqlx::query("insert into harvest (estate, tonnes) values ($1, 1.5)")
                        .bind(estate % 12)
                        .execute(tx.as_mut())
                        .await?;
                    Ok::<_, Error>(())
                })
            })
            .await?;
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
    rt.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}
