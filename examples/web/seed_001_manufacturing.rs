//! Seed 001, a manufacturing execution system (Node.js and `pg`, 8 production stations).
//!
//! What they built by hand: a `DatabaseManager` around `pg.Pool` with per-environment
//! settings (development min 2, max 10, acquire 30 s, idle 10 s; production min 5, max 20,
//! acquire 60 s, idle 5 min), pool event logging (connect, acquire, release, error, remove),
//! `executeTransaction` with BEGIN/COMMIT/ROLLBACK, "a circuit breaker pattern to prevent
//! cascading failures", query timing and a warning above 80 % pool utilization, the endpoints
//! `/health`, `/health/database`, `/ready`, `/live`, `/metrics` and `/status`, and a SIGTERM
//! handler that closes the pool.
//!
//! What this shows instead, from real work in one run:
//!
//! - **Both profiles** from one TOML: the development runtime (pool max 10) and the
//!   production runtime (max 20) each read their settings back from the pool and run the 8
//!   stations' work: orders (a `#[db_op(tx)]`: committed on `Ok`, rolled back otherwise, run
//!   again whole when the server cut it off) and panel scans.
//! - **The monitor** on the development pool: 9 shift reports at once on 10 connections raise
//!   the utilization-above-80 % alert; each takes longer than the op's `slow = "1s"`, which
//!   logs it and raises the slow-op alert.
//! - **The faults** under production load: the network to the database fails (a fault proxy
//!   resets every connection and refuses new ones). The breaker `plant_db` opens, the
//!   endpoints report the outage (`/health`, `/health/database` and `/ready` 503, `/live`
//!   still 200), and once the network heals the breaker closes again. A station keeps an
//!   order that failed and submits it again under the same order number. Then the database
//!   server restarts.
//! - **None written twice, none lost**: `process_order` is idempotent, keyed by its order
//!   number, so running it again after an unknown commit (the toolkit does, for a transaction
//!   cut off in `COMMIT`) or after a failure changes nothing. A plain insert (a panel's
//!   inspection) whose connection is dropped mid-call (an injected fault, development only)
//!   is not run again: the toolkit reports `UnknownOutcome`, and the station checks before
//!   writing it. The run counts duplicates and lost orders by query, including panel events,
//!   which no unique constraint guards.
//! - **SIGTERM** (the example sends it to itself) drives `rt.shutdown(deadline)`: the shift
//!   report in flight finishes, new work is refused, and `/live` answers 503.
//!
//! The endpoints are the toolkit's (`http::Endpoints`, features `axum` and `prometheus`),
//! served on a loopback port; the run asks each of them in every phase. The last line is the
//! seed's KPIs, measured in the run.
//!
//! ```sh
//! cargo run -p sqlx-resilience-web-examples --example seed_001_manufacturing
//! ```
//!
//! Uses the test kit's throwaway server, restarted mid-load; with `DATABASE_URL` set, the
//! restart is replaced by ending every backend of the example's database.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgConnection;
use sqlx_resilience::breaker::BreakerState;
use sqlx_resilience::faults::Fault;
use sqlx_resilience::monitor::{Alert, Monitor};
use sqlx_resilience::pool::PoolEventKind;
use sqlx_resilience::{DbError, Error, HasRuntime, Runtime, Tx, db_op};
use sqlx_resilience_runtime::http::{Endpoints, PrometheusHandle, install_prometheus};
use sqlx_resilience_testkit::{FaultProxy, PgServer, RestartMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast::error::RecvError;

sqlx_resilience::policies! {
    /// Production: 8 stations share 20 connections.
    pool main { max = 20, min = 5, acquire_timeout = "60s", idle_timeout = "5m", statement_timeout = "30s" }
    /// Long enough to ride through a restart; the retry budget keeps 8 stations from storming.
    retry restart { attempts = 10, base = "250ms", max_delay = "1s" }
    /// "Connection refused: circuit breaker will handle". The seed gives no numbers: 5
    /// failures in a row open it; an unreachable server is probed, and the first probe that
    /// reaches it half-opens the breaker (30 s is only the longest wait).
    breaker plant_db { consecutive_failures = 5, open_for = "30s" }
}

/// The seed's two environments. The monitor checks every 100 ms instead of every 15 s, so a
/// run of a few seconds sees the utilization it watches for.
const PROFILES: &str = r#"
profile = "production"
[monitor]
pool_interval = "100ms"
breaker_interval = "100ms"
health_interval = "500ms"
[profiles.production.pools.main]
max = 20
[profiles.development.pools.main]
max = 10
min = 2
acquire_timeout = "30s"
idle_timeout = "10s"
# Injected faults, for the inspection whose connection is dropped; never in production.
[profiles.development.faults]
enabled = true
"#;

/// The seed's pool settings per profile: max, min, acquire timeout, idle timeout.
const EXPECTED: [(&str, u32, u32, Duration, Duration); 2] = [
    (
        "development",
        10,
        2,
        Duration::from_secs(30),
        Duration::from_secs(10),
    ),
    (
        "production",
        20,
        5,
        Duration::from_secs(60),
        Duration::from_secs(300),
    ),
];

const PANELS: u32 = 3;

#[derive(HasRuntime)]
struct Plant {
    rt: Runtime,
    /// Bodies of `process_order` that found their order already written: a run again after
    /// an unknown outcome or a resubmission, which wrote nothing.
    replays: AtomicU64,
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
    #[db_op(
        pool = "main",
        tx,
        retry = "restart",
        breaker = "plant_db",
        timeout = "30s",
        idempotent
    )]
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
            self.replays.fetch_add(1, Relaxed);
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
    #[db_op(
        pool = "main",
        retry = "restart",
        breaker = "plant_db",
        timeout = "30s",
        read_only
    )]
    async fn pending_panels(&self, conn: &mut PgConnection) -> Result<i64, DbError> {
        let (n,): (i64,) = sqlx::query_as("select count(*) from panel where status = 'PENDING'")
            .fetch_one(conn)
            .await?;
        Ok(n)
    }

    /// Orders, and those whose panels are not all there: a half-written transaction would
    /// show here.
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

    /// Acknowledged orders missing from the database, and rows written twice: order numbers
    /// and panels (unique by the schema) and panel events (no constraint: only the ops keep
    /// them single).
    #[db_op(pool = "main", timeout = "30s", read_only)]
    async fn lost_and_duplicated(
        &self,
        conn: &mut PgConnection,
        acknowledged: Vec<String>,
    ) -> Result<(i64, i64), DbError> {
        Ok(sqlx::query_as(
            "select \
               (select count(*) from unnest($1::text[]) a(n) \
                 where not exists (select 1 from manufacturing_order where order_number = a.n)), \
               (select count(*) - count(distinct order_number) from manufacturing_order) \
             + (select count(*) - count(distinct barcode) from panel) \
             + (select count(*) - count(distinct (barcode, event_type)) from barcode_event)",
        )
        .bind(acknowledged)
        .fetch_one(conn)
        .await?)
    }

    /// A station's inspection of a panel: a plain insert, neither idempotent nor a
    /// transaction. Cut off after its body began, it is not run again: the caller gets
    /// `Error::UnknownOutcome` and checks whether it was applied.
    #[db_op(name = "plant.record_inspection", pool = "main", timeout = "30s")]
    async fn record_inspection(
        &self,
        conn: &mut PgConnection,
        barcode: String,
    ) -> Result<(), DbError> {
        sqlx::query("insert into barcode_event (barcode, event_type) values ($1, 'INSPECTED')")
            .bind(&barcode)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Whether the panel's inspection is recorded: what a caller asks after an unknown outcome.
    #[db_op(pool = "main", timeout = "30s", read_only)]
    async fn inspected(&self, conn: &mut PgConnection, barcode: String) -> Result<bool, DbError> {
        let (n,): (i64,) = sqlx::query_as(
            "select count(*) from barcode_event where barcode = $1 and event_type = 'INSPECTED'",
        )
        .bind(&barcode)
        .fetch_one(conn)
        .await?;
        Ok(n > 0)
    }

    /// The shift report: slow on purpose, longer than its `slow` threshold, so each call is
    /// logged with its time and counted as slow.
    #[db_op(pool = "main", timeout = "30s", slow = "1s", read_only)]
    async fn shift_report(&self, conn: &mut PgConnection) -> Result<(), DbError> {
        sqlx::query("select pg_sleep(1.1)").execute(conn).await?;
        Ok(())
    }
}

/// What the stations did.
#[derive(Default)]
struct Work {
    /// Order numbers whose `process_order` returned `Ok`.
    acknowledged: Vec<String>,
    /// Calls that failed (the order is kept and submitted again).
    failed: Vec<Error>,
    /// Orders submitted again under the same number after a failure.
    resubmitted: u64,
    /// Orders still failing when the station had to stop: lost.
    abandoned: i64,
    scans_ok: u64,
}

/// 8 stations, each creating orders and scanning panels until `stop`; a station whose order
/// failed submits it again under the same order number before taking a new one.
fn stations(
    plant: &Arc<Plant>,
    prefix: &'static str,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinSet<Work> {
    let mut set = tokio::task::JoinSet::new();
    for station in 0..8 {
        let (plant, stop) = (plant.clone(), stop.clone());
        set.spawn(async move {
            let mut work = Work::default();
            let mut next = 0;
            let mut pending: Option<String> = None;
            let started = Instant::now();
            // Stops when told, with nothing pending; or after 60 s at most.
            while (!stop.load(Relaxed) || pending.is_some())
                && started.elapsed() < Duration::from_secs(60)
            {
                let order = match pending.take() {
                    Some(order) => {
                        work.resubmitted += 1;
                        order
                    }
                    None => {
                        next += 1;
                        format!("{prefix}-{station}-{next}")
                    }
                };
                match plant.process_order(order.clone(), PANELS).await {
                    Ok(_) => work.acknowledged.push(order),
                    Err(e) => {
                        work.failed.push(e);
                        pending = Some(order);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                match plant.pending_panels().await {
                    Ok(_) => work.scans_ok += 1,
                    Err(e) => work.failed.push(e),
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            if let Some(order) = pending {
                println!("  station {station}: order {order} still not written after 60 s");
                work.abandoned += 1;
            }
            work
        });
    }
    set
}

async fn join(mut set: tokio::task::JoinSet<Work>) -> Result<Work, tokio::task::JoinError> {
    let mut all = Work::default();
    while let Some(r) = set.join_next().await {
        let w = r?;
        all.acknowledged.extend(w.acknowledged);
        all.failed.extend(w.failed);
        all.resubmitted += w.resubmitted;
        all.abandoned += w.abandoned;
        all.scans_ok += w.scans_ok;
    }
    Ok(all)
}

/// Polls `done` every 20 ms for at most `limit`; whether it became true.
async fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let from = Instant::now();
    while from.elapsed() < limit {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

/// The runtime of one profile: its pool settings read back and compared with the seed's.
async fn runtime(url: &str, profile: &str) -> Result<(Runtime, bool), Box<dyn std::error::Error>> {
    let rt = Runtime::builder()
        .url(url)
        .config_toml(PROFILES, "the plant profiles")
        .profile(profile)
        .env_prefix("DB")
        .build()
        .await?;
    let c = rt.pool("main").expect("declared").config();
    let got = (
        c.max,
        c.min,
        c.acquire_timeout,
        c.idle_timeout.unwrap_or_default(),
    );
    let expected = EXPECTED
        .iter()
        .find(|e| e.0 == profile)
        .map(|e| (e.1, e.2, e.3, e.4));
    let matches = expected == Some(got);
    println!(
        "profile {}: pool main max {}, min {}, acquire {:?}, idle {:?} ({})",
        rt.config().profile.as_deref().unwrap_or("none"),
        got.0,
        got.1,
        got.2,
        got.3,
        if matches {
            "the seed's settings"
        } else {
            "NOT the seed's settings"
        }
    );
    Ok((rt, matches))
}

/// One HTTP/1.1 GET on a fresh connection, read to the end: the status and body, or status 0
/// when there was no complete answer within 10 s.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let head = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text.get(9..12)?.parse().ok()?;
        Some((status, text))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// What a 200 answer of `path` must contain: the ops' latency histogram in `/metrics`, the
/// breaker in `/status`.
fn must_contain(path: &str) -> Option<&'static str> {
    match path {
        "/metrics" => Some("db_client_operation_duration"),
        "/status" => Some("plant_db"),
        _ => None,
    }
}

/// Asks each endpoint and compares its status (and, for a 200, its content) with what the
/// phase expects; prints the answers and returns (answered as expected, asked).
async fn ask(addr: SocketAddr, phase: &str, expected: &[(&str, u16)]) -> (usize, usize) {
    let mut ok = 0;
    let mut answers = Vec::new();
    for (path, want) in expected {
        let (got, body) = get(addr, path).await;
        let missing = must_contain(path).filter(|m| got == 200 && !body.contains(m));
        if got == *want && missing.is_none() {
            ok += 1;
            answers.push(format!("{path} {got}"));
        } else if let Some(m) = missing {
            answers.push(format!("{path} {got} without {m}"));
        } else {
            answers.push(format!("{path} {got} (expected {want})"));
        }
    }
    println!(
        "endpoints {phase}: {ok} of {} as expected: {}",
        expected.len(),
        answers.join(", ")
    );
    (ok, expected.len())
}

/// Starts the monitor with a sink that prints and keeps each alert's kind.
fn monitor(rt: &Runtime, kinds: &Arc<Mutex<BTreeSet<String>>>) -> Monitor {
    let kinds = kinds.clone();
    Monitor::builder(rt)
        .sink(move |a: &Alert| {
            println!("  ALERT {}: {}", a.kind.as_str(), a.message);
            kinds
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(a.kind.as_str().to_owned());
        })
        .start()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The seed logs query times: warnings (slow calls, alerts) go to standard error.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let started = Instant::now();
    // The Prometheus recorder before any runtime: each registers its histograms when built.
    let prometheus = install_prometheus()?;
    let server = PgServer::shared().await?;
    let alerts = Arc::new(Mutex::new(BTreeSet::new()));
    let mut profiles_run = Vec::new();

    // Development: the stations' work on 10 connections, then the shift reports.
    let dev_db = server.create_database().await?;
    let (dev, settings_ok) = runtime(dev_db.url(), "development").await?;
    let dev_monitor = monitor(&dev, &alerts);
    let plant = Arc::new(Plant {
        rt: dev.clone(),
        replays: AtomicU64::new(0),
    });
    plant.setup().await?;
    let stop = Arc::new(AtomicBool::new(false));
    let running = stations(&plant, "DEV", &stop);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Relaxed);
    let work = join(running).await?;
    println!(
        "development: 8 stations wrote {} orders, {} scans, {} failed calls",
        work.acknowledged.len(),
        work.scans_ok,
        work.failed.len()
    );
    let mut reports = tokio::task::JoinSet::new();
    for _ in 0..9 {
        let plant = plant.clone();
        reports.spawn(async move { plant.shift_report().await });
    }
    let mut reports_ok = 0;
    while let Some(r) = reports.join_next().await {
        reports_ok += usize::from(r?.is_ok());
    }
    // The monitor's next checks see the slow calls.
    let seen = wait_for(Duration::from_secs(10), || {
        let a = alerts.lock().unwrap_or_else(|e| e.into_inner());
        a.contains("pool_utilization") && a.contains("slow_ops")
    })
    .await;
    println!(
        "development: {reports_ok} of 9 shift reports at once on 10 connections (alerts seen: {seen})"
    );
    // An inspection whose connection the server drops mid-call (an injected fault): the
    // toolkit does not run the plain insert again, it reports the outcome unknown; the station
    // checks and records it only if it is not there.
    let faults = dev.faults().expect("faults are enabled in development");
    faults.arm(
        Fault::drop_connection()
            .op("plant.record_inspection")
            .next(1),
    )?;
    let mut unknown_outcomes = 0;
    for order in work.acknowledged.iter().take(3) {
        let barcode = format!("{order}-0");
        match plant.record_inspection(barcode.clone()).await {
            Ok(()) => {}
            Err(e @ Error::UnknownOutcome { .. }) => {
                unknown_outcomes += 1;
                let applied = plant.inspected(barcode.clone()).await?;
                println!("development: inspection of {barcode}: {e}");
                if !applied {
                    plant.record_inspection(barcode.clone()).await?;
                }
                println!(
                    "development: checked: {}",
                    if applied {
                        "applied, not written again"
                    } else {
                        "not applied, written now"
                    }
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    faults.clear();
    let (dev_lost, dev_duplicated) = plant.lost_and_duplicated(work.acknowledged.clone()).await?;
    let dev_lost = dev_lost + work.abandoned;
    let (dev_orders, dev_incomplete) = plant.incomplete_orders(i64::from(PANELS)).await?;
    dev_monitor.stop().await;
    dev.shutdown(Duration::from_secs(10)).await?;
    if settings_ok && !work.acknowledged.is_empty() && work.failed.is_empty() {
        profiles_run.push("development");
    }

    // Production: through a fault proxy, so the network can fail; the endpoints served.
    let db = server.create_database().await?;
    let proxy = FaultProxy::start(server.tcp_addr()).await?;
    let (rt, settings_ok) = runtime(&db.url_via(proxy.addr()), "production").await?;
    let main_pool = rt.pool("main").expect("declared");
    let prod_monitor = monitor(&rt, &alerts);
    let addr = serve(&rt, prometheus).await?;
    println!("endpoints served on http://{addr}");

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
                PoolEventKind::Error { .. } => counters.2.fetch_add(1, Relaxed),
                _ => 0,
            };
        }
    });
    let breaker = rt.breaker("plant_db").expect("declared").clone();
    let opens = Arc::new(AtomicU64::new(0));
    let mut transitions = breaker.subscribe();
    let counted = opens.clone();
    let watcher = tokio::spawn(async move {
        loop {
            match transitions.recv().await {
                Ok(e) => {
                    if e.to == BreakerState::Open {
                        counted.fetch_add(1, Relaxed);
                    }
                    println!(
                        "  breaker {}: {} -> {} ({})",
                        e.breaker, e.from, e.to, e.reason
                    );
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
    });

    let all = [
        ("/health", 200),
        ("/health/database", 200),
        ("/ready", 200),
        ("/live", 200),
        ("/metrics", 200),
        ("/status", 200),
    ];
    let mut asked = ask(addr, "before the faults", &all).await;

    let plant = Arc::new(Plant {
        rt: rt.clone(),
        replays: AtomicU64::new(0),
    });
    plant.setup().await?;
    let stop = Arc::new(AtomicBool::new(false));
    let running = stations(&plant, "MO", &stop);

    // The first fault: the network to the database fails while every station is working,
    // until the breaker has opened. (Calls wait for the server within the pool's limits;
    // 90 s covers the production acquire timeout of 60 s.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    let opens_before = opens.load(Relaxed);
    let outage = Instant::now();
    proxy.refuse().await;
    proxy.reset().await;
    let breaker_tripped = wait_for(Duration::from_secs(90), || {
        breaker.state() == BreakerState::Open
    })
    .await;
    println!(
        "network down: breaker plant_db {} after {} ms",
        breaker.state(),
        outage.elapsed().as_millis()
    );
    let during = [
        ("/health", 503),
        ("/health/database", 503),
        ("/ready", 503),
        ("/live", 200),
        ("/metrics", 200),
        ("/status", 200),
    ];
    let answered = ask(addr, "during the outage", &during).await;
    asked = (asked.0 + answered.0, asked.1 + answered.1);
    proxy.heal().await?;
    let healed = Instant::now();
    let closed = wait_for(Duration::from_secs(30), || {
        breaker.state() == BreakerState::Closed
    })
    .await;
    println!(
        "network healed: breaker plant_db {} after {} ms",
        breaker.state(),
        healed.elapsed().as_millis()
    );
    let breaker_tripped = breaker_tripped && opens.load(Relaxed) > opens_before;
    // Recovered: it had opened on the outage, and closed again once the network healed.
    let breaker_recovered = breaker_tripped && closed;

    // The second: the server restarts while every station is working.
    tokio::time::sleep(Duration::from_millis(700)).await;
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
    // Work goes on after recovery, then the stations finish what they hold.
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Relaxed);
    let work = join(running).await?;
    println!(
        "production: 8 stations wrote {} orders ({} submitted again after a failure), {} scans; \
         {} calls failed during the faults",
        work.acknowledged.len(),
        work.resubmitted,
        work.scans_ok,
        work.failed.len()
    );
    let mut kinds: Vec<&str> = work.failed.iter().map(|e| e.kind().as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    if !kinds.is_empty() {
        println!("  failed calls' kinds: {}", kinds.join(", "));
    }
    let answered = ask(addr, "after recovery", &all).await;
    asked = (asked.0 + answered.0, asked.1 + answered.1);

    let (orders, incomplete) = plant.incomplete_orders(i64::from(PANELS)).await?;
    let (lost, duplicated) = plant.lost_and_duplicated(work.acknowledged.clone()).await?;
    let lost = lost + work.abandoned;
    let replays = plant.replays.load(Relaxed);
    println!(
        "orders: {orders} written, {incomplete} incomplete, {lost} acknowledged but missing, \
         {duplicated} rows written twice; {replays} runs found their order already written"
    );
    println!(
        "pool events: {} connects, {} closes, {} errors",
        connects.load(Relaxed),
        closes.load(Relaxed),
        errors.load(Relaxed)
    );
    let retry = rt.retry_policy("restart").expect("declared").metrics();
    println!("retries by kind: {:?}", retry.retries);
    let m = breaker.metrics();
    println!(
        "breaker plant_db: {} opens, {} failures counted, {} calls rejected",
        opens.load(Relaxed),
        m.failures_total,
        m.rejected_total
    );
    if settings_ok && !work.acknowledged.is_empty() {
        profiles_run.push("production");
    }

    // SIGTERM, as an orchestrator sends it: let the shift report finish, refuse what comes
    // after, close the pools.
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let on_sigterm = tokio::spawn({
        let rt = rt.clone();
        async move {
            sigterm.recv().await;
            let t = Instant::now();
            let done = rt.shutdown(Duration::from_secs(10)).await;
            (done, t.elapsed())
        }
    });
    let report = tokio::spawn({
        let plant = plant.clone();
        async move { plant.shift_report().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGTERM)?;
    let (shutdown, took) = on_sigterm.await?;
    shutdown?;
    let report_finished = report.await?.is_ok();
    println!(
        "SIGTERM: shut down in {} ms; the shift report in flight finished: {report_finished}",
        took.as_millis()
    );
    let refused = match plant.pending_panels().await {
        Err(e @ Error::ShuttingDown { .. }) => {
            println!("after shutdown: {e}");
            true
        }
        other => {
            println!("after shutdown: expected a refusal, got {other:?}");
            false
        }
    };
    let answered = ask(addr, "after shutdown", &[("/live", 503), ("/ready", 503)]).await;
    asked = (asked.0 + answered.0, asked.1 + answered.1);
    prod_monitor.stop().await;
    listener.abort();
    watcher.abort();

    let alerts: Vec<String> = alerts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect();
    println!("done in {:.1}s", started.elapsed().as_secs_f64());
    println!(
        "{{\"seed\":\"001\",\"profiles_run\":[{}],\"breaker_tripped\":{breaker_tripped},\
         \"breaker_recovered\":{breaker_recovered},\"endpoints_ok\":{},\"endpoints_answered\":{},\
         \"orders\":{},\"orders_lost\":{},\"orders_duplicated\":{},\"orders_incomplete\":{},\
         \"unknown_outcomes\":{unknown_outcomes},\"alerts\":[{}],\"sigterm_drained\":{}}}",
        profiles_run
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(","),
        asked.0 == asked.1,
        asked.0,
        orders + dev_orders,
        lost + dev_lost,
        duplicated + dev_duplicated,
        incomplete + dev_incomplete,
        alerts.join(","),
        report_finished && refused,
    );
    Ok(())
}

/// Serves the toolkit's endpoints for `rt` on a free loopback port.
async fn serve(
    rt: &Runtime,
    prometheus: PrometheusHandle,
) -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let app = Endpoints::new(rt).prometheus(prometheus).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}
