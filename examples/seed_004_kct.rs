//! Seed 004, KCT Menswear (TypeScript and Prisma on Railway, 99 %+ availability target).
//!
//! What they built by hand: a resilient Prisma client with a circuit breaker (5 failures
//! within 1 minute open it, reset after 30 s, 3 half-open test requests), a retry table per
//! failure kind (connection reset: 5 tries from 500 ms x 1.5; pool exhaustion: 10 tries from
//! 2 s x 2; lock timeout: 3 tries from 1 s x 2; statement timeout: never), and a pool sized
//! by hand for Railway: 20 connections - 2 reserved = 18.
//!
//! What this shows instead: the breaker and the retry table declared in `policies!` (the
//! runtime prints the table back as it will apply it), the 18 = 20 - 2 arithmetic checked
//! against the server's own `max_connections` at start-up (a second instance is refused
//! before it can cause "too many connections"), and the breaker on a real fault: a network
//! failure between the app and the database (a fault proxy resets every connection and
//! refuses new ones). Five failures open it, calls are then rejected in microseconds instead
//! of retrying into a dead database, and once the network heals three probes close it.
//!
//! The seed's test endpoints (`/resilience/test/retry` with `failTimes`,
//! `/resilience/test/circuit-breaker` with `simulateFailures`) become injected faults: the
//! server's own serialization failures, dropped sessions and internal errors, in the ops they
//! name. Its monitor (utilization, connection storms, slow queries above 1 s, health score)
//! runs with the seed's thresholds. The run ends with one JSON line of the seed's success
//! metrics, measured in the run: `recovery_s` (target < 30), `score` (> 80), `success_rate` of
//! the shoppers' calls under the injected faults (> 99 %), and the `alerts` raised.
//!
//! ```sh
//! cargo run --example seed_004_kct
//! ```
//!
//! Starts a dedicated throwaway cluster with `max_connections = 20` and
//! `superuser_reserved_connections = 2` (the server package must be installed). The `drill`
//! profile shortens the breaker's 30 s and the 30 s acquire timeout so the run takes seconds.

use std::time::{Duration, Instant};

use sqlx::PgConnection;
use sqlx_resilience::breaker::BreakerState;
use sqlx_resilience::faults::Fault;
use sqlx_resilience::{DbError, Error, FailureKind, HasRuntime, Runtime, Tx, db_op};
use sqlx_resilience_testkit::{FaultProxy, PgServer, ServerOptions};
use tokio::sync::broadcast::error::RecvError;

sqlx_resilience::policies! {
    /// Railway: 20 connections, 2 reserved for superusers; the app takes the other 18.
    pool main {
        max = 18, min = 2, acquire_timeout = "30s", idle_timeout = "30s",
        statement_timeout = "30s", lock_timeout = "10s", idle_in_transaction_session_timeout = "30s",
    }
    /// 5 failures within 1 minute; reset after 30 s; 3 half-open test requests.
    breaker kct { failures = 5, within = "60s", open_for = "30s", half_open = 3 }
    /// The seed's table, one schedule per failure kind.
    retry kct {
        attempts = 3, max_delay = "30s",
        on connection_lost { attempts = 5, base = "500ms", factor = 1.5 },
        on backpressure { attempts = 10, base = "2s", factor = 2, max_delay = "60s" },
        on contention { attempts = 3, base = "1s", factor = 2 },
        on statement_timeout { attempts = 1 },
    }
}

const DRILL: &str = r#"
[profiles.drill.pools.main]
acquire_timeout = "300ms"
[profiles.drill.breakers.kct]
open_for = "1s"
[profiles.drill.retries.kct.on.contention]
base = "50ms"
[profiles.drill.monitor]
pool_interval = "100ms"
breaker_interval = "100ms"
health_interval = "500ms"
[profiles.drill.faults]
enabled = true
"#;

/// The ops' names, for the faults that target them.
const PRODUCT: &str = "kct.product";
const PLACE_ORDER: &str = "kct.place_order";

#[derive(HasRuntime)]
struct Store {
    rt: Runtime,
}

impl Store {
    #[db_op(pool = "main", tx, timeout = "30s")]
    async fn setup(&self, tx: &mut Tx<'_>) -> Result<(), DbError> {
        sqlx::raw_sql(
            "create table product (id bigint primary key, name text not null, \
               price_cents int not null, stock int not null check (stock >= 0)); \
             create table orders (id bigint primary key, product bigint not null references product, qty int not null); \
             insert into product select g, 'suit ' || g, 39900 + g, 50 from generate_series(1, 40) g",
        )
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    #[db_op(
        name = "kct.product",
        pool = "main",
        timeout = "30s",
        retry = "kct",
        breaker = "kct",
        read_only
    )]
    async fn product(&self, conn: &mut PgConnection, id: i64) -> Result<(String, i32), DbError> {
        Ok(
            sqlx::query_as("select name, stock from product where id = $1")
                .bind(id)
                .fetch_one(conn)
                .await?,
        )
    }

    /// An order and its stock movement, together or not at all; a lock timeout runs the
    /// whole transaction again (3 tries), and a repeated order id changes nothing.
    #[db_op(
        name = "kct.place_order",
        pool = "main",
        tx,
        timeout = "30s",
        retry = "kct",
        breaker = "kct"
    )]
    async fn place_order(
        &self,
        tx: &mut Tx<'_>,
        order: i64,
        product: i64,
        qty: i32,
    ) -> Result<bool, DbError> {
        let new = sqlx::query("insert into orders values ($1, $2, $3) on conflict (id) do nothing")
            .bind(order)
            .bind(product)
            .bind(qty)
            .execute(&mut **tx)
            .await?
            .rows_affected()
            == 1;
        if new {
            sqlx::query("update product set stock = stock - $2 where id = $1")
                .bind(product)
                .bind(qty)
                .execute(&mut **tx)
                .await?;
        }
        Ok(new)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let options = ServerOptions::new()
        .max_connections(20)
        .superuser_reserved_connections(2);
    let server = PgServer::start_with(options).await?;
    let db = server.create_database().await?;
    let proxy = FaultProxy::start(server.tcp_addr()).await?;
    let url = db.url_via(proxy.addr());
    let builder = Runtime::builder()
        .url(&url)
        .config_toml(DRILL, "the drill profile")
        .profile("drill")
        .env_prefix("DB");

    let rt = builder.clone().build().await?;
    println!("budget: {}", rt.budget()[0]);
    // A second instance of the app on the same plan: refused at start-up, with the arithmetic.
    match builder.set("budget.instances", 2u32).build().await {
        Err(e @ Error::Budget { .. }) => println!("two instances: refused at start-up: {e}"),
        Err(e) => return Err(e.into()),
        Ok(_) => return Err("two instances of 18 connections cannot fit in 18".into()),
    }

    println!("retry table (delays before jitter):");
    let retry = rt.retry_policy("kct").expect("declared");
    for kind in [
        FailureKind::ConnectionLost,
        FailureKind::Backpressure,
        FailureKind::Contention,
        FailureKind::StatementTimeout,
    ] {
        println!(
            "  {:<18} {:>2} attempt(s), delays {:?}",
            kind.as_str(),
            retry.attempts(kind),
            retry.delays(kind)
        );
    }

    let breaker = rt.breaker("kct").expect("declared").clone();
    let mut events = breaker.subscribe();
    let watcher = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(e) => println!(
                    "breaker {}: {} -> {} ({})",
                    e.breaker, e.from, e.to, e.reason
                ),
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
    });

    let monitor = rt.start_monitor();
    let faults = rt
        .faults()
        .expect("the drill profile enables injected faults");
    let store = std::sync::Arc::new(Store { rt: rt.clone() });
    store.setup().await?;

    // The seed's test endpoints, as injected faults, while 12 shoppers (within the 18
    // connections) browse and order: `test/retry` with failTimes 2, two connection resets,
    // and one query slower than the seed's 1 s slow-query threshold.
    faults.arm(Fault::sqlstate("40001").op(PLACE_ORDER).next(2))?;
    faults.arm(Fault::drop_connection().op(PRODUCT).next(2))?;
    faults.arm(
        Fault::latency(Duration::from_millis(1100))
            .op(PRODUCT)
            .next(1),
    )?;
    let mut work = tokio::task::JoinSet::new();
    for shopper in 0..12_i64 {
        let store = store.clone();
        work.spawn(async move {
            let mut ok = 0_u32;
            for n in 0..20 {
                let id = shopper * 20 + n;
                let done = if n % 5 == 4 {
                    store.place_order(id, 1 + id % 40, 1).await.map(drop)
                } else {
                    store.product(1 + id % 40).await.map(drop)
                };
                match done {
                    Ok(()) => ok += 1,
                    Err(e) => println!("  shopper {shopper}: {e}"),
                }
            }
            (ok, 20_u32)
        });
    }
    let (mut ok, mut calls) = (0_u32, 0_u32);
    while let Some(r) = work.join_next().await {
        let (o, c) = r?;
        ok += o;
        calls += c;
    }
    let success_rate = f64::from(ok) / f64::from(calls);
    println!(
        "shoppers: {ok} of {calls} calls ok under {} injected faults; a repeated order: applied again = {}",
        faults.injected(),
        store.place_order(4, 5, 1).await?
    );
    faults.clear();

    // `test/circuit-breaker` with simulateFailures 5: five internal errors open the breaker;
    // it recovers on its own once they stop.
    faults.arm(Fault::sqlstate("XX000").op(PRODUCT).next(5))?;
    let mut simulated = 0;
    while breaker.state() != BreakerState::Open && simulated < 10 {
        simulated += 1;
        let e = store.product(1).await.expect_err("an injected failure");
        println!("  simulated call {simulated}: {e}");
    }
    faults.clear();
    let breaker_recovery = recover(&store).await;
    println!(
        "simulated failures: breaker open after {simulated}, first ok call {:.1}s after it opened",
        breaker_recovery.as_secs_f64()
    );
    // Its three half-open probes close it.
    while breaker.state() != BreakerState::Closed {
        store.product(3).await?;
    }

    // The fault: the network between app and database breaks.
    proxy.refuse().await;
    proxy.reset().await;
    let mut call = 0;
    while breaker.state() != BreakerState::Open && call < 10 {
        call += 1;
        let t = Instant::now();
        let e = store
            .product(1)
            .await
            .expect_err("the database is unreachable");
        println!(
            "  call {call}: {} after {} ms: {e}",
            e.kind(),
            t.elapsed().as_millis()
        );
    }
    let t = Instant::now();
    let rejected = store.product(1).await.expect_err("the breaker is open");
    println!(
        "while open: rejected in {} us: {rejected}",
        t.elapsed().as_micros()
    );
    let health = rt.health().await;
    println!(
        "health while open: {} (score {})",
        health.status, health.score
    );
    for r in &health.recommendations {
        println!("  recommendation: {r}");
    }

    proxy.heal().await?;
    let network_recovery = recover(&store).await;
    println!(
        "network healed: first ok call after {:.1}s",
        network_recovery.as_secs_f64()
    );
    for probe in 1..=3 {
        let (name, stock) = store.product(probe).await?;
        println!("  probe {probe}: {name}, {stock} in stock");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let m = breaker.metrics();
    println!(
        "breaker kct now {}: {} failures, {} rejected, {} transitions",
        m.state, m.failures_total, m.rejected_total, m.transitions_total
    );
    let r = retry.metrics();
    println!("retries by kind: {:?}; stops: {:?}", r.retries, r.stops);
    for stats in rt.pool_stats() {
        println!("{stats}");
    }
    // The monitor's next health check, after recovery.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let health = rt.health().await;
    println!(
        "health after recovery: {} (score {}); penalties: {:?}",
        health.status, health.score, health.penalties
    );
    let raised = rt.recent_alerts();
    let mut alerts: Vec<&str> = raised.iter().map(|a| a.kind.as_str()).collect();
    alerts.sort_unstable();
    alerts.dedup();
    for a in &raised {
        println!("alert {}: {}", a.kind.as_str(), a.message);
    }
    monitor.stop().await;
    rt.shutdown(Duration::from_secs(5)).await?;
    watcher.abort();
    println!("done in {:.1}s", started.elapsed().as_secs_f64());
    let recovery = breaker_recovery.max(network_recovery);
    println!(
        "{{\"seed\":\"004\",\"recovery_s\":{:.3},\"score\":{},\"success_rate\":{:.4},\"alerts\":[{}]}}",
        recovery.as_secs_f64(),
        health.score,
        success_rate,
        alerts
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    Ok(())
}

/// Calls until one succeeds (every 50 ms, at most 60 s); how long it took.
async fn recover(store: &Store) -> Duration {
    let from = Instant::now();
    while from.elapsed() < Duration::from_secs(60) {
        if store.product(2).await.is_ok() {
            return from.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    from.elapsed()
}
