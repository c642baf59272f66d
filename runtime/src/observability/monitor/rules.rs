//! The monitor's checks: pure functions of statistics and the marks left by the previous
//! check, so they are tested without a loop or a database.

use std::collections::HashMap;

use tokio::time::Instant;

use crate::breaker::{BreakerMetrics, BreakerState};
use crate::config::MonitorConfig;
use crate::histogram::first_bucket_above;
use crate::observability::alerts::{Alert, AlertKind, Severity};
use crate::observability::health::{HealthReport, HealthStatus};
use crate::observability::telemetry::OpStats;
use crate::pool::PoolStats;

/// What a pool looked like at the previous check.
#[derive(Debug, Clone)]
struct PoolMark {
    at: Instant,
    wait_buckets: Vec<u64>,
    acquire_timeouts: u64,
    opened: u64,
    closed: u64,
    size: u32,
}

/// The checks, with what they saw last time (counters are compared between checks).
#[derive(Debug)]
pub(crate) struct Checker {
    cfg: MonitorConfig,
    pools: HashMap<String, PoolMark>,
    slow: HashMap<(String, String), u64>,
}

/// An op's slow calls so far, for [`Checker::ops`].
#[derive(Debug, Clone)]
pub(crate) struct SlowCount {
    pub(crate) op: String,
    pub(crate) pool: String,
    pub(crate) slow: u64,
    pub(crate) p99_us: u64,
}

impl Checker {
    pub(crate) fn new(cfg: MonitorConfig) -> Self {
        Checker {
            cfg,
            pools: HashMap::new(),
            slow: HashMap::new(),
        }
    }

    /// Utilization now; acquire waits, timeouts and new connections since the previous check
    /// (the first check of a pool only marks its counters).
    pub(crate) fn pools(&mut self, stats: &[PoolStats], ops: &[OpStats]) -> Vec<Alert> {
        let cfg = &self.cfg;
        let mut alerts = Vec::new();
        let now = Instant::now();
        for s in stats {
            if s.utilization_pct > cfg.utilization_pct {
                let severity = if s.utilization_pct >= 100.0 && s.waiting > 0 {
                    Severity::Critical
                } else {
                    Severity::Warning
                };
                alerts.push(Alert::new(
                    AlertKind::PoolUtilization,
                    severity,
                    &s.name,
                    s.utilization_pct,
                    cfg.utilization_pct,
                    crate::observability::health::pool_advice(s, ops),
                ));
            }
            let mark = PoolMark {
                at: now,
                wait_buckets: s.acquire_wait.buckets.clone(),
                acquire_timeouts: s.acquire_timeouts,
                opened: s.opened,
                closed: s.closed,
                size: s.size,
            };
            let Some(prev) = self.pools.insert(s.name.clone(), mark) else {
                continue;
            };
            let secs = now.saturating_duration_since(prev.at).as_secs_f64();
            let window =
                humantime::format_duration(std::time::Duration::from_secs(secs.round() as u64));
            let first = first_bucket_above(cfg.acquire_wait);
            let long_waits: u64 = s
                .acquire_wait
                .buckets
                .iter()
                .zip(prev.wait_buckets.iter().chain(std::iter::repeat(&0)))
                .skip(first)
                .map(|(now, before)| now.saturating_sub(*before))
                .sum();
            if long_waits > 0 {
                alerts.push(Alert::new(
                    AlertKind::AcquireWait,
                    Severity::Warning,
                    &s.name,
                    long_waits as f64,
                    cfg.acquire_wait.as_secs_f64(),
                    format!(
                        "pool {}: {long_waits} callers waited longer than {:?} for a connection \
                         in the last {window}: raise max or find slow ops holding connections",
                        s.name, cfg.acquire_wait
                    ),
                ));
            }
            let timeouts = s.acquire_timeouts.saturating_sub(prev.acquire_timeouts);
            if timeouts > 0 {
                alerts.push(Alert::new(
                    AlertKind::AcquireTimeouts,
                    Severity::Critical,
                    &s.name,
                    timeouts as f64,
                    0.0,
                    format!(
                        "pool {}: {timeouts} callers gave up waiting for a connection in the last \
                         {window}: the pool is exhausted; raise max, lower concurrency, or shorten \
                         the ops that hold connections",
                        s.name
                    ),
                ));
            }
            // Churn: connections opened to replace closed ones. A pool growing to meet demand
            // opens connections too, and that is no storm; nor can more be replacements than
            // were closed (the size and the counters are read at slightly different moments
            // while a pool grows). Rates over less than a second are noise.
            let grown = u64::from(s.size.saturating_sub(prev.size));
            let closed = s.closed.saturating_sub(prev.closed);
            let opened = s
                .opened
                .saturating_sub(prev.opened)
                .saturating_sub(grown)
                .min(closed);
            if secs >= 1.0 {
                let per_minute = opened as f64 * 60.0 / secs;
                if per_minute > f64::from(cfg.connection_storm) {
                    alerts.push(Alert::new(
                        AlertKind::ConnectionStorm,
                        Severity::Warning,
                        &s.name,
                        per_minute,
                        f64::from(cfg.connection_storm),
                        format!(
                            "pool {}: connection storm: {opened} connections opened to replace \
                             closed ones in the last {window} ({per_minute:.0} a minute, above \
                             {}): look for evictions after failures, short idle_timeout or \
                             max_lifetime, and retry loops that reconnect",
                            s.name, cfg.connection_storm
                        ),
                    ));
                }
            }
        }
        alerts
    }

    /// Ops with calls slower than `monitor.slow_op` since the previous check.
    pub(crate) fn ops(&mut self, counts: &[SlowCount]) -> Vec<Alert> {
        let mut alerts = Vec::new();
        for c in counts {
            let key = (c.op.clone(), c.pool.clone());
            let Some(before) = self.slow.insert(key, c.slow) else {
                // First sight: anything slow so far counts (ops are registered on first call).
                if c.slow > 0 {
                    alerts.push(self.slow_alert(c, c.slow));
                }
                continue;
            };
            let new = c.slow.saturating_sub(before);
            if new > 0 {
                alerts.push(self.slow_alert(c, new));
            }
        }
        alerts
    }

    fn slow_alert(&self, c: &SlowCount, n: u64) -> Alert {
        Alert::new(
            AlertKind::SlowOps,
            Severity::Warning,
            format!("{} on {}", c.op, c.pool),
            n as f64,
            self.cfg.slow_op.as_secs_f64(),
            format!(
                "op {} on pool {}: {n} calls slower than {:?} (p99 {}): make the query cheaper \
                 (indexes, smaller results) or give it its own pool so it cannot starve the others",
                c.op,
                c.pool,
                self.cfg.slow_op,
                crate::observability::health::fmt_us(c.p99_us)
            ),
        )
    }

    /// Open and forced-open breakers.
    pub(crate) fn breakers(&self, breakers: &[(String, BreakerMetrics)]) -> Vec<Alert> {
        breakers
            .iter()
            .filter(|(_, m)| matches!(m.state, BreakerState::Open | BreakerState::ForcedOpen))
            .map(|(name, m)| {
                let why = match (m.state, m.failure_rate) {
                    (BreakerState::ForcedOpen, _) => "forced open by hand".to_owned(),
                    _ => crate::observability::health::why_open(m),
                };
                Alert::new(
                    AlertKind::BreakerOpen,
                    Severity::Critical,
                    name,
                    crate::observability::telemetry::state_number(m.state),
                    0.0,
                    format!(
                        "circuit breaker {name} is open ({why}; {} calls rejected so far): calls \
                         fail at once; check the database and the errors of the ops behind it",
                        m.rejected_total
                    ),
                )
            })
            .collect()
    }

    /// Unreachable servers and a degraded score.
    pub(crate) fn health(&self, report: &HealthReport) -> Vec<Alert> {
        let mut alerts: Vec<Alert> = report
            .databases
            .iter()
            .filter(|d| !d.reachable)
            .map(|d| {
                Alert::new(
                    AlertKind::DatabaseUnreachable,
                    Severity::Critical,
                    &d.server,
                    0.0,
                    0.0,
                    format!(
                        "database {} does not answer ({}): pools {} cannot serve; check that the \
                         server is up and reachable",
                        d.server,
                        d.error.as_deref().unwrap_or("no answer"),
                        d.pools.join(", ")
                    ),
                )
            })
            .collect();
        if report.status != HealthStatus::Healthy && alerts.is_empty() {
            let reasons: Vec<&str> = report.penalties.iter().map(|p| p.reason.as_str()).collect();
            alerts.push(Alert::new(
                AlertKind::HealthDegraded,
                if report.status == HealthStatus::Unhealthy {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                "runtime",
                f64::from(report.score),
                90.0,
                format!(
                    "health score {} ({}): {}",
                    report.score,
                    report.status,
                    reasons.join("; ")
                ),
            ));
        }
        alerts
    }
}
