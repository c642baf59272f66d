//! The monitor on real PostgreSQL: a saturated pool raises one alert per cooldown, a stopped
//! server raises `database_unreachable`, and the loop stops with its handle.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx_resilience::monitor::{Alert, AlertKind, Monitor, MonitorConfig, Severity};
use sqlx_resilience_testkit::{PgServer, ShutdownMode};

use crate::support::{self, scalar_i64};

fn collect() -> (
    Arc<Mutex<Vec<Alert>>>,
    impl Fn(&Alert) + Send + Sync + 'static,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let seen = seen.clone();
        move |a: &Alert| seen.lock().unwrap().push(a.clone())
    };
    (seen, sink)
}

fn fast(rt: &sqlx_resilience::Runtime) -> MonitorConfig {
    let mut c = rt.config().settings.monitor.clone();
    c.pool_interval = Duration::from_millis(50);
    c.breaker_interval = Duration::from_millis(50);
    c.health_interval = Duration::from_millis(100);
    c
}

#[tokio::test]
async fn a_saturated_pool_raises_one_alert_per_cooldown() {
    let db = support::db().await;
    let rt = support::runtime(&db, &[("max", 2u32.into())]).await;
    scalar_i64(&rt, "select 1::int8").await.unwrap();
    let pool = rt.pool("main").unwrap().clone();
    let held = (pool.acquire().await.unwrap(), pool.acquire().await.unwrap());

    let (seen, sink) = collect();
    let monitor = Monitor::builder(&rt).config(fast(&rt)).sink(sink).start();
    assert!(monitor.is_running());
    let utilization = |seen: &Arc<Mutex<Vec<Alert>>>| {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|a| a.kind == AlertKind::PoolUtilization)
            .cloned()
            .collect::<Vec<_>>()
    };
    for _ in 0..100 {
        if !utilization(&seen).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Many more checks within the (5 minute) cooldown.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let alerts = utilization(&seen);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].subject, "main");
    assert!(
        alerts[0].message.starts_with("pool main at 100%"),
        "{}",
        alerts[0].message
    );
    assert!(
        rt.recent_alerts()
            .iter()
            .any(|a| a.kind == AlertKind::PoolUtilization),
        "kept in the history"
    );
    let degraded = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.kind == AlertKind::HealthDegraded)
        .count();
    assert_eq!(
        degraded, 1,
        "the health check saw the saturated pool once per cooldown"
    );
    drop(held);
    monitor.stop().await;
}

#[tokio::test]
async fn a_stopped_server_raises_database_unreachable_and_an_open_breaker_its_alert() {
    let server = PgServer::start().await.unwrap();
    let db = server.create_database().await.unwrap();
    let rt = support::builder(&db, &[])
        .declare(sqlx_resilience::PolicyKind::Breaker, "orders", &[])
        .set("monitor.health_timeout", "1s")
        .build()
        .await
        .unwrap();
    let (seen, sink) = collect();
    let monitor = Monitor::builder(&rt).config(fast(&rt)).sink(sink).start();
    rt.breaker("orders").unwrap().force_open();
    server.stop(ShutdownMode::Fast).await.unwrap();
    let find = |kind| {
        seen.lock()
            .unwrap()
            .iter()
            .find(|a: &&Alert| a.kind == kind)
            .cloned()
    };
    for _ in 0..200 {
        if find(AlertKind::DatabaseUnreachable).is_some() && find(AlertKind::BreakerOpen).is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let down = find(AlertKind::DatabaseUnreachable).expect("database_unreachable");
    assert_eq!(down.severity, Severity::Critical);
    assert!(
        down.message.contains("pools main cannot serve"),
        "{}",
        down.message
    );
    let open = find(AlertKind::BreakerOpen).expect("breaker_open");
    assert_eq!(open.subject, "orders");
    drop(monitor);
    server.start_again().await.unwrap();
}

#[tokio::test]
async fn the_loop_stops_when_the_handle_is_dropped_or_the_runtime_shuts_down() {
    let db = support::db().await;
    let rt = support::runtime(&db, &[]).await;
    let monitor = Monitor::builder(&rt).config(fast(&rt)).start();
    assert!(monitor.is_running());
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    for _ in 0..100 {
        if !monitor.is_running() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!monitor.is_running(), "stopped after the runtime shut down");

    let rt = support::runtime(&db, &[]).await;
    let disabled = {
        let mut c = fast(&rt);
        c.enabled = false;
        Monitor::builder(&rt).config(c).start()
    };
    assert!(!disabled.is_running());
    let monitor = Monitor::builder(&rt).config(fast(&rt)).start();
    monitor.stop().await;
}
