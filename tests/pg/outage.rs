//! Outages: recovery driven by the server's answer, callers that wait for it within their
//! limits, and breakers opened by the ops' own failures that keep their timer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx_resilience::breaker::{BreakerState, Recovery, TransitionReason};
use sqlx_resilience::recovery::WaitEnd;
use sqlx_resilience::{Error, PolicyKind, Runtime, Value};
use sqlx_resilience_testkit::{PgServer, ShutdownMode, TestDb};

use crate::support::scalar_i64_with;

fn builder(db: &TestDb) -> sqlx_resilience::RuntimeBuilder {
    Runtime::builder()
        .url(db.url())
        .env_vars(Vec::<(String, String)>::new())
}

/// Polls `f` every 20 ms until it is true; panics after a minute (a loaded machine is slow).
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "gave up waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_breaker_opened_by_slow_calls_waits_its_timer_although_the_server_answers() {
    let db = crate::support::db().await;
    let rt = builder(&db)
        .pool("main", &[("max", 4u32.into())])
        .declare(
            PolicyKind::Breaker,
            "slow",
            &[
                ("slow_rate", 50u32.into()),
                ("slow_call", "100ms".into()),
                ("window_calls", 4u32.into()),
                ("minimum_calls", 2u32.into()),
                ("open_for", "2s".into()),
            ],
        )
        .build()
        .await
        .unwrap();
    let breaker = rt.breaker("slow").unwrap().clone();
    let mut events = breaker.subscribe();
    let slow = "select 1::int8 from pg_sleep(0.2)";
    while breaker.state() == BreakerState::Closed {
        scalar_i64_with(&rt, |o| o.breaker("slow"), slow)
            .await
            .unwrap();
    }
    assert_eq!(breaker.recovery(), Some(Recovery::Timer));
    // The server answers every probe, but slow calls are the ops' own: the breaker keeps its
    // timer and turns calls away at once.
    let e = scalar_i64_with(&rt, |o| o.breaker("slow"), "select 1::int8")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::BreakerOpen { .. }), "{e}");
    assert!(rt.servers().iter().all(|s| !s.down));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        breaker.state(),
        BreakerState::Open,
        "no probe ends a timer-driven open state"
    );
    // After open_for, a half-open call closes it.
    let started = Instant::now();
    loop {
        match scalar_i64_with(&rt, |o| o.breaker("slow"), "select 1::int8").await {
            Ok(_) => break,
            Err(e) => {
                assert!(matches!(e, Error::BreakerOpen { .. }), "{e}");
                assert!(started.elapsed() < Duration::from_secs(60), "{e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    let reasons: Vec<TransitionReason> = std::iter::from_fn(|| events.try_recv().ok())
        .map(|e| e.reason)
        .collect();
    assert!(
        matches!(reasons[0], TransitionReason::SlowCallRate { .. }),
        "{reasons:?}"
    );
    assert_eq!(reasons[1], TransitionReason::OpenElapsed);
}

#[tokio::test]
async fn callers_whose_deadline_leaves_room_ride_out_a_short_outage() {
    let server = PgServer::start().await.unwrap();
    let db = server.create_database().await.unwrap();
    let rt = builder(&db)
        .pool(
            "main",
            &[
                ("max", 4u32.into()),
                ("acquire_timeout", "20s".into()),
                ("outage_wait", "20s".into()),
            ],
        )
        .declare(
            PolicyKind::Breaker,
            "db",
            &[
                ("consecutive_failures", 1u32.into()),
                ("open_for", "1h".into()),
            ],
        )
        .declare(
            PolicyKind::Retry,
            "transient",
            &[("attempts", 3u32.into()), ("base", "20ms".into())],
        )
        .build()
        .await
        .unwrap();
    let read = |rt: &Runtime| {
        let rt = rt.clone();
        async move {
            scalar_i64_with(
                &rt,
                |o| {
                    o.breaker("db")
                        .retry("transient")
                        .timeout(Duration::from_secs(5))
                        .deadline(Duration::from_secs(20))
                },
                "select 1::int8",
            )
            .await
        }
    };
    read(&rt).await.unwrap();

    server.stop(ShutdownMode::Fast).await.unwrap();
    // Callers keep coming during the outage; none may fail.
    let callers: Vec<_> = (0..4)
        .map(|i| {
            let rt = rt.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100 * i)).await;
                read(&rt).await
            })
        })
        .collect();
    until("the breaker opens", || {
        rt.breaker("db").unwrap().state() == BreakerState::Open
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.start_again().await.unwrap();
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap(), 1, "a caller failed");
    }
    assert_eq!(rt.breaker("db").unwrap().state(), BreakerState::Closed);
}

#[tokio::test]
async fn past_the_limits_on_waiting_callers_fail_fast_saying_since_when() {
    let server = PgServer::start().await.unwrap();
    let db = server.create_database().await.unwrap();
    let rt = builder(&db)
        .pool(
            "nowait",
            &[
                ("outage_waiters", 0u32.into()),
                ("acquire_timeout", "5s".into()),
            ],
        )
        .pool(
            "short",
            &[
                ("outage_wait", "300ms".into()),
                ("acquire_timeout", "5s".into()),
            ],
        )
        .build()
        .await
        .unwrap();
    let on = |pool: &'static str| {
        let rt = rt.clone();
        async move { scalar_i64_with(&rt, |o| o.pool(pool), "select 1::int8").await }
    };
    assert_eq!(on("nowait").await.unwrap(), 1);
    assert_eq!(rt.servers().len(), 1, "two pools, one server, one watch");

    server.stop(ShutdownMode::Fast).await.unwrap();
    // A failure is reported; a probe confirms the server down.
    let _ = on("short").await;
    until("a probe confirms the outage", || rt.servers()[0].down).await;

    let started = Instant::now();
    let e = on("nowait").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "failed at once, not after the acquire timeout"
    );
    match &e {
        Error::Unavailable { wait, server, .. } => {
            assert_eq!(*wait, WaitEnd::TooManyWaiting, "{e}");
            assert!(server.ends_with(&format!("/{}", db.name())), "{server}");
        }
        other => panic!("expected Unavailable, got {other}"),
    }
    assert_eq!(e.kind(), sqlx_resilience::FailureKind::Unavailable);

    until("the outage is older than outage_wait", || {
        rt.servers()[0]
            .down_for
            .is_some_and(|d| d > Duration::from_millis(300))
    })
    .await;
    let e = on("short").await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unavailable {
                wait: WaitEnd::OutageTooOld,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("outage_wait"), "{e}");

    server.start_again().await.unwrap();
    let back = Instant::now();
    loop {
        match on("short").await {
            Ok(v) => {
                assert_eq!(v, 1);
                break;
            }
            Err(e) => {
                assert!(back.elapsed() < Duration::from_secs(60), "{e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let status = &rt.servers()[0];
    assert!(!status.down && status.outages == 1, "{status:?}");
    assert!(status.failed_probes >= 1, "{status:?}");
}

#[tokio::test]
async fn every_breaker_that_waited_for_the_server_half_opens_on_one_answer() {
    let server = PgServer::start().await.unwrap();
    let db = server.create_database().await.unwrap();
    let trip: &[(&str, Value)] = &[
        ("consecutive_failures", 1u32.into()),
        ("open_for", "1h".into()),
    ];
    let rt = builder(&db)
        .pool("a", &[("acquire_timeout", "300ms".into())])
        .pool("b", &[("acquire_timeout", "300ms".into())])
        .declare(PolicyKind::Breaker, "one", trip)
        .declare(PolicyKind::Breaker, "two", trip)
        .build()
        .await
        .unwrap();
    let rt = Arc::new(rt);
    let call = |pool: &'static str, breaker: &'static str| {
        let rt = Arc::clone(&rt);
        async move { scalar_i64_with(&rt, |o| o.pool(pool).breaker(breaker), "select 1::int8").await }
    };
    call("a", "one").await.unwrap();
    call("b", "two").await.unwrap();
    server.stop(ShutdownMode::Fast).await.unwrap();
    let _ = call("a", "one").await;
    let _ = call("b", "two").await;
    for name in ["one", "two"] {
        assert_eq!(rt.breaker(name).unwrap().state(), BreakerState::Open);
        assert_eq!(
            rt.breaker(name).unwrap().recovery(),
            Some(Recovery::ServerProbe)
        );
    }
    assert_eq!(rt.servers().len(), 1);
    server.start_again().await.unwrap();
    until("both breakers half-open", || {
        ["one", "two"]
            .iter()
            .all(|n| rt.breaker(n).unwrap().state() == BreakerState::HalfOpen)
    })
    .await;
    call("a", "one").await.unwrap();
    call("b", "two").await.unwrap();
    assert_eq!(rt.breaker("one").unwrap().state(), BreakerState::Closed);
    assert_eq!(rt.breaker("two").unwrap().state(), BreakerState::Closed);
}
