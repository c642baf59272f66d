//! The replicas of one pool as a set: what the lag monitor, the membership refresh, routing
//! and the report share.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::config::ReadYourWrites;
use super::members::{Discovery, Maker};
use super::node::{Lease, Node};
use crate::pool::{Attached, Source};

/// The replicas of one pool.
pub(crate) struct Replicas {
    pub(super) pool_name: Arc<str>,
    /// The replicas now: fixed for listed URLs and `"hosts"`, replaced as a whole when
    /// Patroni's answer changes (`members`).
    pub(super) nodes: RwLock<Arc<[Arc<Node>]>>,
    /// Builds the pool of a replica found later.
    pub(super) maker: Maker,
    /// How the replicas are found from Patroni, and how that went; `None` when they are
    /// listed.
    pub(super) discovery: Option<Discovery>,
    pub(super) max_lag: Duration,
    pub(super) read_your_writes: ReadYourWrites,
    pub(super) window: Duration,
    /// How often the monitor measures.
    pub(super) interval: Duration,
    /// The longest one monitor question may take.
    pub(super) query_limit: Duration,
    /// Where the primary may be: the pool's one server, or each host of its multi-host URL.
    pub(super) primaries: Vec<PgConnectOptions>,
    /// The pool's password source (`password_file`, a provider): the monitor's links to the
    /// primary fetch it before each connect, as the pool does.
    pub(super) password: Option<Source>,
    /// Read-only ops that could have gone to a replica and ended well on the primary.
    pub(super) primary_reads: AtomicU64,
    /// Woken after every monitor round.
    pub(super) ticked: Notify,
    /// Where the next tie between equally busy replicas starts.
    pub(super) next: AtomicUsize,
    pub(super) closed: AtomicBool,
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicas")
            .field("pool", &self.pool_name)
            .field("replicas", &self.nodes().len())
            .field("max_lag", &self.max_lag)
            .finish()
    }
}

impl Replicas {
    pub(super) fn closed(&self) -> bool {
        self.closed.load(Relaxed)
    }

    /// The replicas now.
    pub(super) fn nodes(&self) -> Arc<[Arc<Node>]> {
        self.nodes.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Closes every replica's pool and stops the monitor.
    async fn close(&self) {
        self.closed.store(true, Relaxed);
        // Their own sqlx pools: a replica's pool has no replicas of its own.
        for node in self.nodes().iter() {
            node.pool.sqlx().close().await;
        }
    }

    /// The least busy replica that may serve a read within `max_lag` (and, with `lsn`, has
    /// replayed that position).
    pub(super) fn pick(&self, max_lag: Duration, lsn: Option<u64>) -> Option<Lease> {
        let now = Instant::now();
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        let n = nodes.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Relaxed);
        (0..n)
            .map(|k| &nodes[(start + k) % n])
            .filter(|node| node.eligible(now, max_lag, lsn))
            .min_by_key(|node| node.in_flight.load(Relaxed))
            .map(|node| Lease::new(node.clone()))
    }
}

impl Attached for Replicas {
    fn close(&self) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(Replicas::close(self))
    }
}
