//! Injected faults: the server's own errors, a dropped session and added latency, taking the
//! path real faults take (classification, retry, breaker, eviction, deadlines).

use std::time::Duration;

use sqlx_resilience::faults::Fault;
use sqlx_resilience::{Error, FailureKind, PolicyKind, Runtime, Value};

use crate::support::{self, scalar_i64, scalar_i64_with};

const OP: &str = "tests::scalar";

async fn runtime_with_faults(db: &sqlx_resilience_testkit::TestDb) -> Runtime {
    support::builder(db, &[("max", 4.into())])
        .set("faults.enabled", true)
        .declare(
            PolicyKind::Retry,
            "r",
            &[("attempts", 4.into()), ("base", "10ms".into())],
        )
        .declare(
            PolicyKind::Breaker,
            "b",
            &[
                ("consecutive_failures", 3.into()),
                ("open_for", "1m".into()),
            ],
        )
        .build()
        .await
        .expect("runtime")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_injected_sqlstate_is_the_servers_error_and_classified_as_the_real_one() {
    let db = support::db().await;
    let rt = runtime_with_faults(&db).await;
    let faults = rt.faults().expect("enabled");
    // The kinds docs/CLASSIFICATION.md gives these codes.
    let table = [
        ("40001", FailureKind::Contention),
        ("40P01", FailureKind::Contention),
        ("53300", FailureKind::Backpressure),
        ("57P01", FailureKind::ServerShutdown),
        ("08006", FailureKind::ConnectionLost),
        ("25006", FailureKind::Failover),
    ];
    for (code, kind) in table {
        // Armed for every call: a lost connection on a reused one is run again once on a new
        // connection, as it is for the real fault.
        faults.arm(Fault::sqlstate(code).op(OP)).unwrap();
        let e = scalar_i64(&rt, "select 1::int8")
            .await
            .expect_err(&format!("the fault {code} replaces the body"));
        assert_eq!(e.sqlstate().as_deref(), Some(code), "{e}");
        assert_eq!(e.kind(), kind, "{code}: {e}");
        let message = e.as_sqlx().expect("a driver error").to_string();
        assert!(message.contains("fault injected"), "{message}");
        // Disarmed: the next call runs its body.
        faults.clear();
        assert_eq!(scalar_i64(&rt, "select 2::int8").await.unwrap(), 2);
    }
    assert!(faults.injected() >= table.len() as u64);

    // The health report (and the status page built from it) lists armed faults and hits.
    faults.arm(Fault::sqlstate("40001").op(OP).next(3)).unwrap();
    let _ = scalar_i64(&rt, "select 1::int8").await;
    let armed = rt.health().await.faults.expect("enabled");
    assert_eq!(armed.len(), 1);
    assert_eq!(
        (
            armed[0].fault.as_str(),
            armed[0].op.as_deref(),
            armed[0].hits,
            armed[0].left
        ),
        ("40001", Some(OP), 1, Some(2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_are_retried_trip_the_breaker_and_evict_like_real_ones() {
    let db = support::db().await;
    let rt = runtime_with_faults(&db).await;
    let faults = rt.faults().unwrap();

    // Two serialization failures, then the body: the retry policy rides them out.
    faults.arm(Fault::sqlstate("40001").op(OP).next(2)).unwrap();
    let v = scalar_i64_with(&rt, |op| op.retry("r"), "select 7::int8").await;
    assert_eq!(v.unwrap(), 7);
    assert_eq!(faults.armed()[0].hits, 2);
    faults.clear();

    // An application error class the retry policy must not retry: one hit, no retry.
    faults.arm(Fault::sqlstate("23505").op(OP).next(3)).unwrap();
    let e = scalar_i64_with(&rt, |op| op.retry("r"), "select 1::int8")
        .await
        .expect_err("a unique violation is not retried");
    assert_eq!(e.sqlstate().as_deref(), Some("23505"));
    assert_eq!(faults.armed()[0].hits, 1, "not run again");
    faults.clear();

    // Internal errors count against the breaker as real ones do: it opens after three in a
    // row and then turns calls away without running them.
    faults.arm(Fault::sqlstate("XX000").op(OP)).unwrap();
    for _ in 0..3 {
        let e = scalar_i64_with(&rt, |op| op.breaker("b"), "select 1::int8")
            .await
            .expect_err("the server raises XX000");
        assert_eq!(e.kind(), FailureKind::ServerFailure, "{e}");
    }
    let e = scalar_i64_with(&rt, |op| op.breaker("b"), "select 1::int8")
        .await
        .expect_err("the breaker is open");
    assert!(matches!(e, Error::BreakerOpen { .. }), "{e:?}");
    assert_eq!(faults.armed()[0].hits, 3, "an open breaker runs nothing");
    faults.clear();

    // A dropped session: the server ends it, the connection is evicted, never reused, and the
    // retry policy runs the read again on a new one.
    faults.arm(Fault::drop_connection().op(OP).next(1)).unwrap();
    let evicted = rt.pool("main").unwrap().stats().evicted;
    let v = scalar_i64_with(&rt, |op| op.retry("r"), "select 8::int8").await;
    assert_eq!(v.unwrap(), 8);
    assert_eq!(faults.armed()[0].hits, 1);
    assert!(
        rt.pool("main").unwrap().stats().evicted > evicted,
        "the ended session's connection was evicted"
    );
    faults.clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_latency_counts_against_the_ops_timeout() {
    let db = support::db().await;
    let rt = runtime_with_faults(&db).await;
    let faults = rt.faults().unwrap();
    faults
        .arm(Fault::latency(Duration::from_secs(2)).op(OP).next(1))
        .unwrap();
    let started = std::time::Instant::now();
    let e = scalar_i64_with(
        &rt,
        |op| op.timeout(Duration::from_millis(100)),
        "select 1::int8",
    )
    .await
    .expect_err("the added latency outlasts the timeout");
    assert_eq!(e.kind(), FailureKind::Deadline, "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "cut off at the timeout"
    );
    assert_eq!(scalar_i64(&rt, "select 3::int8").await.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_come_from_the_environment_and_are_refused_where_forbidden() {
    let db = support::db().await;
    // Off by default: no faults to arm.
    let rt = support::runtime(&db, &[]).await;
    assert!(rt.faults().is_none());

    // From the environment: one fault armed at start-up.
    let env = [
        ("DB__FAULTS__ENABLED", "true"),
        ("DB__FAULTS__SQLSTATE", "53300"),
        ("DB__FAULTS__OP", OP),
        ("DB__FAULTS__NEXT", "1"),
    ];
    let rt = support::builder(&db, &[])
        .env_prefix("DB")
        .env_vars(env)
        .build()
        .await
        .expect("runtime");
    let e = scalar_i64(&rt, "select 1::int8").await.expect_err("armed");
    assert_eq!(e.sqlstate().as_deref(), Some("53300"));
    assert_eq!(scalar_i64(&rt, "select 1::int8").await.unwrap(), 1);

    // Refused in a forbidden profile, and a malformed SQLSTATE is refused, both at resolve.
    let toml = "faults.enabled = true\nfaults.sqlstate = \"4000\"\n\
                [profiles.production]\nfaults.enabled = true\n";
    let e = support::builder(&db, &[])
        .config_toml(toml, "db.toml")
        .profile("production")
        .resolve()
        .expect_err("forbidden in production");
    let text = e.to_string();
    assert!(
        text.contains("faults.enabled") && text.contains("forbidden"),
        "{text}"
    );
    assert!(
        text.contains("faults.sqlstate"),
        "every problem at once: {text}"
    );

    // Arming from code checks the fault too.
    let rt = support::builder(&db, &[])
        .set("faults.enabled", Value::from(true))
        .build()
        .await
        .unwrap();
    let e = rt
        .faults()
        .unwrap()
        .arm(Fault::sqlstate("00000"))
        .expect_err("not an error class");
    assert!(matches!(e, Error::Config { .. }), "{e:?}");
}
