//! A service with three pools (seed 000's http 150, ws 30, background 20, scaled to the
//! server's connection budget), generated load, the monitor, and the HTTP endpoints with the
//! status page.
//!
//! ```text
//! cargo run -p sqlx-resilience-web-examples --example service       # serves for 30 s, then exits
//! cargo run -p sqlx-resilience-web-examples --example service -- --serve-for 5m  # or SERVE_FOR=5m
//! cargo run -p sqlx-resilience-web-examples --example service -- --serve-for forever \
//!     --addr 127.0.0.1:8080
//! ```
//!
//! Open the printed address for the status page; `/health`, `/ready`, `/live`, `/metrics`,
//! `/status`, `/pool-config` and `/pg-stats` answer next to it. Without `DATABASE_URL` the
//! test kit starts a throwaway PostgreSQL (the server package must be installed), removed on
//! exit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx_resilience::monitor::{Alert, Monitor, TracingSink};
use sqlx_resilience::{Error, PolicyKind, Runtime};
use sqlx_resilience_runtime::http::{Endpoints, install_prometheus};
use sqlx_resilience_testkit::{PgServer, ServerOptions};

struct Args {
    serve_for: Option<Duration>,
    addr: String,
}

fn args() -> Args {
    let mut serve_for = std::env::var("SERVE_FOR").ok();
    let mut addr = "127.0.0.1:8080".to_owned();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--serve-for" => serve_for = it.next(),
            "--addr" => addr = it.next().expect("--addr HOST:PORT"),
            other => panic!(
                "unknown argument {other}; use --serve-for DURATION|forever, --addr HOST:PORT"
            ),
        }
    }
    let serve_for = match serve_for.as_deref() {
        Some("forever") => None,
        Some(d) => Some(humantime_parse(d)),
        None => Some(Duration::from_secs(30)),
    };
    Args { serve_for, addr }
}

fn humantime_parse(text: &str) -> Duration {
    humantime::parse_duration(text.trim())
        .unwrap_or_else(|e| panic!("--serve-for takes a duration such as 30s or 5m ({e})"))
}

async fn op(
    rt: &Runtime,
    name: &'static str,
    pool: &'static str,
    sql: &'static str,
) -> Result<(), Error> {
    let op = rt.op(name);
    let op = if pool == "http" {
        op.breaker("harvest_stats")
    } else {
        op
    };
    op.pool(pool)
        .read_only(true)
        .timeout(Duration::from_secs(5))
        .deadline(Duration::from_secs(8))
        .retry("transient")
        .slow(Duration::from_secs(1))
        .run(|conn| {
            Box::pin(async move {
                sqlx::query(sql).execute(conn.as_mut()).await?;
                Ok::<_, Error>(())
            })
        })
        .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let args = args();
    // The recorder first: the runtime registers its histograms when it is built.
    let prometheus = install_prometheus()?;

    let (_server, _db, url) = match std::env::var("DATABASE_URL") {
        Ok(url) => (None, None, url),
        Err(_) => {
            // 100 connections, as a small managed server has: the pools ask for 200 and are
            // scaled to fit.
            let server = PgServer::start_with(ServerOptions::new().max_connections(100)).await?;
            let db = server.create_database().await?;
            let url = db.url().to_owned();
            (Some(server), Some(db), url)
        }
    };

    let rt = Runtime::builder()
        .url(&url)
        .env_prefix("DB")
        .pool("http", &[("max", 150u32.into()), ("min", 10u32.into())])
        .pool("ws", &[("max", 30u32.into())])
        .pool("background", &[("max", 20u32.into())])
        .declare(
            PolicyKind::Breaker,
            "harvest_stats",
            &[
                ("failures", 5u32.into()),
                ("within", "60s".into()),
                ("open_for", "30s".into()),
            ],
        )
        .declare(
            PolicyKind::Retry,
            "transient",
            &[("attempts", 4u32.into()), ("base", "50ms".into())],
        )
        .set("budget.mode", "scale")
        .set("monitor.pool_interval", "5s")
        .set("monitor.sample_interval", "1s")
        // Debug builds open connections slowly (SCRAM without optimizations): be patient.
        .set("monitor.health_timeout", "5s")
        .build()
        .await?;
    for s in rt.pool_stats() {
        println!(
            "pool {:<10} max {:>3} (scaled to the server's budget)",
            s.name, s.max
        );
    }

    let monitor = Monitor::builder(&rt)
        .sink(TracingSink)
        .sink(|a: &Alert| println!("ALERT {a}"))
        .start();

    // Load: http busy with short and some slow reads, ws steady, background in bursts.
    let stop = Arc::new(AtomicBool::new(false));
    let http_workers = rt
        .pool("http")
        .map_or(4, |p| (p.config().max / 2).clamp(2, 24) as usize);
    let mut load = Vec::new();
    for i in 0..http_workers {
        let (rt, stop) = (rt.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let sql = match (i + n as usize) % 20 {
                    0 => "select pg_sleep(1.2)",
                    1..=5 => "select pg_sleep(0.2)",
                    _ => "select pg_sleep(0.02)",
                };
                // A rejected call (open breaker) returns at once: back off, or this loop
                // would never yield to the scheduler.
                if op(&rt, "harvest::statistics", "http", sql).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }));
    }
    for _ in 0..3 {
        let (rt, stop) = (rt.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = op(&rt, "ws::subscriptions", "ws", "select pg_sleep(0.01)").await;
                let _ = op(&rt, "ws::bad_input", "ws", "select 1 / 0").await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    {
        let (rt, stop) = (rt.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = op(
                    &rt,
                    "jobs::nightly_rollup",
                    "background",
                    "select count(*) from generate_series(1, 200000)",
                )
                .await;
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
        }));
    }

    let app = axum::Router::new().merge(Endpoints::new(&rt).prometheus(prometheus).router());
    let listener = match tokio::net::TcpListener::bind(&args.addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot bind {} ({e}); using a free port", args.addr);
            tokio::net::TcpListener::bind("127.0.0.1:0").await?
        }
    };
    let addr = listener.local_addr()?;
    match args.serve_for {
        Some(d) => println!(
            "status page: http://{addr}/  (serving for {d:?}; --serve-for forever to keep it)"
        ),
        None => println!("status page: http://{addr}/  (until Ctrl-C)"),
    }
    let serve_for = args.serve_for;
    let shutdown = async move {
        match serve_for {
            Some(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;

    stop.store(true, Ordering::Relaxed);
    let drain = async {
        for t in &mut load {
            let _ = t.await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        load.iter().for_each(|t| t.abort());
    }
    monitor.stop().await;
    let h = rt.health().await;
    println!("final health: {} (score {})", h.status, h.score);
    rt.shutdown(Duration::from_secs(10)).await?;
    Ok(())
}
