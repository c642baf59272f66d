//! Each real error provoked on the test kit's server, as the runtime classifies it.

use std::time::Duration;

use sqlx::Connection;
use sqlx_resilience::classify::{Reach, classify};
use sqlx_resilience::{Error, FailureKind, Runtime};
use sqlx_resilience_testkit::{PgServer, ServerOptions};

use crate::support;

async fn connect(url: &str) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(url).await.expect("connect")
}

async fn exec(conn: &mut sqlx::PgConnection, sql: &'static str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sql).execute(conn).await.map(|_| ())
}

#[tokio::test]
async fn concurrent_serializable_transactions_fail_with_40001_contention() {
    let db = support::db().await;
    let mut a = connect(db.url()).await;
    let mut b = connect(db.url()).await;
    exec(
        &mut a,
        "create table acct (id int primary key, v int); insert into acct values (1, 0), (2, 0)",
    )
    .await
    .unwrap();
    exec(
        &mut a,
        "begin isolation level serializable; select sum(v) from acct",
    )
    .await
    .unwrap();
    exec(
        &mut b,
        "begin isolation level serializable; select sum(v) from acct",
    )
    .await
    .unwrap();
    exec(&mut a, "update acct set v = v + 1 where id = 1")
        .await
        .unwrap();
    exec(&mut b, "update acct set v = v + 1 where id = 2")
        .await
        .unwrap();
    exec(&mut a, "commit").await.unwrap();
    let err = exec(&mut b, "commit").await.unwrap_err();
    let c = classify(&err);
    assert_eq!(c.sqlstate.as_deref(), Some("40001"), "{err}");
    assert_eq!(c.kind, FailureKind::Contention);
    assert!(c.transient && !c.evict && !c.counts_for_breaker);
    assert_eq!(c.reach, Reach::Rejected);
}

#[tokio::test]
async fn a_deadlock_fails_with_40p01_contention() {
    let db = support::db().await;
    // deadlock_timeout is a superuser setting.
    let mut a = connect(db.admin_url()).await;
    let mut b = connect(db.admin_url()).await;
    exec(
        &mut a,
        "create table t (id int primary key); insert into t values (1), (2)",
    )
    .await
    .unwrap();
    exec(&mut a, "set deadlock_timeout = '50ms'").await.unwrap();
    exec(&mut b, "set deadlock_timeout = '50ms'").await.unwrap();
    exec(&mut a, "begin; update t set id = id where id = 1")
        .await
        .unwrap();
    exec(&mut b, "begin; update t set id = id where id = 2")
        .await
        .unwrap();
    let (ra, rb) = tokio::join!(
        exec(&mut a, "update t set id = id where id = 2"),
        exec(&mut b, "update t set id = id where id = 1"),
    );
    let err = ra
        .err()
        .or(rb.err())
        .expect("one side is chosen as the deadlock victim");
    let c = classify(&err);
    assert_eq!(c.sqlstate.as_deref(), Some("40P01"), "{err}");
    assert_eq!(c.kind, FailureKind::Contention);
    assert!(c.transient);
}

#[tokio::test]
async fn lock_timeout_fails_with_55p03_contention() {
    let db = support::db().await;
    let mut a = connect(db.url()).await;
    let mut b = connect(db.url()).await;
    exec(&mut a, "create table t (id int)").await.unwrap();
    exec(&mut a, "begin; lock table t").await.unwrap();
    let err = exec(&mut b, "set lock_timeout = '50ms'; select * from t")
        .await
        .unwrap_err();
    let c = classify(&err);
    assert_eq!(c.sqlstate.as_deref(), Some("55P03"), "{err}");
    assert_eq!(c.kind, FailureKind::Contention);
}

#[tokio::test]
async fn statement_timeout_is_told_apart_from_our_deadline() {
    let db = support::db().await;
    let rt = support::runtime(&db, &[("statement_timeout", "100ms".into())]).await;
    let server_side = rt
        .op("classify::server_timeout")
        .read_only(true)
        .run(|c| {
            Box::pin(async move {
                sqlx::query("select pg_sleep(2)")
                    .execute(c.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap_err();
    assert_eq!(
        server_side.kind(),
        FailureKind::StatementTimeout,
        "{server_side}"
    );
    assert_eq!(server_side.sqlstate().as_deref(), Some("57014"));

    let client_side = rt
        .op("classify::our_deadline")
        .timeout(Duration::from_millis(50))
        .read_only(true)
        .run(|c| {
            Box::pin(async move {
                sqlx::query("select pg_sleep(2)")
                    .execute(c.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap_err();
    assert_eq!(client_side.kind(), FailureKind::Deadline, "{client_side}");
    assert!(matches!(client_side, Error::Timeout { .. }));
}

#[tokio::test]
async fn a_terminated_backend_fails_with_57p01_and_is_evicted() {
    let db = support::db().await;
    let mut victim = connect(db.url()).await;
    let (pid,): (i32,) = sqlx::query_as("select pg_backend_pid()")
        .fetch_one(&mut victim)
        .await
        .unwrap();
    let mut admin = connect(db.admin_url()).await;
    let query = tokio::spawn(async move { exec(&mut victim, "select pg_sleep(5)").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    sqlx::query("select pg_terminate_backend($1)")
        .bind(pid)
        .execute(&mut admin)
        .await
        .unwrap();
    let err = query.await.unwrap().unwrap_err();
    let c = classify(&err);
    assert_eq!(c.sqlstate.as_deref(), Some("57P01"), "{err}");
    assert_eq!(c.kind, FailureKind::ServerShutdown);
    assert!(c.evict && c.transient && c.counts_for_breaker);
    assert_eq!(c.reach, Reach::Unknown);
}

#[tokio::test]
async fn too_many_connections_is_backpressure_that_never_trips() {
    let server = PgServer::start_with(
        ServerOptions::new()
            .max_connections(5)
            .superuser_reserved_connections(2),
    )
    .await
    .unwrap();
    let db = server.create_database().await.unwrap();
    let mut held = Vec::new();
    let err = loop {
        match sqlx::PgConnection::connect(db.url()).await {
            Ok(c) => held.push(c),
            Err(e) => break e,
        }
        assert!(held.len() <= 5, "the server should refuse before this");
    };
    assert_eq!(held.len(), 3, "5 max_connections - 2 reserved");
    let c = classify(&err);
    assert_eq!(c.sqlstate.as_deref(), Some("53300"), "{err}");
    assert_eq!(c.kind, FailureKind::Backpressure);
    assert!(c.transient && !c.counts_for_breaker);
    assert_eq!(c.reach, Reach::NotSent);

    // Through a runtime: an acquire that cannot open a connection is reported, and a breaker
    // does not open on it.
    let rt = Runtime::builder()
        .url(db.url())
        .env_vars(Vec::<(String, String)>::new())
        .pool(
            "main",
            &[
                ("startup", "lazy".into()),
                ("acquire_timeout", "300ms".into()),
            ],
        )
        .declare(
            sqlx_resilience::PolicyKind::Breaker,
            "b",
            &[("consecutive_failures", 1u32.into())],
        )
        .set("budget.mode", "warn")
        .build()
        .await
        .unwrap();
    for _ in 0..3 {
        let e = crate::support::scalar_i64_with(&rt, |o| o.breaker("b"), "select 1::int8")
            .await
            .unwrap_err();
        assert!(matches!(e, Error::AcquireTimeout { .. }), "{e}");
    }
    assert_eq!(
        rt.breaker("b").unwrap().state(),
        sqlx_resilience::breaker::BreakerState::Closed
    );
    drop(held);
}

#[tokio::test]
async fn constraint_violations_are_never_retried() {
    let db = support::db().await;
    let rt = support::builder(&db, &[])
        .declare(
            sqlx_resilience::PolicyKind::Retry,
            "r",
            &[("attempts", 5u32.into()), ("base", "1ms".into())],
        )
        .build()
        .await
        .unwrap();
    support::setup(
        &rt,
        "classify::ddl",
        "create table u (id int primary key); insert into u values (1)",
    )
    .await;
    let err = rt
        .op("classify::dup")
        .retry("r")
        .idempotent(true)
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
    match &err {
        Error::Database { kind, attempts, .. } => {
            assert_eq!(*kind, FailureKind::Constraint);
            assert_eq!(*attempts, 1);
        }
        other => panic!("{other}"),
    }
    assert_eq!(err.sqlstate().as_deref(), Some("23505"));
    assert_eq!(rt.retry_policy("r").unwrap().metrics().retries.len(), 0);
}
