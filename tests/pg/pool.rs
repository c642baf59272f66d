//! Named pools against real PostgreSQL: session settings, statistics, events, validation after
//! the idle window, dead idle connections, leak warnings, secrets.

use std::time::Duration;

use sqlx_resilience::pool::{PoolEventKind, Validation};
use sqlx_resilience::{Error, Runtime};
use sqlx_resilience_testkit::RestartMode;

use crate::support::{self, Logs, password_of, scalar_i64, show};

#[tokio::test]
async fn session_settings_are_visible_through_show() {
    let db = support::db().await;
    let rt = support::runtime(
        &db,
        &[
            ("statement_timeout", "7s".into()),
            ("lock_timeout", "1500ms".into()),
            ("idle_in_transaction_session_timeout", "45s".into()),
            ("application_name", "harvest-api".into()),
            ("search_path", "app, public".into()),
        ],
    )
    .await;
    assert_eq!(show(&rt, "statement_timeout").await, "7s");
    assert_eq!(show(&rt, "lock_timeout").await, "1500ms");
    assert_eq!(
        show(&rt, "idle_in_transaction_session_timeout").await,
        "45s"
    );
    assert_eq!(show(&rt, "application_name").await, "harvest-api");
    assert_eq!(show(&rt, "search_path").await, "app, public");
    assert_eq!(show(&rt, "client_connection_check_interval").await, "250ms");
}

#[tokio::test]
async fn application_name_defaults_to_the_pool_name() {
    let db = support::db().await;
    let rt = support::runtime(&db, &[]).await;
    assert_eq!(show(&rt, "application_name").await, "main");
}

#[tokio::test]
async fn configuration_layers_reach_the_pool() {
    let db = support::db().await;
    let rt = support::builder(&db, &[("max", 3u32.into())])
        .config_toml(
            "[pools.main]\nmax = 4\nstatement_timeout = \"9s\"\n\
             [profiles.staging.pools.main]\nmax = 5\n",
            "db.toml",
        )
        .profile("staging")
        .env_prefix("DB")
        .env_vars([("DB__POOLS__MAIN__LOCK_TIMEOUT", "2s")])
        .build()
        .await
        .unwrap();
    let pool = rt.pool("main").unwrap();
    assert_eq!(pool.stats().max, 5);
    assert_eq!(show(&rt, "statement_timeout").await, "9s");
    assert_eq!(show(&rt, "lock_timeout").await, "2s");
}

#[tokio::test]
async fn stats_count_waiting_callers_and_acquire_timeouts() {
    let db = support::db().await;
    let rt = support::runtime(
        &db,
        &[("max", 2u32.into()), ("acquire_timeout", "300ms".into())],
    )
    .await;
    let pool = rt.pool("main").unwrap().clone();
    let a = pool.acquire().await.unwrap();
    let b = pool.acquire().await.unwrap();
    let s = pool.stats();
    assert_eq!((s.in_use, s.max), (2, 2));
    assert!((s.utilization_pct - 100.0).abs() < f64::EPSILON);

    let waiter = tokio::spawn({
        let rt = rt.clone();
        async move { scalar_i64(&rt, "select 1::int8").await }
    });
    let mut saw_waiting = false;
    for _ in 0..100 {
        if pool.stats().waiting == 1 {
            saw_waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(saw_waiting, "the blocked caller shows as waiting");
    let err = waiter.await.unwrap().unwrap_err();
    match &err {
        Error::AcquireTimeout {
            in_use,
            max,
            unreachable,
            ..
        } => {
            assert_eq!((*in_use, *max, *unreachable), (2, 2, false));
        }
        other => panic!("expected an acquire timeout, got {other}"),
    }
    assert!(
        err.to_string()
            .contains("op `tests::scalar` on pool `main`"),
        "{err}"
    );
    let s = pool.stats();
    assert_eq!(s.acquire_timeouts, 1);
    assert_eq!(s.waiting, 0);
    drop((a, b));
    assert_eq!(scalar_i64(&rt, "select 7::int8").await.unwrap(), 7);
    let s = pool.stats();
    assert!(s.acquire_wait.count >= 3, "{s:?}");
    assert!(s.opened >= 2);
}

#[tokio::test]
async fn events_report_connect_acquire_release_and_close() {
    let db = support::db().await;
    let rt = support::builder(&db, &[("max", 2u32.into())])
        .set("pools.main.startup", "lazy")
        .build()
        .await
        .unwrap();
    let mut events = rt.pool("main").unwrap().subscribe();
    let _ = rt
        .op("tests::events")
        .timeout(Duration::from_millis(200))
        .read_only(true)
        .run(|conn| {
            Box::pin(async move {
                sqlx::query("select pg_sleep(5)")
                    .execute(conn.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap_err();
    let mut kinds = Vec::new();
    while let Ok(Ok(e)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
        kinds.push(e.kind);
    }
    let name = |k: &PoolEventKind| match k {
        PoolEventKind::Connect { backend_pid } => {
            assert!(backend_pid.is_some());
            "connect"
        }
        PoolEventKind::Acquire { .. } => "acquire",
        PoolEventKind::Release { .. } => "release",
        PoolEventKind::Close { .. } => "close",
        PoolEventKind::Error { .. } => "error",
        PoolEventKind::Leak { .. } => "leak",
        _ => "other",
    };
    let names: Vec<&str> = kinds.iter().map(name).collect();
    assert_eq!(
        names,
        ["connect", "acquire", "release", "close"],
        "{kinds:?}"
    );
}

#[tokio::test]
async fn idle_connections_are_pinged_only_after_the_window() {
    let db = support::db().await;
    let rt = support::runtime(
        &db,
        &[("max", 1u32.into()), ("validation_window", "300ms".into())],
    )
    .await;
    let pool = rt.pool("main").unwrap().clone();
    assert_eq!(pool.config().validation, Validation::Idle);
    for _ in 0..5 {
        scalar_i64(&rt, "select 1::int8").await.unwrap();
    }
    assert_eq!(
        pool.stats().validations,
        0,
        "reused within the window: no ping"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    scalar_i64(&rt, "select 1::int8").await.unwrap();
    assert_eq!(
        pool.stats().validations,
        1,
        "idle past the window: one ping"
    );
}

/// Terminates every backend of the pool's database (the pool's connections are idle).
async fn terminate_idle(db: &sqlx_resilience_testkit::TestDb) -> u64 {
    db.server().terminate_backends(db.name()).await.unwrap()
}

async fn write(rt: &Runtime, v: i64) -> Result<u64, Error> {
    rt.op("tests::write")
        .run(|conn| {
            Box::pin(async move {
                Ok(sqlx::query("insert into marks (v) values ($1)")
                    .bind(v)
                    .execute(conn.as_mut())
                    .await?
                    .rows_affected())
            })
        })
        .await
}

#[tokio::test]
async fn connections_terminated_while_idle_never_fail_a_caller() {
    let db = support::db().await;
    let rt = support::runtime(&db, &[("max", 4u32.into()), ("min", 2u32.into())]).await;
    rt.op("tests::ddl")
        .run(|c| {
            Box::pin(async move {
                sqlx::query("create table marks (v bigint)")
                    .execute(c.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap();
    for round in 0..5_i64 {
        assert!(terminate_idle(&db).await > 0);
        // Within the validation window: no ping protects the read; it is replaced and run again.
        assert_eq!(
            scalar_i64(&rt, "select 42::int8").await.unwrap(),
            42,
            "round {round}"
        );
        assert!(terminate_idle(&db).await > 0);
        // A write that is not idempotent gets a checked connection instead.
        assert_eq!(write(&rt, round).await.unwrap(), 1, "round {round}");
    }
    assert_eq!(
        scalar_i64(&rt, "select count(*) from marks").await.unwrap(),
        5
    );
    let s = rt.pool("main").unwrap().stats();
    assert!(s.validation_failures > 0 || s.evicted > 0, "{s:?}");
}

#[tokio::test]
async fn a_server_restart_between_ops_never_fails_a_caller() {
    let server = sqlx_resilience_testkit::PgServer::start().await.unwrap();
    let db = server.create_database().await.unwrap();
    // The kit's servers commit asynchronously for speed; an immediate shutdown would lose the
    // last commits, which is the server's choice, not a lost write of ours.
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(db.admin_url())
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "alter database {} set synchronous_commit = on",
        db.name()
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let rt = support::runtime(&db, &[("max", 4u32.into()), ("min", 2u32.into())]).await;
    rt.op("tests::ddl")
        .run(|c| {
            Box::pin(async move {
                sqlx::query("create table marks (v bigint)")
                    .execute(c.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap();
    for (round, mode) in [RestartMode::Fast, RestartMode::Immediate, RestartMode::Fast]
        .into_iter()
        .enumerate()
    {
        // Hold a few connections so several sit idle in the pool through the restart.
        for _ in 0..3 {
            scalar_i64(&rt, "select 1::int8").await.unwrap();
        }
        server.restart(mode).await.unwrap();
        assert_eq!(
            scalar_i64(&rt, "select 2::int8").await.unwrap(),
            2,
            "read after restart {round}"
        );
        server.restart(mode).await.unwrap();
        assert_eq!(
            write(&rt, round as i64).await.unwrap(),
            1,
            "write after restart {round}"
        );
    }
    assert_eq!(
        scalar_i64(&rt, "select count(*) from marks").await.unwrap(),
        3
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_connection_held_past_the_leak_threshold_is_reported_with_its_holder() {
    let db = support::db().await;
    let (logs, _guard) = Logs::capture();
    let rt = support::runtime(&db, &[("leak_threshold", "100ms".into())]).await;
    let pool = rt.pool("main").unwrap().clone();
    let mut events = pool.subscribe();
    let held = pool.acquire().await.unwrap();
    let line = line!() - 1;
    let leak = loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
            Ok(Ok(e)) => {
                if let PoolEventKind::Leak { holder, held } = e.kind {
                    break (holder, held);
                }
            }
            other => panic!("no leak event: {other:?}"),
        }
    };
    assert!(leak.1 >= Duration::from_millis(100));
    let location = format!("tests/pg/pool.rs:{line}");
    assert!(
        leak.0.contains(&location),
        "{} should name {location}",
        leak.0
    );
    assert_eq!(pool.stats().leaks, 1);
    let text = logs.text();
    assert!(text.contains("possible connection leak"), "{text}");
    assert!(text.contains(&location), "{text}");
    drop(held);

    // Ops are named.
    rt.op("tests::slow_holder")
        .run(|c| {
            Box::pin(async move {
                sqlx::query("select pg_sleep(0.3)")
                    .execute(c.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap();
    assert!(
        logs.text().contains("op `tests::slow_holder`"),
        "{}",
        logs.text()
    );
    assert_eq!(pool.stats().leaks, 2);
}

#[tokio::test(flavor = "current_thread")]
async fn the_password_is_absent_from_every_rendering() {
    let db = support::db().await;
    let password = password_of(db.url());
    assert!(password.len() >= 8);
    let (logs, _guard) = Logs::capture();
    let rt = support::runtime(&db, &[]).await;
    let pool = rt.pool("main").unwrap();
    let mut renderings = vec![
        format!("{rt:?}"),
        format!("{pool:?}"),
        format!("{:?}", pool.config()),
        format!("{:?}", rt.config()),
        format!("{}", pool.url()),
        format!("{:?}", pool.url()),
        format!("{:?}", pool.stats()),
        format!("{:?}", db),
    ];
    // A failed connect with the password in the URL.
    let wrong = db.url().replace(&password, "not-the-password");
    let err = Runtime::builder()
        .url(&wrong)
        .env_vars(Vec::<(String, String)>::new())
        .pool("main", &[("startup_timeout", "3s".into())])
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    renderings.push(err.to_string());
    renderings.push(format!("{err:?}"));
    let bad = Runtime::builder()
        .url(db.url().replacen("postgres://", "postgres://[", 1))
        .env_vars(Vec::<(String, String)>::new())
        .pool("main", &[])
        .build()
        .await
        .unwrap_err();
    renderings.push(bad.to_string());
    renderings.push(format!("{bad:?}"));
    renderings.push(logs.text());
    for text in &renderings {
        assert!(!text.contains(&password), "password leaked in: {text}");
        assert!(
            !text.contains("not-the-password"),
            "password leaked in: {text}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_server_fails_start_up_fast_with_the_reason() {
    let started = std::time::Instant::now();
    let err = Runtime::builder()
        .url("postgres://app:pw@127.0.0.1:9/nowhere")
        .env_vars(Vec::<(String, String)>::new())
        .pool("main", &[("startup_timeout", "2s".into())])
        .build()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Connect { .. }), "{text}");
    assert!(
        text.contains("pool `main`: cannot connect to postgres://app:***@127.0.0.1:9/nowhere"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "bounded by startup_timeout"
    );
}

#[tokio::test]
async fn a_lazy_pool_starts_without_a_server() {
    let rt = Runtime::builder()
        .url("postgres://app:pw@127.0.0.1:9/nowhere")
        .env_vars(Vec::<(String, String)>::new())
        .pool(
            "main",
            &[
                ("startup", "lazy".into()),
                ("acquire_timeout", "200ms".into()),
            ],
        )
        .build()
        .await
        .unwrap();
    let err = scalar_i64(&rt, "select 1::int8").await.unwrap_err();
    match err {
        Error::AcquireTimeout { unreachable, .. } => assert!(unreachable),
        other => panic!("{other}"),
    }
}

/// sqlx pings every connection given back to the pool, with no time limit; on a dead network
/// that ping hangs and holds the slot. A caller who then waits in vain is facing a network
/// failure, not an exhausted pool, and the breaker must hear of it.
#[tokio::test]
async fn an_acquire_timeout_on_a_dead_network_is_not_backpressure() {
    let db = support::db().await;
    let proxy = sqlx_resilience_testkit::FaultProxy::start(db.server().tcp_addr())
        .await
        .unwrap();
    let rt = Runtime::builder()
        .url(db.url_via(proxy.addr()))
        .env_vars(Vec::<(String, String)>::new())
        .pool(
            "main",
            &[("max", 1u32.into()), ("acquire_timeout", "300ms".into())],
        )
        .build()
        .await
        .unwrap();
    let pool = rt.pool("main").unwrap();
    let conn = pool.acquire().await.unwrap();
    proxy.blackhole();
    drop(conn);
    match pool.acquire().await {
        Err(Error::AcquireTimeout { unreachable, .. }) => assert!(unreachable),
        other => panic!("expected an acquire timeout: {other:?}"),
    }
    proxy.heal().await.unwrap();
    let conn = tokio::time::timeout(Duration::from_secs(10), pool.acquire())
        .await
        .expect("the pool serves again once the network heals");
    assert!(conn.is_ok(), "{conn:?}");
}

/// Twelve ops at once on two connections, each keeping its connection 20 ms.
async fn saturate(rt: &Runtime, sql: &'static str) -> Vec<Result<i64, Error>> {
    let calls = (0..12).map(|_| {
        let rt = rt.clone();
        tokio::spawn(async move { scalar_i64(&rt, sql).await })
    });
    let mut results = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        results.push(call.await.unwrap());
    }
    results
}

#[tokio::test]
async fn on_a_saturated_pool_a_finished_op_hands_its_connection_to_a_waiting_caller() {
    let db = support::db().await;
    let rt = support::runtime(&db, &[("max", 2u32.into()), ("min", 2u32.into())]).await;
    let results = saturate(&rt, "select 7::int8 from pg_sleep(0.02)").await;
    assert!(results.iter().all(|r| matches!(r, Ok(7))), "{results:?}");
    let stats = settled(&rt).await;
    assert!(stats.handed_on > 0, "no connection was handed on: {stats}");
    assert_eq!(
        (stats.size, stats.idle, stats.evicted),
        (2, 2, 0),
        "{stats}"
    );
}

/// The pool's statistics once every connection is back in it (sqlx takes a connection back
/// in a task of its own, after a ping).
async fn settled(rt: &Runtime) -> sqlx_resilience::pool::PoolStats {
    let pool = rt.pool("main").unwrap();
    for _ in 0..100 {
        let stats = pool.stats();
        if stats.idle == stats.size && stats.waiting == 0 {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("connections never came back: {}", pool.stats());
}

#[tokio::test]
async fn a_failed_op_never_hands_its_connection_on() {
    let db = support::db().await;
    let rt = support::runtime(&db, &[("max", 2u32.into()), ("min", 2u32.into())]).await;
    // Division by zero after 20 ms: a permanent failure, not run again.
    let results = saturate(&rt, "select 1::int8 / 0 from pg_sleep(0.02)").await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(Error::Database { .. }))),
        "{results:?}"
    );
    let stats = settled(&rt).await;
    assert_eq!(stats.handed_on, 0, "{stats}");
    assert_eq!((stats.size, stats.idle), (2, 2), "{stats}");
}

#[tokio::test]
async fn an_op_that_cannot_run_again_tests_a_handed_on_connection_first() {
    let db = support::db().await;
    let rt = support::runtime(&db, &[("max", 2u32.into()), ("min", 2u32.into())]).await;
    // Not idempotent, not read-only: every reused connection is pinged before the op uses it,
    // whether it comes from the pool or is handed on.
    let calls: Vec<_> = (0..12)
        .map(|_| {
            let rt = rt.clone();
            tokio::spawn(async move {
                rt.op("tests::unsafe_write")
                    .run(|conn| {
                        Box::pin(async move {
                            sqlx::query("select pg_sleep(0.02)")
                                .execute(conn.as_mut())
                                .await?;
                            Ok::<_, Error>(())
                        })
                    })
                    .await
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let stats = settled(&rt).await;
    assert!(stats.handed_on > 0, "no connection was handed on: {stats}");
    assert_eq!(stats.acquired, 12, "{stats}");
    assert_eq!(
        stats.validations, stats.acquired,
        "every connection, handed on ones included, was pinged before use"
    );
}
