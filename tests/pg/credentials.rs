//! Credentials that rotate while the process runs (`password_file`, a password provider) and
//! TLS verified against the server's own certificate authority (`sslmode=verify-full`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx_resilience::{
    Error, FailureKind, PasswordProvider, ProviderError, Runtime, RuntimeBuilder, Value,
};
use sqlx_resilience_testkit::{PgServer, ReplicaSet, ServerOptions, TestDb};

use crate::support::{self, Logs, scalar_i64};

/// A login role of its own, so rotating its password touches no other test.
struct Role {
    name: String,
    admin_url: String,
}

impl Role {
    async fn create(db: &TestDb, password: &str) -> Role {
        let name = format!("rot_{}", db.name().trim_start_matches("t_"));
        let role = Role {
            name,
            admin_url: db.admin_url().to_owned(),
        };
        role.admin(&format!(
            "create role {} login password '{password}'",
            role.name
        ))
        .await;
        role.admin(&format!(
            "grant all on database {} to {}",
            db.name(),
            role.name
        ))
        .await;
        role
    }

    async fn admin(&self, sql: &str) {
        use sqlx::{ConnectOptions, Connection};
        // Not logged: the statements carry the passwords the test looks for in the logs.
        let options: sqlx::postgres::PgConnectOptions =
            self.admin_url.parse().expect("the admin URL");
        let mut conn = sqlx::PgConnection::connect_with(&options.disable_statement_logging())
            .await
            .expect("admin connection");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .expect(sql);
        let _ = conn.close().await;
    }

    /// Rotates the password and ends the role's open sessions, so the pool must connect again.
    async fn rotate(&self, password: &str) {
        self.admin(&format!(
            "alter role {} password '{password}'; \
             select pg_terminate_backend(pid) from pg_stat_activity where usename = '{}'",
            self.name, self.name
        ))
        .await;
    }

    /// The test database's URL for this role, without a password.
    fn url(&self, db: &TestDb) -> String {
        self.url_from(db.url())
    }

    /// `url` (the `app` role's, to any server) for this role, without a password.
    fn url_from(&self, url: &str) -> String {
        let at = url.find('@').expect("userinfo");
        format!("postgres://{}{}", self.name, &url[at..])
    }
}

/// Ends every session of `role` on `server` (a standby too: `pg_terminate_backend` writes
/// nothing), so its pools must connect again.
async fn terminate_sessions(server: &PgServer, role: &str) {
    use sqlx::{ConnectOptions, Connection};
    let options: sqlx::postgres::PgConnectOptions =
        server.admin_url().parse().expect("the admin URL");
    let mut conn = sqlx::PgConnection::connect_with(&options.disable_statement_logging())
        .await
        .expect("admin connection");
    sqlx::query("select pg_terminate_backend(pid) from pg_stat_activity where usename = $1")
        .bind(role)
        .execute(&mut conn)
        .await
        .expect("terminate the role's sessions");
    let _ = conn.close().await;
}

/// A file removed when the test ends.
struct SecretFile(PathBuf);

impl SecretFile {
    fn new(tag: &str) -> SecretFile {
        let path = std::env::temp_dir().join(format!(
            "sqlx-resilience-secret-{}-{tag}",
            std::process::id()
        ));
        SecretFile(path)
    }

    fn write(&self, password: &str) {
        std::fs::write(&self.0, format!("{password}\n")).expect("write the secret file");
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn bare(url: &str) -> RuntimeBuilder {
    Runtime::builder()
        .url(url)
        .env_vars(Vec::<(String, String)>::new())
}

/// Polls `current_user` through the runtime until it answers (connections terminated by a
/// rotation may fail the first tries).
async fn answers_as(rt: &Runtime, role: &str) -> bool {
    for _ in 0..100 {
        let user = rt
            .op("tests::who")
            .read_only(true)
            .run(|conn| {
                Box::pin(async move {
                    let user: String = sqlx::query_scalar("select current_user::text")
                        .fetch_one(conn.as_mut())
                        .await?;
                    Ok::<_, Error>(user)
                })
            })
            .await;
        if let Ok(user) = user {
            return user == role;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_file_is_read_again_when_the_pool_connects() {
    let db = support::db().await;
    let role = Role::create(&db, "first-secret-A1").await;
    let file = SecretFile::new("file");
    file.write("first-secret-A1");
    let path = file.0.to_str().unwrap().to_owned();
    let (logs, _guard) = Logs::capture();

    let rt = bare(&role.url(&db))
        .pool(
            "main",
            &[
                ("password_file", Value::from(path.as_str())),
                ("max", 2.into()),
            ],
        )
        .build()
        .await
        .expect("the pool connects with the file's password");
    assert!(answers_as(&rt, &role.name).await);

    // Rotated on the server, not yet in the file: a new connection is refused.
    role.rotate("second-secret-B2").await;
    let refused = loop {
        match scalar_i64(&rt, "select 1::int8").await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => break e,
        }
    };
    assert_eq!(refused.sqlstate().as_deref(), Some("28P01"), "{refused}");

    // The file catches up: the next connection uses it, without a restart.
    file.write("second-secret-B2");
    assert!(answers_as(&rt, &role.name).await);

    // A file that cannot be read stops the connect with an error naming it.
    role.rotate("third-secret-C3").await;
    drop(file);
    let missing = loop {
        match scalar_i64(&rt, "select 1::int8").await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => break e,
        }
    };
    assert!(matches!(missing, Error::Credentials { .. }), "{missing:?}");
    assert_eq!(missing.kind(), FailureKind::Configuration);
    let text = missing.to_string();
    assert!(
        text.contains(&path) && text.contains("pool `main`"),
        "{text}"
    );

    for secret in ["first-secret-A1", "second-secret-B2", "third-secret-C3"] {
        for shown in [
            format!("{rt:?}"),
            format!("{missing:?}"),
            text.clone(),
            logs.text(),
        ] {
            assert!(!shown.contains(secret), "a password was shown: {shown}");
        }
    }
}

/// Hands out the password it holds, counting the calls; fails while `fail` is set.
#[derive(Clone, Default)]
struct Rotating {
    password: Arc<Mutex<String>>,
    calls: Arc<AtomicUsize>,
    fail: Arc<Mutex<bool>>,
}

impl PasswordProvider for Rotating {
    fn password(&self) -> BoxFuture<'_, Result<String, ProviderError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Relaxed);
            if *self.fail.lock().unwrap() {
                return Err("the token service is unreachable".into());
            }
            Ok(self.password.lock().unwrap().clone())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_provider_is_asked_before_new_connections() {
    let db = support::db().await;
    let role = Role::create(&db, "token-one-X9").await;
    let provider = Rotating::default();
    *provider.password.lock().unwrap() = "token-one-X9".into();

    let builder = bare(&role.url(&db))
        .pool("main", &[("max", 2.into())])
        .password_provider("main", provider.clone());
    let shown = format!("{builder:?}");
    let rt = builder.build().await.expect("runtime");
    assert!(answers_as(&rt, &role.name).await);
    assert!(provider.calls.load(Relaxed) >= 1, "asked before connecting");

    // A rotation: the next connection uses the provider's new token.
    *provider.password.lock().unwrap() = "token-two-Y8".into();
    role.rotate("token-two-Y8").await;
    let before = provider.calls.load(Relaxed);
    assert!(answers_as(&rt, &role.name).await);
    assert!(
        provider.calls.load(Relaxed) > before,
        "asked again for a new connection"
    );

    // A failing provider: a typed error naming the pool and the provider's reason.
    *provider.fail.lock().unwrap() = true;
    role.rotate("token-three-Z7").await;
    let failed = loop {
        match scalar_i64(&rt, "select 1::int8").await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => break e,
        }
    };
    let text = failed.to_string();
    assert!(matches!(failed, Error::Credentials { .. }), "{failed:?}");
    assert!(
        text.contains("pool `main`")
            && text.contains("the password provider")
            && text.contains("the token service is unreachable"),
        "{text}"
    );
    for secret in ["token-one-X9", "token-two-Y8"] {
        assert!(!shown.contains(secret) && !format!("{rt:?}").contains(secret));
    }

    // A provider for a pool nobody declared is refused when the configuration resolves.
    let undeclared = bare(&role.url(&db))
        .pool("main", &[])
        .password_provider("mian", provider)
        .resolve()
        .expect_err("an undeclared pool");
    assert!(
        matches!(undeclared, Error::UndeclaredName { .. }),
        "{undeclared:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_checks_the_servers_certificate_against_its_authority() {
    let server = PgServer::start_with(ServerOptions::new().tls())
        .await
        .expect("a server that speaks TLS");
    let files = server.tls_files().expect("certificates").clone();
    let db = server.create_database().await.expect("database");
    let url = |root: &std::path::Path| {
        db.url().replace(
            "sslmode=disable",
            &format!("sslmode=verify-full&sslrootcert={}", root.display()),
        )
    };

    let rt = bare(&url(&files.root_cert))
        .pool("main", &[])
        .build()
        .await
        .expect("the server's certificate verifies against its authority");
    let encrypted = scalar_i64(
        &rt,
        "select ssl::int::int8 from pg_stat_ssl where pid = pg_backend_pid()",
    )
    .await
    .unwrap();
    assert_eq!(encrypted, 1, "the session is encrypted");
    rt.shutdown(Duration::from_secs(5)).await.expect("shutdown");

    // An authority that did not sign the server's certificate: no connection, and the
    // error says what to check.
    let refused = bare(&url(&files.other_root_cert))
        .pool("main", &[])
        .build()
        .await
        .expect_err("verification must refuse the server");
    assert!(matches!(refused, Error::Connect { .. }), "{refused:?}");
    let chain = format!("{refused}: {:?}", std::error::Error::source(&refused));
    assert!(chain.to_lowercase().contains("certificate"), "{chain}");
}

/// Polls read-only ops until one runs on a standby (`pg_is_in_recovery()`); false when none
/// did within the limit. Reads may fail or run on the primary meanwhile.
async fn a_read_runs_on_the_replica(rt: &Runtime) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let on_standby = rt
            .op("tests::replica_read")
            .read_only(true)
            .run(|conn| {
                Box::pin(async move {
                    let standby: bool = sqlx::query_scalar("select pg_is_in_recovery()")
                        .fetch_one(conn.as_mut())
                        .await?;
                    Ok::<_, Error>(standby)
                })
            })
            .await;
        if matches!(on_standby, Ok(true)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_and_their_lag_monitor_use_the_pools_rotated_password() {
    let set = ReplicaSet::start(1).await.expect("primary with a replica");
    let db = set.create_database().await.expect("test database");
    let role = Role::create(&db, "replica-first-R1").await;
    set.wait_caught_up(0, Duration::from_secs(60))
        .await
        .expect("the role reached the replica");
    // The URLs carry the first password, as a deployment's may: it works until the rotation,
    // after which only the pool's password source opens connections.
    let with_first = |url: String| url.replacen('@', ":replica-first-R1@", 1);
    let replica_url = with_first(role.url_from(&set.replica_url(0, &db)));
    let primary_url = with_first(role.url(&db));
    let file = SecretFile::new("replica");
    file.write("replica-first-R1");
    let path = file.0.to_str().unwrap().to_owned();
    let provider = Rotating::default();
    *provider.password.lock().unwrap() = "replica-first-R1".into();
    let settings = |extra: &[(&'static str, Value)]| {
        let mut all: Vec<(&'static str, Value)> = vec![
            ("replicas", replica_url.as_str().into()),
            ("max_lag", "30s".into()),
            ("max", 2.into()),
        ];
        all.extend(extra.iter().cloned());
        all
    };
    let from_file = bare(&primary_url)
        .pool(
            "main",
            &settings(&[("password_file", path.as_str().into())]),
        )
        .build()
        .await
        .expect("a runtime with its password in a file");
    let from_provider = bare(&primary_url)
        .pool("main", &settings(&[]))
        .password_provider("main", provider.clone())
        .build()
        .await
        .expect("a runtime with a password provider");
    for rt in [&from_file, &from_provider] {
        assert!(
            a_read_runs_on_the_replica(rt).await,
            "no read ran on the replica: {:?}",
            rt.pool("main").unwrap().replica_report()
        );
    }

    // Rotated on the server and in the file and the provider; every open session of the role
    // ends, on the primary and on the replica: only the new password opens connections.
    role.admin(&format!(
        "alter role {} password 'replica-second-R2'",
        role.name
    ))
    .await;
    file.write("replica-second-R2");
    *provider.password.lock().unwrap() = "replica-second-R2".into();
    set.wait_caught_up(0, Duration::from_secs(60))
        .await
        .expect("the rotation reached the replica");
    terminate_sessions(set.primary(), &role.name).await;
    terminate_sessions(set.replica(0), &role.name).await;

    for rt in [&from_file, &from_provider] {
        assert!(
            a_read_runs_on_the_replica(rt).await,
            "no read ran on the replica after the rotation: {:?}",
            rt.pool("main").unwrap().replica_report()
        );
    }
}
