//! Transactions: commit, rollback on error, panic and cancellation, and the whole transaction
//! run again after a real serialization failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::Connection;
use sqlx_resilience::{Error, FailureKind, Isolation, PolicyKind, Runtime};

use crate::support;

async fn setup(db: &sqlx_resilience_testkit::TestDb) -> Runtime {
    let rt = support::builder(db, &[("max", 4u32.into())])
        .declare(
            PolicyKind::Retry,
            "contention",
            &[("attempts", 5u32.into()), ("base", "5ms".into())],
        )
        .build()
        .await
        .unwrap();
    rt.op("tx::ddl")
        .run(|c| {
            Box::pin(async move {
                sqlx::raw_sql(
                    "create table acct (id int primary key, v int not null); \
                     insert into acct values (1, 0), (2, 0); \
                     create table log (note text)",
                )
                .execute(c.as_mut())
                .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap();
    rt
}

async fn notes(rt: &Runtime) -> i64 {
    support::scalar_i64(rt, "select count(*) from log")
        .await
        .unwrap()
}

#[tokio::test]
async fn commits_on_success_and_rolls_back_on_error() {
    let db = support::db().await;
    let rt = setup(&db).await;
    rt.op("tx::ok")
        .run_tx(|tx| {
            Box::pin(async move {
                sqlx::query("insert into log values ('kept')")
                    .execute(tx.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap();
    assert_eq!(notes(&rt).await, 1);
    let err = rt
        .op("tx::fails")
        .run_tx(|tx| {
            Box::pin(async move {
                sqlx::query("insert into log values ('rolled back')")
                    .execute(tx.as_mut())
                    .await?;
                sqlx::query("insert into acct values (1, 0)")
                    .execute(tx.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Constraint, "{err}");
    assert_eq!(notes(&rt).await, 1, "the first insert was rolled back");
}

#[tokio::test]
async fn rolls_back_when_the_body_panics_and_the_connection_stays_usable() {
    let db = support::db().await;
    let rt = setup(&db).await;
    let task = tokio::spawn({
        let rt = rt.clone();
        async move {
            rt.op("tx::panics")
                .run_tx(|tx| {
                    Box::pin(async move {
                        sqlx::query("insert into log values ('never')")
                            .execute(tx.as_mut())
                            .await?;
                        if true {
                            panic!("the body panics mid-transaction");
                        }
                        Ok::<_, Error>(())
                    })
                })
                .await
        }
    });
    assert!(task.await.unwrap_err().is_panic());
    assert_eq!(notes(&rt).await, 0);
    for _ in 0..8 {
        assert_eq!(support::scalar_i64(&rt, "select 1::int8").await.unwrap(), 1);
    }
}

#[tokio::test]
async fn rolls_back_when_the_caller_gives_up() {
    let db = support::db().await;
    let rt = setup(&db).await;
    let call = rt.op("tx::cancelled").run_tx(|tx| {
        Box::pin(async move {
            sqlx::query("insert into log values ('never')")
                .execute(tx.as_mut())
                .await?;
            sqlx::query("select pg_sleep(0.3)")
                .execute(tx.as_mut())
                .await?;
            Ok::<_, Error>(())
        })
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(100), call)
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(notes(&rt).await, 0);
}

#[tokio::test]
async fn a_real_serialization_failure_runs_the_whole_transaction_again() {
    let db = support::db().await;
    let rt = setup(&db).await;
    // A rival serializable transaction, held open on its own connection, read the same rows;
    // it commits while our first attempt is in flight, so our commit fails with 40001.
    let mut rival = sqlx::PgConnection::connect(db.url()).await.unwrap();
    sqlx::raw_sql("begin isolation level serializable; select sum(v) from acct")
        .execute(&mut rival)
        .await
        .unwrap();
    let rival = Arc::new(tokio::sync::Mutex::new(Some(rival)));
    let runs = AtomicU32::new(0);
    let total = rt
        .op("tx::transfer")
        .retry("contention")
        .isolation(Isolation::Serializable)
        .run_tx(|tx| {
            let rival = rival.clone();
            let runs = &runs;
            Box::pin(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                let (sum,): (i64,) = sqlx::query_as("select sum(v)::int8 from acct")
                    .fetch_one(tx.as_mut())
                    .await?;
                sqlx::query("update acct set v = v + 1 where id = 1")
                    .execute(tx.as_mut())
                    .await?;
                if let Some(mut r) = rival.lock().await.take() {
                    sqlx::raw_sql("update acct set v = v + 10 where id = 2; commit")
                        .execute(&mut r)
                        .await?;
                }
                sqlx::query("insert into log values ('transfer')")
                    .execute(tx.as_mut())
                    .await?;
                Ok::<_, Error>(sum)
            })
        })
        .await
        .unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "the whole transaction ran twice"
    );
    assert_eq!(total, 10, "the second run saw the rival's commit");
    assert_eq!(notes(&rt).await, 1, "only the committed run left its note");
    let retries = rt.retry_policy("contention").unwrap().metrics().retries;
    assert_eq!(retries, vec![(FailureKind::Contention, 1)]);
}

#[tokio::test]
async fn without_a_retry_policy_contention_is_returned_with_its_sqlstate() {
    let db = support::db().await;
    let rt = setup(&db).await;
    let mut rival = sqlx::PgConnection::connect(db.url()).await.unwrap();
    sqlx::raw_sql("begin isolation level serializable; select sum(v) from acct")
        .execute(&mut rival)
        .await
        .unwrap();
    let rival = Arc::new(tokio::sync::Mutex::new(Some(rival)));
    let err = rt
        .op("tx::no_retry")
        .isolation(Isolation::Serializable)
        .run_tx(|tx| {
            let rival = rival.clone();
            Box::pin(async move {
                sqlx::query("select sum(v) from acct")
                    .execute(tx.as_mut())
                    .await?;
                sqlx::query("update acct set v = v + 1 where id = 1")
                    .execute(tx.as_mut())
                    .await?;
                if let Some(mut r) = rival.lock().await.take() {
                    sqlx::raw_sql("update acct set v = v + 10 where id = 2; commit")
                        .execute(&mut r)
                        .await?;
                }
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate().as_deref(), Some("40001"), "{err}");
    assert!(
        err.to_string()
            .contains("op `tx::no_retry` on pool `main`: contention"),
        "{err}"
    );
}

#[tokio::test]
async fn pg_stat_activity_shows_which_op_holds_a_transaction() {
    let db = support::db().await;
    let rt = setup(&db).await;
    let mut admin = sqlx::PgConnection::connect(db.admin_url()).await.unwrap();
    let (held, seen) = tokio::join!(
        rt.op("tx::holds_a_lock").run_tx(|tx| {
            Box::pin(async move {
                sqlx::query("update acct set v = v where id = 1")
                    .execute(tx.as_mut())
                    .await?;
                sqlx::query("select pg_sleep(0.5)")
                    .execute(tx.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        }),
        async {
            for _ in 0..100 {
                let names: Vec<(String,)> = sqlx::query_as(
                    "select application_name from pg_stat_activity where datname = current_database() \
                     and state <> 'idle' and pid <> pg_backend_pid()",
                )
                .fetch_all(&mut admin)
                .await
                .unwrap();
                if !names.is_empty() {
                    return names;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Vec::new()
        },
    );
    held.unwrap();
    assert_eq!(seen, vec![("tx::holds_a_lock".to_owned(),)]);
    // After the transaction the session's own name is back.
    assert_eq!(support::show(&rt, "application_name").await, "main");
}

/// A read-only op's transaction begins `READ ONLY` whichever way it is run: the op builder's
/// `run_tx`, a prebuilt `Op`'s `run_tx` (these two disagreed when the op also had an
/// isolation), and generated code.
#[tokio::test]
async fn a_read_only_ops_transaction_is_read_only_however_it_is_run() {
    let db = support::db().await;
    let rt = setup(&db).await;
    fn write<'c>(
        tx: &'c mut sqlx_resilience::Tx<'_>,
    ) -> sqlx_resilience::BoxFuture<'c, Result<(), Error>> {
        Box::pin(async move {
            sqlx::query("insert into log values ('written by a read-only op')")
                .execute(tx.as_mut())
                .await?;
            Ok(())
        })
    }
    let builder = || {
        rt.op("tx::read_only")
            .read_only(true)
            .isolation(Isolation::RepeatableRead)
    };
    let via_builder = builder().run_tx(write).await.unwrap_err();
    let via_op = builder().build().unwrap().run_tx(write).await.unwrap_err();
    for e in [via_builder, via_op] {
        assert_eq!(
            e.sqlstate().as_deref(),
            Some("25006"),
            "cannot execute INSERT in a read-only transaction: {e}"
        );
    }
    assert_eq!(notes(&rt).await, 0, "nothing was written");
}
