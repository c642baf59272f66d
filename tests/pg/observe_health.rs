//! The health report, readiness and liveness on real faults: a stopped server, a saturated
//! pool, a blackholed connection, an open breaker.

use std::time::Duration;

use sqlx_resilience::health::{HealthReport, HealthStatus};
use sqlx_resilience::{PolicyKind, Runtime};
use sqlx_resilience_testkit::{FaultProxy, PgServer, ShutdownMode};

use crate::support::{self, scalar_i64};

/// The health report, taken again (up to 20 times) while its probe's round trip was slow
/// enough to cost points: a loaded machine sometimes takes 100 ms for one, and the tests
/// below count the points of what they arranged.
async fn health_at_ease(rt: &Runtime) -> HealthReport {
    let mut h = rt.health().await;
    for _ in 0..20 {
        if !h.penalties.iter().any(|p| p.reason.contains("round trip")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        h = rt.health().await;
    }
    h
}

#[tokio::test]
async fn a_quiet_runtime_is_healthy_with_the_server_version_and_round_trip() {
    let db = support::db().await;
    let rt = support::runtime(&db, &[]).await;
    let h = health_at_ease(&rt).await;
    assert_eq!(h.status, HealthStatus::Healthy, "{h:#?}");
    assert_eq!(h.score, 100);
    assert!(h.penalties.is_empty());
    assert_eq!(h.recommendations, ["all systems operating normally"]);
    let d = &h.databases[0];
    assert!(d.reachable);
    assert_eq!(d.pools, ["main"]);
    let (version,): (String,) = sqlx::query_as("select current_setting('server_version')")
        .fetch_one(rt.pool("main").unwrap().sqlx())
        .await
        .unwrap();
    assert_eq!(d.server_version.as_deref(), Some(version.as_str()));
    assert!(d.round_trip_ms.unwrap() > 0.0);
    assert_eq!(h.pools[0].name, "main");
    let json = serde_json::to_value(&h).unwrap();
    assert_eq!(json["status"], "healthy");
    assert_eq!(json["score"], 100);
    assert!(rt.ready().await.ready);
    assert!(rt.live());
}

#[tokio::test]
async fn a_saturated_pool_is_degraded_with_advice_naming_its_slow_ops() {
    let db = support::db().await;
    let rt = support::runtime(
        &db,
        // The waiter below waits while the report is taken: generous, so that a slow machine
        // does not time it out.
        &[("max", 2u32.into()), ("acquire_timeout", "60s".into())],
    )
    .await;
    scalar_i64(&rt, "select 1::int8 from pg_sleep(0.02)")
        .await
        .unwrap();
    let pool = rt.pool("main").unwrap().clone();
    let a = pool.acquire().await.unwrap();
    let b = pool.acquire().await.unwrap();
    let waiter = tokio::spawn({
        let rt = rt.clone();
        async move { scalar_i64(&rt, "select 1::int8").await }
    });
    for _ in 0..200 {
        if pool.stats().waiting > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let h = health_at_ease(&rt).await;
    assert_eq!(h.status, HealthStatus::Degraded, "{h:#?}");
    assert_eq!(
        h.score, 65,
        "100 - 25 (at 100%) - 10 (a caller waiting): {h:#?}"
    );
    assert_eq!(h.pools[0].status, HealthStatus::Degraded);
    assert_eq!(h.pools[0].utilization_pct, 100.0);
    let advice = h
        .recommendations
        .iter()
        .find(|r| r.starts_with("pool main at 100%"))
        .unwrap_or_else(|| panic!("{:?}", h.recommendations));
    assert!(
        advice
            .contains("(2 of 2 in use, 1 waiting): raise max or find slow ops: tests::scalar p99"),
        "{advice}"
    );
    assert!(
        h.databases[0].reachable,
        "a busy pool is not an unreachable server"
    );
    assert!(rt.ready().await.ready, "busy, but ready");
    drop((a, b));
    waiter.await.unwrap().unwrap();
    // Released connections go back to the pool in a task of sqlx's, and a loaded machine's
    // round trip may pass 100 ms for a moment: poll until the pool is seen idle again.
    let mut after = rt.health().await;
    for _ in 0..100 {
        if after.status == HealthStatus::Healthy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = rt.health().await;
    }
    assert_eq!(after.status, HealthStatus::Healthy, "{after:#?}");
}

#[tokio::test]
async fn a_stopped_server_is_unhealthy_and_not_ready_but_live_then_recovers() {
    let server = PgServer::start().await.unwrap();
    let db = server.create_database().await.unwrap();
    let rt = support::builder(&db, &[])
        .set("monitor.health_timeout", "2s")
        .build()
        .await
        .unwrap();
    assert_eq!(health_at_ease(&rt).await.status, HealthStatus::Healthy);

    server.stop(ShutdownMode::Fast).await.unwrap();
    let h = rt.health().await;
    assert_eq!(h.status, HealthStatus::Unhealthy, "{h:#?}");
    assert_eq!(h.score, 0);
    assert!(!h.databases[0].reachable);
    assert!(h.databases[0].error.is_some());
    assert!(
        h.recommendations[0].contains("is unreachable")
            && h.recommendations[0].contains("pools main"),
        "{:?}",
        h.recommendations
    );
    let ready = rt.ready().await;
    assert!(!ready.ready);
    assert!(ready.reasons[0].contains("does not answer"), "{ready:?}");
    assert!(rt.live(), "a database outage does not fail liveness");

    server.start_again().await.unwrap();
    let mut status = HealthStatus::Unhealthy;
    for _ in 0..50 {
        status = rt.health().await.status;
        if status == HealthStatus::Healthy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, HealthStatus::Healthy);
}

#[tokio::test]
async fn health_answers_within_its_own_timeout_when_the_server_hangs() {
    let db = support::db().await;
    let proxy = FaultProxy::start(db.server().tcp_addr()).await.unwrap();
    let rt = Runtime::builder()
        .url(db.url_via(proxy.addr()))
        .env_vars(Vec::<(String, String)>::new())
        .pool("main", &[("min", 1u32.into())])
        .set("monitor.health_timeout", "2s")
        .build()
        .await
        .unwrap();
    let before = rt.health().await;
    assert_eq!(before.status, HealthStatus::Healthy, "{before:#?}");
    proxy.blackhole();
    // The guard only stops a hang from stalling the suite; the report must come from the
    // health check's own 2 s timeout.
    let h = tokio::time::timeout(Duration::from_secs(20), rt.health())
        .await
        .expect("health answered");
    assert_eq!(h.status, HealthStatus::Unhealthy);
    let error = h.databases[0].error.as_deref().unwrap();
    assert!(error.contains("no answer within 2s"), "{error}");
    assert!(!rt.ready().await.ready);
    proxy.heal().await.unwrap();
}

#[tokio::test]
async fn an_open_breaker_degrades_health_and_says_so() {
    let db = support::db().await;
    let rt = support::builder(&db, &[])
        .declare(PolicyKind::Breaker, "harvest_stats", &[])
        .build()
        .await
        .unwrap();
    rt.breaker("harvest_stats").unwrap().force_open();
    let h = health_at_ease(&rt).await;
    assert_eq!((h.status, h.score), (HealthStatus::Degraded, 75), "{h:#?}");
    assert_eq!(h.breakers[0].state, "forced_open");
    assert!(h.recommendations[0].contains("breaker harvest_stats was forced open"));
    rt.breaker("harvest_stats").unwrap().reset();
    assert_eq!(health_at_ease(&rt).await.status, HealthStatus::Healthy);
}
