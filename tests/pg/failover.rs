//! Multi-host URLs and failover on real servers: a primary with a streaming replica (the host
//! chosen by asking the servers, a primary turned read-only, a typed error while no primary
//! answers, the promoted replica taking the writes), and a Patroni cluster (a switchover and a
//! kill -9 of the leader's postgres under writes: no acknowledged write lost or applied
//! twice, no connection to the old primary used again). Conditions are polled with generous
//! limits; nothing asserts how long a failover took (the `failover` drill measures it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use sqlx::{Connection, PgConnection};
use sqlx_resilience::telemetry::names;
use sqlx_resilience::{Error, FailureKind, PolicyKind, Runtime};
use sqlx_resilience_testkit::{PatroniCluster, PatroniOptions, ReplicaSet};

const LIMIT: Duration = Duration::from_secs(180);

/// A runtime with one pool `main` on `url`, and the retry policy `r`.
async fn runtime(url: &str) -> Runtime {
    Runtime::builder()
        .url(url)
        .env_vars(Vec::<(String, String)>::new())
        .pool(
            "main",
            &[("max", 4u32.into()), ("acquire_timeout", "30s".into())],
        )
        .declare(
            PolicyKind::Retry,
            "r",
            &[("attempts", 5u32.into()), ("base", "20ms".into())],
        )
        .build()
        .await
        .expect("runtime on a multi-host URL")
}

/// An idempotent upsert of `key`, with `deadline`.
async fn upsert(rt: &Runtime, key: i64, deadline: Duration) -> Result<(), Error> {
    rt.op("failover::upsert")
        .idempotent(true)
        .retry("r")
        .deadline(deadline)
        .run(move |c| {
            Box::pin(async move {
                sqlx::query("insert into marks (key) values ($1) on conflict (key) do nothing")
                    .bind(key)
                    .execute(c.as_mut())
                    .await?;
                Ok(())
            })
        })
        .await
}

/// The port of the server each of `n` connections taken at once is on.
async fn ports_in_use(rt: &Runtime, n: usize) -> Vec<i32> {
    let reads = (0..n).map(|_| {
        rt.op("failover::port")
            .read_only(true)
            .deadline(Duration::from_secs(60))
            .run(|c| {
                Box::pin(async move {
                    let (port,): (i32,) =
                        sqlx::query_as("select inet_server_port() from pg_sleep(0.05)")
                            .fetch_one(c.as_mut())
                            .await?;
                    Ok::<_, Error>(port)
                })
            })
    });
    futures_util::future::join_all(reads)
        .await
        .into_iter()
        .map(|r| r.expect("a read through the multi-host pool"))
        .collect()
}

#[tokio::test]
async fn the_pool_asks_for_the_primary_and_follows_a_promoted_replica() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let set = ReplicaSet::start(1).await.expect("a primary and a standby");
    let db = set.create_database().await.unwrap();
    let (primary, standby) = (set.primary().tcp_addr(), set.replica(0).tcp_addr());
    // The standby first: the pool must ask, not take the first host.
    let url = set.multi_host_url(&db).replace(
        &format!("{primary},{standby}"),
        &format!("{standby},{primary}"),
    );
    let rt = runtime(&format!("{url}&target_session_attrs=read-write")).await;
    let pool = rt.pool("main").unwrap();
    assert_eq!(pool.current_host(), Some(primary.to_string()));
    let mut admin = PgConnection::connect(db.url()).await.unwrap();
    sqlx::query("create table marks (key bigint primary key)")
        .execute(&mut admin)
        .await
        .unwrap();
    let _ = admin.close().await;
    upsert(&rt, 1, Duration::from_secs(10)).await.unwrap();
    let hosts = pool.hosts().unwrap();
    assert_eq!(hosts.len(), 2);
    assert_eq!(hosts[0].role.as_str(), "standby", "{hosts:?}");
    assert_eq!(hosts[1].role.as_str(), "primary", "{hosts:?}");
    let report = rt.health().await;
    let main = report.pools.iter().find(|p| p.name == "main").unwrap();
    let reported = main.hosts.as_ref().expect("the hosts in the health report");
    assert!(reported[1].current && !reported[0].current, "{reported:?}");
    assert_eq!(main.failovers, Some(0));
    // The metrics say the same, per host (`server.address`, `server.port`).
    rt.publish_metrics();
    let current = crate::support::gauges_by_port(&snapshotter, names::HOST_CURRENT);
    assert!(
        current.contains(&(primary.port().to_string(), 1.0))
            && current.contains(&(standby.port().to_string(), 0.0)),
        "{current:?}"
    );

    // The same URL asking for a standby reads there.
    let standby_rt = runtime(&format!("{url}&target_session_attrs=standby")).await;
    let ports = ports_in_use(&standby_rt, 2).await;
    assert!(
        ports.iter().all(|p| *p == i32::from(standby.port())),
        "{ports:?}"
    );
    standby_rt.shutdown(Duration::from_secs(5)).await.ok();

    // Four connections open on the primary, idle in the pool from now on.
    let ports = ports_in_use(&rt, 4).await;
    assert!(
        ports.iter().all(|p| *p == i32::from(primary.port())),
        "{ports:?}"
    );

    // The primary turns read-only (alive, as a demoted primary is) and nothing is promoted:
    // a write meets 25006, waits out its deadline for a read-write host, then says a
    // failover is in progress, naming the old host.
    set.primary()
        .set_setting("default_transaction_read_only", "on")
        .await
        .unwrap();
    // A backend idle at the reload runs its next statement with the old settings: one read on
    // each of the four connections first.
    ports_in_use(&rt, 4).await;
    let err = upsert(&rt, 2, Duration::from_millis(1500))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Failover, "{err}");
    let text = err.to_string();
    assert!(text.contains("failover in progress"), "{text}");
    assert!(text.contains(&primary.to_string()), "{text}");
    assert!(!text.contains(":***@") && !url.contains(&text), "{text}");

    // The replica is promoted: the same pool writes there, within the write's deadline, and
    // none of its connections to the old primary (alive, still accepting sessions) is used.
    set.promote(0).await.unwrap();
    let give_up = tokio::time::Instant::now() + LIMIT;
    while pool.current_host() != Some(standby.to_string()) {
        assert!(tokio::time::Instant::now() < give_up, "{:?}", pool.hosts());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Reads first: a connection to the old primary would serve them without an error.
    let ports = ports_in_use(&rt, 8).await;
    assert!(
        ports.iter().all(|p| *p == i32::from(standby.port())),
        "{ports:?}"
    );
    upsert(&rt, 3, Duration::from_secs(60)).await.unwrap();
    assert_eq!(pool.failovers(), Some(1));
    let mut promoted = PgConnection::connect(&set.replica_url(0, &db))
        .await
        .unwrap();
    let (n,): (i64,) = sqlx::query_as("select count(*) from marks where key in (1, 3)")
        .fetch_one(&mut promoted)
        .await
        .unwrap();
    assert_eq!(n, 2);
    rt.shutdown(Duration::from_secs(5)).await.ok();
}

/// What the writer saw: keys acknowledged, keys whose outcome is unknown.
#[derive(Default)]
struct Seen {
    acked: std::sync::Mutex<Vec<i64>>,
    unknown: std::sync::Mutex<Vec<i64>>,
}

/// Writes until `stop`: plain inserts (not idempotent) and transactions, each with a fresh
/// key, and notes what each call reported.
async fn writer(rt: Runtime, next: Arc<AtomicI64>, seen: Arc<Seen>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let key = next.fetch_add(1, Ordering::Relaxed);
        let op = rt
            .op(if key % 2 == 0 {
                "failover::insert"
            } else {
                "failover::tx"
            })
            .retry("r")
            .deadline(Duration::from_secs(60));
        let result = if key % 2 == 0 {
            op.run(move |c| {
                Box::pin(async move {
                    sqlx::query("insert into writes (key) values ($1)")
                        .bind(key)
                        .execute(c.as_mut())
                        .await?;
                    Ok::<_, Error>(())
                })
            })
            .await
        } else {
            op.run_tx(move |tx| {
                Box::pin(async move {
                    sqlx::query("insert into writes (key) values ($1), ($1)")
                        .bind(key)
                        .execute(tx.as_mut())
                        .await?;
                    Ok::<_, Error>(())
                })
            })
            .await
        };
        match result {
            Ok(()) => seen.acked.lock().unwrap().push(key),
            Err(e) if e.kind() == FailureKind::UnknownOutcome => {
                seen.unknown.lock().unwrap().push(key);
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every acknowledged key has its rows exactly once (two for a transaction), and no key has
/// more; returns how many keys were checked.
async fn check_rows(url: &str, seen: &Seen) -> usize {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let rows: Vec<(i64, i64)> = sqlx::query_as("select key, count(*) from writes group by key")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    let counts: std::collections::HashMap<i64, i64> = rows.into_iter().collect();
    let want = |key: i64| if key % 2 == 0 { 1 } else { 2 };
    for (key, n) in &counts {
        assert!(*n <= want(*key), "key {key} applied twice ({n} rows)");
    }
    let acked = seen.acked.lock().unwrap().clone();
    for key in &acked {
        assert_eq!(
            counts.get(key),
            Some(&want(*key)),
            "acknowledged key {key} lost"
        );
    }
    acked.len()
}

#[tokio::test]
async fn writes_ride_out_a_patroni_switchover_and_a_kill_9_of_the_leader() {
    // Synchronous replication: a kill -9 loses no acknowledged commit.
    let cluster = PatroniCluster::start_with(PatroniOptions::new().synchronous_mode(true))
        .await
        .expect("a Patroni cluster");
    let db = cluster.create_database().await.unwrap();
    let leader = cluster.wait_for_leader(LIMIT).await.unwrap();
    let mut admin = PgConnection::connect(&cluster.url(&leader, &db))
        .await
        .unwrap();
    sqlx::query("create table writes (key bigint not null)")
        .execute(&mut admin)
        .await
        .unwrap();
    let _ = admin.close().await;
    let url = format!(
        "{}&target_session_attrs=primary",
        cluster.multi_host_url(&db)
    );
    let rt = runtime(&url).await;
    let pool = rt.pool("main").unwrap().clone();
    let port_of = |node: &str| i32::from(cluster.node(node).pg_addr().port());
    let addr_of = |node: &str| cluster.node(node).pg_addr();

    let (next, seen, stop) = (
        Arc::new(AtomicI64::new(1)),
        Arc::new(Seen::default()),
        Arc::new(AtomicBool::new(false)),
    );
    let writers: Vec<_> = (0..3)
        .map(|_| tokio::spawn(writer(rt.clone(), next.clone(), seen.clone(), stop.clone())))
        .collect();
    let acked_after = |n: usize| {
        let seen = seen.clone();
        async move {
            let give_up = tokio::time::Instant::now() + LIMIT;
            while seen.acked.lock().unwrap().len() < n {
                assert!(tokio::time::Instant::now() < give_up, "writes stopped");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    acked_after(20).await;

    cluster.wait_for_sync_standby(LIMIT).await.unwrap();
    let new = cluster.switchover(None).await.unwrap();
    let before = seen.acked.lock().unwrap().len();
    acked_after(before + 20).await;
    assert_eq!(pool.current_host(), Some(addr_of(&new).to_string()));
    // Every connection the pool hands out is on the new leader: none to the old one is used.
    let ports = ports_in_use(&rt, 8).await;
    assert!(ports.iter().all(|p| *p == port_of(&new)), "{ports:?}");

    cluster.wait_for_replicas_streaming(LIMIT).await.unwrap();
    cluster.wait_for_sync_standby(LIMIT).await.unwrap();
    let old = cluster.kill_leader_postgres().await.unwrap();
    let next_leader = cluster.wait_for_new_leader(&old, LIMIT).await.unwrap();
    let before = seen.acked.lock().unwrap().len();
    acked_after(before + 20).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let leader_now = cluster.wait_for_leader(LIMIT).await.unwrap();
    assert_eq!(pool.current_host(), Some(addr_of(&leader_now).to_string()));
    let ports = ports_in_use(&rt, 8).await;
    assert!(
        ports.iter().all(|p| *p == port_of(&leader_now)),
        "{ports:?} {next_leader}"
    );
    assert!(pool.failovers().unwrap() >= 2, "{:?}", pool.hosts());
    let checked = check_rows(&cluster.url(&leader_now, &db), &seen).await;
    assert!(checked >= 60);
    rt.shutdown(Duration::from_secs(5)).await.ok();
}
