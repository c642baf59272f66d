//! `replicas = "hosts"` on a real Patroni cluster: the hosts of the pool's multi-host URL that
//! are in recovery serve its reads, the primary serves none as a replica, and after a
//! switchover the roles follow the cluster (the new leader stops serving as a replica, the old
//! one serves once it streams). Conditions are polled with generous limits.

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use sqlx_resilience::replica::ReplicaReport;
use sqlx_resilience::{Error, Runtime};
use sqlx_resilience_testkit::PatroniCluster;

pub(crate) const LIMIT: Duration = Duration::from_secs(180);

/// Where a read-only op ran: the server's port and whether it was in recovery.
pub(crate) async fn read(rt: &Runtime) -> Result<(i32, bool), Error> {
    rt.op("replica_hosts::read")
        .read_only(true)
        .run(|c| {
            Box::pin(async move {
                let row: (i32, bool) =
                    sqlx::query_as("SELECT inet_server_port(), pg_is_in_recovery()")
                        .fetch_one(c.as_mut())
                        .await?;
                Ok(row)
            })
        })
        .await
}

pub(crate) fn report(rt: &Runtime) -> ReplicaReport {
    rt.pool("main").unwrap().replica_report().expect("replicas")
}

/// The state the report gives the host on `port`, and whether it serves reads.
fn state_of(report: &ReplicaReport, port: u16) -> (&'static str, bool) {
    let r = report
        .replicas
        .iter()
        .find(|r| r.port == port)
        .unwrap_or_else(|| panic!("no replica on port {port}: {report:?}"));
    (r.state, r.serving)
}

/// Polls until the leader on `leader_port` is reported as no replica, the standby on
/// `standby_port` serves, and a read ran there in recovery.
pub(crate) async fn until_reads_follow(rt: &Runtime, leader_port: u16, standby_port: u16) {
    let started = std::time::Instant::now();
    loop {
        let r = report(rt);
        let leader = state_of(&r, leader_port);
        let standby = state_of(&r, standby_port);
        if leader == ("not_replica", false) && standby.1 {
            // Reads balance over the serving standbys: one lands on this one soon.
            for _ in 0..50 {
                if let Ok((port, true)) = read(rt).await
                    && port == i32::from(standby_port)
                {
                    return;
                }
            }
        }
        assert!(
            started.elapsed() < LIMIT,
            "after {LIMIT:?}, the leader on {leader_port} is {leader:?} and the standby on \
             {standby_port} is {standby:?}: {r:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A Patroni cluster with a database of its own, its replicas streaming: the cluster, the
/// database, the leader's name, and the multi-host URL of its members that asks for the
/// primary (`target_session_attrs=read-write`).
pub(crate) async fn streaming_cluster() -> (PatroniCluster, String, String, String) {
    let cluster = PatroniCluster::start().await.expect("a Patroni cluster");
    let db = cluster.create_database().await.unwrap();
    let leader = cluster.wait_for_leader(LIMIT).await.unwrap();
    cluster.wait_for_replicas_streaming(LIMIT).await.unwrap();
    let url = format!(
        "{}&target_session_attrs=read-write",
        cluster.multi_host_url(&db)
    );
    (cluster, db, leader, url)
}

#[tokio::test]
async fn the_hosts_in_recovery_serve_reads_and_follow_a_switchover() {
    let (cluster, db, leader, url) = streaming_cluster().await;
    let mut admin = PgConnection::connect(&cluster.url(&leader, &db))
        .await
        .unwrap();
    sqlx::query("create table t (id bigint)")
        .execute(&mut admin)
        .await
        .unwrap();
    let _ = admin.close().await;
    let rt = Runtime::builder()
        .url(&url)
        .env_vars(Vec::<(String, String)>::new())
        .pool(
            "main",
            &[
                ("max", 4u32.into()),
                ("acquire_timeout", "30s".into()),
                ("replicas", "hosts".into()),
                ("max_lag", "2s".into()),
            ],
        )
        .build()
        .await
        .expect("a runtime whose replicas are its hosts");
    let port = |node: &str| cluster.node(node).pg_addr().port();
    assert_eq!(report(&rt).replicas.len(), cluster.nodes().len());
    let standby = cluster
        .nodes()
        .iter()
        .map(|n| n.name().to_owned())
        .find(|n| *n != leader)
        .unwrap();
    until_reads_follow(&rt, port(&leader), port(&standby)).await;

    let new = cluster.switchover(Some(&standby)).await.unwrap();
    assert_eq!(new, standby);
    cluster.wait_for_replicas_streaming(LIMIT).await.unwrap();
    // The old leader now streams from the new one: it serves reads, the new leader does not.
    until_reads_follow(&rt, port(&new), port(&leader)).await;
    // Past `max_lag`, a replica still serves only if the lag monitor reads the primary's
    // position from the new leader.
    tokio::time::sleep(Duration::from_secs(3)).await;
    until_reads_follow(&rt, port(&new), port(&leader)).await;
    // Writes go to the new leader, reads never fail on the way.
    rt.op("replica_hosts::write")
        .deadline(LIMIT)
        .run(|c| {
            Box::pin(async move {
                sqlx::query("insert into t values (1)")
                    .execute(c.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .expect("a write on the new leader");
    rt.shutdown(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test]
async fn hosts_on_a_one_host_url_is_refused_at_start_up() {
    let db = crate::support::db().await;
    let e = Runtime::builder()
        .url(db.url())
        .env_vars(Vec::<(String, String)>::new())
        .pool("main", &[("replicas", "hosts".into())])
        .build()
        .await
        .expect_err("`hosts` needs several hosts");
    let shown = e.to_string();
    assert!(
        shown.contains("pools.main.replicas") && shown.contains("multi-host url"),
        "{shown}"
    );
}
