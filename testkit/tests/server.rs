//! The test kit's servers against real PostgreSQL: shared and dedicated servers, per-test
//! databases, server controls, and cleanup after drops and after a killed test process.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use sqlx::{Connection, PgConnection};
use sqlx_resilience_testkit::{PgServer, RestartMode, ServerOptions, ShutdownMode};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Gone, or exited and waiting to be collected by its parent.
fn is_gone(pid: u32) -> bool {
    match kill(Pid::from_raw(pid as i32), None) {
        Err(Errno::ESRCH) => true,
        _ => std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true),
    }
}

fn poll_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

async fn one_value(conn: &mut PgConnection, sql: &'static str) -> Result<String, sqlx::Error> {
    sqlx::query_scalar::<_, String>(sql).fetch_one(conn).await
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

#[tokio::test]
async fn shared_server_hands_out_distinct_databases_owned_by_app() -> TestResult {
    let server = PgServer::shared().await?;
    let first = server.create_database().await?;
    let second = server.create_database().await?;
    assert_ne!(first.name(), second.name());
    assert!(first.name().starts_with("t_"), "{}", first.name());

    let mut a = PgConnection::connect(first.url()).await?;
    let mut b = PgConnection::connect(second.url()).await?;
    assert_eq!(
        one_value(&mut a, "SELECT current_database()::text").await?,
        first.name()
    );
    assert_eq!(
        one_value(&mut b, "SELECT current_database()::text").await?,
        second.name()
    );
    if server.is_throwaway() {
        assert_eq!(one_value(&mut a, "SELECT current_user::text").await?, "app");
        let superuser = one_value(
            &mut a,
            "SELECT rolsuper::text FROM pg_roles WHERE rolname = current_user",
        )
        .await?;
        assert_eq!(superuser, "false");
    }
    sqlx::query("CREATE TABLE only_here (id int)")
        .execute(&mut a)
        .await?;
    let seen_elsewhere = sqlx::query("SELECT 1 FROM only_here").execute(&mut b).await;
    assert_eq!(
        sqlstate(&seen_elsewhere.unwrap_err()).as_deref(),
        Some("42P01")
    );

    // The same shared server, however many times it is asked for.
    assert!(std::ptr::eq(server, PgServer::shared().await?));
    Ok(())
}

#[tokio::test]
async fn debug_output_never_shows_passwords() -> TestResult {
    let server = PgServer::shared().await?;
    let db = server.create_database().await?;
    let password_of = |url: &str| -> String {
        let userinfo = url.split("://").nth(1).unwrap().split('@').next().unwrap();
        userinfo.split(':').nth(1).unwrap_or_default().to_owned()
    };
    let secrets = [password_of(db.url()), password_of(server.admin_url())];
    let shown = [
        format!("{server:?}"),
        format!("{db:?}"),
        format!("{:#?}", db),
    ];
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        for text in &shown {
            assert!(!text.contains(secret.as_str()), "password shown in {text}");
        }
    }
    assert!(shown[1].contains(db.name()), "{}", shown[1]);
    // The URLs themselves carry the password, and work.
    PgConnection::connect(db.admin_url()).await?.close().await?;
    Ok(())
}

#[tokio::test]
async fn restart_fast_and_immediate_end_old_connections_and_accept_new_ones() -> TestResult {
    let server = PgServer::start().await?;
    let db = server.create_database().await?;
    let mut setup = PgConnection::connect(db.url()).await?;
    sqlx::raw_sql("CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)")
        .execute(&mut setup)
        .await?;

    for mode in [RestartMode::Fast, RestartMode::Immediate] {
        let mut old = PgConnection::connect(db.url()).await?;
        let pid_before = server.postmaster_pid().unwrap();
        server.restart(mode).await?;
        assert!(
            sqlx::query("SELECT 1").execute(&mut old).await.is_err(),
            "a connection from before the {mode:?} restart still works"
        );
        assert_ne!(server.postmaster_pid().unwrap(), pid_before);
        let mut fresh = PgConnection::connect(db.url()).await?;
        let kept: i32 = sqlx::query_scalar("SELECT v FROM kept")
            .fetch_one(&mut fresh)
            .await?;
        assert_eq!(kept, 7, "after the {mode:?} restart");
    }

    // The default options preload pg_stat_statements whenever the version ships it.
    let mut admin = PgConnection::connect(db.admin_url()).await?;
    let libdir = Command::new("pg_config").arg("--pkglibdir").output();
    let ships_it = libdir.is_ok_and(|out| {
        Path::new(String::from_utf8_lossy(&out.stdout).trim())
            .join("pg_stat_statements.so")
            .exists()
    });
    if ships_it && server.version_num() / 10_000 == pg_config_major() {
        let preload = one_value(&mut admin, "SHOW shared_preload_libraries").await?;
        assert!(preload.contains("pg_stat_statements"), "{preload}");
    }
    Ok(())
}

fn pg_config_major() -> u32 {
    Command::new("pg_config")
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let version = text.split_whitespace().nth(1)?.to_owned();
            version.split('.').next()?.parse().ok()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn kill9_then_start_recovers_committed_data() -> TestResult {
    let server = PgServer::start().await?;
    let db = server.create_database().await?;
    let mut conn = PgConnection::connect(db.url()).await?;
    // The test kit runs servers with synchronous_commit = off for speed, so a crash may lose
    // the last fraction of a second of commits; ask for the durable behaviour here.
    sqlx::query("SET synchronous_commit = on")
        .execute(&mut conn)
        .await?;
    sqlx::query("CREATE TABLE ledger (v int)")
        .execute(&mut conn)
        .await?;
    sqlx::query("INSERT INTO ledger SELECT generate_series(1, 1000)")
        .execute(&mut conn)
        .await?;
    let data = server.data_dir().unwrap().to_path_buf();
    let postmaster = server.postmaster_pid().unwrap();

    server.kill9_and_start().await?;

    assert!(is_gone(postmaster));
    assert!(sqlx::query("SELECT 1").execute(&mut conn).await.is_err());
    let mut fresh = PgConnection::connect(db.url()).await?;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger")
        .fetch_one(&mut fresh)
        .await?;
    assert_eq!(count, 1000);
    let log = std::fs::read_to_string(data.parent().unwrap().join("log"))?;
    assert!(
        log.contains("database system was interrupted") || log.contains("not properly shut down"),
        "the server did not run crash recovery"
    );
    Ok(())
}

#[tokio::test]
async fn kill9_keeps_the_server_down_until_started_again() -> TestResult {
    let server = PgServer::start().await?;
    let db = server.create_database().await?;
    let mut conn = PgConnection::connect(db.url()).await?;
    sqlx::query("SELECT 1").execute(&mut conn).await?;
    let data = server.data_dir().unwrap().canonicalize()?;
    let postmaster = server.postmaster_pid().unwrap();

    server.kill9().await?;

    assert!(is_gone(postmaster));
    assert!(server.postmaster_pid().is_none());
    let left: Vec<_> = std::fs::read_dir("/proc")?
        .filter_map(|e| e.ok())
        .filter(|e| std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd == data))
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.is_empty(),
        "processes still run in the data directory: {left:?}"
    );
    assert!(sqlx::query("SELECT 1").execute(&mut conn).await.is_err());
    assert!(PgConnection::connect(db.url()).await.is_err());

    server.start_again().await?;
    PgConnection::connect(db.url()).await?.close().await?;
    let log = std::fs::read_to_string(data.parent().unwrap().join("log"))?;
    assert!(
        log.contains("database system was interrupted") || log.contains("not properly shut down"),
        "the server did not run crash recovery"
    );
    Ok(())
}

#[tokio::test]
async fn stop_keeps_the_server_down_until_started_again_and_options_apply() -> TestResult {
    let options = ServerOptions::new()
        .max_connections(40)
        .setting("work_mem", "3MB")
        .preload_pg_stat_statements(false);
    let server = PgServer::start_with(options).await?;
    let db = server.create_database().await?;
    let mut admin = PgConnection::connect(db.admin_url()).await?;
    assert_eq!(one_value(&mut admin, "SHOW max_connections").await?, "40");
    assert_eq!(one_value(&mut admin, "SHOW work_mem").await?, "3MB");
    assert_eq!(
        one_value(&mut admin, "SHOW shared_preload_libraries").await?,
        ""
    );
    admin.close().await?;

    server.stop(ShutdownMode::Fast).await?;
    assert!(server.postmaster_pid().is_none());
    assert!(PgConnection::connect(db.url()).await.is_err());
    server.start_again().await?;

    server.set_setting("work_mem", "7MB").await?;
    let mut fresh = PgConnection::connect(db.url()).await?;
    assert_eq!(one_value(&mut fresh, "SHOW work_mem").await?, "7MB");
    Ok(())
}

#[tokio::test]
async fn terminate_backends_ends_a_connected_client_with_57p01() -> TestResult {
    let server = PgServer::shared().await?;
    let db = server.create_database().await?;
    let mut victim = PgConnection::connect(db.url()).await?;
    sqlx::query("SELECT 1").execute(&mut victim).await?;

    let ended = server.terminate_backends(db.name()).await?;
    assert_eq!(ended, 1);
    let error = sqlx::query("SELECT 1")
        .execute(&mut victim)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&error).as_deref(), Some("57P01"), "{error}");
    Ok(())
}

#[tokio::test]
async fn refuse_connections_blocks_new_connections_until_allowed() -> TestResult {
    let server = PgServer::shared().await?;
    let db = server.create_database().await?;
    let mut open = PgConnection::connect(db.url()).await?;

    server.refuse_connections(db.name()).await?;
    let refused = PgConnection::connect(db.url()).await.unwrap_err();
    assert_eq!(sqlstate(&refused).as_deref(), Some("55000"), "{refused}");
    sqlx::query("SELECT 1").execute(&mut open).await?;

    server.allow_connections(db.name()).await?;
    PgConnection::connect(db.url()).await?.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_dropped_server_leaves_no_process_and_no_directory() -> TestResult {
    let server = PgServer::start().await?;
    let db = server.create_database().await?;
    let mut conn = PgConnection::connect(db.url()).await?;
    sqlx::query("SELECT 1").execute(&mut conn).await?;
    let pid = server.postmaster_pid().unwrap();
    let dir = server.data_dir().unwrap().parent().unwrap().to_path_buf();
    assert!(dir.exists());

    drop(db);
    drop(server);

    // Synchronous: gone by the time drop returns, not collected later.
    assert_eq!(kill(Pid::from_raw(pid as i32), None), Err(Errno::ESRCH));
    assert!(!dir.exists(), "{} is still there", dir.display());
    Ok(())
}

#[tokio::test]
async fn no_server_binaries_is_an_error_that_says_what_to_install() {
    let error = PgServer::start_with(ServerOptions::new().bindir("/nonexistent/pg/bin"))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("/nonexistent/pg/bin"), "{message}");
    assert!(message.contains("apt-get install postgresql"), "{message}");
    assert!(message.contains("DATABASE_URL"), "{message}");
}

/// Set in the child process of the SIGKILL test.
const VICTIM: &str = "SQLX_RESILIENCE_TESTKIT_VICTIM";

/// Starts a child test process that starts a server, kills it with SIGKILL, and checks that
/// the server and its directory go away anyway. In the child (with `VICTIM` set), starts the
/// server, reports it and waits to be killed.
#[tokio::test]
async fn a_killed_test_process_leaves_no_process_and_no_directory() -> TestResult {
    if std::env::var_os(VICTIM).is_some() {
        let server = PgServer::start().await?;
        println!(
            "VICTIM {} {}",
            server.postmaster_pid().unwrap(),
            server.data_dir().unwrap().parent().unwrap().display()
        );
        tokio::time::sleep(Duration::from_secs(120)).await;
        return Err("the victim was not killed".into());
    }

    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "a_killed_test_process_leaves_no_process_and_no_directory",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(VICTIM, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            // libtest prints the test's name on the same line first.
            if let Some((_, rest)) = line.split_once("VICTIM ") {
                let _ = tx.send(rest.to_owned());
            }
        }
    });
    let report = rx.recv_timeout(Duration::from_secs(90));
    child.kill()?;
    child.wait()?;
    let report = report.map_err(|_| "the child did not report a started server")?;
    let (pid, dir) = report.split_once(' ').unwrap();
    let pid: u32 = pid.parse()?;
    let dir = PathBuf::from(dir);

    assert!(
        poll_until(Duration::from_secs(30), || is_gone(pid)),
        "postmaster {pid} outlived the killed test process"
    );
    assert!(
        poll_until(Duration::from_secs(30), || !dir.exists()),
        "{} outlived the killed test process",
        dir.display()
    );
    Ok(())
}
