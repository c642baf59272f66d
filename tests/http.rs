//! The HTTP endpoints against real PostgreSQL, over real TCP: status codes and content types,
//! Prometheus text, and the status page checked in headless Chromium (a screenshot and the
//! rendered DOM).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use sqlx_resilience::{Error, PolicyKind, Runtime};
use sqlx_resilience_runtime::http::{Endpoints, PrometheusHandle, install_prometheus};
use sqlx_resilience_testkit::{FaultProxy, PgServer, TestDb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The process-wide Prometheus recorder, installed before any runtime is built.
fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| install_prometheus().expect("prometheus recorder"))
        .clone()
}

async fn db() -> TestDb {
    PgServer::shared()
        .await
        .expect("shared test server")
        .create_database()
        .await
        .expect("test database")
}

/// Serves `rt`'s endpoints on 127.0.0.1 and returns the address.
async fn serve(rt: &Runtime) -> SocketAddr {
    let app = Endpoints::new(rt).prometheus(prometheus()).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

struct Reply {
    status: u16,
    content_type: String,
    cache_control: String,
    body: String,
}

/// A plain HTTP/1.1 GET.
async fn get(addr: SocketAddr, path: &str) -> Reply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut raw))
        .await
        .expect("a reply")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("headers");
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
            .unwrap_or_default()
    };
    Reply {
        status,
        content_type: header("content-type"),
        cache_control: header("cache-control"),
        body: body.to_owned(),
    }
}

async fn quickstart(db: &TestDb, url: &str) -> Runtime {
    Runtime::builder()
        .url(url)
        .env_vars(Vec::<(String, String)>::new())
        .pool("http", &[("max", 6u32.into()), ("min", 1u32.into())])
        .pool("ws", &[("max", 3u32.into())])
        .pool("background", &[("max", 2u32.into())])
        .declare(PolicyKind::Breaker, "harvest_stats", &[])
        .declare(PolicyKind::Retry, "transient", &[])
        .set("monitor.sample_interval", "100ms")
        .set("monitor.health_timeout", "2s")
        .build()
        .await
        .unwrap_or_else(|e| panic!("runtime on {}: {e}", db.name()))
}

async fn query(
    rt: &Runtime,
    op: &'static str,
    pool: &'static str,
    sql: &'static str,
) -> Result<(), Error> {
    rt.op(op)
        .pool(pool)
        .read_only(true)
        .retry("transient")
        .breaker("harvest_stats")
        .run(|conn| {
            Box::pin(async move {
                sqlx::query(sql).execute(conn.as_mut()).await?;
                Ok::<_, Error>(())
            })
        })
        .await
}

#[tokio::test]
async fn endpoints_answer_with_the_right_status_codes_and_content_types() {
    prometheus();
    let db = db().await;
    let rt = quickstart(&db, db.url()).await;
    query(&rt, "harvest::list", "http", "select 1")
        .await
        .unwrap();
    let addr = serve(&rt).await;

    let r = get(addr, "/health").await;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (200, "application/json")
    );
    assert_eq!(r.cache_control, "no-store");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["pools"].as_array().unwrap().len(), 3);

    let r = get(addr, "/health/database").await;
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["reachable"], true);
    assert!(v["databases"][0]["server_version"].is_string());

    for path in ["/ready", "/live", "/status", "/pool-config", "/pg-stats"] {
        let r = get(addr, path).await;
        assert_eq!(
            (r.status, r.content_type.as_str()),
            (200, "application/json"),
            "{path}: {}",
            r.body
        );
    }
    let v: serde_json::Value = serde_json::from_str(&get(addr, "/status").await.body).unwrap();
    assert_eq!(v["ops"][0]["op"], "harvest::list");
    assert_eq!(v["ops"][0]["calls"], 1);
    let v: serde_json::Value = serde_json::from_str(&get(addr, "/pool-config").await.body).unwrap();
    assert_eq!(v["pools"][1]["name"], "http", "pools in name order");
    assert_eq!(v["pools"][1]["max"], 6);
    assert!(
        !v["pools"][1]["url"]
            .as_str()
            .unwrap()
            .contains(&support_password(db.url()))
    );
    assert!(v["recommendations"].is_array());

    let r = get(addr, "/metrics").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    for line in [
        "db_client_connection_count{pool=\"http\",state=\"idle\"}",
        "db_client_connection_max{pool=\"http\"} 6",
        "db_client_connection_pending_requests{pool=\"ws\"} 0",
        "db_client_operation_duration_bucket{op=\"harvest::list\",pool=\"http\",outcome=\"ok\",le=\"0.5\"} 1",
        "sqlx_resilience_breaker_state{breaker=\"harvest_stats\"} 0",
    ] {
        assert!(r.body.contains(line), "{line} missing from:\n{}", r.body);
    }

    let r = get(addr, "/").await;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (200, "text/html; charset=utf-8")
    );
    for name in [
        "data-pool=\"http\"",
        "data-pool=\"ws\"",
        "data-pool=\"background\"",
        "harvest_stats",
        "harvest::list",
    ] {
        assert!(r.body.contains(name), "{name}");
    }
    assert_eq!(get(addr, "/nope").await.status, 404);

    // An open breaker degrades: still 200.
    rt.breaker("harvest_stats").unwrap().force_open();
    let r = get(addr, "/health").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("\"status\":\"degraded\""), "{}", r.body);
}

fn support_password(url: &str) -> String {
    let after = url.split("://").nth(1).unwrap();
    after
        .split('@')
        .next()
        .unwrap()
        .split(':')
        .nth(1)
        .unwrap_or("no-password")
        .to_owned()
}

#[tokio::test]
async fn an_unreachable_database_answers_503_but_stays_live() {
    prometheus();
    let db = db().await;
    let proxy = FaultProxy::start(db.server().tcp_addr()).await.unwrap();
    let rt = quickstart(&db, &db.url_via(proxy.addr())).await;
    let addr = serve(&rt).await;
    assert_eq!(get(addr, "/ready").await.status, 200);
    proxy.blackhole();
    let r = get(addr, "/health").await;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (503, "application/json")
    );
    assert!(r.body.contains("\"status\":\"unhealthy\""));
    assert_eq!(get(addr, "/health/database").await.status, 503);
    let r = get(addr, "/ready").await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("does not answer"), "{}", r.body);
    assert_eq!(get(addr, "/live").await.status, 200);
    assert_eq!(
        get(addr, "/").await.status,
        200,
        "the page still shows what it knows"
    );
    proxy.heal().await.unwrap();
    assert_eq!(get(addr, "/ready").await.status, 200);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(get(addr, "/live").await.status, 503);
}

/// Where the screenshot goes (kept for people to look at): `target/tmp/status-page/`.
fn screenshot_path() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("status-page.png")
}

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in ["/usr/bin", "/usr/local/bin", "/snap/bin"] {
            let p = PathBuf::from(dir).join(name);
            if p.exists() {
                return p;
            }
        }
    }
    panic!(
        "headless Chromium is needed to check the status page and is not installed: \
         run `apt-get install -y chromium` (CI's .ci/run installs it)"
    );
}

/// Runs Chromium headless with `args` and the URL; returns its standard output.
async fn run_chromium(extra: &[String], url: &str) -> Vec<u8> {
    let profile = tempdir();
    let mut cmd = tokio::process::Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=1280,900",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url)
    .kill_on_drop(true)
    .stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium finished")
        .expect("chromium ran");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sqlx-resilience-chromium-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A PNG's width and height (from IHDR) and its compressed image bytes (the IDAT chunks).
fn png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG signature");
    let mut at = 8;
    let (mut w, mut h, mut idat) = (0, 0, Vec::new());
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let kind = &bytes[at + 4..at + 8];
        let data = &bytes[at + 8..at + 8 + len];
        match kind {
            b"IHDR" => {
                w = u32::from_be_bytes(data[0..4].try_into().unwrap());
                h = u32::from_be_bytes(data[4..8].try_into().unwrap());
            }
            b"IDAT" => idat.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
        at += 12 + len;
    }
    (w, h, idat)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_renders_in_headless_chromium() {
    let browser = chromium();
    prometheus();
    let db = db().await;
    let rt = quickstart(&db, db.url()).await;
    let addr = serve(&rt).await;

    // Load: the http pool busy with slow reads, ws lighter, background idle; one breaker
    // closed; failures on one op.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for i in 0..5 {
        let (rt, stop) = (rt.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sql = if i % 2 == 0 {
                    "select pg_sleep(0.15)"
                } else {
                    "select pg_sleep(0.05)"
                };
                if query(&rt, "harvest::statistics", "http", sql)
                    .await
                    .is_err()
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    for _ in 0..2 {
        let (rt, stop) = (rt.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = query(&rt, "ws::subscriptions", "ws", "select pg_sleep(0.03)").await;
                let _ = query(&rt, "ws::bad_input", "ws", "select 1 / 0").await;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    let url = format!("http://{addr}/");
    let shot = screenshot_path();
    let _ = std::fs::remove_file(&shot);
    run_chromium(&[format!("--screenshot={}", shot.display())], &url).await;
    let dom = String::from_utf8(run_chromium(&["--dump-dom".to_owned()], &url).await).unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }

    let bytes =
        std::fs::read(&shot).unwrap_or_else(|e| panic!("{} ({browser:?}): {e}", shot.display()));
    let (w, h, idat) = png(&bytes);
    assert_eq!((w, h), (1280, 900), "the window size");
    // A blank page compresses to almost nothing; a page of text, tables and charts does not.
    assert!(
        idat.len() > 20_000,
        "image data of {} bytes: blank?",
        idat.len()
    );
    let mut seen = [false; 256];
    idat.iter().for_each(|b| seen[*b as usize] = true);
    assert!(
        seen.iter().filter(|s| **s).count() > 200,
        "pixel data barely varies"
    );

    for needle in [
        "data-pool=\"http\"",
        "data-pool=\"ws\"",
        "data-pool=\"background\"",
        "data-breaker=\"harvest_stats\"",
        "harvest::statistics",
        "ws::bad_input",
        "<polyline",
        "health score",
    ] {
        assert!(
            dom.contains(needle),
            "{needle} missing from the rendered page"
        );
    }
    println!("status page screenshot: {}", shot.display());
}

/// The status page's pool card says where the replicas come from: with a Patroni REST API
/// that does not answer, that no answer came yet, the failed rounds, and why.
#[tokio::test]
async fn the_status_page_says_how_asking_patroni_for_replicas_goes() {
    let db = db().await;
    // A port nothing listens on: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let rt = Runtime::builder()
        .url(db.url())
        .env_vars(Vec::<(String, String)>::new())
        .pool(
            "main",
            &[
                ("replicas", format!("http://{closed}").into()),
                ("replicas_refresh", "100ms".into()),
            ],
        )
        .build()
        .await
        .unwrap();
    let addr = serve(&rt).await;
    let started = std::time::Instant::now();
    loop {
        let page = get(addr, "/").await.body;
        if page.contains("members from Patroni: no answer yet")
            && page.contains("failed rounds (last: ")
            && page.contains(&closed.to_string())
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no Patroni line on the status page: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
