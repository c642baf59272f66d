//! Circuit breakers on real faults: what trips them and what never does.

use std::time::{Duration, Instant};

use sqlx_resilience::breaker::{BreakerEvent, BreakerState, Recovery, TransitionReason};
use sqlx_resilience::{Error, PolicyKind, Runtime};
use sqlx_resilience_testkit::{PgServer, ShutdownMode};

use crate::support::{self, scalar_i64_with};

fn builder(
    url: &str,
    breaker: &[(&str, sqlx_resilience::Value)],
) -> sqlx_resilience::RuntimeBuilder {
    Runtime::builder()
        .url(url)
        .env_vars(Vec::<(String, String)>::new())
        .pool(
            "main",
            &[("acquire_timeout", "200ms".into()), ("max", 4u32.into())],
        )
        .declare(PolicyKind::Breaker, "db", breaker)
}

async fn read(rt: &Runtime) -> Result<i64, Error> {
    scalar_i64_with(rt, |o| o.breaker("db"), "select 1::int8").await
}

#[tokio::test]
async fn a_stopped_server_opens_the_breaker_and_the_servers_answer_closes_it_again() {
    let server = PgServer::start().await.unwrap();
    let db = server.create_database().await.unwrap();
    // open_for is far longer than the test: only the server's answer can end the open state.
    let rt = builder(
        db.url(),
        &[
            ("consecutive_failures", 3u32.into()),
            ("open_for", "1h".into()),
        ],
    )
    .build()
    .await
    .unwrap();
    let breaker = rt.breaker("db").unwrap().clone();
    let mut events = breaker.subscribe();
    assert_eq!(read(&rt).await.unwrap(), 1);

    server.stop(ShutdownMode::Fast).await.unwrap();
    // Each call fails (a dead pooled connection, no server to connect to, then a server the
    // probe found down) until three failures have been counted.
    let mut calls = 0;
    while breaker.state() != BreakerState::Open {
        calls += 1;
        assert!(calls <= 3, "three failures open the breaker");
        let e = read(&rt).await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::AcquireTimeout {
                    unreachable: true,
                    ..
                } | Error::Database { .. }
                    | Error::Unavailable { .. }
            ),
            "{e}"
        );
    }
    assert_eq!(breaker.metrics().failures_total, 3);
    assert_eq!(breaker.recovery(), Some(Recovery::ServerProbe));
    // Open because the server is unreachable: a call waits (within its pool's acquire timeout,
    // 200 ms here) for the server, then says the database is unavailable, and since when.
    let e = read(&rt).await.unwrap_err();
    match &e {
        Error::Unavailable {
            breaker, down_for, ..
        } => {
            assert_eq!(breaker.as_deref(), Some("db"));
            assert!(*down_for > Duration::ZERO, "{e}");
        }
        other => panic!("expected Unavailable, got {other}"),
    }
    let text = e.to_string();
    assert!(text.contains("unavailable, unreachable since"), "{text}");
    assert!(text.contains("circuit breaker `db`"), "{text}");
    let status = rt.servers();
    assert_eq!(status.len(), 1);
    assert!(
        status[0].down && status[0].down_since.is_some(),
        "{status:?}"
    );

    server.start_again().await.unwrap();
    let back = Instant::now();
    // The next probe reaches the server and half-opens the breaker, long before open_for.
    let answer = loop {
        match read(&rt).await {
            Ok(v) => break v,
            Err(e) => {
                assert!(
                    back.elapsed() < Duration::from_secs(60),
                    "the breaker never saw the server come back: {e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert_eq!(answer, 1);
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert!(!rt.servers()[0].down);
    assert_eq!(rt.servers()[0].outages, 1);

    let mut seen: Vec<(BreakerState, BreakerState, TransitionReason)> = Vec::new();
    while let Ok(BreakerEvent {
        from, to, reason, ..
    }) = events.try_recv()
    {
        seen.push((from, to, reason));
    }
    let states: Vec<_> = seen.iter().map(|(f, t, _)| (*f, *t)).collect();
    assert_eq!(
        states,
        [
            (BreakerState::Closed, BreakerState::Open),
            (BreakerState::Open, BreakerState::HalfOpen),
            (BreakerState::HalfOpen, BreakerState::Closed),
        ]
    );
    assert_eq!(seen[1].2, TransitionReason::ServerAnswered);
}

#[tokio::test]
async fn constraint_violations_and_missing_rows_never_trip_it() {
    let db = support::db().await;
    let rt = builder(db.url(), &[("consecutive_failures", 1u32.into())])
        .build()
        .await
        .unwrap();
    support::setup(
        &rt,
        "breaker::ddl",
        "create table u (id int primary key); insert into u values (1)",
    )
    .await;
    for _ in 0..5 {
        let e = rt
            .op("breaker::dup")
            .breaker("db")
            .run(|c| {
                Box::pin(async move {
                    sqlx::query("insert into u values (1)")
                        .execute(c.as_mut())
                        .await?;
                    Ok::<_, Error>(())
                })
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind(), sqlx_resilience::FailureKind::Constraint);
        let e = rt
            .op("breaker::missing")
            .breaker("db")
            .read_only(true)
            .run(|c| {
                Box::pin(async move {
                    let row: (i32,) = sqlx::query_as("select id from u where id = 2")
                        .fetch_one(c.as_mut())
                        .await?;
                    Ok::<_, Error>(row.0)
                })
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind(), sqlx_resilience::FailureKind::NotFound);
    }
    assert_eq!(rt.breaker("db").unwrap().state(), BreakerState::Closed);
}

#[tokio::test]
async fn bulkhead_and_limiter_rejections_never_trip_it() {
    let db = support::db().await;
    let rt = builder(db.url(), &[("consecutive_failures", 1u32.into())])
        .declare(
            PolicyKind::Bulkhead,
            "one",
            &[("max_concurrent", 1u32.into())],
        )
        .declare(
            PolicyKind::Limiter,
            "slow",
            &[("per_second", 0.1.into()), ("burst", 1u32.into())],
        )
        .build()
        .await
        .unwrap();
    let holder = tokio::spawn({
        let rt = rt.clone();
        async move {
            scalar_i64_with(
                &rt,
                |o| o.breaker("db").bulkhead("one"),
                "select 1::int8 from pg_sleep(0.5)",
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..3 {
        let e = scalar_i64_with(&rt, |o| o.breaker("db").bulkhead("one"), "select 1::int8")
            .await
            .unwrap_err();
        assert!(matches!(e, Error::BulkheadFull { .. }), "{e}");
    }
    holder.await.unwrap().unwrap();
    scalar_i64_with(&rt, |o| o.breaker("db").limiter("slow"), "select 1::int8")
        .await
        .unwrap();
    for _ in 0..3 {
        let e = scalar_i64_with(&rt, |o| o.breaker("db").limiter("slow"), "select 1::int8")
            .await
            .unwrap_err();
        assert!(matches!(e, Error::RateLimited { .. }), "{e}");
    }
    assert_eq!(rt.breaker("db").unwrap().state(), BreakerState::Closed);
    let m = rt.breaker("db").unwrap().metrics();
    assert_eq!((m.rejected_total, m.failures_total), (0, 0));
}

#[tokio::test]
async fn a_forced_open_breaker_turns_calls_away_and_every_one_is_counted() {
    let db = support::db().await;
    let rt = builder(db.url(), &[]).build().await.unwrap();
    assert_eq!(read(&rt).await.unwrap(), 1);
    let breaker = rt.breaker("db").unwrap();
    breaker.force_open();
    for _ in 0..3 {
        let e = read(&rt).await.unwrap_err();
        assert!(
            matches!(&e, Error::BreakerOpen { breaker, .. } if &**breaker == "db"),
            "{e}"
        );
    }
    assert_eq!(breaker.metrics().rejected_total, 3);
    let stats = rt.op_stats();
    let op = stats.iter().find(|s| s.op == "tests::scalar").unwrap();
    assert_eq!((op.calls, op.ok, op.failed), (4, 1, 3));
    assert_eq!(op.failures, [("breaker_open".to_owned(), 3)]);
    assert_eq!(
        op.last_failure.as_ref().map(|l| l.outcome.as_str()),
        Some("breaker_open")
    );
    breaker.reset();
    assert_eq!(read(&rt).await.unwrap(), 1);
}

/// An application's own outcome, returned as `Err`: "already checked out".
#[derive(Debug)]
enum Loan {
    AlreadyOut,
    Db(Error),
}

impl From<Error> for Loan {
    fn from(e: Error) -> Self {
        Loan::Db(e)
    }
}

impl sqlx_resilience::OpError for Loan {
    fn db_error(&mut self) -> Option<&mut Error> {
        match self {
            Loan::Db(e) => Some(e),
            Loan::AlreadyOut => None,
        }
    }
}

#[tokio::test]
async fn an_applications_own_outcome_never_counts_against_the_breaker_and_is_reported_as_such() {
    let server = PgServer::start().await.unwrap();
    let db = server.create_database().await.unwrap();
    let rt = builder(
        db.url(),
        &[
            ("consecutive_failures", 3u32.into()),
            ("open_for", "1h".into()),
        ],
    )
    .declare(PolicyKind::Retry, "transient", &[])
    .build()
    .await
    .unwrap();
    let op = rt
        .op("library::check_out")
        .pool("main")
        .breaker("db")
        .retry("transient")
        .read_only(true)
        .build()
        .unwrap();
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    for _ in 0..20 {
        let runs = runs.clone();
        let outcome: Result<(), Loan> = op
            .run(move |conn| {
                let runs = runs.clone();
                Box::pin(async move {
                    runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    sqlx::query("select 1")
                        .execute(conn.as_mut())
                        .await
                        .map_err(Error::from)?;
                    Err(Loan::AlreadyOut)
                })
            })
            .await;
        assert!(matches!(outcome, Err(Loan::AlreadyOut)), "{outcome:?}");
    }
    assert_eq!(
        runs.load(std::sync::atomic::Ordering::Relaxed),
        20,
        "never retried"
    );
    assert_eq!(rt.breaker("db").unwrap().state(), BreakerState::Closed);
    let stats = rt
        .op_stats()
        .into_iter()
        .find(|s| s.op == "library::check_out")
        .expect("the op's stats");
    assert_eq!(stats.failures, vec![("application".to_owned(), 20)]);
}
