//! The test kit's primary with streaming replicas against real PostgreSQL: streaming, replay
//! paused and resumed (lag on demand), promotion, and the primary stopped or killed. Each test
//! owns its set, since the controls change it for good. Conditions are polled with generous
//! limits; nothing asserts how long anything took.

use std::future::Future;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use sqlx_resilience_testkit::{ReplicaSet, ShutdownMode};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// How long any condition may take to appear on a loaded machine.
const LIMIT: Duration = Duration::from_secs(120);

/// Polls `check` every 100 ms until it holds or `LIMIT` passes; returns whether it held.
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + LIMIT;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn count(url: &str) -> Result<i64, sqlx::Error> {
    let mut conn = PgConnection::connect(url).await?;
    let n = sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(&mut conn)
        .await;
    let _ = conn.close().await;
    n
}

async fn execute(url: &str, sql: &'static str) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect(url).await?;
    let result = sqlx::raw_sql(sql).execute(&mut conn).await.map(drop);
    let _ = conn.close().await;
    result
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

#[tokio::test]
async fn replicas_stream_what_the_primary_writes_and_refuse_writes() -> TestResult {
    let set = ReplicaSet::start(2).await?;
    let db = set.create_database().await?;
    execute(
        db.url(),
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)",
    )
    .await?;
    for i in 0..2 {
        set.wait_caught_up(i, LIMIT).await?;
        assert_eq!(count(&set.replica_url(i, &db)).await?, 2, "replica {i}");
        let refused = execute(&set.replica_url(i, &db), "INSERT INTO t VALUES (3)")
            .await
            .expect_err("a standby accepted a write");
        assert_eq!(sqlstate(&refused).as_deref(), Some("25006"), "{refused}");
    }
    // The multi-host URL names every node, primary first.
    let url = set.multi_host_url(&db);
    let ports: Vec<u16> = std::iter::once(set.primary())
        .chain(set.replicas())
        .map(|s| s.port())
        .collect();
    let hosts = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    assert!(
        url.contains(&format!("@{hosts}/{}", db.name())),
        "{}",
        db.name()
    );
    assert_eq!(set.slot_name(1), "replica_2");
    Ok(())
}

#[tokio::test]
async fn paused_replay_shows_lag_and_resume_clears_it() -> TestResult {
    let set = ReplicaSet::start(1).await?;
    let db = set.create_database().await?;
    execute(db.url(), "CREATE TABLE t (id int)").await?;
    set.wait_caught_up(0, LIMIT).await?;
    let before = set.lag(0).await?;
    assert!(before.is_caught_up(), "{before:?}");
    assert!(!before.replay_paused);

    set.pause_replay(0).await?;
    execute(db.url(), "INSERT INTO t SELECT generate_series(1, 1000)").await?;
    // The replica receives the WAL but does not apply it.
    let received = eventually(|| async {
        set.lag(0)
            .await
            .is_ok_and(|l| l.receive_lsn >= Some(l.primary_lsn))
    })
    .await;
    assert!(
        received,
        "the paused replica did not receive WAL: {:?}",
        set.lag(0).await?
    );
    let paused = set.lag(0).await?;
    assert!(paused.replay_paused, "{paused:?}");
    assert!(
        paused.bytes() > 0,
        "no lag while replay is paused: {paused:?}"
    );
    assert_eq!(count(&set.replica_url(0, &db)).await?, 0);

    set.resume_replay(0).await?;
    let caught_up = eventually(|| async { set.lag(0).await.is_ok_and(|l| l.is_caught_up()) }).await;
    assert!(
        caught_up,
        "the lag stayed after resume: {:?}",
        set.lag(0).await?
    );
    assert_eq!(count(&set.replica_url(0, &db)).await?, 1000);
    let after = set.lag(0).await?;
    assert!(!after.replay_paused);
    assert!(after.last_replayed_commit.is_some(), "{after:?}");
    assert!(after.replay_age.is_some(), "{after:?}");
    Ok(())
}

#[tokio::test]
async fn after_the_primary_is_killed_a_promoted_replica_takes_writes() -> TestResult {
    let set = ReplicaSet::start(2).await?;
    let db = set.create_database().await?;
    execute(
        db.url(),
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1)",
    )
    .await?;
    set.wait_caught_up(0, LIMIT).await?;
    set.wait_caught_up(1, LIMIT).await?;

    set.primary().kill9().await?;
    assert_eq!(set.primary().postmaster_pid(), None);
    assert!(
        PgConnection::connect(db.url()).await.is_err(),
        "the killed primary accepted a connection"
    );
    // Replicas still serve reads of what they replayed, and still refuse writes.
    assert_eq!(count(&set.replica_url(0, &db)).await?, 1);
    assert!(
        execute(&set.replica_url(0, &db), "INSERT INTO t VALUES (2)")
            .await
            .is_err()
    );

    set.promote(0).await?;
    execute(&set.replica_url(0, &db), "INSERT INTO t VALUES (2)").await?;
    assert_eq!(count(&set.replica_url(0, &db)).await?, 2);
    // The other replica still follows the dead primary: read-only, and without the write.
    assert!(
        execute(&set.replica_url(1, &db), "INSERT INTO t VALUES (3)")
            .await
            .is_err()
    );
    assert_eq!(count(&set.replica_url(1, &db)).await?, 1);
    // Replay controls belong to standbys; the promoted node says so.
    let error = set
        .pause_replay(0)
        .await
        .expect_err("a primary paused replay");
    assert!(error.to_string().contains("standby"), "{error}");
    Ok(())
}

#[tokio::test]
async fn a_stopped_primary_stops_streaming_until_it_starts_again() -> TestResult {
    let set = ReplicaSet::start(1).await?;
    let db = set.create_database().await?;
    let receiver = "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'";
    let streams = |expected: i64| {
        let url = set.replica(0).admin_url().to_owned();
        async move {
            let Ok(mut conn) = PgConnection::connect(&url).await else {
                return false;
            };
            let n: Result<i64, _> = sqlx::query_scalar(receiver).fetch_one(&mut conn).await;
            let _ = conn.close().await;
            n.is_ok_and(|n| n == expected)
        }
    };
    assert!(
        eventually(|| streams(1)).await,
        "the replica does not stream"
    );

    set.primary().stop(ShutdownMode::Fast).await?;
    assert!(
        eventually(|| streams(0)).await,
        "the replica still streams from a stopped primary"
    );
    set.primary().start_again().await?;
    set.wait_streaming(LIMIT).await?;
    execute(
        db.url(),
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1)",
    )
    .await?;
    set.wait_caught_up(0, LIMIT).await?;
    assert_eq!(count(&set.replica_url(0, &db)).await?, 1);
    Ok(())
}
