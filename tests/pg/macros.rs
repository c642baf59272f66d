//! `#[db_op]` functions run for real: methods, free functions and trait methods (native and
//! `#[async_trait]`), under a timeout, a circuit breaker, a rate limiter, and a transaction run
//! again after a real serialization failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::PgConnection;
use sqlx_resilience::{DbError, Error, HasRuntime, Runtime, Tx, db_op};
use tokio::sync::Barrier;

use crate::support;

/// A runtime with every name `policies!` declares in this test binary (in `main.rs`, at the
/// crate root where `#[db_op]` looks by default), found by the builder without being told.
async fn runtime() -> (sqlx_resilience_testkit::TestDb, Runtime) {
    let db = support::db().await;
    let rt = Runtime::builder()
        .url(db.url())
        .env_vars(Vec::<(String, String)>::new())
        .build()
        .await
        .expect("runtime");
    (db, rt)
}

#[derive(HasRuntime)]
struct Repo {
    rt: Runtime,
}

impl Repo {
    #[db_op(pool = "main", read_only, timeout = "5s")]
    async fn plus_one(&self, conn: &mut PgConnection, n: i64) -> Result<i64, DbError> {
        let (v,): (i64,) = sqlx::query_as("select $1::bigint + 1")
            .bind(n)
            .fetch_one(conn)
            .await?;
        Ok(v)
    }
}

#[db_op(pool = "main", read_only)]
async fn concat(
    rt: &Runtime,
    conn: &mut PgConnection,
    a: String,
    b: &str,
) -> Result<String, DbError> {
    let (v,): (String,) = sqlx::query_as("select $1 || $2")
        .bind(a)
        .bind(b)
        .fetch_one(conn)
        .await?;
    Ok(v)
}

trait Native {
    fn double(&self, n: i64) -> impl Future<Output = Result<i64, DbError>> + Send;
}

impl Native for Repo {
    #[db_op(pool = "main", read_only)]
    async fn double(&self, conn: &mut PgConnection, n: i64) -> Result<i64, DbError> {
        let (v,): (i64,) = sqlx::query_as("select $1::bigint * 2")
            .bind(n)
            .fetch_one(conn)
            .await?;
        Ok(v)
    }
}

#[async_trait]
trait Boxed: Send + Sync {
    async fn square(&self, n: i64) -> Result<i64, DbError>;
}

#[async_trait]
impl Boxed for Repo {
    #[db_op(pool = "main", read_only)]
    async fn square(&self, conn: &mut PgConnection, n: i64) -> Result<i64, DbError> {
        let (v,): (i64,) = sqlx::query_as("select $1::bigint * $1")
            .bind(n)
            .fetch_one(conn)
            .await?;
        Ok(v)
    }
}

#[tokio::test]
async fn methods_free_functions_and_trait_methods_run_on_a_pooled_connection() {
    let (_db, rt) = runtime().await;
    assert_eq!(concat(&rt, "a".to_owned(), "b").await.unwrap(), "ab");
    let repo = Repo { rt };
    assert_eq!(repo.plus_one(41).await.unwrap(), 42);
    assert_eq!(repo.double(21).await.unwrap(), 42);
    let boxed: &dyn Boxed = &repo;
    assert_eq!(boxed.square(7).await.unwrap(), 49);
}

#[db_op(pool = "main", timeout = "200ms", read_only)]
async fn sleepy(rt: &Runtime, conn: &mut PgConnection) -> Result<(), DbError> {
    sqlx::query("select pg_sleep(5)").execute(conn).await?;
    Ok(())
}

#[tokio::test]
async fn a_timeout_ends_a_slow_op() {
    let (_db, rt) = runtime().await;
    let started = Instant::now();
    let error = sleepy(&rt).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(error, Error::Timeout { .. }), "{error}");
}

#[db_op(pool = "main", breaker = "forced_open")]
async fn behind_open_breaker(
    rt: &Runtime,
    conn: &mut PgConnection,
    ran: &AtomicU32,
) -> Result<(), DbError> {
    ran.fetch_add(1, Ordering::SeqCst);
    sqlx::query("select 1").execute(conn).await?;
    Ok(())
}

#[tokio::test]
async fn an_open_breaker_rejects_the_op_without_running_it() {
    let (_db, rt) = runtime().await;
    let ran = AtomicU32::new(0);
    let error = behind_open_breaker(&rt, &ran).await.unwrap_err();
    assert!(matches!(error, Error::BreakerOpen { .. }), "{error}");
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[db_op(pool = "main", limiter = "once_a_minute", read_only)]
async fn limited(rt: &Runtime, conn: &mut PgConnection) -> Result<(), DbError> {
    sqlx::query("select 1").execute(conn).await?;
    Ok(())
}

#[tokio::test]
async fn a_rate_limiter_rejects_the_second_call() {
    let (_db, rt) = runtime().await;
    limited(&rt).await.expect("the first call has its permit");
    let error = limited(&rt).await.unwrap_err();
    assert!(matches!(error, Error::RateLimited { .. }), "{error}");
}

/// Write skew: reads the rows of `read`, then inserts into `write`. Two of these with crossed
/// keys cannot both commit under SERIALIZABLE: one fails with 40001 and is run again whole.
/// (The `Arc`s are cloned for each attempt: the runtime's transactional runner does not accept
/// bodies that borrow from the caller yet.)
#[db_op(pool = "main", tx, isolation = "serializable", retry = "contention")]
async fn skew(
    rt: &Runtime,
    tx: &mut Tx<'_>,
    read: i32,
    write: i32,
    both_read: Arc<Barrier>,
    attempts: Arc<AtomicU32>,
) -> Result<(), DbError> {
    let attempt = attempts.fetch_add(1, Ordering::SeqCst);
    let (_n,): (i64,) = sqlx::query_as("select count(*) from skew where k = $1")
        .bind(read)
        .fetch_one(&mut **tx)
        .await?;
    if attempt == 0 {
        both_read.wait().await; // both transactions have read before either writes
    }
    sqlx::query("insert into skew values ($1)")
        .bind(write)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_is_run_again_after_a_serialization_failure() {
    let (_db, rt) = runtime().await;
    sqlx::query("create table skew (k int)")
        .execute(
            &mut *rt
                .pool("main")
                .expect("pool main")
                .acquire()
                .await
                .expect("connection"),
        )
        .await
        .expect("create table");
    let barrier = Arc::new(Barrier::new(2));
    let (first, second) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let rt = Arc::new(rt);
    let a = {
        let (rt, barrier, attempts) = (rt.clone(), barrier.clone(), first.clone());
        tokio::spawn(async move { skew(&rt, 1, 2, barrier, attempts).await })
    };
    let b = {
        let (rt, barrier, attempts) = (rt.clone(), barrier.clone(), second.clone());
        tokio::spawn(async move { skew(&rt, 2, 1, barrier, attempts).await })
    };
    a.await.unwrap().expect("first transfer commits");
    b.await.unwrap().expect("second transfer commits");
    let attempts = first.load(Ordering::SeqCst) + second.load(Ordering::SeqCst);
    assert_eq!(
        attempts, 3,
        "one of the two ran again after its serialization failure"
    );
    let rows: Vec<(i32,)> = sqlx::query_as("select k from skew order by k")
        .fetch_all(&mut *rt.pool("main").unwrap().acquire().await.unwrap())
        .await
        .unwrap();
    assert_eq!(rows, [(1,), (2,)]);
}

/// A transactional op may take the connection inside its transaction, as sqlx users write it
/// (`&mut *conn`): the runtime still begins, commits and rolls back.
#[db_op(pool = "main", tx)]
async fn insert_then_fail(
    rt: &Runtime,
    conn: &mut PgConnection,
    fail: bool,
) -> Result<(), DbError> {
    sqlx::query("insert into tx_plain values (1)")
        .execute(&mut *conn)
        .await?;
    if fail {
        return Err(DbError::Op {
            site: Default::default(),
            message: "changed my mind".into(),
        });
    }
    Ok(())
}

#[tokio::test]
async fn a_transactional_op_may_take_the_plain_connection_inside_its_transaction() {
    let (_db, rt) = runtime().await;
    let mut conn = rt.pool("main").expect("pool main").acquire().await.unwrap();
    sqlx::query("create table tx_plain (v int)")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    insert_then_fail(&rt, true).await.unwrap_err();
    let count = |rt: &Runtime| {
        let pool = rt.pool("main").unwrap().clone();
        async move {
            let (n,): (i64,) = sqlx::query_as("select count(*) from tx_plain")
                .fetch_one(&mut *pool.acquire().await.unwrap())
                .await
                .unwrap();
            n
        }
    };
    assert_eq!(
        count(&rt).await,
        0,
        "the failed body's insert was rolled back"
    );
    insert_then_fail(&rt, false).await.unwrap();
    assert_eq!(count(&rt).await, 1, "the body's insert was committed");
}

mod registry {
    //! Every annotated op is registered, listed by the runtime, and checked at start-up.

    use sqlx_resilience::op::OpsCheck;
    use sqlx_resilience::{Error, PolicyKind, Runtime};

    use crate::support;

    #[tokio::test]
    async fn the_runtime_lists_every_op_and_what_does_not_fit() {
        let (_db, rt) = super::runtime().await;
        let ops = rt.ops();
        let plus_one = ops
            .iter()
            .find(|op| op.name.ends_with("::Repo::plus_one") || op.name.ends_with("::plus_one"))
            .expect("plus_one is listed");
        assert_eq!(plus_one.pool.as_deref(), Some("main"));
        assert!(plus_one.read_only);
        assert!(
            plus_one.location.contains("tests/pg/macros.rs"),
            "{}",
            plus_one.location
        );
        assert!(plus_one.problems.is_empty(), "{:?}", plus_one.problems);
    }

    #[tokio::test]
    async fn start_up_refuses_ops_that_name_undeclared_policies_when_asked_to() {
        let db = support::db().await;
        // A runtime that declares the pool but not the retry policy the ops use.
        let builder = || {
            Runtime::builder()
                .url(db.url())
                .env_vars(Vec::<(String, String)>::new())
                .declare(PolicyKind::Pool, "main", &[])
        };
        let rt = builder().build().await.expect("warn is the default");
        assert_eq!(rt.config().settings.ops_check, OpsCheck::Warn);
        let err = builder()
            .set("ops_check", "error")
            .build()
            .await
            .unwrap_err();
        match &err {
            Error::Misconfigured { report } => {
                assert!(report.contains("retry `contention`"), "{report}");
                assert!(report.contains("tests/pg/macros.rs"), "{report}");
            }
            other => panic!("{other}"),
        }
        builder()
            .set("ops_check", "off")
            .build()
            .await
            .expect("off skips the check");
    }
}
