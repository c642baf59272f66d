use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::probe::{DatabaseHealth, ms, probe};
use crate::breaker::BreakerState;
use crate::observability::telemetry::OpStats;
use crate::pool::PoolStats;
use crate::replica::ReplicaReport;
use crate::runtime::Runtime;

/// Overall status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Score 90 or more and every server answers.
    Healthy,
    /// Score from 50 to 89.
    Degraded,
    /// A server does not answer, the runtime is shutting down, or the score is below 50.
    Unhealthy,
}

impl HealthStatus {
    /// `healthy`, `degraded` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Points taken off the score, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Penalty {
    /// Points.
    pub points: u32,
    /// What the points are for.
    pub reason: String,
}

/// One pool in the health report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PoolHealth {
    /// The pool.
    pub name: String,
    /// Its status on its own (from its penalties).
    pub status: HealthStatus,
    /// `in_use / max` in percent.
    pub utilization_pct: f64,
    /// Acquire timeouts within the last minute.
    pub recent_acquire_timeouts: u64,
    /// 99th percentile acquire wait since start, in milliseconds.
    pub acquire_wait_p99_ms: f64,
    /// Every figure the pool keeps.
    pub stats: PoolStats,
    /// A pool on a multi-host URL: every host, its role, health and counters, and which one
    /// the pool uses (absent for a one-server pool).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<crate::hosts::HostStatus>>,
    /// A pool on a multi-host URL: how many times it moved to another host after a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failovers: Option<u64>,
    /// Its read replicas (lag, health, share of reads), when it names any.
    pub replicas: Option<ReplicaReport>,
}

/// One armed fault in the health report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FaultHealth {
    /// Its id (`Faults::disarm`).
    pub id: u64,
    /// What it does: the SQLSTATE, `drop_connection` or `latency`.
    pub fault: String,
    /// The op it hits (`None`: every op).
    pub op: Option<String>,
    /// The pool whose ops it hits (`None`: every pool).
    pub pool: Option<String>,
    /// Calls hit so far.
    pub hits: u64,
    /// Calls it may still hit, when armed for the next N.
    pub left: Option<u32>,
}

/// One breaker in the health report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct BreakerHealth {
    /// The breaker.
    pub name: String,
    /// `closed`, `open`, `half_open`, `forced_open`, `disabled` or `metrics_only`.
    pub state: String,
    /// Failure rate over its window, in percent, when it keeps one.
    pub failure_rate: Option<f64>,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Calls rejected since start.
    pub rejected_total: u64,
    /// State transitions since start.
    pub transitions_total: u64,
    /// When open: milliseconds until a probe may run (the longest wait, when it waits for
    /// the server to answer).
    pub half_open_in_ms: Option<u64>,
    /// While open or half-open: `server_probe` (it half-opens when the server answers) or
    /// `timer` (after `open_for`).
    pub recovery: Option<&'static str>,
}

/// The health report: see the [module documentation](super).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// Overall status.
    pub status: HealthStatus,
    /// 0-100: 100 minus the penalties.
    pub score: u32,
    /// What the points were taken off for.
    pub penalties: Vec<Penalty>,
    /// What to do, in plain words.
    pub recommendations: Vec<String>,
    /// Each database server.
    pub databases: Vec<DatabaseHealth>,
    /// Each pool.
    pub pools: Vec<PoolHealth>,
    /// Each breaker.
    pub breakers: Vec<BreakerHealth>,
    /// Each armed fault, when fault injection is enabled (`None` when it is off).
    pub faults: Option<Vec<FaultHealth>>,
    /// The result cache: entries, hits, misses and hit ratio, in total and per op.
    pub cache: crate::cache::CacheStats,
    /// Each pool's background write queue: depth, oldest age, writes made and dropped.
    pub background: Vec<crate::background::BackgroundStats>,
    /// Whether the runtime is shutting down.
    pub shutting_down: bool,
    /// When the report was made, in milliseconds since the Unix epoch.
    pub checked_at_unix_ms: u64,
    /// How long making it took, in milliseconds.
    pub took_ms: f64,
}

impl HealthReport {
    /// Whether every database server answered.
    pub fn database_reachable(&self) -> bool {
        self.databases.iter().all(|d| d.reachable)
    }

    /// The database round trip (the slowest server's), in milliseconds.
    pub fn round_trip_ms(&self) -> Option<f64> {
        self.databases
            .iter()
            .filter_map(|d| d.round_trip_ms)
            .reduce(f64::max)
    }
}

/// Whether the application should receive traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Readiness {
    /// Ready for traffic.
    pub ready: bool,
    /// Why not (empty when ready).
    pub reasons: Vec<String>,
}

impl Runtime {
    /// Probes every database server and reports the runtime's health: see
    /// [`health`](crate::health). Answers within `monitor.health_timeout` plus a little,
    /// even when a server hangs.
    pub async fn health(&self) -> HealthReport {
        self.ensure_sampler();
        let started = Instant::now();
        // Statistics first: the probe may borrow an idle connection, which must not count as
        // the application's use.
        let stats = self.pool_stats();
        let ops = self.op_stats();
        let databases = self.probe_databases().await;
        let mut report = assess(self, databases, stats, &ops);
        report.took_ms = ms(started.elapsed());
        report
    }

    /// Readiness: not shutting down, and every database server answers within
    /// `monitor.health_timeout`.
    pub async fn ready(&self) -> Readiness {
        let mut reasons = Vec::new();
        if self.is_shutting_down() {
            reasons.push("the runtime is shutting down".to_owned());
        } else {
            for d in self.probe_databases().await {
                if !d.reachable {
                    reasons.push(format!(
                        "database {} does not answer: {}",
                        d.server,
                        d.error.unwrap_or_default()
                    ));
                }
            }
        }
        Readiness {
            ready: reasons.is_empty(),
            reasons,
        }
    }

    /// Liveness: false only once the runtime has been shut down and its pools closed. A
    /// database outage never makes it false.
    pub fn live(&self) -> bool {
        !(self.is_shutting_down() && self.pools().all(|p| p.is_closed()))
    }

    /// One probe per distinct server, concurrently.
    pub(crate) async fn probe_databases(&self) -> Vec<DatabaseHealth> {
        let timeout = self.config().settings.monitor.health_timeout;
        let mut servers: BTreeMap<String, Vec<crate::pool::Pool>> = BTreeMap::new();
        for p in self.pools() {
            servers
                .entry(p.url().redacted())
                .or_default()
                .push(p.clone());
        }
        let probes = servers
            .into_values()
            .map(|pools| async move { probe(&pools, timeout).await });
        futures_util::future::join_all(probes).await
    }
}

/// Builds the report from probe results and statistics (no I/O).
pub(crate) fn assess(
    rt: &Runtime,
    databases: Vec<DatabaseHealth>,
    stats: Vec<PoolStats>,
    ops: &[OpStats],
) -> HealthReport {
    let threshold = rt.config().settings.monitor.utilization_pct;
    let mut penalties = Vec::new();
    let mut recommendations = Vec::new();
    let mut unreachable = false;

    for d in &databases {
        if !d.reachable {
            unreachable = true;
            penalties.push(Penalty {
                points: 100,
                reason: format!("database {} does not answer", d.server),
            });
            recommendations.push(format!(
                "database {} is unreachable ({}): check that the server is up and reachable from \
                 this host; pools {} cannot serve",
                d.server,
                d.error.as_deref().unwrap_or("no answer"),
                d.pools.join(", ")
            ));
        } else if let Some(rtt) = d.round_trip_ms {
            let points = if rtt >= 1000.0 {
                20
            } else if rtt >= 100.0 {
                10
            } else {
                0
            };
            if points > 0 {
                penalties.push(Penalty {
                    points,
                    reason: format!("database {} round trip {rtt:.0} ms", d.server),
                });
                recommendations.push(format!(
                    "database {} answers slowly ({rtt:.0} ms round trip): check the network and \
                     the server's load",
                    d.server
                ));
            }
        }
    }

    let mut pools = Vec::new();
    for s in stats {
        let recent = rt
            .telemetry()
            .and_then(|t| t.samples.at_least(&s.name, Duration::from_secs(60)))
            .map_or(s.acquire_timeouts, |old| {
                s.acquire_timeouts
                    .saturating_sub(old.sample.acquire_timeouts)
            });
        let mut points = 0;
        let mut reasons = Vec::new();
        let util = s.utilization_pct;
        let util_points = if util >= 100.0 {
            25
        } else if util >= 95.0 {
            20
        } else if util > threshold {
            10
        } else {
            0
        };
        if util_points > 0 {
            points += util_points;
            reasons.push(format!("at {util:.0}%"));
            recommendations.push(pool_advice(&s, ops));
        }
        if s.waiting > 0 {
            points += 10;
            reasons.push(format!("{} waiting", s.waiting));
        }
        if recent > 0 {
            points += 15;
            reasons.push(format!("{recent} acquire timeouts in the last minute"));
            recommendations.push(format!(
                "pool {}: {recent} callers gave up waiting for a connection in the last minute \
                 (acquire_timeout {:?}): raise max, lower concurrency, or shorten the ops that \
                 hold connections",
                s.name,
                rt.pool(&s.name)
                    .map(|p| p.config().acquire_timeout)
                    .unwrap_or_default()
            ));
        }
        let points = points.min(40);
        if points > 0 {
            penalties.push(Penalty {
                points,
                reason: format!("pool {} {}", s.name, reasons.join(", ")),
            });
        }
        let replicas = rt.pool(&s.name).and_then(|p| p.replica_report());
        for r in replicas.iter().flat_map(|r| &r.replicas) {
            if !r.serving {
                recommendations.push(format!(
                    "pool {}: replica {} is {} (lag {}): its reads go to another replica or \
                     the primary; check the replica's log and replication",
                    s.name,
                    r.server,
                    r.state,
                    r.lag_ms
                        .map_or_else(|| "unknown".to_owned(), |ms| format!("{ms:.0} ms")),
                ));
            }
        }
        let pool = rt.pool(&s.name);
        pools.push(PoolHealth {
            replicas,
            hosts: pool.and_then(crate::Pool::hosts),
            failovers: pool.and_then(crate::Pool::failovers),
            name: s.name.clone(),
            status: status_of(100u32.saturating_sub(points), false),
            utilization_pct: util,
            recent_acquire_timeouts: recent,
            acquire_wait_p99_ms: us_to_ms(s.acquire_wait.p99_us),
            stats: s,
        });
    }

    let mut breakers = Vec::new();
    for b in rt.breakers() {
        let m = b.metrics();
        let points = match m.state {
            BreakerState::Open | BreakerState::ForcedOpen => 25,
            BreakerState::HalfOpen => 10,
            _ => 0,
        };
        if points > 0 {
            penalties.push(Penalty {
                points,
                reason: format!("breaker {} {}", b.name(), m.state),
            });
            recommendations.push(match m.state {
                BreakerState::ForcedOpen => format!(
                    "breaker {} was forced open: reset it when the database is back",
                    b.name()
                ),
                BreakerState::HalfOpen => format!(
                    "breaker {} is half-open: probe calls are testing the database",
                    b.name()
                ),
                _ if m.recovery == Some(crate::breaker::Recovery::ServerProbe) => format!(
                    "breaker {} is open because the database could not be reached ({}): calls \
                     resume as soon as a probe reaches the server; check that it is up and \
                     reachable",
                    b.name(),
                    why_open(&m)
                ),
                _ => format!(
                    "breaker {} is open after failures ({}): check the database's health and \
                     the errors of the ops behind it; calls resume when a probe succeeds",
                    b.name(),
                    why_open(&m)
                ),
            });
        }
        breakers.push(BreakerHealth {
            name: b.name().to_string(),
            state: m.state.as_str().to_owned(),
            failure_rate: m.failure_rate,
            consecutive_failures: m.consecutive_failures,
            rejected_total: m.rejected_total,
            transitions_total: m.transitions_total,
            half_open_in_ms: m.half_open_in.map(|d| d.as_millis() as u64),
            recovery: m.recovery.map(|r| r.as_str()),
        });
    }

    let shutting_down = rt.is_shutting_down();
    if shutting_down {
        recommendations.push("the runtime is shutting down and refuses new work".to_owned());
    }
    let lost: u32 = penalties.iter().map(|p| p.points).sum();
    let score = 100u32.saturating_sub(lost);
    let status = status_of(score, unreachable || shutting_down);
    if recommendations.is_empty() {
        recommendations.push("all systems operating normally".to_owned());
    }
    HealthReport {
        status,
        score,
        penalties,
        recommendations,
        databases,
        pools,
        breakers,
        faults: rt.faults().map(|f| {
            f.armed()
                .into_iter()
                .map(|a| FaultHealth {
                    id: a.id,
                    fault: a.fault.label().to_owned(),
                    op: a.fault.target_op().map(str::to_owned),
                    pool: a.fault.target_pool().map(str::to_owned),
                    hits: a.hits,
                    left: a.left,
                })
                .collect()
        }),
        cache: rt.cache().stats(),
        background: rt.background().stats(),
        shutting_down,
        checked_at_unix_ms: crate::observability::clock::unix_ms(),
        took_ms: 0.0,
    }
}

fn status_of(score: u32, down: bool) -> HealthStatus {
    if down || score < 50 {
        HealthStatus::Unhealthy
    } else if score < 90 {
        HealthStatus::Degraded
    } else {
        HealthStatus::Healthy
    }
}

fn us_to_ms(us: u64) -> f64 {
    if us == u64::MAX {
        f64::INFINITY
    } else {
        us as f64 / 1000.0
    }
}

/// Advice for a busy pool, naming its slowest ops (seed 003/004:
/// "pool http at 92%: raise max or find slow ops: ...").
pub(crate) fn pool_advice(s: &PoolStats, ops: &[OpStats]) -> String {
    let mut mine: Vec<&OpStats> = ops
        .iter()
        .filter(|o| o.pool == s.name && o.calls > 0)
        .collect();
    mine.sort_by_key(|o| std::cmp::Reverse(o.latency.p99_us));
    let slow: Vec<String> = mine
        .iter()
        .take(3)
        .map(|o| format!("{} p99 {}", o.op, fmt_us(o.latency.p99_us)))
        .collect();
    let mut text = format!(
        "pool {} at {:.0}% ({} of {} in use, {} waiting): raise max or find slow ops",
        s.name, s.utilization_pct, s.in_use, s.max, s.waiting
    );
    if slow.is_empty() {
        text.push_str(" (no op has finished on it yet: look for connections held outside ops)");
    } else {
        text.push_str(": ");
        text.push_str(&slow.join(", "));
    }
    text
}

/// A duration in microseconds, short (`850us`, `12.5ms`, `2.1s`, `>5s` for the overflow).
pub(crate) fn fmt_us(us: u64) -> String {
    match us {
        u64::MAX => ">5s".to_owned(),
        us if us >= 1_000_000 => format!("{:.1}s", us as f64 / 1e6),
        us if us >= 1_000 => format!("{:.1}ms", us as f64 / 1e3),
        us => format!("{us}us"),
    }
}

/// Why a breaker opened, in the words of the condition that tripped it: its failure rate, its
/// failures within the time window, or its failures in a row.
pub(crate) fn why_open(m: &crate::breaker::BreakerMetrics) -> String {
    match (m.failure_rate, m.recent_failures) {
        (Some(rate), _) if rate > 0.0 => format!("failure rate {rate:.0}%"),
        (_, Some(recent)) if recent > 0 => format!("{recent} failures within its window"),
        _ => format!("{} failures in a row", m.consecutive_failures),
    }
}
