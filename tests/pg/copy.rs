//! Bulk loading with COPY through an op: batches, each one transaction, retried whole.

use std::time::Duration;

use sqlx_resilience::copy::CopyRows;
use sqlx_resilience::{Error, FailureKind, PolicyKind, Runtime};
use sqlx_resilience_testkit::{FaultProxy, TestDb};

use crate::support::{self, scalar_i64};

const TABLE: &str = "create table posts (id bigint not null, body text)";

fn rows(n: i64) -> CopyRows {
    let mut rows = CopyRows::new();
    for id in 0..n {
        rows.push([Some(id.to_string()), Some(format!("post {id}\twith a tab"))]);
    }
    rows
}

async fn runtime(db: &TestDb, url: &str) -> Runtime {
    let rt = Runtime::builder()
        .url(url)
        .env_vars(Vec::<(String, String)>::new())
        .pool("main", &[("max", 2u32.into())])
        .declare(
            PolicyKind::Retry,
            "batches",
            &[
                ("attempts", 20u32.into()),
                ("base", "5ms".into()),
                ("max_delay", "50ms".into()),
            ],
        )
        .build()
        .await
        .expect("runtime");
    let _ = db;
    support::setup(&rt, "copy::setup", TABLE).await;
    rt
}

#[tokio::test]
async fn rows_load_in_batches_and_special_characters_arrive_intact() {
    let db = support::db().await;
    let rt = runtime(&db, db.url()).await;
    let op = rt.op("copy::posts").pool("main").build().unwrap();
    let report = op
        .copy_in("COPY posts (id, body) FROM STDIN", &rows(10_000), 1_000)
        .await
        .unwrap();
    assert_eq!((report.rows, report.batches), (10_000, 10));
    assert_eq!(
        scalar_i64(&rt, "select count(*) from posts").await.unwrap(),
        10_000
    );
    assert_eq!(
        scalar_i64(
            &rt,
            "select count(*) from posts where body = 'post ' || id || E'\\twith a tab'"
        )
        .await
        .unwrap(),
        10_000
    );
}

#[tokio::test]
async fn a_bad_batch_stops_the_load_and_says_what_was_committed() {
    let db = support::db().await;
    let rt = runtime(&db, db.url()).await;
    let op = rt.op("copy::posts").pool("main").build().unwrap();
    let mut rows = rows(2_500);
    rows.push([Some("not a number"), Some("bad")]);
    let e = op
        .copy_in("COPY posts (id, body) FROM STDIN", &rows, 1_000)
        .await
        .unwrap_err();
    match &e {
        Error::Copy {
            committed_rows,
            committed_batches,
            batch_rows,
            ..
        } => assert_eq!(
            (*committed_rows, *committed_batches, *batch_rows),
            (2_000, 2, 501)
        ),
        other => panic!("{other}"),
    }
    assert_eq!(e.kind(), FailureKind::Permanent, "{e}");
    assert_eq!(e.sqlstate().as_deref(), Some("22P02"), "{e}");
    assert!(e.to_string().contains("load again from row 2000"), "{e}");
    // The failed batch rolled back whole.
    assert_eq!(
        scalar_i64(&rt, "select count(*) from posts").await.unwrap(),
        2_000
    );
}

/// Connections reset again and again in the middle of the load: every batch cut off is run
/// again whole, and the table holds each row exactly once.
///
/// Where a reset lands is a matter of timing: one that lands in a COMMIT ends the load with an
/// unknown outcome before any batch was retried. So the load runs again on an empty table (up
/// to five rounds, each checked for duplicates) until a batch has been cut off and retried.
#[tokio::test]
async fn batches_cut_off_are_retried_whole_and_no_row_is_duplicated() {
    let db = support::db().await;
    let mut proxy = FaultProxy::start(db.server().tcp_addr()).await.unwrap();
    let rt = runtime(&db, &db.url_via(proxy.addr())).await;
    let op = rt
        .op("copy::posts")
        .pool("main")
        .retry("batches")
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut retried = 0;
    for _round in 0..5 {
        truncate_direct(&db).await;
        let before = retries(&rt);
        // About 25 KB a second: a batch of 100 rows (about 3 KB) is in flight for about 0.1 s,
        // so a reset every 300 ms lands in the middle of one batch in three or so.
        proxy.bandwidth(Some(25_000));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let resets = tokio::spawn(async move {
            while !*stopped.borrow() {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(300)) => proxy.reset().await,
                    _ = stopped.changed() => {}
                }
            }
            proxy
        });
        let n = 3_000;
        let result = op
            .copy_in("COPY posts (id, body) FROM STDIN", &rows(n), 100)
            .await;
        let _ = stop.send(true);
        proxy = resets.await.unwrap();
        proxy.bandwidth(None);
        retried = retries(&rt) - before;
        let count = scalar_i64_direct(&db, "select count(*) from posts").await;
        let distinct = scalar_i64_direct(&db, "select count(distinct id) from posts").await;
        assert_eq!(count, distinct, "a row was written twice: {result:?}");
        match result {
            Ok(report) => {
                assert_eq!(report.rows, n as u64);
                assert_eq!(count, n);
            }
            // A reset during COMMIT leaves that batch's outcome unknown: the load stops and
            // says what was committed before it.
            Err(Error::Copy {
                committed_rows,
                batch_rows,
                source,
                ..
            }) => {
                assert_eq!(source.kind(), FailureKind::UnknownOutcome, "{source}");
                let committed = committed_rows as i64;
                assert!(
                    count == committed || count == committed + batch_rows as i64,
                    "{count} rows against {committed} committed"
                );
            }
            Err(other) => panic!("{other}"),
        }
        if retried > 0 {
            break;
        }
    }
    assert!(
        retried > 0,
        "in five rounds no batch was cut off and retried; the test proved nothing"
    );
}

/// Retries the `batches` policy has made so far, whatever their cause.
fn retries(rt: &Runtime) -> u64 {
    let metrics = rt.retry_policy("batches").unwrap().metrics();
    metrics.retries.iter().map(|(_, n)| *n).sum()
}

async fn truncate_direct(db: &TestDb) {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db.url())
        .await
        .unwrap();
    sqlx::query("truncate posts")
        .execute(&mut conn)
        .await
        .unwrap();
}

async fn scalar_i64_direct(db: &TestDb, sql: &'static str) -> i64 {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db.url())
        .await
        .unwrap();
    sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
}
