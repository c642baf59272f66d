//! Ops that share a transaction: an op calls the nested form of others (`nested = name`),
//! which join its transaction and run under its policies only.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};

use sqlx::PgConnection;
use sqlx_resilience::{DbError, HasRuntime, Runtime, Tx, db_op};
use sqlx_resilience_testkit::TestDb;

use crate::support;

/// How `add_line` ends.
#[derive(Clone, Copy, Debug)]
enum Then {
    Succeed,
    /// The application's own error, after the line was written.
    Fail,
    /// A serialization failure (SQLSTATE 40001) the first time, after the line was written.
    ConflictOnce,
}

#[derive(HasRuntime)]
struct Orders {
    rt: Runtime,
    /// Runs of `place`'s body and `add_line`'s body.
    place_runs: AtomicU32,
    line_runs: AtomicU32,
    conflicted: AtomicBool,
}

impl Orders {
    #[db_op(pool = "main", tx, retry = "contention", nested = create_in)]
    async fn create(&self, conn: &mut PgConnection, id: i64) -> Result<(), DbError> {
        sqlx::query("insert into orders values ($1)")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Its own retry policy applies when it runs on its own, never inside `place`.
    #[db_op(pool = "main", tx, retry = "contention", nested = add_line_in)]
    async fn add_line(&self, conn: &mut PgConnection, id: i64, then: Then) -> Result<(), DbError> {
        self.line_runs.fetch_add(1, SeqCst);
        sqlx::query("insert into lines values ($1)")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        match then {
            Then::Succeed => Ok(()),
            Then::Fail => Err(DbError::Op {
                site: Default::default(),
                message: "out of stock".into(),
            }),
            Then::ConflictOnce if !self.conflicted.swap(true, SeqCst) => {
                sqlx::query(
                    "do $$ begin raise exception 'conflict' using errcode = '40001'; end $$",
                )
                .execute(&mut *conn)
                .await?;
                unreachable!("the statement raised")
            }
            Then::ConflictOnce => Ok(()),
        }
    }

    /// One atomic change across two helpers.
    #[db_op(pool = "main", tx, retry = "contention")]
    async fn place(&self, conn: &mut PgConnection, id: i64, then: Then) -> Result<(), DbError> {
        self.place_runs.fetch_add(1, SeqCst);
        self.create_in(&mut *conn, id).await?;
        self.add_line_in(&mut *conn, id, then).await
    }

    /// Counts rows the way sqlx users write a transaction's queries: `&mut *tx`.
    #[db_op(pool = "main", tx, read_only)]
    async fn rows(&self, tx: &mut Tx<'_>, id: i64) -> Result<(i64, i64), DbError> {
        let (orders,): (i64,) = sqlx::query_as("select count(*) from orders where id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let (lines,): (i64,) = sqlx::query_as("select count(*) from lines where id = $1")
            .bind(id)
            .fetch_one(&mut **tx)
            .await?;
        Ok((orders, lines))
    }
}

async fn orders() -> (TestDb, Orders) {
    let db = support::db().await;
    let rt = Runtime::builder()
        .url(db.url())
        .env_vars(Vec::<(String, String)>::new())
        .build()
        .await
        .expect("runtime");
    support::setup(
        &rt,
        "tests::nested::tables",
        "create table orders (id int8); create table lines (id int8)",
    )
    .await;
    let orders = Orders {
        rt,
        place_runs: AtomicU32::new(0),
        line_runs: AtomicU32::new(0),
        conflicted: AtomicBool::new(false),
    };
    (db, orders)
}

#[tokio::test]
async fn nested_ops_commit_together() {
    let (_db, orders) = orders().await;
    orders.place(1, Then::Succeed).await.expect("placed");
    assert_eq!(orders.rows(1).await.unwrap(), (1, 1));
}

#[tokio::test]
async fn nested_ops_roll_back_together() {
    let (_db, orders) = orders().await;
    let err = orders.place(2, Then::Fail).await.unwrap_err();
    assert!(err.to_string().contains("out of stock"), "{err}");
    assert_eq!(
        orders.rows(2).await.unwrap(),
        (0, 0),
        "the order written before the failing line was rolled back with it"
    );
}

#[tokio::test]
async fn retry_applies_once_at_the_outer_op() {
    let (_db, orders) = orders().await;
    orders
        .place(3, Then::ConflictOnce)
        .await
        .expect("placed on the second run");
    assert_eq!(
        (
            orders.place_runs.load(SeqCst),
            orders.line_runs.load(SeqCst)
        ),
        (2, 2),
        "the whole transaction ran again once; the nested op did not retry on its own"
    );
    assert_eq!(orders.rows(3).await.unwrap(), (1, 1), "each write once");
}

/// Handed a connection outside any transaction, a transactional nested op begins and ends
/// its own.
#[tokio::test]
async fn a_nested_transactional_op_outside_a_transaction_has_its_own() {
    let (_db, orders) = orders().await;
    let pool = orders.rt.pool("main").unwrap().clone();
    let mut conn = pool.acquire().await.unwrap();
    orders
        .add_line_in(&mut conn, 4, Then::Fail)
        .await
        .unwrap_err();
    orders
        .add_line_in(&mut conn, 5, Then::Succeed)
        .await
        .unwrap();
    drop(conn);
    assert_eq!(orders.rows(4).await.unwrap(), (0, 0), "rolled back");
    assert_eq!(orders.rows(5).await.unwrap(), (0, 1), "committed");
    // On its own, the op keeps its policies: its retry runs it again after the conflict.
    orders.add_line(6, Then::ConflictOnce).await.unwrap();
    assert_eq!(orders.rows(6).await.unwrap(), (0, 1));
}
