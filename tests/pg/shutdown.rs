//! Graceful shutdown.

use std::time::Duration;

use sqlx_resilience::Error;

use crate::support::{self, scalar_i64};

#[tokio::test]
async fn shutdown_refuses_new_work_waits_for_work_in_flight_then_closes() {
    let db = support::db().await;
    let rt = support::runtime(&db, &[("max", 2u32.into())]).await;
    let in_flight = tokio::spawn({
        let rt = rt.clone();
        async move { scalar_i64(&rt, "select 5::int8 from pg_sleep(0.5)").await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let shutdown = tokio::spawn({
        let rt = rt.clone();
        async move { rt.shutdown(Duration::from_secs(10)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(rt.is_shutting_down());
    let refused = scalar_i64(&rt, "select 1::int8").await.unwrap_err();
    assert!(matches!(refused, Error::ShuttingDown { .. }), "{refused}");
    assert!(
        refused.to_string().contains("op `tests::scalar`"),
        "{refused}"
    );
    assert_eq!(
        in_flight.await.unwrap().unwrap(),
        5,
        "work in flight finishes"
    );
    shutdown.await.unwrap().unwrap();
    assert!(rt.pool("main").unwrap().is_closed());
}

#[tokio::test]
async fn shutdown_deadline_reports_abandoned_work() {
    let db = support::db().await;
    let rt = support::runtime(&db, &[]).await;
    let stuck = tokio::spawn({
        let rt = rt.clone();
        async move { scalar_i64(&rt, "select 1::int8 from pg_sleep(3)").await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = rt.shutdown(Duration::from_millis(200)).await.unwrap_err();
    match err {
        Error::ShutdownTimeout { in_flight, .. } => assert_eq!(in_flight, 1),
        other => panic!("{other}"),
    }
    stuck.abort();
}
