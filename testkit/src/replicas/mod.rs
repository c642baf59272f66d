//! [`ReplicaSet`]: a throwaway primary with streaming replicas on loopback ports, their URLs,
//! and the controls replication tests need: pause and resume replay (lag on demand), measure
//! lag, promote a replica. The primary's own controls (stop, kill -9, start again) are those
//! of its [`PgServer`].

mod clone;
mod lag;

use std::fmt;
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use sqlx_resilience_runtime::{Error, redact};

use self::clone::ACTION;
use self::lag::epoch_seconds;
use crate::Result;
use crate::admin::{self, off_thread};
use crate::cluster::Cluster;
use crate::database::TestDb;
use crate::error::SERVER_HINT;
use crate::options::ServerOptions;
use crate::server::PgServer;
use crate::url::multi_host_url;

pub use self::lag::{Lsn, ReplicationLag};

/// How many replicas a set may have: the primary's default `max_wal_senders` (10) and
/// `max_replication_slots` (10) leave room for 8 and a spare base backup.
const MAX_REPLICAS: usize = 8;

/// How long replicas may take to stream, or to see what the primary did.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(120);

/// A throwaway primary and `n` streaming replicas, each a [`PgServer`] of its own (a cluster
/// directory, a watchdog, a loopback port).
///
/// Replica `i` (0-based) was cloned with `pg_basebackup -R` and streams through the physical
/// replication slot `replica_<i+1>`, which is also its `cluster_name` and so its
/// `application_name` in the primary's `pg_stat_replication`. Roles and passwords are the
/// primary's, so a [`TestDb`] made by [`ReplicaSet::create_database`] is reachable on every
/// node ([`ReplicaSet::replica_url`], [`ReplicaSet::multi_host_url`]).
///
/// Dropping the set stops every server and removes their directories; so does the end of the
/// test process, in any way.
///
/// ```no_run
/// use std::time::Duration;
/// use sqlx_resilience_testkit::{ReplicaSet, ShutdownMode};
///
/// # async fn example() -> sqlx_resilience_testkit::Result<()> {
/// let set = ReplicaSet::start(2).await?;
/// let db = set.create_database().await?;
/// set.pause_replay(0).await?;                  // replica 0 stops applying WAL: lag appears
/// // ... write through db.url() ...
/// let lag = set.lag(0).await?;
/// set.resume_replay(0).await?;
/// set.wait_caught_up(0, Duration::from_secs(60)).await?;
/// set.primary().kill9().await?;                // the primary is gone
/// set.promote(1).await?;                       // replica 1 takes writes
/// # Ok(()) }
/// ```
pub struct ReplicaSet {
    /// Declared first: replicas stop before their primary.
    replicas: Vec<PgServer>,
    primary: PgServer,
    names: Vec<String>,
}

impl ReplicaSet {
    /// A primary with `replicas` streaming replicas (1 to 8), default [`ServerOptions`];
    /// returns once every replica streams.
    pub async fn start(replicas: usize) -> Result<ReplicaSet> {
        Self::start_with(replicas, ServerOptions::default()).await
    }

    /// A primary with `replicas` streaming replicas, every node started with `options`
    /// (replicas add their `cluster_name`).
    pub async fn start_with(replicas: usize, options: ServerOptions) -> Result<ReplicaSet> {
        if replicas == 0 || replicas > MAX_REPLICAS {
            return Err(Error::test_kit(
                ACTION,
                format!("{replicas} replicas asked for"),
                format!("ask for 1 to {MAX_REPLICAS}"),
            ));
        }
        let set = off_thread(ACTION, move || {
            let started = Instant::now();
            let primary = Cluster::create(&options)?;
            let mut clusters = Vec::with_capacity(replicas);
            let mut names = Vec::with_capacity(replicas);
            for i in 1..=replicas {
                let name = format!("replica_{i}");
                let options = options.clone().setting("cluster_name", name.as_str());
                clusters.push(Cluster::replica_of(&primary, &options, &name)?);
                names.push(name);
            }
            let primary = PgServer::from_cluster(primary, ACTION)?;
            let replicas = clusters
                .into_iter()
                .map(|c| PgServer::from_cluster(c, ACTION))
                .collect::<Result<Vec<_>>>()?;
            tracing::info!(
                elapsed = ?started.elapsed(),
                primary = primary.port(),
                replicas = ?replicas.iter().map(PgServer::port).collect::<Vec<_>>(),
                "started a primary with streaming replicas"
            );
            Ok(ReplicaSet {
                replicas,
                primary,
                names,
            })
        })
        .await?;
        set.wait_streaming(CATCH_UP_LIMIT).await?;
        Ok(set)
    }

    /// The primary, with its controls: [`PgServer::kill9`], [`PgServer::stop`],
    /// [`PgServer::start_again`], [`PgServer::restart`].
    pub fn primary(&self) -> &PgServer {
        &self.primary
    }

    /// Every replica, in order.
    pub fn replicas(&self) -> &[PgServer] {
        &self.replicas
    }

    /// Replica `i` (0-based). Panics when there is no such replica.
    pub fn replica(&self, i: usize) -> &PgServer {
        self.replicas.get(i).unwrap_or_else(|| {
            panic!(
                "the replica set has {} replicas; there is no replica {i}",
                self.replicas.len()
            )
        })
    }

    /// The replication slot (and `application_name`) of replica `i`: `replica_<i+1>`.
    pub fn slot_name(&self, i: usize) -> &str {
        self.replica(i);
        &self.names[i]
    }

    fn checked(&self, i: usize, action: &str) -> Result<&PgServer> {
        self.replicas.get(i).ok_or_else(|| {
            Error::test_kit(
                action,
                format!(
                    "the replica set has {} replicas; there is no replica {i}",
                    self.replicas.len()
                ),
                "replicas are numbered from 0",
            )
        })
    }

    /// A fresh database on the primary, owned by `app`; returns once every running replica
    /// has replayed its creation. Dropping the [`TestDb`] drops it everywhere.
    pub async fn create_database(&self) -> Result<TestDb> {
        let db = self.primary.create_database().await?;
        let target = self.primary_lsn("create a test database").await?;
        for i in 0..self.replicas.len() {
            if self.replicas[i].postmaster_pid().is_some() {
                self.wait_replayed(i, target, CATCH_UP_LIMIT, "create a test database")
                    .await?;
            }
        }
        Ok(db)
    }

    /// The `app` role's URL to `db` on replica `i` (read-only while it is a standby).
    pub fn replica_url(&self, i: usize, db: &TestDb) -> String {
        db.url_via(self.replica(i).tcp_addr())
    }

    /// A libpq-style multi-host URL of the `app` role to `db`: the primary first, then every
    /// replica (`postgres://app:pw@127.0.0.1:p0,127.0.0.1:p1,.../db?sslmode=disable`). sqlx
    /// itself reads only one host; it is for code that chooses among hosts.
    pub fn multi_host_url(&self, db: &TestDb) -> String {
        let hosts: Vec<_> = std::iter::once(&self.primary)
            .chain(&self.replicas)
            .map(PgServer::tcp_addr)
            .collect();
        multi_host_url(db.url(), &hosts)
    }

    /// Waits until every replica streams from the primary (`pg_stat_replication.state =
    /// 'streaming'` for every slot name), polling every 100 ms up to `limit`.
    pub async fn wait_streaming(&self, limit: Duration) -> Result<()> {
        const WAIT: &str = "wait until the replicas stream";
        let deadline = Instant::now() + limit;
        loop {
            let streaming = async {
                let mut conn = self.on_primary(WAIT).await?;
                let names = bounded(
                    WAIT,
                    sqlx::query_scalar::<_, String>(
                        "SELECT application_name::text FROM pg_stat_replication \
                         WHERE state = 'streaming' AND application_name = ANY($1)",
                    )
                    .bind(&self.names)
                    .fetch_all(&mut conn),
                )
                .await;
                let _ = conn.close().await;
                names
            }
            .await;
            let last = match streaming {
                Ok(names) if names.len() == self.names.len() => return Ok(()),
                Ok(names) => format!("streaming: {names:?} of {:?}", self.names),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(Error::test_kit(
                    WAIT,
                    format!("not every replica streams after {limit:?}; last seen: {last}"),
                    "read the replicas' logs (log in the directory above each data_dir)",
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Pauses WAL replay on replica `i` (`pg_wal_replay_pause()`): it keeps receiving WAL but
    /// applies none, so what the primary writes from now on is invisible there and
    /// [`ReplicaSet::lag`] grows. Undo with [`ReplicaSet::resume_replay`].
    pub async fn pause_replay(&self, i: usize) -> Result<()> {
        const PAUSE: &str = "pause WAL replay";
        let replica = self.checked(i, PAUSE)?;
        admin::execute(
            replica.admin_url(),
            "SELECT pg_wal_replay_pause()".to_owned(),
        )
        .await
        .map_err(|detail| Error::test_kit(PAUSE, detail, promoted_hint()))
    }

    /// Resumes WAL replay on replica `i` (`pg_wal_replay_resume()`).
    pub async fn resume_replay(&self, i: usize) -> Result<()> {
        const RESUME: &str = "resume WAL replay";
        let replica = self.checked(i, RESUME)?;
        admin::execute(
            replica.admin_url(),
            "SELECT pg_wal_replay_resume()".to_owned(),
        )
        .await
        .map_err(|detail| Error::test_kit(RESUME, detail, promoted_hint()))
    }

    /// How far replica `i` is behind the primary now: the primary's current LSN against the
    /// replica's receive and replay LSNs, and the commit time of the last replayed
    /// transaction. Needs both servers up.
    pub async fn lag(&self, i: usize) -> Result<ReplicationLag> {
        const LAG: &str = "measure replication lag";
        let replica = self.checked(i, LAG)?;
        let primary_lsn = self.primary_lsn(LAG).await?;
        let mut conn = admin::connect(replica.admin_url())
            .await
            .map_err(|detail| Error::test_kit(LAG, detail, SERVER_HINT))?;
        type Row = (
            Option<String>,
            Option<String>,
            bool,
            Option<f64>,
            Option<f64>,
        );
        let row = bounded(
            LAG,
            sqlx::query_as::<_, Row>(
                "SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text, \
                        pg_is_wal_replay_paused(), \
                        extract(epoch FROM pg_last_xact_replay_timestamp())::float8, \
                        extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8",
            )
            .fetch_one(&mut conn),
        )
        .await;
        let _ = conn.close().await;
        let (receive, replay, paused, commit, age) = row?;
        let lsn = |text: Option<String>| -> Result<Option<Lsn>> {
            text.map(|t| t.parse().map_err(|e| Error::test_kit(LAG, e, SERVER_HINT)))
                .transpose()
        };
        Ok(ReplicationLag {
            primary_lsn,
            receive_lsn: lsn(receive)?,
            replay_lsn: lsn(replay)?,
            replay_paused: paused,
            last_replayed_commit: commit.and_then(epoch_seconds),
            replay_age: age.map(|s| Duration::from_secs_f64(s.max(0.0))),
        })
    }

    /// Waits until replica `i` has replayed everything the primary had written when called,
    /// polling every 100 ms up to `limit`. Fails at once while replay is paused.
    pub async fn wait_caught_up(&self, i: usize, limit: Duration) -> Result<()> {
        const WAIT: &str = "wait until a replica catches up";
        self.checked(i, WAIT)?;
        let target = self.primary_lsn(WAIT).await?;
        self.wait_replayed(i, target, limit, WAIT).await
    }

    async fn wait_replayed(
        &self,
        i: usize,
        target: Lsn,
        limit: Duration,
        action: &str,
    ) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let lag = self.lag(i).await?;
            if lag.replay_lsn.is_some_and(|l| l >= target) {
                return Ok(());
            }
            if lag.replay_paused {
                return Err(Error::test_kit(
                    action,
                    format!("replay is paused on replica {i} at {:?}", lag.replay_lsn),
                    "resume it first (ReplicaSet::resume_replay)",
                ));
            }
            if Instant::now() >= deadline {
                return Err(Error::test_kit(
                    action,
                    format!(
                        "replica {i} replayed up to {:?}, not {target}, within {limit:?}",
                        lag.replay_lsn
                    ),
                    "read the replica's log (log in the directory above its data_dir)",
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Promotes replica `i` (`pg_promote(wait => true)`): it leaves recovery and takes
    /// writes, on a new timeline. The other replicas keep following the old primary.
    pub async fn promote(&self, i: usize) -> Result<()> {
        const PROMOTE: &str = "promote a replica";
        let replica = self.checked(i, PROMOTE)?;
        let mut conn = admin::connect(replica.admin_url())
            .await
            .map_err(|detail| Error::test_kit(PROMOTE, detail, SERVER_HINT))?;
        // Within the admin statement limit; promotion takes a second or two.
        let promoted = bounded(
            PROMOTE,
            sqlx::query_scalar::<_, bool>("SELECT pg_promote(true, 25)").fetch_one(&mut conn),
        )
        .await;
        let in_recovery = bounded(
            PROMOTE,
            sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()").fetch_one(&mut conn),
        )
        .await;
        let _ = conn.close().await;
        match (promoted?, in_recovery?) {
            (true, false) => Ok(()),
            _ => Err(Error::test_kit(
                PROMOTE,
                format!("replica {i} is still in recovery 25 s after pg_promote"),
                "read the replica's log (log in the directory above its data_dir)",
            )),
        }
    }

    async fn primary_lsn(&self, action: &str) -> Result<Lsn> {
        let mut conn = self.on_primary(action).await?;
        let text = bounded(
            action,
            sqlx::query_scalar::<_, String>("SELECT pg_current_wal_lsn()::text")
                .fetch_one(&mut conn),
        )
        .await;
        let _ = conn.close().await;
        text?
            .parse()
            .map_err(|e: String| Error::test_kit(action, e, SERVER_HINT))
    }

    /// A fresh superuser connection to the primary.
    async fn on_primary(&self, action: &str) -> Result<PgConnection> {
        admin::connect(self.primary.admin_url())
            .await
            .map_err(|detail| {
                Error::test_kit(
                    action,
                    detail,
                    "the primary is down or was replaced: this needs it up",
                )
            })
    }
}

/// `query` bounded by the admin statement limit, its failure an error naming `action`.
async fn bounded<T>(
    action: &str,
    query: impl std::future::Future<Output = std::result::Result<T, sqlx::Error>>,
) -> Result<T> {
    match tokio::time::timeout(admin::STATEMENT_LIMIT, query).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Error::test_kit(action, redact(&e.to_string()), SERVER_HINT)),
        Err(_) => Err(Error::test_kit(
            action,
            format!("no answer within {:?}", admin::STATEMENT_LIMIT),
            SERVER_HINT,
        )),
    }
}

fn promoted_hint() -> &'static str {
    "replay controls work only on a standby: a promoted replica has none, and a stopped one \
     must be started again (PgServer::start_again)"
}

impl fmt::Debug for ReplicaSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicaSet")
            .field("primary", &self.primary)
            .field("replicas", &self.replicas)
            .field("slots", &self.names)
            .finish()
    }
}
