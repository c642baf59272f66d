//! Seed 001, a manufacturing execution system (Node.js and `pg`, 8 production stations).
//!
//! What they built by hand: a `DatabaseManager` around `pg.Pool` with per-environment
//! settings (development min 2, max 10, acquire 30 s, idle 10 s; production min 5, max 20,
//! acquire 60 s, idle 5 min), pool event logging (connect, acquire, release, error, remove),
//! `executeTransaction` with BEGIN/COMMIT/ROLLBACK, health and readiness endpoints, and a
//! SIGTERM handler that closes the pool.
//!
//! What this shows instead: the same pool and profiles in `policies!` and TOML, the
//! manufacturing-order transaction as a `#[db_op(tx)]` (committed on `Ok`, rolled back
//! otherwise, run again whole when the server cut it off), pool events from a subscription,
//! and the fault a plant floor meets: the database server restarts while all 8 stations are
//! working. Reads and orders ride through it on retries, no order is left half-written or
//! written twice, and the shutdown at the end lets work in flight finish and refuses new work.
//!
//! ```sh
//! cargo run --example seed_001_manufacturing
//! DB__PROFILE=development cargo run --example seed_001_manufacturing
//! ```
//!
//! Uses the test kit's throwaway server, restarted mid-load; with `DATABASE_URL` set, the
//! restart is replaced by ending every backend of the example's database.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use sqlx::PgConnection;
use sqlx_resilience::pool::PoolEventKind;
use sqlx_resilience::{DbError, Error, HasRuntime, Runtime, Tx, db_op};
use sqlx_resilience_testkit::{PgServer, RestartMode};

sqlx_resilience::policies! {
    /// Production: 8 stations share 20 connections.
    pool main { max = 20, min = 5, acquire_timeout = "60s", idle_timeout = "5m", statement_timeout = "30s" }
    /// Long enough to ride through a restart; the retry budget keeps 8 stations from storming.
    retry restart { attempts = 10, base = "250ms", max_delay = "1s" }
}

const PROFILES: &str = r#"
profile = "production"
[profiles.production.pools.main]
max = 20
[profiles.development.pools.main]
max = 10
min = 2
acquire_timeout = "30s"
idle_timeout = "10s"
"#;

#[derive(HasRuntime)]
struct Plant {
    rt: Runtime,
}

impl Plant {
    #[db_op(pool = "main", tx, timeout = "30s")]
    async fn setup(&self, tx: &mut Tx<'_>) -> Result<(), DbError> {
        sqlx::raw_sql(
            "create table manufacturing_order (id bigserial primary key, order_number text unique not null, panel_type text not null); \
             create table panel (barcode text primary key, mo_id bigint not null references manufacturing_order, status text not null default 'PENDING'); \
             create table barcode_event (id bigserial primary key, barcode text not null references panel, event_type text not null)",
        )
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// processManufacturingOrder: the order, its panels and their events, all or nothing.
    /// Keyed by order number, so running it again after an unknown commit changes nothing.
    #[db_op(pool = "main", tx, retry = "restart", timeout = "30s", idempotent)]
    async fn process_order(
        &self,
        tx: &mut Tx<'_>,
        order_number: String,
        panels: u32,
    ) -> Result<i64, DbError> {
        let inserted: Option<(i64,)> = sqlx::query_as(
            "insert into manufacturing_order (order_number, panel_type) values ($1, 'WALL') \
             on conflict (order_number) do nothing returning id",
        )
        .bind(&order_number)
        .fetch_optional(&mut **tx)
        .await?;
        let Some((id,)) = inserted else {
            let (id,) =
                sqlx::query_as("select id from manufacturing_order where order_number = $1")
                    .bind(&order_number)
                    .fetch_one(&mut **tx)
                    .await?;
            return Ok(id);
        };
        for n in 0..panels {
            let barcode = format!("{order_number}-{n}");
            sqlx::query("insert into panel (barcode, mo_id) values ($1, $2)")
                .bind(&barcode)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            sqlx::query(
                "insert into barcode_event (barcode, event_type) values ($1, 'PANEL_CREATED')",
            )
            .bind(&barcode)
            .execute(&mut **tx)
            .await?;
        }
        Ok(id)
    }

    /// A station scanning its queue.
    #[db_op(pool = "main", retry = "restart", timeout = "30s", read_only)]
    async fn pending_panels(&self, conn: &mut PgConnection) -> Result<i64, DbError> {
        let (n,): (i64,) = sqlx::query_as("select count(*) from panel where status = 'PENDING'")
            .fetch_one(conn)
            .await?;
        Ok(n)
    }

    /// Orders whose panels are not all there: a half-written transaction would show here.
    #[db_op(pool = "main", timeout = "30s", read_only)]
    async fn incomplete_orders(
        &self,
        conn: &mut PgConnection,
        panels: i64,
    ) -> Result<(i64, i64), DbError> {
        Ok(sqlx::query_as(
            "select count(*), count(*) filter (where n <> $1) from \
             (select mo.id, count(p.barcode) n from manufacturing_order mo \
              left join panel p on p.mo_id = mo.id group by mo.id) o",
        )
        .bind(panels)
        .fetch_one(conn)
        .await?)
    }

    /// Slow work, to show that shutdown waits for it.
    #[db_op(pool = "main", timeout = "30s", read_only)]
    async fn shift_report(&self, conn: &mut PgConnection) -> Result<(), DbError> {
        sqlx::query("select pg_sleep(0.5)").execute(conn).await?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let server = PgServer::shared().await?;
    let db = server.create_database().await?;
    let rt = Runtime::builder()
        .url(db.url())
        .config_toml(PROFILES, "the plant profiles")
        .env_prefix("DB")
        .build()
        .await?;
    let main_pool = rt.pool("main").expect("declared");
    let c = main_pool.config();
    println!(
        "pool main ({}): max {}, min {}, acquire {:?}, idle {:?}",
        rt.config().profile.as_deref().unwrap_or("code defaults"),
        c.max,
        c.min,
        c.acquire_timeout,
        c.idle_timeout.unwrap_or_default()
    );

    // Pool events, as the seed logged them.
    let (connects, closes, errors) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut events = main_pool.subscribe();
    let counters = (connects.clone(), closes.clone(), errors.clone());
    let listener = tokio::spawn(async move {
        while let Ok(e) = events.recv().await {
            match e.kind {
                PoolEventKind::Connect { .. } => counters.0.fetch_add(1, Relaxed),
                PoolEventKind::Close { .. } => counters.1.fetch_add(1, Relaxed),
                PoolEventKind::Error { kind, message } => {
                    println!("  pool event: error ({kind}): {message}");
                    counters.2.fetch_add(1, Relaxed)
                }
                _ => 0,
            };
        }
    });

    let plant = Arc::new(Plant { rt: rt.clone() });
    plant.setup().await?;
    let mut stations = tokio::task::JoinSet::new();
    for station in 0..8 {
        let plant = plant.clone();
        stations.spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            for n in 0..25 {
                let order = plant.process_order(format!("MO-{station}-{n}"), 3).await;
                let scan = plant.pending_panels().await;
                for r in [order.map(|_| ()), scan.map(|_| ())] {
                    match r {
                        Ok(()) => ok += 1,
                        Err(e) => failed.push(e),
                    }
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            (ok, failed)
        });
    }
    // The fault: the server restarts while every station is working.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    if server.is_throwaway() {
        server.restart(RestartMode::Fast).await?;
        println!(
            "server restarted mid-load ({} ms down)",
            t.elapsed().as_millis()
        );
    } else {
        let n = server.terminate_backends(db.name()).await?;
        println!("ended {n} backends mid-load (DATABASE_URL: no restart)");
    }
    let (mut ok, mut failed): (u32, Vec<Error>) = (0, Vec::new());
    while let Some(r) = stations.join_next().await {
        let (o, f) = r?;
        ok += o;
        failed.extend(f);
    }
    println!("8 stations: {ok} of 400 calls ok, {} failed", failed.len());
    for e in &failed {
        println!("  failed: {e}");
    }
    let (orders, incomplete) = plant.incomplete_orders(3).await?;
    println!(
        "orders: {orders} written, {incomplete} incomplete, none written twice (order numbers are unique)"
    );
    println!(
        "pool events: {} connects, {} closes, {} errors",
        connects.load(Relaxed),
        closes.load(Relaxed),
        errors.load(Relaxed)
    );
    let retry = rt.retry_policy("restart").expect("declared").metrics();
    println!("retries by kind: {:?}", retry.retries);
    let health = rt.health().await;
    println!(
        "health: {} (score {}), ready: {}",
        health.status,
        health.score,
        rt.ready().await.ready
    );

    // SIGTERM: let the shift report finish, refuse what comes after.
    let report = tokio::spawn({
        let plant = plant.clone();
        async move { plant.shift_report().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    rt.shutdown(Duration::from_secs(10)).await?;
    println!(
        "shutdown: drained in {} ms; the shift report in flight finished: {}",
        t.elapsed().as_millis(),
        report.await?.is_ok()
    );
    match plant.pending_panels().await {
        Err(e @ Error::ShuttingDown { .. }) => println!("after shutdown: {e}"),
        other => return Err(format!("expected a refusal after shutdown, got {other:?}").into()),
    }
    println!("live after shutdown: {}", rt.live());
    listener.abort();
    println!("done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
