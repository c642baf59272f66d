use serde::Serialize;

use super::HealthReport;
use crate::observability::alerts::Alert;
use crate::observability::telemetry::{OpStats, PoolHistory};
use crate::pool::{BudgetCheck, SizingReport};
use crate::runtime::Runtime;

/// Everything the status page shows: the health report, every op, the utilization history,
/// recent alerts, and the other policies' figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StatusReport {
    /// The health report.
    pub health: HealthReport,
    /// Every op that has run.
    pub ops: Vec<OpStats>,
    /// Each pool's recent samples.
    pub history: Vec<PoolHistory>,
    /// Alerts sent by the monitor, oldest first.
    pub alerts: Vec<Alert>,
    /// Rate limiters.
    pub limiters: Vec<LimiterStatus>,
    /// Bulkheads.
    pub bulkheads: Vec<BulkheadStatus>,
    /// Retry policies.
    pub retries: Vec<RetryStatus>,
}

/// A rate limiter's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LimiterStatus {
    /// Its name.
    pub name: String,
    /// Calls permitted.
    pub permitted: u64,
    /// Calls rejected.
    pub rejected: u64,
    /// Calls permitted after waiting.
    pub waited: u64,
}

/// A bulkhead's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct BulkheadStatus {
    /// Its name.
    pub name: String,
    /// Calls running now.
    pub running: u32,
    /// Calls queued now.
    pub queued: u32,
    /// Its concurrency limit.
    pub max_concurrent: u32,
    /// Calls admitted.
    pub admitted: u64,
    /// Calls shed because the queue was full.
    pub shed: u64,
    /// Calls that gave up waiting.
    pub timed_out: u64,
}

/// A retry policy's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RetryStatus {
    /// Its name.
    pub name: String,
    /// Calls started under it.
    pub calls: u64,
    /// Retries by failure kind.
    pub retries: Vec<(String, u64)>,
    /// Retries refused because the retry budget was spent.
    pub budget_exhausted: u64,
}

/// A pool's settings as `/pool-config` shows them (durations in humantime form, URL
/// redacted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PoolSettings {
    /// The pool.
    pub name: String,
    /// The server, password redacted.
    pub url: String,
    /// Maximum connections (after any budget scaling).
    pub max: u32,
    /// Minimum connections.
    pub min: u32,
    /// Acquire timeout.
    pub acquire_timeout: String,
    /// Idle timeout.
    pub idle_timeout: Option<String>,
    /// Maximum lifetime.
    pub max_lifetime: Option<String>,
    /// Connect timeout.
    pub connect_timeout: String,
    /// Statement timeout of every session.
    pub statement_timeout: Option<String>,
    /// Leak threshold.
    pub leak_threshold: Option<String>,
    /// `application_name`.
    pub application_name: String,
}

/// Settings and sizing advice: what `/pool-config` serves.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PoolConfigReport {
    /// Each pool's settings.
    pub pools: Vec<PoolSettings>,
    /// The connection budget checked at start-up, per server.
    pub budget: Vec<BudgetCheck>,
    /// Sizing advice per server.
    pub sizing: Vec<SizingReport>,
    /// Sizing advice in plain words.
    pub recommendations: Vec<String>,
}

fn human(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl Runtime {
    /// The full status: [`Runtime::health`] plus ops, history, alerts and policies.
    pub async fn status(&self) -> StatusReport {
        let health = self.health().await;
        StatusReport {
            health,
            ops: self.op_stats(),
            history: self.utilization_history(),
            alerts: self.recent_alerts(),
            limiters: self
                .limiters()
                .iter()
                .map(|l| {
                    let m = l.metrics();
                    LimiterStatus {
                        name: l.name().to_string(),
                        permitted: m.permitted,
                        rejected: m.rejected,
                        waited: m.waited,
                    }
                })
                .collect(),
            bulkheads: self
                .bulkheads()
                .iter()
                .map(|b| {
                    let m = b.metrics();
                    BulkheadStatus {
                        name: b.name().to_string(),
                        running: m.running,
                        queued: m.queued,
                        max_concurrent: b.config().max_concurrent,
                        admitted: m.admitted,
                        shed: m.shed,
                        timed_out: m.timed_out,
                    }
                })
                .collect(),
            retries: self
                .retry_policies()
                .iter()
                .map(|r| {
                    let m = r.metrics();
                    RetryStatus {
                        name: r.name().to_string(),
                        calls: m.calls,
                        retries: m
                            .retries
                            .iter()
                            .map(|(k, n)| (k.as_str().to_owned(), *n))
                            .collect(),
                        budget_exhausted: m.stops.budget_exhausted,
                    }
                })
                .collect(),
        }
    }

    /// Each pool's settings, the budget checks and sizing advice.
    pub fn pool_config_report(&self) -> PoolConfigReport {
        let pools = self
            .pools()
            .map(|p| {
                let c = p.config();
                PoolSettings {
                    name: p.name().to_owned(),
                    url: p.url().redacted(),
                    max: c.max,
                    min: c.min,
                    acquire_timeout: human(c.acquire_timeout),
                    idle_timeout: c.idle_timeout.map(human),
                    max_lifetime: c.max_lifetime.map(human),
                    connect_timeout: human(c.connect_timeout),
                    statement_timeout: c.statement_timeout.map(human),
                    leak_threshold: c.leak_threshold.map(human),
                    application_name: c
                        .application_name
                        .clone()
                        .unwrap_or_else(|| p.name().to_owned()),
                }
            })
            .collect();
        let sizing = self.sizing_report();
        let mut recommendations = Vec::new();
        for r in &sizing {
            if !r.budget.fits() {
                recommendations.push(format!(
                    "the pools ask for more connections than the server allows: {}; lower the \
                     maxima or set budget.mode = \"scale\"",
                    r.budget.arithmetic()
                ));
            }
            for p in &r.pools {
                if let Some(total) = r.recommended_total
                    && p.configured > p.recommended.saturating_mul(2)
                {
                    recommendations.push(format!(
                        "pool {}: max {} is far above its share ({}) of the {} connections \
                         the server's cores can serve at once (cores x 2 + spindles); a smaller \
                         pool with a queue is usually faster",
                        p.name, p.configured, p.recommended, total
                    ));
                }
            }
        }
        if recommendations.is_empty() {
            recommendations.push("pool sizes fit the server's budget".to_owned());
        }
        PoolConfigReport {
            pools,
            budget: self.budget().to_vec(),
            sizing,
            recommendations,
        }
    }
}
