//! Through a real PgBouncer (Debian's, started by the test kit) in transaction mode, with the
//! pool's `pooler = "transaction"`: ops of every shape under load with no prepared-statement
//! error, session settings applied per transaction, deadlines that still stop the server's
//! work, retries and breakers, and PgBouncer's own errors provoked and classified. Each test
//! starts one PgBouncer of its own; conditions are polled with generous limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use sqlx_resilience::{
    DbError, Error, FailureKind, PolicyKind, Reach, Runtime, RuntimeBuilder, Tx, Value, classify,
    db_op,
};
use sqlx_resilience_testkit::{PgBouncer, PgBouncerOptions, PgServer, PoolMode, TestDb};

/// How long any condition may take to appear on a loaded machine.
const LIMIT: Duration = Duration::from_secs(30);

/// A builder whose pool `main` goes through `bouncer` with `pooler = "transaction"`, plus
/// `settings`, and the retry policy `contention` the ops below name.
fn builder(bouncer: &PgBouncer, db: &TestDb, settings: &[(&str, Value)]) -> RuntimeBuilder {
    let mut all: Vec<(&str, Value)> = vec![("pooler", "transaction".into())];
    all.extend(settings.iter().cloned());
    Runtime::builder()
        .url(bouncer.url(db))
        .env_vars(Vec::<(String, String)>::new())
        .pool("main", &all)
        .declare(
            PolicyKind::Retry,
            "contention",
            &[
                ("attempts", 5u32.into()),
                ("base", "10ms".into()),
                ("max_delay", "100ms".into()),
            ],
        )
}

/// The runtime of [`builder`].
async fn runtime(bouncer: &PgBouncer, db: &TestDb, settings: &[(&str, Value)]) -> Runtime {
    builder(bouncer, db, settings)
        .build()
        .await
        .expect("runtime through PgBouncer")
}

#[db_op(pool = "main", read_only)]
async fn pgb_plus_one(rt: &Runtime, conn: &mut PgConnection, n: i64) -> Result<i64, DbError> {
    let (v,): (i64,) = sqlx::query_as("select $1::int8 + 1")
        .bind(n)
        .fetch_one(conn)
        .await?;
    Ok(v)
}

#[db_op(pool = "main", tx, retry = "contention")]
async fn pgb_deposit(rt: &Runtime, tx: &mut Tx<'_>, n: i32) -> Result<i64, DbError> {
    sqlx::query("insert into app.t (v) values ($1)")
        .bind(n)
        .execute(&mut **tx)
        .await?;
    let (count,): (i64,) = sqlx::query_as("select count(*) from app.t where v = $1")
        .bind(n)
        .fetch_one(&mut **tx)
        .await?;
    Ok(count)
}

/// An error with its sources, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Settings as a statement inside an op sees them.
async fn settings_seen(rt: &Runtime) -> (String, String, String) {
    rt.op("pgbouncer::settings")
        .read_only(true)
        .run(|c| {
            Box::pin(async move {
                let row: (String, String, String) = sqlx::query_as(
                    "select current_setting('lock_timeout'), current_setting('search_path'), \
                     current_setting($1)",
                )
                .bind("idle_in_transaction_session_timeout")
                .fetch_one(c.as_mut())
                .await?;
                Ok::<_, Error>(row)
            })
        })
        .await
        .expect("settings through PgBouncer")
}

#[tokio::test]
async fn ops_of_every_shape_run_through_transaction_pooling_without_prepared_statement_errors() {
    let server = PgServer::shared().await.unwrap();
    let db = server.create_database().await.unwrap();
    // Four server connections for forty client connections, and no startup parameter
    // ignored: the pool must send none that PgBouncer refuses.
    let options = PgBouncerOptions::new()
        .default_pool_size(4)
        .ignore_startup_parameters(Vec::<String>::new());
    let bouncer = PgBouncer::start_with(server, options).await.unwrap();
    let rt = runtime(
        &bouncer,
        &db,
        &[
            ("max", 40u32.into()),
            ("lock_timeout", "4s".into()),
            ("idle_in_transaction_session_timeout", "50s".into()),
            ("search_path", "app, public".into()),
        ],
    )
    .await;
    let mut admin = PgConnection::connect(db.admin_url()).await.unwrap();
    sqlx::raw_sql(
        "create schema app authorization app; \
         create table app.t (id bigserial primary key, v int not null); \
         alter table app.t owner to app",
    )
    .execute(&mut admin)
    .await
    .unwrap();

    // The session settings hold in every transaction, whichever server connection serves it.
    assert_eq!(
        settings_seen(&rt).await,
        ("4s".into(), "app, public".into(), "50s".into())
    );

    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for task in 0..40i32 {
        let (rt, errors) = (rt.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..10i32 {
                let n = i64::from(task * 100 + i);
                let mut failed = Vec::new();
                // A plain op through the macro, with a bound argument (prepare, then execute).
                match pgb_plus_one(&rt, n).await {
                    Ok(v) => assert_eq!(v, n + 1),
                    Err(e) => failed.push(chain(&e)),
                }
                // A plain op through the op API: a write, then a read, of unqualified names
                // (the pool's search_path).
                let wrote = rt
                    .op("pgbouncer::write")
                    .run(|c| {
                        Box::pin(async move {
                            sqlx::query("insert into t (v) values ($1)")
                                .bind(-1)
                                .execute(c.as_mut())
                                .await?;
                            let (k,): (i64,) =
                                sqlx::query_as("select count(*) from t where v = $1")
                                    .bind(-1)
                                    .fetch_one(c.as_mut())
                                    .await?;
                            Ok::<_, Error>(k)
                        })
                    })
                    .await;
                if let Err(e) = wrote {
                    failed.push(chain(&e));
                }
                // A transactional op through the macro.
                match pgb_deposit(&rt, task * 100 + i).await {
                    Ok(count) => assert_eq!(count, 1),
                    Err(e) => failed.push(chain(&e)),
                }
                errors.lock().unwrap().extend(failed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let errors = errors.lock().unwrap().clone();
    let prepared = errors
        .iter()
        .filter(|e| e.contains("prepared statement"))
        .count();
    assert_eq!(prepared, 0, "prepared-statement errors: {errors:?}");
    assert!(
        errors.is_empty(),
        "{} ops failed through PgBouncer, the first: {:?}",
        errors.len(),
        &errors[..errors.len().min(3)]
    );
    let (rows,): (i64,) = sqlx::query_as("select count(*) from app.t")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(rows, 800, "every write applied once");
    // PgBouncer served them over at most its four server connections.
    let pool = bouncer
        .pool_of(&db)
        .await
        .unwrap()
        .expect("a PgBouncer pool");
    assert!(pool.server_connections() <= 4, "{pool:?}");
}

#[tokio::test]
async fn behind_a_session_pooler_the_settings_are_set_after_connect() {
    let server = PgServer::shared().await.unwrap();
    let db = server.create_database().await.unwrap();
    let options = PgBouncerOptions::new()
        .pool_mode(PoolMode::Session)
        .ignore_startup_parameters(Vec::<String>::new());
    let bouncer = PgBouncer::start_with(server, options).await.unwrap();
    let rt = runtime(
        &bouncer,
        &db,
        &[
            ("pooler", "session".into()),
            ("lock_timeout", "3s".into()),
            ("idle_in_transaction_session_timeout", "40s".into()),
            ("search_path", "app, public".into()),
        ],
    )
    .await;
    assert_eq!(
        settings_seen(&rt).await,
        ("3s".into(), "app, public".into(), "40s".into())
    );
    assert_eq!(pgb_plus_one(&rt, 41).await.unwrap(), 42);
}

/// Polls the server until no statement containing `marker` is active in `db`; the time from
/// `since`, or `None` after `LIMIT`.
async fn gone_after(
    admin: &mut PgConnection,
    db: &TestDb,
    marker: &str,
    since: Instant,
) -> Option<Duration> {
    while since.elapsed() < LIMIT {
        let (n,): (i64,) = sqlx::query_as(
            "select count(*) from pg_stat_activity \
             where datname = $1 and state = 'active' and query like $2",
        )
        .bind(db.name())
        .bind(format!("%{marker}%"))
        .fetch_one(&mut *admin)
        .await
        .unwrap();
        if n == 0 {
            return Some(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

#[tokio::test]
async fn deadlines_retries_and_breakers_work_through_the_pooler() {
    let server = PgServer::shared().await.unwrap();
    let db = server.create_database().await.unwrap();
    let bouncer = PgBouncer::start_with(server, PgBouncerOptions::new().default_pool_size(2))
        .await
        .unwrap();
    let rt = builder(&bouncer, &db, &[])
        .pool(
            "short",
            &[
                ("pooler", "transaction".into()),
                ("statement_timeout", "200ms".into()),
            ],
        )
        .declare(
            PolicyKind::Breaker,
            "pgbouncer",
            &[("failures", 2u32.into()), ("within", "60s".into())],
        )
        .build()
        .await
        .unwrap();
    let mut admin = PgConnection::connect(db.admin_url()).await.unwrap();

    // A deadline cuts a plain op and a transactional op off, and the server stops the
    // statement: statement_timeout is set from the time left when the transaction begins, and
    // when the client gives up first its socket closes, PgBouncer closes the server
    // connection, and the backend notices within client_connection_check_interval (also set
    // per transaction).
    for (shape, marker) in [("plain", "pg_sleep(60.1)"), ("tx", "pg_sleep(60.2)")] {
        let sql = format!("select {marker}");
        let op = rt
            .op("pgbouncer::sleep")
            .pool("main")
            .timeout(Duration::from_millis(300))
            .read_only(true);
        let err = if shape == "plain" {
            op.run(|c| {
                let sql = sql.clone();
                Box::pin(async move {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(c.as_mut())
                        .await?;
                    Ok::<_, Error>(())
                })
            })
            .await
            .unwrap_err()
        } else {
            op.run_tx(|tx| {
                let sql = sql.clone();
                Box::pin(async move {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut **tx)
                        .await?;
                    Ok::<_, Error>(())
                })
            })
            .await
            .unwrap_err()
        };
        let gave_up = Instant::now();
        // The client's timer and the server's statement_timeout (set from the time left when
        // the transaction began) run out together; either may report first.
        assert!(
            matches!(
                err.kind(),
                FailureKind::Deadline | FailureKind::StatementTimeout
            ),
            "{err}"
        );
        let stopped = gone_after(&mut admin, &db, marker, gave_up).await;
        let stopped = stopped.unwrap_or_else(|| {
            panic!("{shape}: the statement cut off by the deadline still runs on the server")
        });
        eprintln!(
            "pgbouncer: {shape} op cut off by its deadline, gone from pg_stat_activity {} ms later",
            stopped.as_millis()
        );
    }

    // A transaction that fails with a serialization failure runs again, whole.
    let attempts = Arc::new(AtomicU32::new(0));
    let counted = attempts.clone();
    let v = rt
        .op("pgbouncer::retried")
        .pool("main")
        .retry("contention")
        .run_tx(|tx| {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if n == 0 {
                    sqlx::raw_sql(
                        "do $$ begin raise exception 'conflict' using errcode = '40001'; end $$",
                    )
                    .execute(&mut **tx)
                    .await?;
                }
                let (v,): (i32,) = sqlx::query_as("select $1")
                    .bind(7)
                    .fetch_one(&mut **tx)
                    .await?;
                Ok::<_, Error>(v)
            })
        })
        .await
        .unwrap();
    assert_eq!((v, attempts.load(Ordering::SeqCst)), (7, 2));

    // The pool's statement_timeout holds per transaction through the pooler, and the breaker
    // counts what it cancels: after two, it opens.
    let slow = || {
        rt.op("pgbouncer::slow")
            .pool("short")
            .breaker("pgbouncer")
            .read_only(true)
            .run(|c| {
                Box::pin(async move {
                    sqlx::raw_sql("select pg_sleep(5)")
                        .execute(c.as_mut())
                        .await?;
                    Ok::<_, Error>(())
                })
            })
    };
    for _ in 0..2 {
        let err = slow().await.unwrap_err();
        assert_eq!(err.kind(), FailureKind::StatementTimeout, "{err}");
    }
    let err = slow().await.unwrap_err();
    assert!(matches!(err, Error::BreakerOpen { .. }), "{err}");
}

/// The error of a sqlx call that must fail.
fn db_error<T: std::fmt::Debug>(r: Result<T, sqlx::Error>) -> sqlx::Error {
    r.expect_err("PgBouncer refused")
}

#[tokio::test]
async fn pgbouncer_errors_are_provoked_and_classified() {
    let server = PgServer::shared().await.unwrap();
    let db = server.create_database().await.unwrap();
    let closed = server.create_database().await.unwrap();
    let options = PgBouncerOptions::new()
        .default_pool_size(1)
        .max_client_conn(4)
        .query_wait_timeout(Duration::from_secs(1));
    let bouncer = PgBouncer::start_with(server, options).await.unwrap();

    // query_wait_timeout: the only server connection is held by an open transaction; another
    // client's query waits for it, and is refused without having been sent.
    let mut holder = PgConnection::connect(&bouncer.url(&db)).await.unwrap();
    sqlx::raw_sql("begin; select 1")
        .execute(&mut holder)
        .await
        .unwrap();
    let mut waiter = PgConnection::connect(&bouncer.url(&db)).await.unwrap();
    let e = db_error(sqlx::raw_sql("select 1").execute(&mut waiter).await);
    let c = classify(&e);
    assert!(e.to_string().contains("query_wait_timeout"), "{e}");
    assert_eq!(
        (c.kind, c.reach),
        (FailureKind::Backpressure, Reach::NotSent),
        "{e}"
    );
    assert!(c.transient && c.evict && !c.counts_for_breaker);
    sqlx::raw_sql("commit").execute(&mut holder).await.unwrap();

    // max_client_conn: clients beyond it are refused at login.
    let mut held = vec![holder];
    let refused = loop {
        match PgConnection::connect(&bouncer.url(&db)).await {
            Ok(conn) if held.len() < 10 => held.push(conn),
            Ok(_) => panic!("PgBouncer accepted more clients than max_client_conn"),
            Err(e) => break e,
        }
    };
    let c = classify(&refused);
    assert!(
        refused.to_string().contains("no more connections allowed"),
        "{refused}"
    );
    assert_eq!(
        (c.kind, c.reach),
        (FailureKind::Backpressure, Reach::NotSent)
    );
    drop(held);

    // A startup parameter PgBouncer does not know: a configuration error, never retried.
    let url: sqlx::postgres::PgConnectOptions = bouncer.url(&db).parse().unwrap();
    let e = loop {
        // The clients dropped above may still count for a moment.
        match PgConnection::connect_with(&url.clone().options([("lock_timeout", "1s")])).await {
            Err(e) if e.to_string().contains("no more connections") => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => break db_error(other),
        }
    };
    let c = classify(&e);
    assert!(
        e.to_string().contains("unsupported startup parameter"),
        "{e}"
    );
    assert_eq!(c.kind, FailureKind::Configuration, "{e}");
    assert!(!c.transient);

    // The server starts refusing PgBouncer's logins (a database closed to connections) after
    // PgBouncer had logged in once: PgBouncer tries, fails, and refuses the clients after it,
    // within server_login_retry, with its own error, which says that nothing ran.
    let mut admin = PgConnection::connect(db.admin_url()).await.unwrap();
    let mut first = PgConnection::connect(&bouncer.url(&closed)).await.unwrap();
    sqlx::raw_sql("select 1").execute(&mut first).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "alter database \"{0}\" allow_connections false; \
         select pg_terminate_backend(pid) from pg_stat_activity where datname = '{0}'",
        closed.name()
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let mut seen = Vec::new();
    let retry_error = loop {
        let attempt = async {
            let mut conn = PgConnection::connect(&bouncer.url(&closed)).await?;
            sqlx::raw_sql("select 1").execute(&mut conn).await
        };
        let e = db_error(attempt.await);
        if e.to_string().contains("server_login_retry") || seen.len() >= 8 {
            break e;
        }
        seen.push(e.to_string());
    };
    let c = classify(&retry_error);
    assert!(
        retry_error
            .to_string()
            .contains("server login has been failing"),
        "{retry_error} after {seen:?}"
    );
    assert_eq!(
        (c.kind, c.reach),
        (FailureKind::ConnectionLost, Reach::NotSent)
    );
    assert!(c.transient && c.counts_for_breaker);

    // PAUSE: an op waits for RESUME within its deadline, never past it, and runs after it.
    let rt = runtime(&bouncer, &db, &[("max", 1u32.into())]).await;
    assert_eq!(pgb_plus_one(&rt, 1).await.unwrap(), 2);
    bouncer.pause().await.unwrap();
    let err = rt
        .op("pgbouncer::paused")
        .deadline(Duration::from_millis(500))
        .read_only(true)
        .run(|c| {
            Box::pin(async move {
                sqlx::raw_sql("select 1").execute(c.as_mut()).await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Deadline, "{err}");
    bouncer.resume().await.unwrap();
    let started = Instant::now();
    let mut back = pgb_plus_one(&rt, 2).await;
    while back.is_err() && started.elapsed() < LIMIT {
        tokio::time::sleep(Duration::from_millis(100)).await;
        back = pgb_plus_one(&rt, 2).await;
    }
    assert_eq!(back.unwrap(), 3);

    // PgBouncer killed under a running statement: the connection is lost, outcome unknown.
    let mut victim = PgConnection::connect(&bouncer.url(&db)).await.unwrap();
    let running = tokio::spawn(async move {
        sqlx::raw_sql("select pg_sleep(30)")
            .execute(&mut victim)
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    bouncer.kill9().await.unwrap();
    let e = db_error(running.await.unwrap());
    let c = classify(&e);
    assert_eq!(
        (c.kind, c.reach),
        (FailureKind::ConnectionLost, Reach::Unknown),
        "{e}"
    );
}

/// Health reports, `pg_stats` snapshots and the replica lag monitor run queries of their own,
/// outside any op's transaction: through a transaction pooler each must work whichever server
/// connection serves it, and leave no named prepared statement behind for another client's
/// same-named one to collide with.
///
/// On one thread, so the captured logs hold the lag monitor's: a round that cannot read the
/// primary's position through the pooler is logged, not failed.
#[tokio::test]
async fn health_pg_stats_and_the_lag_monitor_run_through_transaction_pooling() {
    use sqlx_resilience::pgstats::PgStatsOptions;
    use sqlx_resilience_testkit::ReplicaSet;

    let (logs, _guard) = crate::support::Logs::capture();

    let set = ReplicaSet::start(1).await.expect("primary with a replica");
    let db = set.create_database().await.unwrap();
    // Two server connections for every client of two runtimes: the clients' statement names
    // (`sqlx_s_1`, ...) meet on them.
    let bouncer = PgBouncer::start_with(
        set.primary(),
        PgBouncerOptions::new()
            .default_pool_size(2)
            .ignore_startup_parameters(Vec::<String>::new()),
    )
    .await
    .unwrap();
    let settings = [
        ("max", Value::from(4u32)),
        ("replicas", set.replica_url(0, &db).into()),
        // A round every 40 ms: many questions to the primary through the pooler.
        ("max_lag", "200ms".into()),
    ];
    let a = runtime(&bouncer, &db, &settings).await;
    let b = runtime(&bouncer, &db, &settings).await;
    // The lag monitor reads the primary's WAL position through the pooler.
    for rt in [&a, &b] {
        let started = Instant::now();
        while !rt.pool("main").unwrap().replica_report().unwrap().replicas[0].serving {
            assert!(
                started.elapsed() < LIMIT,
                "the replica never served: {:?}",
                rt.pool("main").unwrap().replica_report()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let mut tasks = Vec::new();
    for rt in [&a, &b, &a, &b] {
        let rt = rt.clone();
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for _ in 0..15 {
                let report = rt.health().await;
                for d in &report.databases {
                    if let Some(e) = &d.error {
                        failures.push(format!("health of {}: {e}", d.server));
                    }
                }
                if let Err(e) = rt.pg_stats(&PgStatsOptions::default()).await {
                    failures.push(format!("pg_stats: {e}: {}", chain(&e)));
                }
                let write = rt
                    .op("pgb::write")
                    .run(|c| {
                        Box::pin(async move {
                            let n: i64 = sqlx::query_scalar("select $1::int8 + 1")
                                .bind(1i64)
                                .fetch_one(c.as_mut())
                                .await?;
                            Ok::<_, Error>(n)
                        })
                    })
                    .await;
                if let Err(e) = write {
                    failures.push(format!("op: {e}: {}", chain(&e)));
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for task in tasks {
        failures.extend(task.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} failures: {failures:#?}",
        failures.len()
    );

    // Every monitor round read the primary's position through the pooler.
    let text = logs.text();
    let failed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("cannot read the primary's WAL position"))
        .collect();
    assert!(
        failed.is_empty(),
        "{} rounds failed: {failed:#?}",
        failed.len()
    );
    assert!(!text.contains("prepared statement"), "{text}");
}
