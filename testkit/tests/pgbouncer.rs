//! The test kit's PgBouncer against the real engine (Debian's `pgbouncer`) in front of the
//! shared throwaway PostgreSQL: pooling modes, SCRAM through the bouncer, the admin console
//! and every control. Each test starts its own PgBouncer, so controls never cross tests.
//! Conditions are polled with generous limits; nothing asserts how long anything took.

mod support;

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use sqlx_resilience_testkit::{PgBouncer, PgBouncerOptions, PgServer, PoolMode};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// How long any condition may take to appear on a loaded machine.
const LIMIT: Duration = Duration::from_secs(60);

/// Polls `check` every 100 ms until it holds or `LIMIT` passes; returns whether it held.
async fn eventually<F, Fut>(check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    support::eventually(LIMIT, check).await
}

/// The backend serving `conn`'s next statement. Unnamed statements only: named ones would
/// not survive transaction pooling.
async fn backend_pid(conn: &mut PgConnection) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
        .persistent(false)
        .fetch_one(conn)
        .await
}

#[tokio::test]
async fn transaction_mode_shares_one_server_connection_between_clients() -> TestResult {
    let server = PgServer::shared().await?;
    let db = server.create_database().await?;
    let bouncer =
        PgBouncer::start_with(server, PgBouncerOptions::new().default_pool_size(1)).await?;

    let mut a = PgConnection::connect(&bouncer.url(&db)).await?;
    let mut b = PgConnection::connect(&bouncer.url(&db)).await?;
    let (user, database): (String, String) =
        sqlx::query_as("SELECT current_user::text, current_database()::text")
            .persistent(false)
            .fetch_one(&mut a)
            .await?;
    assert_eq!((user.as_str(), database.as_str()), ("app", db.name()));

    // Both clients are connected at once, and one server connection serves both in turn.
    let first = backend_pid(&mut a).await?;
    let second = backend_pid(&mut b).await?;
    assert_eq!(
        first, second,
        "two clients in transaction mode with default_pool_size = 1 were served by different backends"
    );
    let pool = bouncer
        .pool_of(&db)
        .await?
        .ok_or("no pool for the test database")?;
    assert_eq!(pool.pool_mode, "transaction");
    assert_eq!(pool.server_connections(), 1, "{pool:?}");
    assert_eq!(pool.cl_active, 2, "{pool:?}");
    // The superuser gets through too, to the same database.
    let mut admin = PgConnection::connect(&bouncer.admin_url(&db)).await?;
    let (user, database): (String, String) =
        sqlx::query_as("SELECT current_user::text, current_database()::text")
            .persistent(false)
            .fetch_one(&mut admin)
            .await?;
    assert_eq!((user.as_str(), database.as_str()), ("postgres", db.name()));
    assert_eq!(bouncer.url_for(db.name()), bouncer.url(&db));
    Ok(())
}

#[tokio::test]
async fn session_mode_gives_each_client_its_own_server_connection() -> TestResult {
    let server = PgServer::shared().await?;
    let db = server.create_database().await?;
    let bouncer =
        PgBouncer::start_with(server, PgBouncerOptions::new().pool_mode(PoolMode::Session)).await?;

    let mut a = PgConnection::connect(&bouncer.url(&db)).await?;
    let mut b = PgConnection::connect(&bouncer.url(&db)).await?;
    let first = backend_pid(&mut a).await?;
    let second = backend_pid(&mut b).await?;
    assert_ne!(first, second, "two session-mode clients shared a backend");
    // Session state stays with the client.
    sqlx::raw_sql("SET application_name = 'kept'")
        .execute(&mut a)
        .await?;
    assert_eq!(backend_pid(&mut a).await?, first);
    let name: String = sqlx::query_scalar("SHOW application_name")
        .persistent(false)
        .fetch_one(&mut a)
        .await?;
    assert_eq!(name, "kept");
    let pool = bouncer
        .pool_of(&db)
        .await?
        .ok_or("no pool for the test database")?;
    assert_eq!(pool.pool_mode, "session");
    Ok(())
}

#[tokio::test]
async fn show_pools_and_stats_reflect_use() -> TestResult {
    let server = PgServer::shared().await?;
    let db = server.create_database().await?;
    let bouncer = PgBouncer::start(server).await?;

    let mut conn = PgConnection::connect(&bouncer.url(&db)).await?;
    sqlx::raw_sql("BEGIN; SELECT 1").execute(&mut conn).await?;
    // Inside a transaction the client holds a server connection.
    let pool = bouncer
        .pool_of(&db)
        .await?
        .ok_or("no pool for the test database")?;
    assert_eq!((pool.cl_active, pool.sv_active), (1, 1), "{pool:?}");
    sqlx::raw_sql("COMMIT").execute(&mut conn).await?;
    // After it, the server connection goes back to the pool.
    let released = eventually(|| async {
        matches!(bouncer.pool_of(&db).await, Ok(Some(p)) if p.sv_active == 0 && p.sv_idle + p.sv_used == 1)
    })
    .await;
    assert!(
        released,
        "the server connection was not released after COMMIT: {:?}",
        bouncer.pool_of(&db).await?
    );
    for _ in 0..3 {
        sqlx::raw_sql("SELECT 1").execute(&mut conn).await?;
    }
    let counted = eventually(|| async {
        matches!(bouncer.stats_of(&db).await, Ok(Some(s)) if s.total_xact_count >= 4 && s.total_query_count >= 5)
    })
    .await;
    assert!(
        counted,
        "SHOW STATS did not count the transactions: {:?}",
        bouncer.stats_of(&db).await?
    );
    Ok(())
}

#[tokio::test]
async fn pause_holds_queries_until_resume() -> TestResult {
    let server = PgServer::shared().await?;
    let db = server.create_database().await?;
    let bouncer = PgBouncer::start(server).await?;

    let mut conn = PgConnection::connect(&bouncer.url(&db)).await?;
    backend_pid(&mut conn).await?;
    bouncer.pause().await?;
    let query = tokio::spawn(async move {
        let result = sqlx::raw_sql("SELECT 1").execute(&mut conn).await;
        (result, conn)
    });
    let waiting = eventually(|| async {
        matches!(bouncer.pool_of(&db).await, Ok(Some(p)) if p.cl_waiting == 1)
    })
    .await;
    assert!(
        waiting,
        "the query did not wait while paused: {:?}",
        bouncer.pool_of(&db).await?
    );
    assert!(
        !query.is_finished(),
        "a query ran while PgBouncer was paused"
    );

    bouncer.resume().await?;
    let (result, _conn) = tokio::time::timeout(LIMIT, query).await??;
    result?;
    Ok(())
}

#[tokio::test]
async fn reconnect_replaces_server_connections() -> TestResult {
    let server = PgServer::shared().await?;
    let db = server.create_database().await?;
    let bouncer = PgBouncer::start(server).await?;

    let mut conn = PgConnection::connect(&bouncer.url(&db)).await?;
    let before = backend_pid(&mut conn).await?;
    bouncer.reconnect().await?;
    let after = backend_pid(&mut conn).await?;
    assert_ne!(before, after, "RECONNECT kept the old server connection");
    // The old backend is gone from the server, not just unused.
    let admin = sqlx::PgPool::connect(db.admin_url()).await?;
    let gone = eventually(|| async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_stat_activity WHERE pid = $1")
            .bind(before)
            .fetch_one(&admin)
            .await
            .is_ok_and(|n| n == 0)
    })
    .await;
    assert!(gone, "backend {before} still runs after RECONNECT");
    Ok(())
}

#[tokio::test]
async fn kill9_cuts_clients_off_and_start_again_serves_on_the_same_port() -> TestResult {
    let server = PgServer::shared().await?;
    let db = server.create_database().await?;
    let bouncer = PgBouncer::start(server).await?;
    let port = bouncer.port();
    let first_pid = bouncer.pid().ok_or("PgBouncer is not running")?;

    let mut conn = PgConnection::connect(&bouncer.url(&db)).await?;
    backend_pid(&mut conn).await?;
    bouncer.kill9().await?;
    assert_eq!(bouncer.pid(), None, "PgBouncer still runs after kill9");
    assert!(
        sqlx::raw_sql("SELECT 1").execute(&mut conn).await.is_err(),
        "a connection through a killed PgBouncer still worked"
    );
    assert!(
        PgConnection::connect(&bouncer.url(&db)).await.is_err(),
        "a killed PgBouncer accepted a connection"
    );

    bouncer.start_again().await?;
    assert_eq!(bouncer.port(), port);
    let second_pid = bouncer.pid().ok_or("PgBouncer did not start again")?;
    assert_ne!(first_pid, second_pid);
    let mut again = PgConnection::connect(&bouncer.url(&db)).await?;
    backend_pid(&mut again).await?;

    bouncer.kill9_and_start().await?;
    let mut third = PgConnection::connect(&bouncer.url(&db)).await?;
    backend_pid(&mut third).await?;
    Ok(())
}

#[tokio::test]
async fn query_wait_timeout_disconnects_a_client_that_waits_too_long() -> TestResult {
    let server = PgServer::shared().await?;
    let db = server.create_database().await?;
    let bouncer = PgBouncer::start_with(
        server,
        PgBouncerOptions::new()
            .default_pool_size(1)
            .query_wait_timeout(Duration::from_secs(1)),
    )
    .await?;

    let mut holder = PgConnection::connect(&bouncer.url(&db)).await?;
    sqlx::raw_sql("BEGIN; SELECT 1")
        .execute(&mut holder)
        .await?;
    let mut waiter = PgConnection::connect(&bouncer.url(&db)).await?;
    let error = tokio::time::timeout(LIMIT, sqlx::raw_sql("SELECT 1").execute(&mut waiter))
        .await?
        .expect_err("a query got a server connection that another client held");
    assert!(
        error.to_string().contains("query_wait_timeout"),
        "unexpected error: {error}"
    );
    sqlx::raw_sql("COMMIT").execute(&mut holder).await?;
    Ok(())
}

#[tokio::test]
async fn sqlx_is_refused_without_ignore_startup_parameters() -> TestResult {
    let server = PgServer::shared().await?;
    let db = server.create_database().await?;
    let strict = PgBouncer::start_with(
        server,
        PgBouncerOptions::new().ignore_startup_parameters(Vec::<String>::new()),
    )
    .await?;
    let error = PgConnection::connect(&strict.url(&db))
        .await
        .expect_err("PgBouncer accepted sqlx's extra_float_digits without being told to");
    assert!(
        error.to_string().contains("extra_float_digits"),
        "unexpected error: {error}"
    );
    Ok(())
}

#[tokio::test]
async fn no_password_in_debug_or_console_errors() -> TestResult {
    let server = PgServer::shared().await?;
    let db = server.create_database().await?;
    let bouncer = PgBouncer::start(server).await?;
    let secret = bouncer
        .console_url()
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password.to_owned())
        .ok_or("the console URL has no password")?;
    let app_secret = bouncer
        .url(&db)
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password.to_owned())
        .ok_or("the app URL has no password")?;
    let debug = format!("{bouncer:?}");
    let error = bouncer
        .console("SHOW NO_SUCH_THING")
        .await
        .expect_err("the console accepted a bad command")
        .to_string();
    for text in [&debug, &error] {
        assert!(!text.contains(&secret), "a password leaked: {text}");
        assert!(!text.contains(&app_secret), "a password leaked: {text}");
    }
    Ok(())
}

/// A test process killed with SIGKILL leaves no PgBouncer and no directory behind.
#[tokio::test]
async fn a_killed_test_process_leaves_no_pgbouncer_behind() -> TestResult {
    if support::is_victim() {
        let server = PgServer::shared().await?;
        let bouncer = PgBouncer::start(server).await?;
        return support::report_and_wait(bouncer.dir()).await;
    }
    let (dir, before) = support::kill_victim(
        "a_killed_test_process_leaves_no_pgbouncer_behind",
        Duration::from_secs(120),
    )?;
    let dir = std::path::PathBuf::from(dir);
    assert!(!before.is_empty(), "nothing ran in {}", dir.display());
    let gone =
        eventually(|| async { support::processes_of(&dir).is_empty() && !dir.exists() }).await;
    assert!(
        gone,
        "{:?} or {} outlived the killed test process",
        support::processes_of(&dir),
        dir.display()
    );
    Ok(())
}
