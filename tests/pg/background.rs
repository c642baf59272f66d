//! Background writes: a full queue under each rule while the database is cut by the test
//! kit's proxy, every write either made or reported, and the queues drained on shutdown.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx_resilience::background::{DropReason, DroppedWrite};
use sqlx_resilience::{Error, Runtime, Value};
use sqlx_resilience_testkit::{FaultProxy, TestDb};

use crate::support;

/// Polls `f` every 50 ms until it is true; panics after two minutes (a loaded machine is slow).
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let started = Instant::now();
    while !f().await {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "gave up waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A queue of 3 writes and one worker on `pool`, through `proxy`, under `rule`.
fn queue_pool(proxy: &FaultProxy, db: &TestDb, rule: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("url", db.url_via(proxy.addr()).into()),
        ("max", 1u32.into()),
        ("startup", "lazy".into()),
        ("acquire_timeout", "300ms".into()),
        ("connect_timeout", "300ms".into()),
        ("outage_wait", "10ms".into()),
        ("background_capacity", 3u32.into()),
        ("background_workers", 1u32.into()),
        ("background_when_full", rule.to_owned().into()),
    ]
}

/// Queues `insert into writes values (pool, n)` on `pool`.
async fn write(rt: &Runtime, pool: &'static str, n: i64) -> Result<u64, Error> {
    rt.op("tests::background::write")
        .pool(pool)
        .submit(move |c| {
            Box::pin(async move {
                sqlx::query("insert into writes values ($1, $2)")
                    .bind(pool)
                    .bind(n)
                    .execute(c.as_mut())
                    .await?;
                Ok(())
            })
        })
        .await
}

/// The `n` written on `pool`, in order.
async fn written(db: &TestDb, pool: &str) -> Vec<i64> {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db.url())
        .await
        .expect("direct connection");
    let rows: Vec<(i64,)> = sqlx::query_as("select n from writes where pool = $1 order by n")
        .bind(pool)
        .fetch_all(&mut conn)
        .await
        .expect("written rows");
    rows.into_iter().map(|(n,)| n).collect()
}

fn hook(rt: &Runtime) -> Arc<Mutex<Vec<DroppedWrite>>> {
    let dropped = Arc::new(Mutex::new(Vec::new()));
    let seen = dropped.clone();
    rt.background()
        .on_dropped(move |d| seen.lock().unwrap().push(d.clone()));
    dropped
}

async fn database() -> (TestDb, FaultProxy, Runtime) {
    let db = support::db().await;
    let proxy = FaultProxy::start(db.server().tcp_addr()).await.unwrap();
    let rt = Runtime::builder()
        .url(db.url())
        .env_vars(Vec::<(String, String)>::new())
        .pool("main", &[])
        .set("default_pool", "main")
        .pool("wait", &queue_pool(&proxy, &db, "wait"))
        .pool("drop", &queue_pool(&proxy, &db, "drop_oldest"))
        .pool("reject", &queue_pool(&proxy, &db, "reject"))
        .build()
        .await
        .expect("runtime");
    support::setup(
        &rt,
        "tests::background::table",
        "create table writes (pool text, n int8)",
    )
    .await;
    (db, proxy, rt)
}

#[tokio::test]
async fn a_full_queue_follows_its_rule_while_the_database_is_cut() {
    let (db, proxy, rt) = database().await;
    let dropped = hook(&rt);
    proxy.refuse().await;

    // Three writes fill each queue: one running or held, two queued.
    for pool in ["wait", "drop", "reject"] {
        for n in 1..=3 {
            write(&rt, pool, n).await.expect("room in the queue");
        }
    }
    // The first write of each pool fails to connect and is held, not dropped.
    until("every queue holds its first write", || async {
        rt.background()
            .stats()
            .iter()
            .filter(|q| q.pool != "main")
            .all(|q| q.held > 0)
    })
    .await;

    // reject: the caller gets the write back, and the hook hears of it.
    for n in 4..=5 {
        let err = write(&rt, "reject", n)
            .await
            .expect_err("a full queue rejects");
        assert!(
            matches!(err, Error::BackgroundFull { capacity: 3, .. }),
            "{err}"
        );
    }
    // drop_oldest: accepted, the oldest queued write reported instead.
    for n in 4..=5 {
        write(&rt, "drop", n).await.expect("accepted");
    }
    // wait: the caller waits while the queue is full and the database is cut.
    let waiting = tokio::spawn({
        let rt = rt.clone();
        async move { write(&rt, "wait", 4).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a full `wait` queue let a write in");

    let health = rt.health().await;
    let wait = health.background.iter().find(|q| q.pool == "wait").unwrap();
    assert_eq!(wait.depth + wait.running, 3, "{wait:?}");
    assert!(wait.oldest_age_ms > 0, "{wait:?}");

    proxy.heal().await.unwrap();
    waiting
        .await
        .unwrap()
        .expect("room once the database is back");
    until("every accepted write is made or reported", || async {
        rt.background()
            .stats()
            .iter()
            .all(|q| q.depth == 0 && q.running == 0)
    })
    .await;

    let dropped = dropped.lock().unwrap().clone();
    let reasons = |pool: &str| -> Vec<DropReason> {
        dropped
            .iter()
            .filter(|d| d.pool == pool)
            .map(|d| d.reason)
            .collect()
    };
    assert_eq!(written(&db, "wait").await, vec![1, 2, 3, 4]);
    assert!(reasons("wait").is_empty(), "{dropped:?}");
    assert_eq!(written(&db, "reject").await, vec![1, 2, 3]);
    assert_eq!(reasons("reject"), vec![DropReason::Rejected; 2]);
    // Two of the drop queue's writes made room; the rest were written. Nothing accepted is
    // lost without a report.
    assert_eq!(reasons("drop"), vec![DropReason::DroppedOldest; 2]);
    let made = written(&db, "drop").await;
    assert_eq!(made.len(), 3, "{made:?}");
    let stats = rt.background().stats();
    for q in &stats {
        assert_eq!(q.accepted, q.written + q.dropped_oldest + q.failed, "{q:?}");
    }
    let drop = stats.iter().find(|q| q.pool == "drop").unwrap();
    assert_eq!(
        (drop.accepted, drop.written, drop.dropped_oldest),
        (5, 3, 2)
    );
}

#[tokio::test]
async fn shutdown_drains_the_queues_and_reports_what_it_could_not_write() {
    // A healthy database: every accepted write is made before shutdown returns.
    let (db, _proxy, rt) = database().await;
    for n in 1..=3 {
        write(&rt, "wait", n).await.unwrap();
    }
    rt.shutdown(Duration::from_secs(60)).await.expect("drained");
    assert_eq!(written(&db, "wait").await, vec![1, 2, 3]);
    let err = write(&rt, "wait", 4).await.expect_err("after shutdown");
    assert!(matches!(err, Error::ShuttingDown { .. }), "{err}");

    // A cut database: what is still queued at the deadline is reported, and shutdown says so.
    let (db, proxy, rt) = database().await;
    let dropped = hook(&rt);
    proxy.refuse().await;
    for n in 1..=3 {
        write(&rt, "reject", n).await.unwrap();
    }
    let err = rt
        .shutdown(Duration::from_secs(2))
        .await
        .expect_err("unwritten writes");
    assert!(
        matches!(err, Error::BackgroundUnwritten { unwritten: 3, .. }),
        "{err}"
    );
    let dropped = dropped.lock().unwrap().clone();
    assert_eq!(dropped.len(), 3, "{dropped:?}");
    assert!(
        dropped
            .iter()
            .all(|d| d.reason == DropReason::ShutdownDeadline)
    );
    let mut ids: Vec<u64> = dropped.iter().map(|d| d.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each write reported once");
    proxy.heal().await.unwrap();
    assert!(written(&db, "reject").await.is_empty());
}
