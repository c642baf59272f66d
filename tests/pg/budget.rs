//! The start-up budget check against the server's max_connections.

use sqlx_resilience::pool::BudgetMode;
use sqlx_resilience::{Error, Runtime};
use sqlx_resilience_testkit::{PgServer, ReplicaSet, ServerOptions, TestDb};

/// A server like seed 004's platform: 20 connections, 2 reserved for superusers.
async fn railway() -> PgServer {
    PgServer::start_with(
        ServerOptions::new()
            .max_connections(20)
            .superuser_reserved_connections(2),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn budget_check_fails_with_its_arithmetic() {
    let server = railway().await;
    let db = server.create_database().await.unwrap();
    let builder = || {
        Runtime::builder()
            .url(db.url())
            .env_vars(Vec::<(String, String)>::new())
            .pool("http", &[("max", 10u32.into())])
            .pool("ws", &[("max", 5u32.into())])
            .pool("background", &[("max", 4u32.into())])
    };
    let err = builder().build().await.unwrap_err();
    match &err {
        Error::Budget { arithmetic } => assert_eq!(
            arithmetic,
            "pools background 4 + http 10 + ws 5 = 19 per instance x 1 instance = 19 > 18 \
             available (20 max_connections - 2 superuser_reserved_connections)"
        ),
        other => panic!("expected a budget error, got {other}"),
    }
    assert!(err.to_string().contains("lower the pool maxima"), "{err}");

    // Two instances of a smaller configuration still do not fit.
    let err = builder()
        .set("pools.http.max", 5u32)
        .set("budget.instances", 2u32)
        .build()
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("= 14 per instance x 2 instances = 28 > 18"),
        "{err}"
    );

    // Warn mode starts anyway; the check is kept for reports.
    let rt = builder()
        .set("budget.mode", "warn")
        .set("pools.http.startup", "lazy")
        .set("pools.ws.startup", "lazy")
        .set("pools.background.startup", "lazy")
        .build()
        .await
        .unwrap();
    assert_eq!(rt.budget().len(), 1);
    assert!(!rt.budget()[0].fits());
    assert_eq!(rt.budget()[0].available, 18);
}

#[tokio::test]
async fn scale_mode_shrinks_the_pools_to_fit() {
    let server = railway().await;
    let db = server.create_database().await.unwrap();
    let rt = Runtime::builder()
        .url(db.url())
        .env_vars(Vec::<(String, String)>::new())
        .pool("http", &[("max", 150u32.into()), ("min", 10u32.into())])
        .pool("ws", &[("max", 30u32.into())])
        .pool("background", &[("max", 20u32.into())])
        .set("budget.mode", "scale")
        .build()
        .await
        .unwrap();
    let max = |n: &str| rt.pool(n).unwrap().config().max;
    assert_eq!((max("http"), max("ws"), max("background")), (13, 2, 1));
    assert!(rt.pool("http").unwrap().config().min <= 13);
    assert!(max("http") + max("ws") + max("background") <= 18);
    let report = rt.sizing_report();
    assert_eq!(report.len(), 1);
    let text = report[0].to_string();
    assert!(
        text.contains("20 max_connections - 2 superuser_reserved_connections"),
        "{text}"
    );
    assert_eq!(rt.config().settings.budget_mode, BudgetMode::Scale);
}

/// A primary and one replica, each with 20 `max_connections` (2 reserved for superusers), and
/// a database on them.
async fn small_replica_set() -> (ReplicaSet, TestDb) {
    let set = ReplicaSet::start_with(
        1,
        ServerOptions::new()
            .max_connections(20)
            .superuser_reserved_connections(2),
    )
    .await
    .unwrap();
    let db = set.create_database().await.unwrap();
    (set, db)
}

/// A replica of the same size as its primary (a hot standby needs `max_connections` at least
/// the primary's): the pool fits the primary, its replica pools (`replica_max`) and the lag
/// monitor's link to the replica do not fit the replica, and the replica's own check gives the
/// outcome the primary's would.
#[tokio::test]
async fn replica_pools_count_against_the_replicas_own_max_connections() {
    let (set, db) = small_replica_set().await;
    let replica = set.replica(0).tcp_addr();
    let builder = || {
        Runtime::builder()
            .url(db.url())
            .env_vars(Vec::<(String, String)>::new())
            .pool(
                "main",
                &[
                    ("max", 5u32.into()),
                    ("replicas", set.replica_url(0, &db).into()),
                    ("replica_max", 19u32.into()),
                ],
            )
    };
    let err = builder().build().await.unwrap_err();
    match &err {
        Error::Budget { arithmetic } => assert_eq!(
            arithmetic,
            &format!(
                "replica {replica}: pools main.replica1 19 + main.lag_monitor 1 = 20 per \
                 instance x 1 instance = 20 > 18 available (20 max_connections - 2 \
                 superuser_reserved_connections)"
            )
        ),
        other => panic!("expected a budget error, got {other}"),
    }
    assert!(err.to_string().contains("lower the pool maxima"), "{err}");

    // Warn mode starts anyway; both checks are kept for reports, the primary's fitting.
    let rt = builder().set("budget.mode", "warn").build().await.unwrap();
    let checks = rt.budget();
    assert_eq!(checks.len(), 2, "{checks:?}");
    let on_replica = checks.iter().find(|c| c.replica.is_some()).unwrap();
    let on_primary = checks.iter().find(|c| c.replica.is_none()).unwrap();
    assert_eq!(on_replica.replica, Some(replica.to_string()));
    assert!(!on_replica.fits() && on_primary.fits(), "{checks:?}");
    assert_eq!(on_primary.pools, vec![("main".to_owned(), 5)]);
    // The monitor's link to the primary counts there too.
    assert_eq!(on_primary.fixed, vec![("main.lag_monitor".to_owned(), 1)]);
    assert_eq!(on_primary.per_instance(), 6, "{on_primary}");
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();

    // Scale mode shrinks the replica pools to the replica's budget, less the monitor's link,
    // not the pool itself.
    let rt = builder().set("budget.mode", "scale").build().await.unwrap();
    let config = rt.pool("main").unwrap().config().clone();
    assert_eq!((config.max, config.replica_max), (5, Some(17)));
    let report = rt.pool("main").unwrap().replica_report().unwrap();
    assert_eq!(report.replicas[0].stats.max, 17);
}

/// `replicas = "hosts"`: every host of the pool's multi-host URL gets a replica pool
/// (`replica_max`), counted against that host's own `max_connections`, with the lag monitor's
/// two links there (one asking whether the primary is there, one measuring the host's lag);
/// the pool itself, on whichever host suits, fits.
#[tokio::test]
async fn replicas_from_hosts_count_against_each_hosts_max_connections() {
    let (set, db) = small_replica_set().await;
    let hosts = [set.primary().tcp_addr(), set.replica(0).tcp_addr()];
    let url = set.multi_host_url(&db);
    let builder = || {
        Runtime::builder()
            .url(&url)
            .env_vars(Vec::<(String, String)>::new())
            .pool(
                "main",
                &[
                    ("max", 5u32.into()),
                    ("replicas", "hosts".into()),
                    ("replica_max", 17u32.into()),
                ],
            )
    };
    let err = builder().build().await.unwrap_err();
    match &err {
        Error::Budget { arithmetic } => assert!(
            hosts.iter().enumerate().any(|(i, host)| arithmetic
                == &format!(
                    "replica {host}: pools main.replica{} 17 + main.lag_monitor 2 = 19 per \
                     instance x 1 instance = 19 > 18 available (20 max_connections - 2 \
                     superuser_reserved_connections)",
                    i + 1
                )),
            "{arithmetic}"
        ),
        other => panic!("expected a budget error, got {other}"),
    }

    // Warn mode: one check per host, neither fitting, and the pool's own, fitting.
    let rt = builder().set("budget.mode", "warn").build().await.unwrap();
    let checks = rt.budget();
    assert_eq!(checks.len(), 3, "{checks:?}");
    for (i, host) in hosts.iter().enumerate() {
        let on_host = checks
            .iter()
            .find(|c| c.replica == Some(host.to_string()))
            .unwrap_or_else(|| panic!("no check on {host}: {checks:?}"));
        assert_eq!(
            on_host.pools,
            vec![(format!("main.replica{}", i + 1), 17)],
            "{on_host}"
        );
        assert_eq!(on_host.per_instance(), 19, "{on_host}");
        assert!(!on_host.fits(), "{on_host}");
    }
    let own = checks.iter().find(|c| c.replica.is_none()).unwrap();
    assert_eq!(own.pools, vec![("main".to_owned(), 5)]);
    assert_eq!(own.per_instance(), 7, "{own}");
    assert!(own.fits(), "{own}");
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();

    // Scale mode: `replica_max` shrinks to what each host leaves once the monitor's links are
    // counted; the pool keeps its `max`.
    let rt = builder().set("budget.mode", "scale").build().await.unwrap();
    let config = rt.pool("main").unwrap().config().clone();
    assert_eq!((config.max, config.replica_max), (5, Some(16)));
    let report = rt.pool("main").unwrap().replica_report().unwrap();
    assert_eq!(report.replicas.len(), 2, "{report:?}");
    assert!(
        report.replicas.iter().all(|r| r.stats.max == 16),
        "{report:?}"
    );
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}
