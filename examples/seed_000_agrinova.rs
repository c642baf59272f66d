//! Seed 000, Agrinova (Go, harvest approvals and gate checks for 2000+ WebSocket clients).
//!
//! What they built by hand: three segregated `database/sql` pools (HTTP 150, WebSocket 30,
//! background 20: `MaxOpenConns` 200, `ConnMaxLifetime` 30 min, `ConnMaxIdleTime` 5 min,
//! `ConnectTimeout` 10 s), `context.WithTimeout` around every query (reads 5 s, lists 10 s,
//! aggregations 15 s), a circuit breaker (5 failures open it) and a monitoring loop (pools every
//! 15 s, breakers every 10 s, health every 30 s; alerts above 80 % utilization and 5 s waits).
//!
//! What this shows instead: the same pools and numbers in one `policies!`, timeouts on the ops
//! that stop the statement on the server too, and the fault that motivated the segregation:
//! the WebSocket pool exhausted by slow subscriptions. HTTP keeps answering, the starved
//! WebSocket calls fail after their acquire timeout with a message that says why (not
//! "context canceled"), the breaker stays closed (a saturated pool is backpressure, not a sick
//! database), and the health report and the monitor say which pool to look at.
//!
//! Then the seed's own tests: sustained load on the dashboard (at least 20 requests a second
//! for 10 s, average under 2 s, errors under 5 %), and rapid successive requests tripping the
//! breaker: the database's internal errors are injected into the dashboard's aggregation
//! (docs/FAULTS.md) until five in a row open it; it recovers when its open window ends, and a
//! second trip is cleared by hand (the seed's `ResetAllCircuitBreakers`). The run ends with
//! one JSON line of those figures, which `tests/examples.rs` holds to the seed's targets.
//!
//! ```sh
//! cargo run --example seed_000_agrinova
//! ```
//!
//! Uses the test kit's throwaway server unless `DATABASE_URL` is set. The `drill` profile
//! below only shortens the monitor's intervals so the run takes seconds.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgConnection;
use sqlx_resilience::breaker::{BreakerState, CircuitBreaker};
use sqlx_resilience::monitor::{Alert, Monitor};
use sqlx_resilience::{DbError, Error, HasRuntime, Runtime, Tx, db_op};
use sqlx_resilience_testkit::PgServer;

sqlx_resilience::policies! {
    /// Web dashboard requests.
    pool http { max = 150, min = 10, connect_timeout = "10s", max_lifetime = "30m", idle_timeout = "5m" }
    /// Real-time subscriptions, kept warm (the seed's `MaxIdleConns` 50 idle connections
    /// ready: 10 for http, 30 here); a starved subscriber should hear so within a second.
    pool ws { max = 30, min = 30, acquire_timeout = "1s", connect_timeout = "10s", max_lifetime = "30m", idle_timeout = "5m" }
    /// Cron jobs and maintenance.
    pool background { max = 20, connect_timeout = "10s", max_lifetime = "30m", idle_timeout = "5m" }
    /// "harvest-statistics": 5 failures open it.
    breaker harvest_stats { consecutive_failures = 5, open_for = "30s" }
    retry transient { attempts = 3, base = "50ms", max_delay = "1s" }
}

/// Production intervals are the seed's (set in `main`); the drill only makes them short,
/// shortens the breaker's 30 s open window, and allows injected faults.
const DRILL: &str = r#"
[profiles.drill.monitor]
pool_interval = "200ms"
breaker_interval = "200ms"
health_interval = "400ms"
[profiles.drill.breakers.harvest_stats]
open_for = "1s"
[profiles.drill.faults]
enabled = true
"#;

/// The dashboard's aggregation, by name, for the faults injected into it.
const STATISTICS: &str = "harvest.statistics";

#[derive(HasRuntime)]
struct HarvestRepo {
    rt: Runtime,
}

impl HarvestRepo {
    /// Schema and a season of harvests, on the background pool.
    #[db_op(pool = "background", tx, timeout = "15s")]
    async fn setup(&self, tx: &mut Tx<'_>) -> Result<(), DbError> {
        sqlx::raw_sql(
            "create table harvest (id bigint primary key, estate int not null, \
               tonnes numeric not null, approved bool not null default false); \
             insert into harvest (id, estate, tonnes) \
               select g, g % 12, (g % 97) / 10.0 from generate_series(1, 20000) g",
        )
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// The dashboard's aggregation: 15 s, as the seed chose for aggregations.
    #[db_op(
        name = "harvest.statistics",
        pool = "http",
        timeout = "15s",
        retry = "transient",
        breaker = "harvest_stats",
        read_only
    )]
    async fn statistics(
        &self,
        conn: &mut PgConnection,
        estate: i32,
    ) -> Result<(i64, f64), DbError> {
        Ok(sqlx::query_as(
            "select count(*), coalesce(sum(tonnes), 0)::float8 from harvest where estate = $1",
        )
        .bind(estate)
        .fetch_one(conn)
        .await?)
    }

    /// A live subscription's feed: a list (10 s) that, on a slow day, holds its connection.
    #[db_op(pool = "ws", timeout = "10s", read_only)]
    async fn subscription_feed(
        &self,
        conn: &mut PgConnection,
        estate: i32,
    ) -> Result<i64, DbError> {
        let (n,): (i64,) = sqlx::query_as(
            "select count(*) from harvest, pg_sleep(2) where estate = $1 and not approved",
        )
        .bind(estate)
        .fetch_one(conn)
        .await?;
        Ok(n)
    }

    /// A harvest approval from a mobile client: idempotent (approving twice approves once).
    #[db_op(pool = "ws", timeout = "5s", idempotent)]
    async fn approve(&self, conn: &mut PgConnection, id: i64) -> Result<(), DbError> {
        sqlx::query("update harvest set approved = true where id = $1")
            .bind(id)
            .execute(conn)
            .await?;
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
        .set("monitor.pool_interval", "15s")
        .set("monitor.breaker_interval", "10s")
        .set("monitor.health_interval", "30s")
        .set("monitor.utilization", 80u32)
        .set("monitor.acquire_wait", "5s")
        .config_toml(DRILL, "the drill profile")
        .profile("drill")
        .env_prefix("DB")
        .build()
        .await?;
    println!("budget: {}", rt.budget()[0]);
    let repo = Arc::new(HarvestRepo { rt: rt.clone() });
    repo.setup().await?;

    let alerts: Arc<Mutex<Vec<Alert>>> = Arc::default();
    let sink = alerts.clone();
    let monitor: Monitor = Monitor::builder(&rt)
        .sink(move |a: &Alert| sink.lock().unwrap().push(a.clone()))
        .start();

    // The fault: 30 slow subscriptions take every WebSocket connection.
    let mut feeds = tokio::task::JoinSet::new();
    for n in 0..30 {
        let repo = repo.clone();
        feeds.spawn(async move { repo.subscription_feed(n % 12).await });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Approvals arriving now find no WebSocket connection ...
    let mut approvals = tokio::task::JoinSet::new();
    for id in 1..=10_i64 {
        let repo = repo.clone();
        approvals.spawn(async move { repo.approve(id).await });
    }
    // ... while the dashboard, on its own pool, does not notice.
    let http_started = Instant::now();
    let mut reads = tokio::task::JoinSet::new();
    for n in 0..60 {
        let repo = repo.clone();
        reads.spawn(async move { repo.statistics(n % 12).await });
    }
    let mut answered = 0;
    while let Some(r) = reads.join_next().await {
        r??;
        answered += 1;
    }
    let http_took = http_started.elapsed();
    let saturated = rt.health().await;

    let (mut approved, mut starved) = (0, 0);
    while let Some(r) = approvals.join_next().await {
        match r? {
            Ok(()) => approved += 1,
            Err(e @ Error::AcquireTimeout { .. }) => {
                if starved == 0 {
                    println!("ws: first starved call: {e}");
                }
                starved += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    while let Some(r) = feeds.join_next().await {
        r??;
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // one more monitor round
    monitor.stop().await;

    println!(
        "http answered {answered} of 60 while ws was exhausted ({} ms in all)",
        http_took.as_millis()
    );
    println!(
        "ws approvals during exhaustion: {approved} ok, {starved} timed out waiting for a connection"
    );
    let breaker = rt.breaker("harvest_stats").expect("declared");
    println!(
        "breaker harvest_stats: {} after exhaustion ({} failures counted): pool exhaustion is backpressure, not a database failure",
        breaker.state(),
        breaker.metrics().failures_total
    );
    println!();
    println!(
        "health while ws was exhausted: {} (score {})",
        saturated.status, saturated.score
    );
    for p in &saturated.penalties {
        println!("  -{:<3} {}", p.points, p.reason);
    }
    for r in &saturated.recommendations {
        println!("  recommendation: {r}");
    }
    println!();
    println!("monitor alerts:");
    for a in alerts.lock().unwrap().iter() {
        println!("  {a}");
    }
    println!();
    for stats in rt.pool_stats() {
        println!("{stats}");
    }
    println!();

    // The seed's load test: dashboard requests at 25 a second for 10 s.
    let load = sustained_load(&repo, 25, Duration::from_secs(10)).await;
    println!(
        "load: {} requests in {:.1}s ({:.1}/s), average {:.1} ms, {} errors",
        load.requests,
        load.took.as_secs_f64(),
        load.per_second(),
        load.average_ms(),
        load.errors
    );

    // The seed's breaker test: rapid successive requests while the database fails them.
    let faults = rt
        .faults()
        .expect("the drill profile allows injected faults");
    faults.arm(sqlx_resilience::faults::Fault::sqlstate("XX000").op(STATISTICS))?;
    let tripped = trip(&repo, breaker).await;
    faults.clear();
    let recovered_in = recover(&repo).await;
    let recovered = breaker.state() == BreakerState::Closed;
    println!(
        "breaker harvest_stats: tripped = {tripped}; first ok call {:.1}s later, now {}",
        recovered_in.as_secs_f64(),
        breaker.state()
    );
    // Tripped again, and reset by hand: every breaker of the runtime.
    faults.arm(sqlx_resilience::faults::Fault::sqlstate("XX000").op(STATISTICS))?;
    let again = trip(&repo, breaker).await;
    faults.clear();
    for b in rt.breakers() {
        b.reset();
    }
    let reset_ok = repo.statistics(3).await.is_ok();
    println!(
        "tripped again = {again}; after resetting all breakers: {} and the next call ok = {reset_ok}",
        breaker.state()
    );
    let m = breaker.metrics();
    println!(
        "breaker metrics: {} failures, {} rejected, {} transitions",
        m.failures_total, m.rejected_total, m.transitions_total
    );

    rt.shutdown(Duration::from_secs(5)).await?;
    println!("done in {:.1}s", started.elapsed().as_secs_f64());
    println!(
        "{{\"seed\":\"000\",\"req_per_s\":{:.1},\"avg_ms\":{:.1},\"error_rate\":{:.4},\"breaker_tripped\":{},\"breaker_recovered\":{}}}",
        load.per_second(),
        load.average_ms(),
        load.error_rate(),
        tripped && again,
        recovered && reset_ok
    );
    Ok(())
}

/// What a load test measured.
struct Load {
    requests: u32,
    errors: u32,
    took: Duration,
    total: Duration,
}

impl Load {
    fn per_second(&self) -> f64 {
        f64::from(self.requests) / self.took.as_secs_f64()
    }
    fn average_ms(&self) -> f64 {
        self.total.as_secs_f64() * 1000.0 / f64::from(self.requests.max(1))
    }
    fn error_rate(&self) -> f64 {
        f64::from(self.errors) / f64::from(self.requests.max(1))
    }
}

/// Starts `rate` dashboard requests a second for `length`, each on its own task, and waits
/// for all of them.
async fn sustained_load(repo: &Arc<HarvestRepo>, rate: u32, length: Duration) -> Load {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    let mut calls = tokio::task::JoinSet::new();
    let mut n = 0;
    while started.elapsed() < length {
        tick.tick().await;
        let repo = repo.clone();
        n += 1;
        calls.spawn(async move {
            let t = Instant::now();
            let ok = repo.statistics(n % 12).await.is_ok();
            (ok, t.elapsed())
        });
    }
    let (mut requests, mut errors, mut total) = (0, 0, Duration::ZERO);
    while let Some(r) = calls.join_next().await {
        let (ok, took) = r.expect("a request task");
        requests += 1;
        errors += u32::from(!ok);
        total += took;
    }
    Load {
        requests,
        errors,
        took: started.elapsed(),
        total,
    }
}

/// Rapid successive requests until the breaker opens (at most 20); whether it opened.
async fn trip(repo: &HarvestRepo, breaker: &CircuitBreaker) -> bool {
    for _ in 0..20 {
        if breaker.state() == BreakerState::Open {
            return true;
        }
        let _ = repo.statistics(1).await;
    }
    breaker.state() == BreakerState::Open
}

/// Calls until one succeeds (every 50 ms, at most 60 s); how long it took.
async fn recover(repo: &HarvestRepo) -> Duration {
    let from = Instant::now();
    while from.elapsed() < Duration::from_secs(60) {
        if repo.statistics(2).await.is_ok() {
            return from.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    from.elapsed()
}
