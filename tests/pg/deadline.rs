//! Deadlines that reach the server.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx_resilience::{Error, FailureKind, PolicyKind};

use crate::support;

/// Statements of `app` running `pg_sleep` on the server, seen by a superuser.
async fn active_sleepers(admin: &mut sqlx::PgConnection, app: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "select count(*) from pg_stat_activity \
         where application_name = $1 and state = 'active' and query like '%pg_sleep%'",
    )
    .bind(app)
    .fetch_one(admin)
    .await
    .unwrap();
    n
}

#[tokio::test]
async fn a_timed_out_statement_stops_on_the_server_and_the_pool_keeps_serving() {
    let db = support::db().await;
    let rt = support::runtime(
        &db,
        &[
            ("max", 1u32.into()),
            ("application_name", "deadline-test".into()),
        ],
    )
    .await;
    let mut admin = sqlx::PgConnection::connect(db.admin_url()).await.unwrap();
    let started = Instant::now();
    let err = rt
        .op("deadline::sleep")
        .timeout(Duration::from_millis(300))
        .read_only(true)
        .run(|c| {
            Box::pin(async move {
                sqlx::query("select pg_sleep(30)")
                    .execute(c.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap_err();
    let gave_up = Instant::now();
    assert!(matches!(err, Error::Timeout { attempt: 1, .. }), "{err}");
    assert_eq!(err.kind(), FailureKind::Deadline);
    assert!(gave_up - started >= Duration::from_millis(300));

    // The server stops too: nothing of ours is active within a second.
    let mut stopped_after = None;
    while gave_up.elapsed() < Duration::from_secs(5) {
        if active_sleepers(&mut admin, "deadline-test").await == 0 {
            stopped_after = Some(gave_up.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let stopped_after =
        stopped_after.expect("the abandoned statement is still running on the server");
    assert!(
        stopped_after <= Duration::from_secs(1),
        "server kept running for {stopped_after:?}"
    );

    // The pool (one connection) keeps serving.
    assert_eq!(support::scalar_i64(&rt, "select 3::int8").await.unwrap(), 3);
    let stats = rt.pool("main").unwrap().stats();
    assert_eq!(stats.evicted, 1);
}

#[tokio::test]
async fn the_deadline_covers_every_attempt_and_retry_delay() {
    let db = support::db().await;
    let rt = support::builder(&db, &[])
        .declare(
            PolicyKind::Retry,
            "patient",
            &[
                ("attempts", 10u32.into()),
                ("base", "200ms".into()),
                ("jitter", "none".into()),
            ],
        )
        .build()
        .await
        .unwrap();
    let started = Instant::now();
    let err = rt
        .op("deadline::retries")
        .timeout(Duration::from_millis(150))
        .deadline(Duration::from_millis(700))
        .retry("patient")
        .read_only(true)
        .run(|c| {
            Box::pin(async move {
                sqlx::query("select pg_sleep(5)")
                    .execute(c.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap_err();
    let took = started.elapsed();
    match &err {
        Error::DeadlineExceeded { attempts, last, .. } => {
            // 150 ms attempt, 200 ms delay, 150 ms attempt, then a 400 ms delay would pass the
            // deadline: stop rather than sleep into it.
            assert_eq!(*attempts, 2, "{err}");
            assert!(
                matches!(last.as_deref(), Some(Error::Timeout { .. })),
                "{err}"
            );
        }
        other => panic!("expected the deadline, got {other}"),
    }
    assert!(
        took < Duration::from_millis(700),
        "no retry sleeps past the deadline: {took:?}"
    );
}

#[tokio::test]
async fn a_deadline_shorter_than_the_timeout_cuts_the_attempt() {
    let db = support::db().await;
    let rt = support::runtime(&db, &[]).await;
    let err = rt
        .op("deadline::short")
        .timeout(Duration::from_secs(10))
        .deadline(Duration::from_millis(200))
        .read_only(true)
        .run(|c| {
            Box::pin(async move {
                sqlx::query("select pg_sleep(5)")
                    .execute(c.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::DeadlineExceeded { attempts: 1, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("deadline of 200ms exceeded"),
        "{err}"
    );
}

#[tokio::test]
async fn a_transaction_gets_the_remaining_time_as_its_statement_timeout() {
    let db = support::db().await;
    let rt = support::runtime(&db, &[]).await;
    let ms = rt
        .op("deadline::tx")
        .timeout(Duration::from_secs(3))
        .run_tx(|tx| {
            Box::pin(async move {
                let (v,): (String,) = sqlx::query_as("select current_setting('statement_timeout')")
                    .fetch_one(tx.as_mut())
                    .await?;
                Ok::<_, Error>(v)
            })
        })
        .await
        .unwrap();
    let ms: u64 = ms
        .trim_end_matches("ms")
        .parse()
        .unwrap_or_else(|_| panic!("{ms}"));
    assert!(
        ms > 2_000 && ms <= 3_000,
        "statement_timeout inside the transaction: {ms}ms"
    );
    // Outside the transaction the session setting is back.
    assert_eq!(crate::support::show(&rt, "statement_timeout").await, "0");
}

/// A runtime whose pool is named by `app`, with a table `marks` and a retry policy `r`.
async fn with_marks(db: &sqlx_resilience_testkit::TestDb, app: &str) -> sqlx_resilience::Runtime {
    let rt = support::builder(db, &[("application_name", app.into())])
        .declare(
            PolicyKind::Retry,
            "r",
            &[("attempts", 4u32.into()), ("base", "10ms".into())],
        )
        .build()
        .await
        .unwrap();
    support::setup(&rt, "deadline::ddl", "create table marks (v bigint)").await;
    rt
}

#[tokio::test]
async fn a_write_cut_off_by_its_timeout_is_an_unknown_outcome_and_not_run_again() {
    let db = support::db().await;
    let rt = with_marks(&db, "unknown-timeout-test").await;
    let runs = AtomicU32::new(0);
    let err = rt
        .op("deadline::write_then_sleep")
        .timeout(Duration::from_millis(100))
        .retry("r")
        .run(|c| {
            let runs = &runs;
            Box::pin(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                sqlx::query("insert into marks values (1)")
                    .execute(c.as_mut())
                    .await?;
                sqlx::query("select pg_sleep(30)")
                    .execute(c.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap_err();
    // The insert committed before the timeout: a second run would have written twice.
    assert_eq!(
        support::scalar_i64(&rt, "select count(*) from marks")
            .await
            .unwrap(),
        1
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1, "never run again");
    assert_eq!(err.kind(), FailureKind::UnknownOutcome, "{err}");
    let Error::UnknownOutcome { source, .. } = &err else {
        panic!("expected an unknown outcome, got {err}");
    };
    assert!(
        matches!(**source, Error::Timeout { attempt: 1, .. }),
        "the timeout is the source: {source}"
    );
    assert!(
        std::error::Error::source(&err)
            .is_some_and(|s| s.to_string().contains("timed out after 100ms")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_read_only_or_idempotent_op_cut_off_by_its_timeout_gets_a_timeout() {
    let db = support::db().await;
    let rt = with_marks(&db, "timeout-test").await;
    let read = rt
        .op("deadline::read_sleep")
        .timeout(Duration::from_millis(100))
        .read_only(true)
        .run(|c| {
            Box::pin(async move {
                sqlx::query("select pg_sleep(30)")
                    .execute(c.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap_err();
    assert!(matches!(read, Error::Timeout { attempt: 1, .. }), "{read}");
    assert_eq!(read.kind(), FailureKind::Deadline);

    let idempotent = rt
        .op("deadline::upsert_sleep")
        .timeout(Duration::from_millis(100))
        .idempotent(true)
        .run(|c| {
            Box::pin(async move {
                sqlx::query("insert into marks values (2)")
                    .execute(c.as_mut())
                    .await?;
                sqlx::query("select pg_sleep(30)")
                    .execute(c.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap_err();
    assert!(
        matches!(idempotent, Error::Timeout { attempt: 1, .. }),
        "{idempotent}"
    );

    // A transaction cut off before COMMIT is rolled back: nothing applied, a plain timeout.
    let tx = rt
        .op("deadline::tx_write_sleep")
        .timeout(Duration::from_millis(300))
        .run_tx(|tx| {
            Box::pin(async move {
                sqlx::query("insert into marks values (3)")
                    .execute(tx.as_mut())
                    .await?;
                sqlx::query("select pg_sleep(30)")
                    .execute(tx.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap_err();
    // Whichever stops it first, the client's timeout or the server's statement_timeout set
    // from the time left, the outcome is known.
    assert!(
        matches!(
            tx.kind(),
            FailureKind::Deadline | FailureKind::StatementTimeout
        ),
        "{tx}"
    );
    assert_eq!(
        support::scalar_i64(&rt, "select count(*) from marks where v = 3")
            .await
            .unwrap(),
        0
    );
}
