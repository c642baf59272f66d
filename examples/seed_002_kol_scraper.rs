//! Seed 002, a KOL (influencer) scraper service (Go, `database/sql`, Prometheus and Grafana).
//!
//! What they built by hand: pool settings (`MaxOpenConnections` 25, `MaxIdleConnections` 5,
//! `ConnMaxLifetime` 300 s, `ConnMaxIdleTime` 15 min), a circuit breaker (5 half-open
//! requests, 30 s timeout), retries with exponential backoff and jitter that tell retriable
//! errors from permanent ones, slow-query detection (1 s), alert thresholds (pool above 80 %,
//! latency above 1 s), sizing advice (`2 x CPU cores`), and collectors for PostgreSQL's
//! statistics: table sizes and bloat, index usage, connection activity, transactions,
//! deadlocks, cache hit ratio.
//!
//! What this shows instead: the settings in `policies!` (which refuses the seed's idle time
//! longer than the lifetime: a connection recycled after 5 minutes is never idle for 15), and
//! a fault scrapers really meet: two scrapers updating the same two accounts in opposite
//! order deadlock. PostgreSQL picks a victim (SQLSTATE 40P01); the runtime classifies it as
//! contention and runs the victim's whole transaction again, so both commit. A slow report
//! trips the 1 s slow-op alert, and the statistics the seed collected by hand come from one
//! call: connections, commits and rollbacks, cache hit ratio, deadlocks, table bloat, unused
//! indexes and the top statements.
//!
//! The seed's query result cache (5-minute TTL) is `cache = "5m"` on the profile read: 8 API
//! readers ask for the 40 profiles 2,000 times, each miss makes one query however many
//! callers wait for it. The run ends with one JSON line of the seed's KPIs measured in it
//! (cache hit ratio, target > 95 %; failed connection rate, < 1 %; average query time,
//! < 100 ms), which `tests/examples.rs` holds to those targets.
//!
//! ```sh
//! cargo run --example seed_002_kol_scraper
//! ```
//!
//! Uses the test kit's throwaway server unless `DATABASE_URL` is set. The `drill` profile
//! only shortens the monitor's intervals.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use sqlx_resilience::copy::CopyRows;
use sqlx_resilience::monitor::{Alert, Monitor};
use sqlx_resilience::pgstats::PgStatsOptions;
use sqlx_resilience::{DbError, FailureKind, HasRuntime, Runtime, Tx, db_op};
use sqlx_resilience_testkit::PgServer;

sqlx_resilience::policies! {
    /// 25 open, 5 kept idle; recycled after 5 minutes (the seed's 15-minute idle time cannot
    /// exceed the lifetime, and `policies!` says so at compile time).
    pool scraper { max = 25, min = 5, max_lifetime = "5m", idle_timeout = "5m" }
    /// CIRCUIT_BREAKER_MAX_REQUESTS=5 half-open requests, CIRCUIT_BREAKER_TIMEOUT=30s.
    breaker db { consecutive_failures = 5, open_for = "30s", half_open = 5 }
    /// Exponential backoff with full jitter; only what is safe and transient runs again.
    retry backoff { attempts = 3, base = "100ms", factor = 2, max_delay = "2s" }
}

const DRILL: &str = r#"
[profiles.drill.monitor]
pool_interval = "200ms"
breaker_interval = "200ms"
health_interval = "400ms"
"#;

#[derive(HasRuntime)]
struct KolRepo {
    rt: Runtime,
}

impl KolRepo {
    #[db_op(pool = "scraper", tx, timeout = "10s")]
    async fn setup(&self, tx: &mut Tx<'_>) -> Result<(), DbError> {
        sqlx::raw_sql(
            "create table kol (id bigserial primary key, platform text not null, username text not null, \
               followers bigint not null, unique (platform, username)); \
             create table kol_metrics (kol bigint not null references kol, at timestamptz not null default now(), \
               followers bigint not null, engagement float8 not null); \
             create index kol_metrics_engagement on kol_metrics (engagement); \
             create index kol_metrics_kol on kol_metrics (kol, at desc)",
        )
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// A scraped profile: an upsert, so running it again is harmless.
    #[db_op(
        pool = "scraper",
        timeout = "5s",
        retry = "backoff",
        breaker = "db",
        idempotent,
        slow = "1s"
    )]
    async fn upsert_kol(
        &self,
        conn: &mut PgConnection,
        platform: &'static str,
        username: String,
        followers: i64,
    ) -> Result<i64, DbError> {
        let (id,): (i64,) = sqlx::query_as(
            "insert into kol (platform, username, followers) values ($1, $2, $3) \
             on conflict (platform, username) do update set followers = excluded.followers returning id",
        )
        .bind(platform)
        .bind(username)
        .bind(followers)
        .fetch_one(conn)
        .await?;
        Ok(id)
    }

    /// A metrics sample: a plain insert, never run again after it may have reached the server.
    #[db_op(
        pool = "scraper",
        timeout = "5s",
        retry = "backoff",
        retry_scope = "before_send",
        breaker = "db",
        slow = "1s"
    )]
    async fn record_metrics(
        &self,
        conn: &mut PgConnection,
        kol: i64,
        followers: i64,
        engagement: f64,
    ) -> Result<(), DbError> {
        sqlx::query("insert into kol_metrics (kol, followers, engagement) values ($1, $2, $3)")
            .bind(kol)
            .bind(followers)
            .bind(engagement)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Moves followers between two accounts (a merge found by the scraper), in one
    /// transaction. Two merges in opposite order deadlock; the victim runs again whole.
    #[db_op(
        pool = "scraper",
        tx,
        timeout = "10s",
        retry = "backoff",
        breaker = "db"
    )]
    async fn merge_followers(
        &self,
        tx: &mut Tx<'_>,
        from: i64,
        to: i64,
        n: i64,
    ) -> Result<(), DbError> {
        sqlx::query("update kol set followers = followers - $2 where id = $1")
            .bind(from)
            .bind(n)
            .execute(&mut **tx)
            .await?;
        sqlx::query("select pg_sleep(0.3)")
            .execute(&mut **tx)
            .await?;
        sqlx::query("update kol set followers = followers + $2 where id = $1")
            .bind(to)
            .bind(n)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// A profile as the API serves it: read-only, kept 5 minutes in the result cache (the
    /// seed's `CACHE_DEFAULT_TTL=300s`).
    #[db_op(
        name = "kol.profile",
        pool = "scraper",
        timeout = "5s",
        retry = "backoff",
        breaker = "db",
        read_only,
        cache = "5m"
    )]
    async fn profile(
        &self,
        conn: &mut PgConnection,
        platform: &'static str,
        username: String,
    ) -> Result<i64, DbError> {
        let (followers,): (i64,) =
            sqlx::query_as("select followers from kol where platform = $1 and username = $2")
                .bind(platform)
                .bind(username)
                .fetch_one(conn)
                .await?;
        Ok(followers)
    }

    /// The engagement report: slower than the 1 s slow-query threshold.
    #[db_op(
        pool = "scraper",
        timeout = "15s",
        retry = "backoff",
        breaker = "db",
        read_only,
        slow = "1s"
    )]
    async fn engagement_report(&self, conn: &mut PgConnection) -> Result<f64, DbError> {
        let (avg,): (f64,) =
            sqlx::query_as("select coalesce(avg(engagement), 0) from kol_metrics, pg_sleep(1.1)")
                .fetch_one(conn)
                .await?;
        Ok(avg)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let server = PgServer::shared().await?;
    let db = server.create_database().await?;
    // The seed's pre-deployment checklist: pg_stat_statements (needs a superuser).
    let mut admin = sqlx::PgConnection::connect(db.admin_url()).await?;
    let _ = sqlx::query("create extension if not exists pg_stat_statements")
        .execute(&mut admin)
        .await;
    admin.close().await?;
    let rt = Runtime::builder()
        .url(db.url())
        .set("monitor.utilization", 80u32)
        .set("monitor.slow_op", "1s")
        .set("monitor.health_interval", "30s")
        .config_toml(DRILL, "the drill profile")
        .profile("drill")
        .env_prefix("DB")
        .build()
        .await?;
    for report in rt.sizing_report() {
        print!("{report}");
    }
    let alerts: Arc<Mutex<Vec<Alert>>> = Arc::default();
    let sink = alerts.clone();
    let monitor = Monitor::builder(&rt)
        .sink(move |a: &Alert| sink.lock().unwrap().push(a.clone()))
        .start();

    let repo = Arc::new(KolRepo { rt: rt.clone() });
    repo.setup().await?;
    let mut ids = Vec::new();
    for n in 0..40_i64 {
        let platform = if n % 2 == 0 { "tiktok" } else { "instagram" };
        let id = repo
            .upsert_kol(platform, format!("creator{n}"), 1000 * n)
            .await?;
        for s in 0..5 {
            repo.record_metrics(id, 1000 * n + s, (n % 7) as f64 / 10.0)
                .await?;
        }
        ids.push(id);
    }
    // Rescrape: the same profiles again, updated in place (and leaving dead rows behind).
    for n in 0..40_i64 {
        let platform = if n % 2 == 0 { "tiktok" } else { "instagram" };
        repo.upsert_kol(platform, format!("creator{n}"), 1000 * n + 7)
            .await?;
    }
    println!("scraped 40 profiles and 200 metric samples, rescraped 40");

    // The seed's bulk path: 250 days of history per profile, loaded with COPY in batches of
    // 1,000 rows, each batch one transaction, so a batch run again cannot duplicate rows.
    let mut history = CopyRows::new();
    for (k, id) in ids.iter().enumerate() {
        for day in 0..250_i64 {
            history.push([
                Some(id.to_string()),
                Some((1000 * k as i64 + day).to_string()),
                Some(((day % 7) as f64 / 10.0).to_string()),
            ]);
        }
    }
    let import = rt
        .op("kol::import_history")
        .pool("scraper")
        .retry("backoff")
        .timeout(Duration::from_secs(30))
        .build()?;
    let loaded = import
        .copy_in(
            "COPY kol_metrics (kol, followers, engagement) FROM STDIN",
            &history,
            1_000,
        )
        .await?;
    let samples: i64 = sqlx::query_scalar("select count(*) from kol_metrics")
        .fetch_one(rt.pool("scraper").expect("declared").sqlx())
        .await?;
    println!(
        "history: {} rows in {} batches by COPY; kol_metrics holds {samples} rows (200 + {})",
        loaded.rows, loaded.batches, loaded.rows
    );

    // The API: 8 readers ask for the 40 profiles, 250 reads each, through the result cache.
    let mut readers = tokio::task::JoinSet::new();
    for reader in 0..8_i64 {
        let repo = repo.clone();
        readers.spawn(async move {
            for n in 0..250_i64 {
                let k = (reader * 7 + n) % 40;
                let platform = if k % 2 == 0 { "tiktok" } else { "instagram" };
                repo.profile(platform, format!("creator{k}")).await?;
            }
            Ok::<_, sqlx_resilience::Error>(())
        });
    }
    while let Some(r) = readers.join_next().await {
        r??;
    }
    let cache = rt.cache().stats();
    println!(
        "api: 2000 profile reads, {} answered from the cache, {} queries",
        cache.hits, cache.misses
    );

    // The fault: two merges lock the same two accounts in opposite order, next to a slow report.
    let (a, b) = (ids[0], ids[1]);
    let t = Instant::now();
    let (first, second, report) = tokio::join!(
        repo.merge_followers(a, b, 10),
        repo.merge_followers(b, a, 5),
        repo.engagement_report(),
    );
    first?;
    second?;
    let avg = report?;
    let retry = rt.retry_policy("backoff").expect("declared").metrics();
    let contention = retry
        .retries
        .iter()
        .find(|(k, _)| *k == FailureKind::Contention)
        .map_or(0, |(_, n)| *n);
    println!(
        "deadlock: {contention} victim transaction(s) ran again whole; both merges committed in {} ms",
        t.elapsed().as_millis()
    );
    println!("engagement report: average {avg:.3}");

    tokio::time::sleep(Duration::from_millis(1500)).await; // statistics reach pg_stat_* and the monitor
    monitor.stop().await;
    println!("monitor alerts:");
    for a in alerts.lock().unwrap().iter() {
        println!("  {a}");
    }
    for op in rt.op_stats() {
        println!(
            "  op {:<44} calls {:>3} failed {} p99 {:.1} ms",
            op.op,
            op.calls,
            op.failed,
            op.latency.p99_us as f64 / 1000.0
        );
    }

    let stats = rt.pg_stats(&PgStatsOptions::default()).await?;
    let c = &stats.connections;
    println!("pg statistics ({}):", stats.server_version);
    println!(
        "  connections: {} of {} on the server; this database: {} active, {} idle; by application: {:?}",
        c.server_total, c.max_connections, c.states.active, c.states.idle, c.by_application
    );
    let d = &stats.database;
    println!(
        "  transactions: {} commits, {} rollbacks; deadlocks {}; cache hit {:.1}%; size {} kB",
        d.xact_commit,
        d.xact_rollback,
        d.deadlocks,
        d.cache_hit_pct.unwrap_or(0.0),
        d.size_bytes / 1024
    );
    for t in &stats.tables {
        println!(
            "  table {:<12} {:>6} kB, {} live, {} dead rows ({:.0}% bloat estimate)",
            t.name,
            t.total_bytes / 1024,
            t.live_tuples,
            t.dead_tuples,
            t.dead_pct
        );
    }
    for i in &stats.unused_indexes {
        println!(
            "  unused index {} on {} ({} kB): never scanned",
            i.name,
            i.table,
            i.bytes / 1024
        );
    }
    match stats.statements.available {
        true => {
            for s in stats.statements.top.iter().take(3) {
                println!(
                    "  top statement: {:.1} ms in {} calls: {}",
                    s.total_ms, s.calls, s.query
                );
            }
        }
        false => println!(
            "  statements: {}",
            stats.statements.note.as_deref().unwrap_or("unavailable")
        ),
    }
    // The seed's KPIs, from this run: the cache's hit ratio, the share of connection
    // acquisitions that failed, and the mean time of the queries that ran.
    let hit_ratio = cache.hit_ratio.unwrap_or(0.0);
    let (mut failed, mut attempts) = (0_u64, 0_u64);
    for p in rt.pool_stats() {
        failed += p.errors + p.acquire_timeouts;
        attempts += p.acquired + p.errors + p.acquire_timeouts;
    }
    let failed_connection_rate = failed as f64 / attempts.max(1) as f64;
    let (mut total_us, mut queries) = (0_u64, 0_u64);
    for op in rt.op_stats() {
        total_us += op.latency.mean_us * op.latency.count;
        queries += op.latency.count;
    }
    let avg_query_ms = total_us as f64 / queries.max(1) as f64 / 1000.0;
    rt.shutdown(Duration::from_secs(5)).await?;
    println!("done in {:.1}s", started.elapsed().as_secs_f64());
    println!(
        "{{\"seed\":\"002\",\"cache_hit_ratio\":{hit_ratio:.4},\"failed_connection_rate\":{failed_connection_rate:.4},\"avg_query_ms\":{avg_query_ms:.2},\"copy_rows\":{copied}}}",
        copied = loaded.rows
    );
    Ok(())
}
