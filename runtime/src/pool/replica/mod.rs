//! Read replicas: a pool's streaming replicas, each with its own sqlx pool and health; a lag
//! monitor (see `monitor`); routing of `read_only` ops to a replica within `max_lag`,
//! balanced by fewest in flight, falling back to the primary; and read-your-writes through a
//! [`ReadSession`].
//!
//! The op runner asks `route` for a replica before it acquires a connection, and tells
//! `succeeded` and `Lease::failed` how an attempt on it ended; nothing else in the core
//! knows about replicas.

mod attach;
mod config;
mod members;
mod monitor;
mod node;
mod patroni;
mod refresh;
mod session;
mod set;
mod status;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use tokio::sync::Notify;
use tokio::time::Instant;

pub use self::config::{ReadYourWrites, ReplicaUrls};
pub use self::members::DiscoveryReport;
pub(crate) use self::node::Lease;
pub(crate) use self::patroni::members as patroni_members;
pub use self::session::ReadSession;
pub use self::status::{ReplicaReport, ReplicaStatus};

use self::members::{Discovery, Maker};
pub(crate) use self::set::Replicas;
use crate::classify::{FailureKind, classify};
use crate::error::{Error, Result};
use crate::hosts::HostList;
use crate::pool::{CloseReason, Pool, PoolConfig, PooledConn, Source};
use crate::recovery::Servers;
use crate::secret::DatabaseUrl;

/// How often the monitor measures for a `max_lag`: a fifth of it, from 20 ms to 1 s, so a
/// caught-up replica looks at most about a fifth of `max_lag` old.
fn interval_for(max_lag: Duration) -> Duration {
    (max_lag / 5).clamp(Duration::from_millis(20), Duration::from_secs(1))
}

impl Replicas {
    /// The replicas `config` names, each a lazy pool of its own watched through `servers`,
    /// and their monitor; `None` without replicas.
    ///
    /// `hosts` is the pool's own host list when its URL names several: the monitor then reads
    /// the primary's WAL position from whichever of them is the primary now (the first
    /// otherwise), and `replicas = "hosts"` makes each of them a candidate replica, serving
    /// reads while it is in recovery. With Patroni's REST API as `replicas`, the set starts
    /// empty and follows the members the API lists (see `members`).
    ///
    /// `password` is the pool's password source: each replica's pool and the monitor's links
    /// fetch the password from it before they connect, so a rotated password reaches them.
    pub(crate) fn build(
        name: &Arc<str>,
        config: &PoolConfig,
        primary_options: PgConnectOptions,
        hosts: Option<&HostList>,
        servers: &Servers,
        password: Option<&Source>,
    ) -> Result<Option<Arc<Replicas>>> {
        let Some(replicas) = &config.replicas else {
            return Ok(None);
        };
        let each_host = |list: &HostList| -> Vec<PgConnectOptions> {
            list.hosts
                .iter()
                .map(|h| list.base.clone().host(&h.host).port(h.port))
                .collect()
        };
        let urls: Vec<DatabaseUrl> = if replicas.from_hosts() {
            let Some(list) = hosts else {
                return Err(Error::config(
                    format!("pools.{name}.replicas"),
                    "hosts",
                    "`\"hosts\"` with a multi-host url (`postgres://h1,h2,h3/db`), or the \
                     replicas' URLs",
                    "the pool's settings",
                ));
            };
            each_host(list)
                .into_iter()
                .map(DatabaseUrl::from_options)
                .collect()
        } else {
            replicas.urls().to_vec()
        };
        let discovery = if replicas.from_patroni() {
            if !cfg!(feature = "patroni") {
                return Err(Error::config(
                    format!("pools.{name}.replicas"),
                    format!("{replicas:?}"),
                    patroni::FEATURE_NEEDED,
                    "the pool's settings",
                ));
            }
            Some(Discovery::new(
                replicas.patroni().to_vec(),
                config.replicas_refresh,
                config.connect_timeout,
            ))
        } else {
            None
        };
        let member_base = hosts.map_or_else(|| primary_options.clone(), |l| l.base.clone());
        let primaries = hosts.map_or_else(|| vec![primary_options], each_host);
        let mut template = config.clone();
        template.max = config.replica_max.unwrap_or(config.max);
        template.min = 0;
        template.replicas = None;
        template.outage_waiters = Some(0);
        let maker = Maker::new(name, template, member_base, servers, password);
        let nodes = urls
            .into_iter()
            .map(|url| maker.node(url))
            .collect::<Result<Vec<_>>>()?;
        let set = Arc::new(Replicas {
            pool_name: name.clone(),
            nodes: RwLock::new(nodes.into()),
            maker,
            discovery,
            max_lag: config.max_lag,
            read_your_writes: config.read_your_writes,
            window: config.read_your_writes_window,
            interval: interval_for(config.max_lag),
            query_limit: config.connect_timeout.min(config.probe_timeout),
            primaries,
            password: password.cloned(),
            primary_reads: AtomicU64::new(0),
            ticked: Notify::new(),
            next: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        });
        monitor::spawn(&set);
        refresh::spawn(&set);
        monitor::spawn(&set);
        Ok(Some(set))
    }
}

/// What routing needs to know of an op: the runner fills it from the resolved op.
pub(crate) struct Call<'a> {
    /// The op's pool.
    pub(crate) pool: &'a Pool,
    /// The op only reads (declared on the op or its transaction).
    pub(crate) read_only: bool,
    /// Its transaction is `SERIALIZABLE`.
    pub(crate) serializable: bool,
    /// The op's own `max_lag` (the pool's when `None`).
    pub(crate) max_lag: Option<Duration>,
}

/// Whether an op may run on a replica: it only reads, and its transaction is not
/// `SERIALIZABLE` (a hot standby refuses it).
fn may_use_replica(op: &Call<'_>) -> bool {
    op.read_only && !op.serializable
}

/// The replica an attempt of `op` should run on, or `None` for the primary. With
/// `read_your_writes = "wait"` after a write of the current [`ReadSession`], waits for a
/// replica that replayed it, up to the window and `deadline`.
pub(crate) async fn route(op: &Call<'_>, deadline: Option<Instant>) -> Option<Lease> {
    let set = op.pool.replicas()?;
    if !may_use_replica(op) {
        return None;
    }
    let max_lag = op.max_lag.unwrap_or(set.max_lag);
    let written = match set.read_your_writes {
        ReadYourWrites::Off => None,
        _ => ReadSession::current()
            .and_then(|s| s.last_write(&set.pool_name))
            .filter(|w| w.at.elapsed() < set.window),
    };
    let Some(written) = written else {
        return set.pick(max_lag, None);
    };
    let lsn = match (set.read_your_writes, written.lsn) {
        (ReadYourWrites::Wait, Some(lsn)) => lsn,
        _ => return None,
    };
    let until = written.at + set.window;
    let until = deadline.map_or(until, |d| d.min(until));
    loop {
        let ticked = set.ticked.notified();
        tokio::pin!(ticked);
        ticked.as_mut().enable();
        if let Some(lease) = set.pick(max_lag, Some(lsn)) {
            return Some(lease);
        }
        if tokio::time::timeout_at(until, ticked).await.is_err() {
            return None;
        }
    }
}

/// Whether a failure on a replica is one a read on the primary would not have, so the
/// attempt runs again on the primary: the replica went away or is shutting down, it
/// cancelled the query for a recovery conflict (40001/40P01 "conflict with recovery",
/// 57P04), or it refused what only a primary does (25006 read-only transaction, 0A000 on a
/// standby). Time-outs, missing rows and the application's own errors are the op's.
pub(crate) fn reroutable(error: &Error) -> bool {
    let source = match error {
        Error::Database { source, .. } | Error::Connect { source, .. } => source,
        Error::UnknownOutcome { source, .. } => return reroutable(source),
        _ => return false,
    };
    let c = classify(source);
    if matches!(
        c.kind,
        FailureKind::ConnectionLost | FailureKind::ServerShutdown | FailureKind::Failover
    ) {
        return true;
    }
    match c.sqlstate.as_deref() {
        Some("40001" | "40P01") => source.to_string().contains("conflict with recovery"),
        Some("57P04" | "25006" | "0A000") => true,
        _ => false,
    }
}

impl Lease {
    /// The replica's pool.
    pub(crate) fn pool(&self) -> &Pool {
        &self.node.pool
    }

    /// The attempt failed on the replica in a way a primary would not: the replica serves
    /// nothing until the monitor measures it again, and the op runs again on the primary.
    pub(crate) fn failed(&self, error: &Error) {
        self.node.rerouted.fetch_add(1, Relaxed);
        let why = error.to_string();
        tracing::debug!(
            replica = %self.node.pool.url().redacted(),
            error = %why,
            "read failed on a replica; running it on the primary"
        );
        self.node.down(&why);
    }
}

/// An attempt of `op` ended well on `conn` (on the replica of `lease`, if any): counts reads
/// by where they ran, and records a write in the current [`ReadSession`] (with the primary's
/// WAL position after it, for `read_your_writes = "wait"`).
pub(crate) async fn succeeded(op: &Call<'_>, lease: Option<&Lease>, conn: &mut PooledConn) {
    let Some(set) = op.pool.replicas() else {
        return;
    };
    if may_use_replica(op) {
        match lease {
            Some(lease) => lease.node.reads.fetch_add(1, Relaxed),
            None => set.primary_reads.fetch_add(1, Relaxed),
        };
        return;
    }
    if set.read_your_writes == ReadYourWrites::Off {
        return;
    }
    let Some(session) = ReadSession::current() else {
        return;
    };
    let lsn = if set.read_your_writes == ReadYourWrites::Wait {
        // A simple query: the op's transaction (if any) has ended, and behind a transaction
        // pooler a prepared statement could meet another client's of the same name.
        let asked = sqlx::raw_sql("SELECT pg_current_wal_lsn()::text").fetch_one(&mut **conn);
        match tokio::time::timeout(set.query_limit, asked).await {
            Ok(Ok(row)) => sqlx::Row::try_get::<String, _>(&row, 0)
                .ok()
                .and_then(|text| monitor::parse_lsn(&text).ok()),
            Ok(Err(_)) => None,
            Err(_) => {
                conn.evict(CloseReason::Timeout);
                None
            }
        }
    } else {
        None
    };
    session.wrote(&set.pool_name, lsn);
}
