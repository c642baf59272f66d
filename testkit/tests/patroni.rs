//! The test kit's Patroni cluster against the real engines (Debian's `patroni` and
//! `etcd-server`): a leader is elected, switchover moves it, killing the leader's postgres or
//! its Patroni makes another member leader, and writes succeed on the new leader.
//!
//! One three-node cluster serves the whole file (starting one takes a while); the tests take
//! turns, and each begins by waiting until the cluster is whole again. Conditions are polled
//! with generous limits; nothing asserts how long a failover took.

mod support;

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use sqlx_resilience_testkit::{MemberRole, PatroniCluster, PatroniOptions};
use tokio::sync::{Mutex, MutexGuard, OnceCell};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// How long an election, a failover or a rejoin may take on a loaded machine.
const LIMIT: Duration = Duration::from_secs(180);

static CLUSTER: OnceCell<PatroniCluster> = OnceCell::const_new();
static TURN: Mutex<()> = Mutex::const_new(());

/// The file's cluster, whole (a leader, every replica streaming), and this test's turn.
async fn cluster()
-> Result<(&'static PatroniCluster, MutexGuard<'static, ()>), Box<dyn std::error::Error>> {
    let turn = TURN.lock().await;
    let cluster = CLUSTER.get_or_try_init(PatroniCluster::start).await?;
    // A test that failed half-way may have left a Patroni down.
    for node in cluster.nodes() {
        cluster.start_patroni(node.name()).await?;
    }
    cluster.wait_for_replicas_streaming(LIMIT).await?;
    Ok((cluster, turn))
}

async fn execute(url: &str, sql: &str) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect(url).await?;
    let result = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .map(drop);
    let _ = conn.close().await;
    result
}

async fn count(url: &str) -> Result<i64, sqlx::Error> {
    let mut conn = PgConnection::connect(url).await?;
    let n = sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(&mut conn)
        .await;
    let _ = conn.close().await;
    n
}

/// Polls `count` on `url` until it equals `expected` (replication is asynchronous).
async fn sees(url: &str, expected: i64) -> bool {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while tokio::time::Instant::now() < deadline {
        if count(url).await.is_ok_and(|n| n == expected) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

#[tokio::test]
async fn a_leader_is_elected_and_every_replica_streams() -> TestResult {
    let (cluster, _turn) = cluster().await?;
    let leader = cluster.wait_for_leader(LIMIT).await?;
    let status = cluster.cluster_status().await?;
    assert_eq!(status.members.len(), 3, "{status:?}");
    for member in &status.members {
        let leads = member.name == leader;
        assert_eq!(member.role == MemberRole::Leader, leads, "{status:?}");
        assert_eq!(
            cluster.is_leader(&member.name).await?,
            leads,
            "GET /leader on {}",
            member.name
        );
    }

    let db = cluster.create_database().await?;
    execute(
        &cluster.url(&leader, &db),
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1)",
    )
    .await?;
    for replica in status.members.iter().filter(|m| m.name != leader) {
        let url = cluster.url(&replica.name, &db);
        assert!(
            sees(&url, 1).await,
            "{} never saw the leader's write",
            replica.name
        );
        let refused = execute(&url, "INSERT INTO t VALUES (2)")
            .await
            .expect_err("a replica accepted a write");
        assert_eq!(sqlstate(&refused).as_deref(), Some("25006"), "{refused}");
    }

    // The multi-host URL names every node.
    let multi = cluster.multi_host_url(&db);
    for node in cluster.nodes() {
        assert!(
            multi.contains(&node.pg_addr().to_string()),
            "{}",
            node.name()
        );
    }
    assert!(multi.ends_with(&format!("/{db}?sslmode=disable")));

    // No password in Debug output.
    let url = cluster.admin_url(&leader, "postgres");
    let password = url
        .split_once("postgres:")
        .and_then(|(_, rest)| rest.split_once('@'))
        .map(|(password, _)| password)
        .ok_or("no password in the admin URL")?;
    assert!(!format!("{cluster:?}").contains(password));
    Ok(())
}

#[tokio::test]
async fn switchover_moves_the_leader_to_the_candidate() -> TestResult {
    let (cluster, _turn) = cluster().await?;
    let db = cluster.create_database().await?;
    let old = cluster.wait_for_leader(LIMIT).await?;
    let candidate = cluster
        .nodes()
        .iter()
        .map(|n| n.name().to_owned())
        .find(|n| *n != old)
        .ok_or("no replica")?;

    let new = cluster.switchover(Some(&candidate)).await?;
    assert_eq!(new, candidate);
    cluster.wait_for_leader_named(&candidate, LIMIT).await?;
    assert_eq!(cluster.leader().await?.as_deref(), Some(candidate.as_str()));
    execute(
        &cluster.url(&new, &db),
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1)",
    )
    .await?;

    // The old leader rejoins as a replica of the new one.
    cluster.wait_for_replicas_streaming(LIMIT).await?;
    assert!(!cluster.is_leader(&old).await?);
    assert!(
        sees(&cluster.url(&old, &db), 1).await,
        "the old leader never saw the write"
    );
    let refused = execute(&cluster.url(&old, &db), "INSERT INTO t VALUES (2)")
        .await
        .expect_err("the old leader still accepts writes");
    assert_eq!(sqlstate(&refused).as_deref(), Some("25006"), "{refused}");
    Ok(())
}

#[tokio::test]
async fn killing_the_leaders_postgres_makes_another_member_leader() -> TestResult {
    let (cluster, _turn) = cluster().await?;
    let db = cluster.create_database().await?;
    let old = cluster.kill_leader_postgres().await?;
    assert!(
        PgConnection::connect(&cluster.url(&old, &db))
            .await
            .is_err()
            || cluster.postmaster_pid(&old).is_none()
            || !cluster.is_leader(&old).await.unwrap_or(true),
        "the killed leader kept serving as leader"
    );

    let new = cluster.wait_for_new_leader(&old, LIMIT).await?;
    assert_ne!(new, old);
    execute(
        &cluster.url(&new, &db),
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1)",
    )
    .await?;
    assert_eq!(count(&cluster.url(&new, &db)).await?, 1);

    // The old leader comes back as a replica of the new one and gets the write.
    cluster.wait_for_replicas_streaming(LIMIT).await?;
    assert!(
        sees(&cluster.url(&old, &db), 1).await,
        "the old leader never caught up"
    );
    Ok(())
}

#[tokio::test]
async fn killing_the_leaders_patroni_makes_another_member_leader() -> TestResult {
    let (cluster, _turn) = cluster().await?;
    let db = cluster.create_database().await?;
    let old = cluster.kill_leader_patroni().await?;
    assert_eq!(cluster.patroni_pid(&old), None);

    // Its lock expires after ttl; another member takes over.
    let new = cluster.wait_for_new_leader(&old, LIMIT).await?;
    execute(
        &cluster.url(&new, &db),
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1)",
    )
    .await?;

    // Back, its Patroni demotes the old primary and follows the new leader.
    cluster.start_patroni(&old).await?;
    assert!(cluster.patroni_pid(&old).is_some());
    cluster.wait_for_replicas_streaming(LIMIT).await?;
    assert!(
        sees(&cluster.url(&old, &db), 1).await,
        "the old leader never caught up"
    );
    Ok(())
}

/// A test process killed with SIGKILL leaves no etcd, Patroni or postgres and no directory
/// behind (its own cluster, not the file's).
#[tokio::test]
async fn a_killed_test_process_leaves_no_patroni_cluster_behind() -> TestResult {
    if support::is_victim() {
        let cluster = PatroniCluster::start_with(PatroniOptions::new().nodes(2)).await?;
        return support::report_and_wait(cluster.dir()).await;
    }
    let (dir, before) = support::kill_victim(
        "a_killed_test_process_leaves_no_patroni_cluster_behind",
        LIMIT,
    )?;
    let dir = std::path::PathBuf::from(dir);
    // etcd, two Patronis, two postmasters and their children, the watchdog.
    assert!(
        before.len() >= 6,
        "too little ran in {}: {before:?}",
        dir.display()
    );
    let gone = support::eventually(LIMIT, || async {
        support::processes_of(&dir).is_empty() && !dir.exists()
    })
    .await;
    assert!(
        gone,
        "{:?} or {} outlived the killed test process",
        support::processes_of(&dir),
        dir.display()
    );
    Ok(())
}
