//! Retries that only run again what is safe to run again.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::Connection;
use sqlx_resilience::{Error, FailureKind, PolicyKind, Runtime};

use crate::support;

async fn setup(db: &sqlx_resilience_testkit::TestDb) -> Runtime {
    let rt = support::builder(db, &[("application_name", "retry-test".into())])
        .declare(
            PolicyKind::Retry,
            "r",
            &[("attempts", 4u32.into()), ("base", "10ms".into())],
        )
        .build()
        .await
        .unwrap();
    support::setup(&rt, "retry::ddl", "create table marks (v bigint)").await;
    rt
}

/// Terminates the first backend of `retry-test` in `db` seen running `pg_sleep`, polling for up
/// to two minutes: on a loaded 2-core machine the op may take long to get there. Only `db`'s:
/// the tests run side by side on one server, each with a sleeper of its own.
async fn kill_sleeper(db: &sqlx_resilience_testkit::TestDb) {
    let mut admin = sqlx::PgConnection::connect(db.admin_url()).await.unwrap();
    let give_up = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < give_up {
        let (n,): (i64,) = sqlx::query_as(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity \
             where datname = $1 and application_name = 'retry-test' \
               and query like '%pg_sleep%' and state = 'active'",
        )
        .bind(db.name())
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if n > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no sleeping backend to terminate");
}

#[tokio::test]
async fn a_read_cut_off_mid_statement_is_retried_and_succeeds() {
    let db = support::db().await;
    let rt = setup(&db).await;
    let runs = AtomicU32::new(0);
    let (result, ()) = tokio::join!(
        rt.op("retry::read").retry("r").read_only(true).run(|c| {
            let runs = &runs;
            Box::pin(async move {
                let n = runs.fetch_add(1, Ordering::SeqCst);
                let sql = if n == 0 {
                    "select 7::int8 from pg_sleep(30)"
                } else {
                    "select 7::int8"
                };
                let (v,): (i64,) = sqlx::query_as(sql).fetch_one(c.as_mut()).await?;
                Ok::<_, Error>(v)
            })
        }),
        kill_sleeper(&db),
    );
    assert_eq!(result.unwrap(), 7);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_read_that_keeps_failing_is_retried_by_its_policy_until_it_gives_up() {
    let db = support::db().await;
    let rt = setup(&db).await;
    let runs = AtomicU32::new(0);
    let killer = async {
        for _ in 0..5 {
            kill_sleeper(&db).await;
        }
    };
    let (result, ()) = tokio::join!(
        rt.op("retry::doomed").retry("r").read_only(true).run(|c| {
            let runs = &runs;
            Box::pin(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                sqlx::query("select pg_sleep(30)")
                    .execute(c.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        }),
        killer,
    );
    let err = result.unwrap_err();
    assert_eq!(err.kind(), FailureKind::ServerShutdown, "{err}");
    // The policy's four attempts, plus one free run on a fresh connection after the first
    // connection was found dead.
    assert_eq!(runs.load(Ordering::SeqCst), 5);
    let metrics = rt.retry_policy("r").unwrap().metrics();
    assert_eq!(metrics.retries, vec![(FailureKind::ServerShutdown, 3)]);
    assert_eq!(metrics.stops.attempts_exhausted, 1);
}

#[tokio::test]
async fn a_write_cut_off_mid_body_is_an_unknown_outcome_and_not_retried() {
    let db = support::db().await;
    let rt = setup(&db).await;
    let runs = AtomicU32::new(0);
    let (result, ()) = tokio::join!(
        rt.op("retry::write").retry("r").run(|c| {
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
        }),
        kill_sleeper(&db),
    );
    let err = result.unwrap_err();
    assert!(matches!(err, Error::UnknownOutcome { .. }), "{err}");
    assert!(err.to_string().contains("outcome is unknown"), "{err}");
    assert_eq!(err.sqlstate().as_deref(), Some("57P01"));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "never run again");
    // Indeed the first statement had committed: running it again would have written twice.
    assert_eq!(
        support::scalar_i64(&rt, "select count(*) from marks")
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn an_idempotent_write_cut_off_mid_body_is_retried() {
    let db = support::db().await;
    let rt = setup(&db).await;
    let runs = AtomicU32::new(0);
    let slept = std::sync::atomic::AtomicBool::new(false);
    let (result, ()) = tokio::join!(
        rt.op("retry::upsert").retry("r").idempotent(true).run(|c| {
            let (runs, slept) = (&runs, &slept);
            Box::pin(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                sqlx::query(
                    "insert into marks select 1 where not exists (select 1 from marks where v = 1)",
                )
                .execute(c.as_mut())
                .await?;
                // The first run that gets here sleeps until it is cut off (a run before it may
                // have ended early: a dead pooled connection is replaced and run again).
                if !slept.swap(true, Ordering::SeqCst) {
                    sqlx::query("select pg_sleep(30)")
                        .execute(c.as_mut())
                        .await?;
                }
                Ok::<_, Error>(())
            })
        }),
        kill_sleeper(&db),
    );
    result.unwrap();
    assert!(runs.load(Ordering::SeqCst) >= 2, "run again after the cut");
    assert_eq!(
        support::scalar_i64(&rt, "select count(*) from marks")
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn the_servers_statement_timeout_is_not_retried_by_default_but_can_be() {
    let db = support::db().await;
    let rt = support::builder(&db, &[("statement_timeout", "50ms".into())])
        .declare(PolicyKind::Retry, "default", &[("base", "1ms".into())])
        .declare(
            PolicyKind::Retry,
            "once_more",
            &[
                ("base", "1ms".into()),
                ("on.statement_timeout.attempts", 2u32.into()),
            ],
        )
        .build()
        .await
        .unwrap();
    let runs = AtomicU32::new(0);
    let run = |policy: &'static str| {
        let runs = &runs;
        rt.op("retry::slow")
            .retry(policy)
            .read_only(true)
            .run(move |c| {
                Box::pin(async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    sqlx::query("select pg_sleep(1)")
                        .execute(c.as_mut())
                        .await?;
                    Ok::<_, Error>(())
                })
            })
    };
    let err = run("default").await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::StatementTimeout);
    assert_eq!(runs.swap(0, Ordering::SeqCst), 1);
    let err = run("once_more").await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::StatementTimeout);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}
