//! The rest of docs/CLASSIFICATION.md provoked on real servers: a standby, shutdowns, the
//! kit's proxy, refused connections, the server's idle timeouts. Each test asserts the kind,
//! the reach, the retry decision (transient) and the eviction the table promises.

use std::time::Duration;

use sqlx::{ConnectOptions, Connection};
use sqlx_resilience::FailureKind;
use sqlx_resilience::classify::{Classification, Reach, classify, classify_sqlstate};
use sqlx_resilience_testkit::{FaultProxy, PgServer, ReplicaSet, ShutdownMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support;

async fn connect(url: &str) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(url).await.expect("connect")
}

async fn exec(conn: &mut sqlx::PgConnection, sql: &'static str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sql).execute(conn).await.map(|_| ())
}

/// The row of the table: kind, reach, transient, evict, breaker.
#[track_caller]
fn assert_row(
    c: &Classification,
    kind: FailureKind,
    reach: Reach,
    transient: bool,
    evict: bool,
    breaker: bool,
) {
    assert_eq!(c.kind, kind, "{c:?}");
    assert_eq!(c.reach, reach, "{c:?}");
    assert_eq!(c.transient, transient, "transient: {c:?}");
    assert_eq!(c.evict, evict, "evict: {c:?}");
    assert_eq!(c.counts_for_breaker, breaker, "breaker: {c:?}");
}

/// Runs `select pg_sleep(30)` on `conn` in the background, returning once the server shows it
/// running (polled from `admin_url`).
async fn sleeping(
    mut conn: sqlx::PgConnection,
    admin_url: &str,
) -> tokio::task::JoinHandle<Result<(), sqlx::Error>> {
    let (pid,): (i32,) = sqlx::query_as("select pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let task = tokio::spawn(async move { exec(&mut conn, "select pg_sleep(30)").await });
    let mut admin = connect(admin_url).await;
    for _ in 0..3000 {
        let (n,): (i64,) = sqlx::query_as(
            "select count(*) from pg_stat_activity where pid = $1 and state = 'active' \
             and query like '%pg_sleep%'",
        )
        .bind(pid)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if n > 0 {
            return task;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the sleep never showed up in pg_stat_activity");
}

#[tokio::test]
async fn a_write_on_a_real_standby_fails_with_25006_failover() {
    let set = ReplicaSet::start(1).await.expect("a primary and a standby");
    let db = set.create_database().await.unwrap();
    let mut standby = connect(&set.replica_url(0, &db)).await;
    let (in_recovery,): (bool,) = sqlx::query_as("select pg_is_in_recovery()")
        .fetch_one(&mut standby)
        .await
        .unwrap();
    assert!(in_recovery, "replica 0 is a standby");
    let err = exec(&mut standby, "create table t (v int)")
        .await
        .unwrap_err();
    let c = classify(&err);
    assert_eq!(c.sqlstate.as_deref(), Some("25006"), "{err}");
    assert_row(&c, FailureKind::Failover, Reach::Rejected, true, true, true);
}

#[tokio::test]
async fn a_fast_shutdown_ends_a_running_statement_with_57p01() {
    let server = PgServer::start().await.unwrap();
    let db = server.create_database().await.unwrap();
    let running = sleeping(connect(db.url()).await, db.admin_url()).await;
    server.stop(ShutdownMode::Fast).await.unwrap();
    let err = running.await.unwrap().unwrap_err();
    let c = classify(&err);
    assert_eq!(c.sqlstate.as_deref(), Some("57P01"), "{err}");
    assert_row(
        &c,
        FailureKind::ServerShutdown,
        Reach::Unknown,
        true,
        true,
        true,
    );
}

/// An immediate shutdown (SIGQUIT) and a crashed backend end sessions with a 57P01 or 57P02
/// *warning*, not an error (PostgreSQL's `quickdie`), then close the socket: what the client
/// sees is the connection ending, classified by the I/O error.
#[tokio::test]
async fn an_immediate_shutdown_and_a_crash_end_sessions_as_lost_connections() {
    let server = PgServer::start().await.unwrap();
    let db = server.create_database().await.unwrap();

    // 57P01 (immediate shutdown).
    let running = sleeping(connect(db.url()).await, db.admin_url()).await;
    server.stop(ShutdownMode::Immediate).await.unwrap();
    let err = running.await.unwrap().unwrap_err();
    let c = classify(&err);
    assert_eq!(c.sqlstate, None, "{err}");
    assert_row(
        &c,
        FailureKind::ConnectionLost,
        Reach::Unknown,
        true,
        true,
        true,
    );
    server.start_again().await.unwrap();

    // 57P02 (another backend crashed): SIGKILL one backend, the postmaster resets the rest.
    let mut victim = connect(db.url()).await;
    let (victim_pid,): (i32,) = sqlx::query_as("select pg_backend_pid()")
        .fetch_one(&mut victim)
        .await
        .unwrap();
    let running = sleeping(connect(db.url()).await, db.admin_url()).await;
    let killed = std::process::Command::new("kill")
        .args(["-9", &victim_pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let err = running.await.unwrap().unwrap_err();
    let c = classify(&err);
    assert_eq!(c.sqlstate, None, "{err}");
    assert_row(
        &c,
        FailureKind::ConnectionLost,
        Reach::Unknown,
        true,
        true,
        true,
    );
    drop(victim);
}

#[tokio::test]
async fn a_connection_attempt_during_shutdown_fails_with_57p03() {
    let server = PgServer::start().await.unwrap();
    let db = server.create_database().await.unwrap();
    // A smart shutdown waits for this session to end; meanwhile new ones are refused.
    let held = connect(db.url()).await;
    let stopping = tokio::spawn(async move {
        server.stop(ShutdownMode::Smart).await.unwrap();
        server
    });
    let mut refused = None;
    for _ in 0..3000 {
        match sqlx::PgConnection::connect(db.url()).await {
            Ok(c) => drop(c),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let err = refused.expect("connections refused once the shutdown began");
    let c = classify(&err);
    assert_eq!(c.sqlstate.as_deref(), Some("57P03"), "{err}");
    assert_row(
        &c,
        FailureKind::ServerShutdown,
        Reach::NotSent,
        true,
        true,
        true,
    );
    drop(held);
    let _server = stopping.await.unwrap();
    drop(db);
}

#[tokio::test]
async fn a_database_refusing_connections_fails_with_55000_connection_lost() {
    let db = support::db().await;
    db.server().refuse_connections(db.name()).await.unwrap();
    let err = sqlx::PgConnection::connect(db.url()).await.unwrap_err();
    db.server().allow_connections(db.name()).await.unwrap();
    let c = classify(&err);
    assert_eq!(c.sqlstate.as_deref(), Some("55000"), "{err}");
    assert!(
        err.to_string()
            .contains("not currently accepting connections")
    );
    assert_row(
        &c,
        FailureKind::ConnectionLost,
        Reach::NotSent,
        true,
        true,
        true,
    );
}

#[tokio::test]
async fn other_55000_errors_are_unknown_and_final() {
    let db = support::db().await;
    let mut conn = connect(db.url()).await;
    exec(&mut conn, "create sequence s").await.unwrap();
    let err = exec(&mut conn, "select currval('s')").await.unwrap_err();
    let c = classify(&err);
    assert_eq!(c.sqlstate.as_deref(), Some("55000"), "{err}");
    assert_row(
        &c,
        FailureKind::Unknown,
        Reach::Rejected,
        false,
        false,
        false,
    );
}

/// A session ended by one of the server's idle timeouts: the server sends the FATAL error
/// and closes; the client reads it with its next statement.
async fn ended_by_idle_timeout(setting: &str, begin: bool) -> sqlx::Error {
    let db = support::db().await;
    let options = db
        .url()
        .parse::<sqlx::postgres::PgConnectOptions>()
        .unwrap()
        .options([(setting, "100")]);
    let mut conn = options.connect().await.unwrap();
    if begin {
        exec(&mut conn, "begin").await.unwrap();
    }
    // Generous: the session ends 100 ms after it went idle, whatever the machine's load.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    exec(&mut conn, "select 1").await.unwrap_err()
}

#[tokio::test]
async fn idle_in_transaction_session_timeout_fails_with_25p03_connection_lost() {
    let err = ended_by_idle_timeout("idle_in_transaction_session_timeout", true).await;
    let c = classify(&err);
    assert_eq!(c.sqlstate.as_deref(), Some("25P03"), "{err}");
    assert_row(
        &c,
        FailureKind::ConnectionLost,
        Reach::Unknown,
        true,
        true,
        true,
    );
}

#[tokio::test]
async fn idle_session_timeout_fails_with_57p05_connection_lost() {
    let err = ended_by_idle_timeout("idle_session_timeout", false).await;
    let c = classify(&err);
    assert_eq!(c.sqlstate.as_deref(), Some("57P05"), "{err}");
    assert_row(
        &c,
        FailureKind::ConnectionLost,
        Reach::Unknown,
        true,
        true,
        true,
    );
}

#[tokio::test]
async fn a_connection_reset_by_the_proxy_mid_statement_is_connection_lost() {
    let db = support::db().await;
    let proxy = FaultProxy::start(db.server().tcp_addr()).await.unwrap();
    let conn = connect(&db.url_via(proxy.addr())).await;
    let running = sleeping(conn, db.admin_url()).await;
    proxy.reset().await;
    let err = running.await.unwrap().unwrap_err();
    let c = classify(&err);
    assert_eq!(c.sqlstate, None, "{err}");
    assert_row(
        &c,
        FailureKind::ConnectionLost,
        Reach::Unknown,
        true,
        true,
        true,
    );

    // While the proxy refuses connections, a connect fails before anything was sent.
    proxy.refuse().await;
    let err = sqlx::PgConnection::connect(&db.url_via(proxy.addr()))
        .await
        .unwrap_err();
    let c = classify(&err);
    assert_row(
        &c,
        FailureKind::ConnectionLost,
        Reach::NotSent,
        true,
        true,
        true,
    );
}

/// The SQLSTATE of the first `ErrorResponse` in `bytes`, with its message.
fn error_response(bytes: &[u8]) -> Option<(String, String)> {
    let at = bytes.iter().position(|b| *b == b'E')?;
    let fields = bytes.get(at + 5..)?;
    let (mut code, mut message) = (None, None);
    for field in fields.split(|b| *b == 0) {
        match field.split_first() {
            Some((b'C', v)) => code = Some(String::from_utf8_lossy(v).into_owned()),
            Some((b'M', v)) => message = Some(String::from_utf8_lossy(v).into_owned()),
            _ => {}
        }
    }
    Some((code?, message?))
}

/// sqlx never sends a malformed message, so a raw socket through the kit's proxy does: a
/// startup packet whose parameters lack their terminator. The server answers with a FATAL
/// 08P01 and closes.
#[tokio::test]
async fn a_protocol_violation_through_the_proxy_fails_with_08p01_connection_lost() {
    let db = support::db().await;
    let proxy = FaultProxy::start(db.server().tcp_addr()).await.unwrap();
    let mut socket = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    // The last name has no value and no terminator follows it.
    let body: &[u8] = b"user\0app\0xy";
    let mut packet = Vec::new();
    packet.extend_from_slice(&((8 + body.len()) as u32).to_be_bytes());
    packet.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
    packet.extend_from_slice(body);
    socket.write_all(&packet).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), socket.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let (code, message) = error_response(&answer).expect("an ErrorResponse");
    assert_eq!(code, "08P01", "{message}");
    let c = classify_sqlstate(&code, &message);
    assert_row(
        &c,
        FailureKind::ConnectionLost,
        Reach::Unknown,
        true,
        true,
        true,
    );
}

#[tokio::test]
async fn a_cancel_request_fails_with_57014_canceled() {
    let db = support::db().await;
    let mut victim = connect(db.url()).await;
    let (pid,): (i32,) = sqlx::query_as("select pg_backend_pid()")
        .fetch_one(&mut victim)
        .await
        .unwrap();
    let running = sleeping(victim, db.admin_url()).await;
    let mut admin = connect(db.admin_url()).await;
    sqlx::query("select pg_cancel_backend($1)")
        .bind(pid)
        .execute(&mut admin)
        .await
        .unwrap();
    let err = running.await.unwrap().unwrap_err();
    let c = classify(&err);
    assert_eq!(c.sqlstate.as_deref(), Some("57014"), "{err}");
    assert_row(
        &c,
        FailureKind::Canceled,
        Reach::Rejected,
        false,
        false,
        false,
    );
}

#[tokio::test]
async fn a_wrong_password_fails_with_28p01_permanent() {
    let db = support::db().await;
    let options = db
        .url()
        .parse::<sqlx::postgres::PgConnectOptions>()
        .unwrap()
        .password("not-the-password");
    let err = options.connect().await.unwrap_err();
    let c = classify(&err);
    assert_eq!(c.sqlstate.as_deref(), Some("28P01"), "{err}");
    assert_row(
        &c,
        FailureKind::Permanent,
        Reach::NotSent,
        false,
        false,
        false,
    );
}

#[tokio::test]
async fn application_errors_are_permanent_and_never_retried() {
    let db = support::db().await;
    let mut conn = connect(db.url()).await;
    for (sql, code) in [
        ("select 1/0", "22012"),
        ("selec 1", "42601"),
        ("select * from no_such_table", "42P01"),
        ("do $$ begin raise exception 'no'; end $$", "P0001"),
    ] {
        let err = sqlx::raw_sql(sql).execute(&mut conn).await.unwrap_err();
        let c = classify(&err);
        assert_eq!(c.sqlstate.as_deref(), Some(code), "{sql}: {err}");
        assert_row(
            &c,
            FailureKind::Permanent,
            Reach::Rejected,
            false,
            false,
            false,
        );
    }
    let err = sqlx::query("select 1 where false")
        .fetch_one(&mut conn)
        .await
        .unwrap_err();
    assert_row(
        &classify(&err),
        FailureKind::NotFound,
        Reach::Rejected,
        false,
        false,
        false,
    );
}
