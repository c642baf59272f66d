//! The breaker of each host of a multi-host pool, on a real server behind fault proxies: a
//! host that accepts connections and never answers (a dead former primary) opens its breaker
//! after failed checks, later re-discoveries find the primary without asking it, and once it
//! answers again its breaker closes and the pool may use it; and a round that does not wait
//! for hosts after the first one that suits; a host the pool itself cannot connect to (its
//! connects refused until the acquire times out, or reset) opens its breaker before any check
//! fails, and `host_breaker_open_max` bounds how long a host the
//! health watch never reaches is skipped. Conditions are polled with generous limits;
//! nothing asserts how long a re-discovery took (the one limit shorter than 120 s, 25 s for a
//! 1 s `host_breaker_open_max`, tells that setting apart from the 30 s default).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sqlx_resilience::breaker::BreakerState;
use sqlx_resilience::telemetry::names;
use sqlx_resilience::{Error, Pool, Runtime, Value};
use sqlx_resilience_testkit::FaultProxy;

use crate::support;

const LIMIT: Duration = Duration::from_secs(120);

/// What the pool says of the host listening on `addr`.
struct Host {
    checks: u64,
    failed_checks: u64,
    breaker: BreakerState,
}

fn host(pool: &Pool, addr: SocketAddr) -> Host {
    pool.hosts()
        .expect("a multi-host pool")
        .into_iter()
        .find(|h| h.port == addr.port())
        .map(|h| Host {
            checks: h.checks,
            failed_checks: h.failed_checks,
            breaker: h.breaker,
        })
        .unwrap_or_else(|| panic!("no host on {addr}: {:?}", pool.hosts()))
}

/// A runtime whose pool `main` is on the hosts of `url`: one connection, checked on every
/// acquire, one failure opening a host's breaker, and `settings` besides.
async fn one_connection_on(url: &str, settings: &[(&str, Value)]) -> Runtime {
    let mut all: Vec<(&str, Value)> = vec![
        ("max", 1u32.into()),
        ("validation", "always".into()),
        ("host_breaker_failures", 1u32.into()),
    ];
    all.extend(settings.iter().cloned());
    Runtime::builder()
        .url(url)
        .env_vars(Vec::<(String, String)>::new())
        .pool("main", &all)
        .build()
        .await
        .unwrap_or_else(|e| panic!("a runtime on several hosts: {e}"))
}

/// Runs reads until the pool uses the host on `addr` (the reads meet the cut connections of
/// the host it used and so start a re-discovery).
async fn until_current(rt: &Runtime, pool: &Pool, addr: SocketAddr) {
    let started = Instant::now();
    while pool.current_host() != Some(addr.to_string()) {
        assert!(
            started.elapsed() < LIMIT,
            "the pool never moved to {addr}: {:?}",
            pool.hosts()
        );
        let _ = rt
            .op("host_breaker::read")
            .read_only(true)
            .deadline(Duration::from_secs(5))
            .run(|c| {
                Box::pin(async move {
                    sqlx::query("select 1").execute(c.as_mut()).await?;
                    Ok::<_, Error>(())
                })
            })
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until the breaker of the host on `addr` lets checks through again (its proxy healed,
/// its health watch reached it).
async fn until_not_open(pool: &Pool, addr: SocketAddr) {
    let started = Instant::now();
    while host(pool, addr).breaker == BreakerState::Open {
        assert!(started.elapsed() < LIMIT, "{:?}", pool.hosts());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Moves the pool off the host behind `cut`: new connections refused, open ones reset.
async fn cut(proxy: &FaultProxy) {
    proxy.refuse().await;
    proxy.reset().await;
}

#[tokio::test]
async fn a_dead_host_opens_its_breaker_is_not_waited_for_and_closes_it_once_back() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let db = support::db().await;
    let upstream = db.server().tcp_addr();
    let dead = FaultProxy::start(upstream).await.unwrap();
    let a = FaultProxy::start(upstream).await.unwrap();
    let b = FaultProxy::start(upstream).await.unwrap();
    dead.blackhole();
    let single = db.url_via(a.addr());
    let url = support::read_write_hosts(&single, a.addr(), &[dead.addr(), a.addr(), b.addr()]);
    let rt = Runtime::builder()
        .url(&url)
        .env_vars(Vec::<(String, String)>::new())
        .pool(
            "main",
            &[
                ("max", 2u32.into()),
                ("connect_timeout", "1s".into()),
                ("acquire_timeout", "30s".into()),
                ("host_breaker_failures", 2u32.into()),
            ],
        )
        .build()
        .await
        .expect("a runtime on three hosts");
    let pool = rt.pool("main").unwrap();
    // The first discovery waited for the dead host, then took the first that answered.
    until_current(&rt, pool, a.addr()).await;
    assert_eq!(
        host(pool, dead.addr()).failed_checks,
        1,
        "{:?}",
        pool.hosts()
    );

    // A second discovery: the dead host fails again and its breaker opens.
    cut(&a).await;
    until_current(&rt, pool, b.addr()).await;
    let started = Instant::now();
    while host(pool, dead.addr()).breaker != BreakerState::Open {
        assert!(started.elapsed() < LIMIT, "{:?}", pool.hosts());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let checks = host(pool, dead.addr()).checks;
    assert_eq!(checks, 2, "{:?}", pool.hosts());

    // A third: the dead host is not asked; the first host that answers is used.
    // (The checks made while `a` was cut may have opened its breaker too: wait until its
    // watch has seen it back, so that the dead host is the only one skipped.)
    a.heal().await.unwrap();
    until_not_open(pool, a.addr()).await;
    let failovers = pool.failovers().unwrap();
    cut(&b).await;
    until_current(&rt, pool, a.addr()).await;
    assert_eq!(pool.failovers(), Some(failovers + 1));
    let h = host(pool, dead.addr());
    assert_eq!(
        (h.checks, h.breaker),
        (checks, BreakerState::Open),
        "{:?}",
        pool.hosts()
    );
    // The health report shows the breaker of each host.
    let report = rt.health().await;
    let main = report.pools.iter().find(|p| p.name == "main").unwrap();
    let json = serde_json::to_value(main.hosts.as_ref().unwrap()).unwrap();
    assert_eq!(json[0]["breaker"], "open", "{json}");
    assert_eq!(json[1]["breaker"], "closed", "{json}");
    // And the metrics: 2 for open, 0 for closed, as `sqlx_resilience.breaker.state`.
    rt.publish_metrics();
    let states = support::gauges_by_port(&snapshotter, names::HOST_BREAKER);
    assert!(
        states.contains(&(dead.addr().port().to_string(), 2.0))
            && states.contains(&(a.addr().port().to_string(), 0.0)),
        "{states:?}"
    );

    // The dead host answers again: its watch's probe half-opens its breaker, the next
    // discovery asks it, and it is the first host again.
    dead.heal().await.unwrap();
    b.heal().await.unwrap();
    until_not_open(pool, dead.addr()).await;
    cut(&a).await;
    until_current(&rt, pool, dead.addr()).await;
    let h = host(pool, dead.addr());
    assert_eq!(h.breaker, BreakerState::Closed, "{:?}", pool.hosts());
    assert!(h.checks > checks, "{:?}", pool.hosts());
    rt.shutdown(Duration::from_secs(5)).await.ok();
}

#[tokio::test]
async fn a_round_does_not_wait_for_hosts_after_the_first_that_suits() {
    let db = support::db().await;
    let upstream = db.server().tcp_addr();
    let live = FaultProxy::start(upstream).await.unwrap();
    let dead = FaultProxy::start(upstream).await.unwrap();
    dead.blackhole();
    let single = db.url_via(live.addr());
    let url = support::read_write_hosts(&single, live.addr(), &[live.addr(), dead.addr()]);
    // A check timeout (the shorter of `connect_timeout` and `probe_timeout`) far longer than
    // the live host takes to answer: the dead host's check cannot have failed by the time the
    // round is settled.
    let rt = Runtime::builder()
        .url(&url)
        .env_vars(Vec::<(String, String)>::new())
        .pool(
            "main",
            &[
                ("max", 1u32.into()),
                ("connect_timeout", "20s".into()),
                ("probe_timeout", "20s".into()),
            ],
        )
        .build()
        .await
        .expect("a runtime on two hosts");
    let pool = rt.pool("main").unwrap();
    until_current(&rt, pool, live.addr()).await;
    // The dead host was asked with the other, and its check dropped once the first host
    // answered: not failed, not waited for.
    let h = host(pool, dead.addr());
    assert_eq!((h.checks, h.failed_checks), (1, 0), "{:?}", pool.hosts());
    assert_eq!(h.breaker, BreakerState::Closed, "{:?}", pool.hosts());
    rt.shutdown(Duration::from_secs(5)).await.ok();
}

#[tokio::test]
async fn a_host_the_pool_cannot_connect_to_opens_its_breaker_before_any_check() {
    let db = support::db().await;
    let upstream = db.server().tcp_addr();
    let a = FaultProxy::start(upstream).await.unwrap();
    let b = FaultProxy::start(upstream).await.unwrap();
    let single = db.url_via(a.addr());
    let url = support::read_write_hosts(&single, a.addr(), &[a.addr(), b.addr()]);
    // One failure opens a host's breaker. The acquire times out before the pool would ask the
    // host in use whether it still answers (after 250 ms of waiting), so the only failure
    // recorded before the re-discovery is the pool's own connect.
    let rt = one_connection_on(&url, &[("acquire_timeout", "200ms".into())]).await;
    let pool = rt.pool("main").unwrap();
    until_current(&rt, pool, a.addr()).await;
    let before = host(pool, a.addr());
    assert_eq!(before.breaker, BreakerState::Closed, "{:?}", pool.hosts());

    // The host dies between checks: its connections are reset, new ones refused. The pool's
    // connect to it fails, which opens its breaker; the re-discovery that failure starts does
    // not ask it, and moves the pool to the other host.
    cut(&a).await;
    let Err(error) = pool.acquire().await else {
        panic!("a connection from a dead host: {:?}", pool.hosts());
    };
    assert!(
        matches!(
            error,
            Error::AcquireTimeout {
                unreachable: true,
                ..
            }
        ),
        "{error:?}"
    );
    let started = Instant::now();
    while pool.current_host() != Some(b.addr().to_string()) {
        assert!(started.elapsed() < LIMIT, "{:?}", pool.hosts());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = host(pool, a.addr());
    assert_eq!(after.breaker, BreakerState::Open, "{:?}", pool.hosts());
    assert_eq!(
        (after.checks, after.failed_checks),
        (before.checks, before.failed_checks),
        "{:?}",
        pool.hosts()
    );
    let status = pool.hosts().unwrap();
    let a_status = status.iter().find(|h| h.port == a.addr().port()).unwrap();
    assert!(a_status.failed_connects >= 1, "{status:?}");
    rt.shutdown(Duration::from_secs(5)).await.ok();
}

#[tokio::test]
async fn a_connect_the_host_resets_counts_against_its_breaker() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let db = support::db().await;
    let upstream = db.server().tcp_addr();
    // `a` is a proxy in front of a proxy: once the inner one refuses, the outer one still
    // accepts, cannot reach its upstream and resets the connection (a host whose port is
    // open and whose server is gone).
    let inner = FaultProxy::start(upstream).await.unwrap();
    let a = FaultProxy::start(inner.addr()).await.unwrap();
    let b = FaultProxy::start(upstream).await.unwrap();
    let single = db.url_via(a.addr());
    let url = support::read_write_hosts(&single, a.addr(), &[a.addr(), b.addr()]);
    let rt = one_connection_on(&url, &[("acquire_timeout", "30s".into())]).await;
    let pool = rt.pool("main").unwrap();
    until_current(&rt, pool, a.addr()).await;
    let before = host(pool, a.addr());

    // The idle connection is reset, and the pool's new connect is reset as soon as it is made:
    // sqlx hands that failure straight back, and it counts against the host's breaker.
    cut(&inner).await;
    let Err(error) = pool.acquire().await else {
        panic!("a connection from a dead host: {:?}", pool.hosts());
    };
    assert!(
        matches!(
            error,
            Error::Database {
                kind: sqlx_resilience::FailureKind::ConnectionLost,
                ..
            }
        ),
        "{error:?}"
    );
    let status = pool.hosts().unwrap();
    let after = status.iter().find(|h| h.port == a.addr().port()).unwrap();
    assert_eq!(after.failed_connects, 1, "{status:?}");
    assert_eq!(after.breaker, BreakerState::Open, "{status:?}");
    assert_eq!(after.checks, before.checks, "{status:?}");
    // Published as `sqlx_resilience.host.failed_connects`, per host.
    rt.publish_metrics();
    let failed = support::counters_by_port(&snapshotter, names::HOST_FAILED_CONNECTS);
    assert!(
        failed.contains(&(a.addr().port().to_string(), 1))
            && failed.contains(&(b.addr().port().to_string(), 0)),
        "{failed:?}"
    );
    rt.shutdown(Duration::from_secs(5)).await.ok();
}

#[tokio::test]
async fn host_breaker_open_max_bounds_how_long_a_dead_host_is_skipped() {
    let db = support::db().await;
    let upstream = db.server().tcp_addr();
    let dead = FaultProxy::start(upstream).await.unwrap();
    let a = FaultProxy::start(upstream).await.unwrap();
    let b = FaultProxy::start(upstream).await.unwrap();
    dead.blackhole();
    let single = db.url_via(a.addr());
    let url = support::read_write_hosts(&single, a.addr(), &[dead.addr(), a.addr(), b.addr()]);
    let rt = Runtime::builder()
        .url(&url)
        .env_vars(Vec::<(String, String)>::new())
        .pool(
            "main",
            &[
                ("max", 2u32.into()),
                ("connect_timeout", "1s".into()),
                ("acquire_timeout", "30s".into()),
                ("host_breaker_failures", 1u32.into()),
                ("host_breaker_open_max", "1s".into()),
            ],
        )
        .build()
        .await
        .expect("a runtime on three hosts");
    let pool = rt.pool("main").unwrap();
    // The first discovery waited for the dead host, whose one failed check opened its breaker
    // (its health watch never reaches it, so only the timer lets a check through again).
    until_current(&rt, pool, a.addr()).await;
    let h = host(pool, dead.addr());
    assert_eq!(
        (h.checks, h.breaker),
        (1, BreakerState::Open),
        "{:?}",
        pool.hosts()
    );

    // Re-discoveries, moving the pool between `a` and `b`, until one asks the dead host again.
    // With the 30 s default, every round within the limit below would skip it; with 1 s, a
    // round a second after it opened lets one check through.
    let limit = Duration::from_secs(25);
    let started = Instant::now();
    let (mut from, mut to) = (&a, &b);
    while host(pool, dead.addr()).checks < 2 {
        assert!(
            started.elapsed() < limit,
            "the dead host was never asked again: {:?}",
            pool.hosts()
        );
        // The host moved to must not be skipped itself (its breaker may have opened while it
        // was cut): else no host would suit, and the round would ask the dead host anyway.
        to.heal().await.unwrap();
        until_not_open(pool, to.addr()).await;
        cut(from).await;
        until_current(&rt, pool, to.addr()).await;
        (from, to) = (to, from);
    }
    rt.shutdown(Duration::from_secs(5)).await.ok();
}

/// `url` with its user and password replaced.
fn as_user(url: &str, user: &str, password: &str) -> String {
    let (user_part, rest) = url.split_once('@').expect("a URL with a user");
    let (scheme, _) = user_part.split_once("://").expect("a URL with a scheme");
    format!("{scheme}://{user}:{password}@{rest}")
}

#[tokio::test]
async fn a_live_server_refusing_the_login_is_not_a_failed_connect_of_its_host() {
    let db = support::db().await;
    let upstream = db.server().tcp_addr();
    let a = FaultProxy::start(upstream).await.unwrap();
    let b = FaultProxy::start(upstream).await.unwrap();
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(db.admin_url())
        .await
        .unwrap();
    let role = format!("hb_{}", std::process::id());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "create role {role} login password 'first'"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let single = as_user(&db.url_via(a.addr()), &role, "first");
    let url = support::read_write_hosts(&single, a.addr(), &[a.addr(), b.addr()]);
    // Lazy: it starts whatever its password.
    let lazy = [("startup", "lazy".into()), ("acquire_timeout", "5s".into())];

    // A wrong password from the start: no host suits, and the error says why each failed.
    let wrong = url.replace(":first@", ":not-the-password@");
    let rt = one_connection_on(&wrong, &lazy).await;
    let Err(error) = rt.pool("main").unwrap().acquire().await else {
        panic!("a connection with a wrong password");
    };
    let shown = error.to_string();
    assert!(
        shown.contains("failover in progress") && shown.contains("password authentication failed"),
        "{shown}"
    );
    assert!(!shown.contains("not-the-password"), "{shown}");
    rt.shutdown(Duration::from_secs(5)).await.ok();

    // The right one, then the role's password changes and its sessions end: the pool's next
    // connect to its host is refused by a live server, which is no failed connect.
    let rt = one_connection_on(&url, &lazy).await;
    let pool = rt.pool("main").unwrap();
    until_current(&rt, pool, a.addr()).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "alter role {role} password 'second'; \
         select pg_terminate_backend(pid) from pg_stat_activity where usename = '{role}'"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    for _ in 0..3 {
        let Err(error) = pool.acquire().await else {
            panic!("a connection with an old password");
        };
        let mut chain = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(e) = source {
            chain.push_str(&format!(": {e}"));
            source = e.source();
        }
        assert!(chain.contains("password authentication failed"), "{chain}");
    }
    let status = pool.hosts().unwrap();
    assert!(
        status.iter().all(|h| h.failed_connects == 0),
        "a refused login counted as an unreachable host: {status:?}"
    );
    rt.shutdown(Duration::from_secs(5)).await.ok();
}
