//! What an alert is, and the bounded history of the alerts a runtime's monitors sent: the
//! monitor raises them, the health report and the status page show them.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;

use serde::Serialize;

use super::clock::unix_ms;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertKind {
    /// A pool's utilization is above `monitor.utilization`.
    PoolUtilization,
    /// Callers waited longer than `monitor.acquire_wait` for a connection.
    AcquireWait,
    /// Callers gave up waiting for a connection.
    AcquireTimeouts,
    /// A pool opened connections faster than `monitor.connection_storm` a minute.
    ConnectionStorm,
    /// Calls of an op took longer than `monitor.slow_op`.
    SlowOps,
    /// A circuit breaker is open.
    BreakerOpen,
    /// A database server does not answer.
    DatabaseUnreachable,
    /// The health score fell below 90.
    HealthDegraded,
}

impl AlertKind {
    /// The stable name (`pool_utilization`, `breaker_open`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::PoolUtilization => "pool_utilization",
            AlertKind::AcquireWait => "acquire_wait",
            AlertKind::AcquireTimeouts => "acquire_timeouts",
            AlertKind::ConnectionStorm => "connection_storm",
            AlertKind::SlowOps => "slow_ops",
            AlertKind::BreakerOpen => "breaker_open",
            AlertKind::DatabaseUnreachable => "database_unreachable",
            AlertKind::HealthDegraded => "health_degraded",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look: the system still serves.
    Warning,
    /// Calls are failing or about to.
    Critical,
}

impl Severity {
    /// `warning` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One alert: what, about which pool, breaker, op or server, and what to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Alert {
    /// What it is about.
    pub kind: AlertKind,
    /// How urgent.
    pub severity: Severity,
    /// The pool, breaker, op or server it concerns.
    pub subject: String,
    /// The observed value (percent, seconds, count, score).
    pub value: f64,
    /// The threshold it crossed.
    pub threshold: f64,
    /// The alert in plain words, with what to do.
    pub message: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

impl Alert {
    pub(crate) fn new(
        kind: AlertKind,
        severity: Severity,
        subject: impl Into<String>,
        value: f64,
        threshold: f64,
        message: impl Into<String>,
    ) -> Self {
        Alert {
            kind,
            severity,
            subject: subject.into(),
            value,
            threshold,
            message: message.into(),
            at_unix_ms: unix_ms(),
        }
    }
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {}: {}",
            self.severity.as_str(),
            self.kind,
            self.message
        )
    }
}

/// The bounded history of alerts sent, newest last.
#[derive(Debug, Default)]
pub(crate) struct AlertLog {
    alerts: Mutex<VecDeque<Alert>>,
}

impl AlertLog {
    pub(crate) fn push(&self, alert: Alert, cap: usize) {
        let mut a = self.alerts.lock().unwrap_or_else(|e| e.into_inner());
        while a.len() >= cap.max(1) {
            a.pop_front();
        }
        a.push_back(alert);
    }

    pub(crate) fn recent(&self) -> Vec<Alert> {
        self.alerts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}
