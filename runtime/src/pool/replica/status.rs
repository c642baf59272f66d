//! What the replicas of a pool look like now: for the health report, metrics and the drills.

use std::sync::atomic::Ordering::Relaxed;

use serde::Serialize;
use tokio::time::Instant;

use super::Replicas;
use super::members::DiscoveryReport;
use crate::pool::{Pool, PoolStats};

/// The replicas of one pool ([`Pool::replica_report`](crate::Pool::replica_report)).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ReplicaReport {
    /// The pool.
    pub pool: String,
    /// Its `max_lag`, in milliseconds.
    pub max_lag_ms: f64,
    /// Read-only ops that ended well on the primary (none of its replicas could serve them,
    /// or read-your-writes sent them there).
    pub primary_reads: u64,
    /// Read-only ops that ended well on a replica.
    pub replica_reads: u64,
    /// Each replica, in configuration order (with Patroni, in the order members were
    /// found).
    pub replicas: Vec<ReplicaStatus>,
    /// How the replicas are found from Patroni's REST API; `None` when they are listed.
    pub discovery: Option<DiscoveryReport>,
}

/// One replica.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ReplicaStatus {
    /// The replica's URL, password redacted.
    pub server: String,
    /// Its host (OpenTelemetry's `server.address`).
    pub address: String,
    /// Its port (`server.port`).
    pub port: u16,
    /// `"up"`, `"down"`, `"not_replica"` (not in recovery: never used) or `"unknown"` (not
    /// measured yet).
    pub state: &'static str,
    /// How far behind it may be: the time since the newest moment up to which it has
    /// replayed every acknowledged write. `None` while unknown (down, or not measured).
    pub lag_ms: Option<f64>,
    /// Whether it serves reads now (up, within `max_lag`, with room in its pool).
    pub serving: bool,
    /// Its replay position as last measured (`X/Y`).
    pub replay_lsn: Option<String>,
    /// Ops running on it now.
    pub in_flight: u32,
    /// Read-only ops that ended well on it.
    pub reads: u64,
    /// Its share of the pool's reads that ended well, in percent.
    pub share_of_reads_pct: f64,
    /// Ops it failed in a way a primary would not, which then ran on the primary.
    pub rerouted: u64,
    /// The last failure seen on it.
    pub last_error: Option<String>,
    /// Its connection pool.
    pub stats: PoolStats,
}

impl Replicas {
    pub(crate) fn report(&self) -> ReplicaReport {
        let now = Instant::now();
        let primary_reads = self.primary_reads.load(Relaxed);
        let nodes = self.nodes();
        let reads: Vec<u64> = nodes.iter().map(|n| n.reads.load(Relaxed)).collect();
        let replica_reads: u64 = reads.iter().sum();
        let total = (primary_reads + replica_reads).max(1) as f64;
        let replicas = nodes
            .iter()
            .zip(reads)
            .map(|(node, reads)| ReplicaStatus {
                server: node.pool.url().redacted(),
                address: node.pool.sqlx().connect_options().get_host().to_owned(),
                port: node.pool.sqlx().connect_options().get_port(),
                state: node.state().as_str(),
                lag_ms: node.lag(now).map(|d| d.as_secs_f64() * 1000.0),
                serving: node.eligible(now, self.max_lag, None),
                replay_lsn: node
                    .replay_lsn()
                    .map(|l| format!("{:X}/{:X}", l >> 32, l & 0xFFFF_FFFF)),
                in_flight: node.in_flight.load(Relaxed),
                reads,
                share_of_reads_pct: reads as f64 * 100.0 / total,
                rerouted: node.rerouted.load(Relaxed),
                last_error: node
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
                stats: node.pool.stats(),
            })
            .collect();
        ReplicaReport {
            pool: self.pool_name.to_string(),
            max_lag_ms: self.max_lag.as_secs_f64() * 1000.0,
            primary_reads,
            replica_reads,
            replicas,
            discovery: self.discovery.as_ref().map(|d| d.report()),
        }
    }
}

impl Pool {
    /// Its read replicas now: each one's lag, health and share of reads; `None` when the pool
    /// names no replicas.
    pub fn replica_report(&self) -> Option<ReplicaReport> {
        self.replicas().map(Replicas::report)
    }
}
