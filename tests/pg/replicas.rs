//! Read replicas on a real primary with a streaming replica (the test kit's `ReplicaSet`):
//! `read_only` ops go to the replica while its measured lag is within `max_lag`, to the
//! primary while replay is paused or the replica is down, and reads in a `ReadSession` see
//! the session's writes.

use std::time::Duration;

use sqlx_resilience::replica::{ReadSession, ReplicaReport};
use sqlx_resilience::{Error, Runtime, Value};
use sqlx_resilience_testkit::{ReplicaSet, TestDb};

/// Generous: a loaded 2-core machine is slow.
const LIMIT: Duration = Duration::from_secs(60);

async fn set_and_db() -> (ReplicaSet, TestDb) {
    let set = ReplicaSet::start(1).await.expect("primary with a replica");
    let db = set.create_database().await.expect("test database");
    (set, db)
}

async fn runtime(set: &ReplicaSet, db: &TestDb, settings: &[(&str, Value)]) -> Runtime {
    let mut all: Vec<(&str, Value)> = vec![("replicas", set.replica_url(0, db).into())];
    all.extend(settings.iter().cloned());
    Runtime::builder()
        .url(db.url())
        .env_vars(Vec::<(String, String)>::new())
        .pool("main", &all)
        .build()
        .await
        .expect("runtime")
}

const READ: &str = "SELECT pg_is_in_recovery(), (SELECT count(*) FROM t)";

/// A read-only op: whether it ran on a standby, and the rows of `t` it saw.
async fn read(rt: &Runtime) -> Result<(bool, i64), Error> {
    read_with(rt, READ).await
}

async fn read_with(rt: &Runtime, sql: &'static str) -> Result<(bool, i64), Error> {
    rt.op("replicas::read")
        .read_only(true)
        .run(|c| {
            Box::pin(async move {
                let row: (bool, i64) = sqlx::query_as(sql).fetch_one(c.as_mut()).await?;
                Ok(row)
            })
        })
        .await
}

/// A write: one row into `t`.
async fn write(rt: &Runtime) {
    rt.op("replicas::write")
        .run(|c| {
            Box::pin(async move {
                sqlx::query("INSERT INTO t DEFAULT VALUES")
                    .execute(c.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .expect("write on the primary");
}

fn report(rt: &Runtime) -> ReplicaReport {
    rt.pool("main").unwrap().replica_report().expect("replicas")
}

/// Polls until the replica serves reads (`true`) or not (`false`).
async fn until_serving(rt: &Runtime, serving: bool) {
    let started = std::time::Instant::now();
    loop {
        let r = report(rt);
        if r.replicas[0].serving == serving {
            return;
        }
        assert!(
            started.elapsed() < LIMIT,
            "replica serving is not {serving} after {LIMIT:?}: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn reads_go_to_a_fresh_replica_and_to_the_primary_while_it_lags_or_is_down() {
    let (set, db) = set_and_db().await;
    let rt = runtime(&set, &db, &[("max_lag", "1s".into())]).await;
    crate::support::setup(&rt, "replicas::setup", "CREATE TABLE t (id serial)").await;

    // Within `max_lag` a replica may still miss the table; the first read waits for it.
    set.wait_caught_up(0, LIMIT).await.unwrap();
    until_serving(&rt, true).await;
    let (on_standby, _) = read(&rt).await.unwrap();
    assert!(
        on_standby,
        "a read-only op ran on the primary: {:?}",
        report(&rt)
    );
    assert_eq!(report(&rt).replicas[0].reads, 1);

    // Replay paused, the primary writes: the replica falls behind `max_lag`, reads go to the
    // primary and see the write.
    set.pause_replay(0).await.unwrap();
    write(&rt).await;
    until_serving(&rt, false).await;
    assert_eq!(read(&rt).await.unwrap(), (false, 1));
    set.resume_replay(0).await.unwrap();
    until_serving(&rt, true).await;
    assert_eq!(read(&rt).await.unwrap(), (true, 1));

    // The replica killed under a read: the read runs again on the primary, and so do the
    // reads after it.
    let slow = {
        let rt = rt.clone();
        tokio::spawn(async move {
            read_with(
                &rt,
                "SELECT pg_is_in_recovery(), (SELECT count(*) FROM t) FROM pg_sleep(5)",
            )
            .await
        })
    };
    let started = std::time::Instant::now();
    while report(&rt).replicas[0].in_flight == 0 {
        assert!(
            started.elapsed() < LIMIT,
            "the slow read never ran on the replica"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    set.replica(0).kill9().await.unwrap();
    assert_eq!(slow.await.unwrap().unwrap(), (false, 1));
    assert_eq!(report(&rt).replicas[0].rerouted, 1);
    for _ in 0..3 {
        assert_eq!(read(&rt).await.unwrap(), (false, 1));
    }
    let r = report(&rt);
    assert!(r.primary_reads >= 5, "{r:?}");
    assert_eq!(r.replicas[0].state, "down", "{r:?}");

    // The status page shows the replica and its state in the pool's card.
    let page = status_page(&rt).await;
    assert!(
        page.contains("class=\"replica\"") && page.contains("<td>down</td>"),
        "the replica is not on the status page:\n{page}"
    );
}

/// The status page as `http::Endpoints` serves it (at `/`), over a real socket.
async fn status_page(rt: &Runtime) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = sqlx_resilience_runtime::http::Endpoints::new(rt).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut page = String::new();
    stream.read_to_string(&mut page).await.unwrap();
    server.abort();
    page
}

#[tokio::test]
async fn reads_in_a_session_see_its_writes_on_the_primary_or_by_waiting() {
    let (set, db) = set_and_db().await;
    // A lag limit of an hour: the paused replica keeps serving reads outside a session.
    let long = [
        ("max_lag", Value::from("1h")),
        ("read_your_writes_window", "60s".into()),
    ];
    let primary = runtime(
        &set,
        &db,
        &[&long[..], &[("read_your_writes", "primary".into())]].concat(),
    )
    .await;
    let waiting = runtime(
        &set,
        &db,
        &[&long[..], &[("read_your_writes", "wait".into())]].concat(),
    )
    .await;
    crate::support::setup(&primary, "replicas::setup", "CREATE TABLE t (id serial)").await;
    until_serving(&primary, true).await;
    until_serving(&waiting, true).await;
    set.wait_caught_up(0, LIMIT).await.unwrap();
    set.pause_replay(0).await.unwrap();

    // "primary": the session's read goes to the primary; a read outside it does not.
    let session = ReadSession::new();
    session.scope(write(&primary)).await;
    assert_eq!(session.scope(read(&primary)).await.unwrap(), (false, 1));
    assert_eq!(read(&primary).await.unwrap(), (true, 0));

    // "wait": the session's read waits until the replica replays the write, then runs there.
    let session = ReadSession::new();
    session.scope(write(&waiting)).await;
    let reader = {
        let (rt, session) = (waiting.clone(), session.clone());
        tokio::spawn(async move { session.scope(read(&rt)).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    set.resume_replay(0).await.unwrap();
    assert_eq!(reader.await.unwrap().unwrap(), (true, 2));
}

/// A read that accepts at most 1 s of replica lag, whatever its pool allows.
#[sqlx_resilience::db_op(pool = "main", read_only, max_lag = "1s")]
async fn fresh_read(
    rt: &Runtime,
    conn: &mut sqlx::PgConnection,
) -> Result<(bool, i64), sqlx_resilience::DbError> {
    let row: (bool, i64) = sqlx::query_as(READ).fetch_one(conn).await?;
    Ok(row)
}

#[tokio::test]
async fn an_op_with_its_own_max_lag_reads_on_the_primary_past_it() {
    let (set, db) = set_and_db().await;
    // The pool accepts an hour of lag: the paused replica keeps serving its other reads.
    let rt = runtime(&set, &db, &[("max_lag", "1h".into())]).await;
    crate::support::setup(&rt, "replicas::setup", "CREATE TABLE t (id serial)").await;
    set.wait_caught_up(0, LIMIT).await.unwrap();
    until_serving(&rt, true).await;
    assert_eq!(fresh_read(&rt).await.unwrap(), (true, 0));

    set.pause_replay(0).await.unwrap();
    write(&rt).await;
    let started = std::time::Instant::now();
    while report(&rt).replicas[0]
        .lag_ms
        .is_none_or(|ms| ms <= 1_500.0)
    {
        assert!(
            started.elapsed() < LIMIT,
            "the paused replica's lag never passed 1.5 s: {:?}",
            report(&rt)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The pool's reads stay on the lagging replica; the op's own limit sends it to the primary,
    // where it sees the write.
    assert_eq!(read(&rt).await.unwrap(), (true, 0));
    assert_eq!(fresh_read(&rt).await.unwrap(), (false, 1));
    set.resume_replay(0).await.unwrap();
}
