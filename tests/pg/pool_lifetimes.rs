//! Pool lifetimes seen on the server: idle connections closed after `idle_timeout`,
//! connections replaced after `max_lifetime`, and validation pinging as configured, each
//! observed through backend pids in `pg_stat_activity`.

use std::future::Future;
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx_resilience::{Error, Runtime, Value};
use sqlx_resilience_testkit::TestDb;

use crate::support;

/// Generous: the pool's reaper and a loaded 2-core machine take their time.
const LIMIT: Duration = Duration::from_secs(60);

/// Polls `check` every 50 ms until it returns `Some`, for at most [`LIMIT`].
async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(started.elapsed() < LIMIT, "{what}: not within {LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The backend pids of `app`, seen by a superuser.
async fn backends(admin_url: &str, app: &str) -> Vec<i32> {
    let mut admin = sqlx::PgConnection::connect(admin_url).await.unwrap();
    let pids: Vec<(i32,)> =
        sqlx::query_as("select pid from pg_stat_activity where application_name = $1 order by pid")
            .bind(app)
            .fetch_all(&mut admin)
            .await
            .unwrap();
    let _ = admin.close().await;
    pids.into_iter().map(|(p,)| p).collect()
}

async fn runtime(db: &TestDb, app: &str, settings: &[(&str, Value)]) -> Runtime {
    let mut all = vec![("application_name", Value::from(app))];
    all.extend(settings.iter().cloned());
    support::runtime(db, &all).await
}

/// The pid of the connection an op runs on, after sleeping `secs` on it.
async fn pid_after(rt: &Runtime, secs: f64) -> i32 {
    rt.op("lifetimes::pid")
        .read_only(true)
        .run(|c| {
            Box::pin(async move {
                let (pid,): (i32,) = sqlx::query_as("select pg_backend_pid() from pg_sleep($1)")
                    .bind(secs)
                    .fetch_one(c.as_mut())
                    .await?;
                Ok::<_, Error>(pid)
            })
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn idle_connections_above_min_are_closed_after_idle_timeout() {
    let db = support::db().await;
    let app = "idle-timeout-test";
    let rt = runtime(
        &db,
        app,
        &[
            ("max", 3u32.into()),
            ("min", 1u32.into()),
            ("idle_timeout", "1s".into()),
        ],
    )
    .await;
    // Three ops at once need three connections.
    let (a, b, c) = tokio::join!(
        pid_after(&rt, 0.3),
        pid_after(&rt, 0.3),
        pid_after(&rt, 0.3)
    );
    let mut opened = vec![a, b, c];
    opened.sort_unstable();
    opened.dedup();
    assert_eq!(opened.len(), 3, "three connections: {opened:?}");
    // Idle, they are closed down to `min`, on the server too.
    let left = poll("idle connections closed down to min", || async {
        let now = backends(db.admin_url(), app).await;
        (now.len() == 1).then_some(now)
    })
    .await;
    let closed = opened.iter().filter(|p| !left.contains(p)).count();
    assert!(closed >= 2, "opened {opened:?}, left {left:?}");
}

#[tokio::test]
async fn connections_are_replaced_after_max_lifetime() {
    let db = support::db().await;
    let app = "max-lifetime-test";
    let rt = runtime(
        &db,
        app,
        &[
            ("max", 1u32.into()),
            ("min", 1u32.into()),
            ("idle_timeout", "1s".into()),
            ("max_lifetime", "2s".into()),
        ],
    )
    .await;
    let first = pid_after(&rt, 0.0).await;
    // The same connection serves while it is young...
    assert_eq!(pid_after(&rt, 0.0).await, first);
    // ...and a new one replaces it once it is older than max_lifetime, although it is in use
    // all along.
    let second = poll("a connection past max_lifetime replaced", || async {
        let pid = pid_after(&rt, 0.0).await;
        (pid != first).then_some(pid)
    })
    .await;
    poll("the old backend gone from the server", || async {
        let now = backends(db.admin_url(), app).await;
        (!now.contains(&first)).then_some(())
    })
    .await;
    assert!(backends(db.admin_url(), app).await.contains(&second));
}

/// With `validation`, a connection whose backend was terminated while idle is pinged and
/// replaced before the body runs (`always`), or handed to the body as it is (`never`), which
/// then fails and runs again on a fresh connection. Returns (body runs, pids the body saw,
/// validations counted by the pool).
async fn after_idle_backend_terminated(validation: &str) -> (usize, Vec<i32>, u64, i32) {
    let db = support::db().await;
    let app = format!("validation-{validation}-test");
    let rt = runtime(
        &db,
        &app,
        &[
            ("max", 1u32.into()),
            ("min", 1u32.into()),
            ("validation", validation.into()),
        ],
    )
    .await;
    let old = pid_after(&rt, 0.0).await;
    let validations_before = rt.pool("main").unwrap().stats().validations;
    let ended = db.server().terminate_backends(db.name()).await.unwrap();
    assert!(ended >= 1);
    poll("the idle backend gone", || async {
        (!backends(db.admin_url(), &app).await.contains(&old)).then_some(())
    })
    .await;
    let seen = std::sync::Mutex::new(Vec::new());
    rt.op("lifetimes::after_terminate")
        .read_only(true)
        .run(|c| {
            let seen = &seen;
            Box::pin(async move {
                let (pid,): (i32,) = sqlx::query_as("select pg_backend_pid()")
                    .fetch_one(c.as_mut())
                    .await
                    .inspect_err(|_| seen.lock().unwrap().push(0))?;
                seen.lock().unwrap().push(pid);
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap();
    let seen = seen.into_inner().unwrap();
    let validations = rt.pool("main").unwrap().stats().validations - validations_before;
    (seen.len(), seen, validations, old)
}

#[tokio::test]
async fn validation_always_pings_before_use_and_never_does_not() {
    let (runs, seen, validations, old) = after_idle_backend_terminated("always").await;
    assert_eq!(
        runs, 1,
        "the dead connection never reached the body: {seen:?}"
    );
    assert_ne!(seen[0], old);
    assert!(validations >= 1, "{validations}");

    let (runs, seen, validations, old) = after_idle_backend_terminated("never").await;
    assert_eq!(
        runs, 2,
        "the body got the dead connection, then ran again on a fresh one: {seen:?}"
    );
    assert_eq!(seen[0], 0, "the first run failed: {seen:?}");
    assert_ne!(seen[1], old);
    assert_eq!(validations, 0);
}
