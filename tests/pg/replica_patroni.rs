//! Replicas found through a real Patroni cluster's REST API: every member it lists becomes a
//! candidate replica (the lag monitor decides which are in recovery); a member whose Patroni
//! dies leaves the list when its key expires and stops serving; it serves again once it is
//! back; reads follow a switchover. Without an answering API, reads run on the primary and
//! the report says why. Conditions are polled with generous limits.

use std::time::{Duration, Instant};

use sqlx_resilience::Runtime;
use sqlx_resilience::replica::ReplicaReport;
use sqlx_resilience::telemetry::names;

use crate::replica_hosts::{LIMIT, read, report, streaming_cluster, until_reads_follow};

/// Polls the pool's replica report until `done` holds, failing after [`LIMIT`] with `what`.
async fn until(rt: &Runtime, what: &str, done: impl Fn(&ReplicaReport) -> bool) {
    let started = Instant::now();
    loop {
        let r = report(rt);
        if done(&r) {
            return;
        }
        assert!(
            started.elapsed() < LIMIT,
            "after {LIMIT:?}, still not {what}: {r:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ports(r: &ReplicaReport) -> Vec<u16> {
    let mut ports: Vec<u16> = r.replicas.iter().map(|s| s.port).collect();
    ports.sort_unstable();
    ports
}

#[tokio::test]
async fn the_members_patroni_lists_serve_reads_leave_come_back_and_follow_a_switchover() {
    let (cluster, _db, leader, url) = streaming_cluster().await;
    let apis: Vec<String> = cluster
        .nodes()
        .iter()
        .map(|n| format!("http://{}", n.api_addr()))
        .collect();
    // The members Patroni lists at start-up count in the connection budget, each against its
    // own server's max_connections: 20 instances of 4 connections (and 2 of the lag monitor)
    // to each replica is more than a server allows (100), though 20 of the pool's one
    // connection (and the monitor's 2) fit.
    let e = Runtime::builder()
        .url(&url)
        .env_vars(Vec::<(String, String)>::new())
        .pool(
            "main",
            &[
                ("max", 1u32.into()),
                ("replicas", apis.join(", ").into()),
                ("replica_max", 4u32.into()),
            ],
        )
        .set("budget.instances", "20")
        .set("budget.mode", "error")
        .build()
        .await
        .expect_err("replica pools over the replicas' budget");
    let shown = e.to_string();
    assert!(
        shown.contains("main.replica") && shown.contains("main.lag_monitor"),
        "{shown}"
    );
    let rt = Runtime::builder()
        .url(&url)
        .env_vars(Vec::<(String, String)>::new())
        .pool(
            "main",
            &[
                ("max", 4u32.into()),
                ("acquire_timeout", "30s".into()),
                ("replicas", apis.join(", ").into()),
                ("replicas_refresh", "300ms".into()),
                ("max_lag", "2s".into()),
            ],
        )
        .build()
        .await
        .expect("a runtime whose replicas come from Patroni");
    let port = |node: &str| cluster.node(node).pg_addr().port();
    let mut every: Vec<u16> = cluster.nodes().iter().map(|n| port(n.name())).collect();
    every.sort_unstable();
    until(&rt, "every member listed", |r| ports(r) == every).await;
    let discovery = report(&rt).discovery.expect("a discovery report");
    assert!(
        discovery.answers >= 1 && discovery.last_error.is_none(),
        "{discovery:?}"
    );

    let mut standbys = cluster
        .nodes()
        .iter()
        .map(|n| n.name().to_owned())
        .filter(|n| *n != leader);
    let (standby, gone) = (standbys.next().unwrap(), standbys.next().unwrap());
    until_reads_follow(&rt, port(&leader), port(&standby)).await;

    // A member whose Patroni dies leaves Patroni's list once its key expires (`ttl`), and
    // leaves the pool's replicas with it, though its PostgreSQL still runs.
    cluster.kill_patroni(&gone).await.unwrap();
    let without: Vec<u16> = every
        .iter()
        .copied()
        .filter(|p| *p != port(&gone))
        .collect();
    until(&rt, "the dead member's replica dropped", |r| {
        ports(r) == without
    })
    .await;
    read(&rt).await.expect("reads go on while a member leaves");
    // Back: listed again, a new pool of its own, serving once measured.
    cluster.start_patroni(&gone).await.unwrap();
    until(&rt, "the member back among the replicas", |r| {
        r.replicas
            .iter()
            .any(|s| s.port == port(&gone) && s.serving)
    })
    .await;

    let new = cluster.switchover(Some(&standby)).await.unwrap();
    assert_eq!(new, standby);
    cluster.wait_for_replicas_streaming(LIMIT).await.unwrap();
    until_reads_follow(&rt, port(&new), port(&leader)).await;
    rt.shutdown(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test]
async fn without_an_answering_patroni_api_reads_run_on_the_primary_and_the_report_says_why() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let db = crate::support::db().await;
    // A port nothing listens on: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let rt = Runtime::builder()
        .url(db.url())
        .env_vars(Vec::<(String, String)>::new())
        .pool(
            "main",
            &[
                ("replicas", format!("http://{closed}").into()),
                ("replicas_refresh", "100ms".into()),
            ],
        )
        .build()
        .await
        .expect("a runtime whose Patroni API is down");
    until(&rt, "a failed round reported", |r| {
        r.discovery.as_ref().is_some_and(|d| {
            d.failures >= 1
                && d.answers == 0
                && d.last_error.as_deref().is_some_and(|e| {
                    e.contains(&closed.to_string()) && e.contains("cannot connect")
                })
        })
    })
    .await;
    let (_, in_recovery) = read(&rt).await.expect("a read on the primary");
    assert!(!in_recovery);
    let r = report(&rt);
    assert!(r.replicas.is_empty() && r.primary_reads >= 1, "{r:#?}");
    // Published as `sqlx_resilience.replica.discovery`, by outcome.
    rt.publish_metrics();
    let rounds: Vec<(String, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(k, _, _, _)| k.key().name() == names::REPLICA_DISCOVERY)
        .filter_map(|(k, _, _, v)| match v {
            metrics_util::debugging::DebugValue::Counter(c) => {
                let outcome = k.key().labels().find(|l| l.key() == "outcome")?;
                Some((outcome.value().to_owned(), c))
            }
            _ => None,
        })
        .collect();
    assert!(
        rounds.contains(&("ok".to_owned(), 0))
            && rounds.iter().any(|(o, c)| o == "failed" && *c >= 1),
        "{rounds:?}"
    );
    rt.shutdown(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test]
async fn patroni_api_urls_that_cannot_work_are_refused_at_start_up() {
    let db = crate::support::db().await;
    for (replicas, says) in [
        ("https://127.0.0.1:8008", "https"),
        (
            "http://admin:s3cret@127.0.0.1:8008",
            "needs no authentication",
        ),
        (
            "http://127.0.0.1:8008, postgres://127.0.0.1/app",
            "replicas",
        ),
    ] {
        let e = Runtime::builder()
            .url(db.url())
            .env_vars(Vec::<(String, String)>::new())
            .pool("main", &[("replicas", replicas.into())])
            .build()
            .await
            .expect_err(replicas);
        let shown = e.to_string();
        assert!(
            shown.contains("pools.main.replicas") && shown.contains(says),
            "{replicas}: {shown}"
        );
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
