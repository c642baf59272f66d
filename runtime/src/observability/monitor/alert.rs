use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::observability::alerts::{Alert, AlertKind, Severity};

/// Where alerts go. Implement it to page, post to a chat, or count; closures
/// `Fn(&Alert) + Send + Sync` implement it too. `send` runs on the monitor's task: hand slow
/// work to a task or channel of your own.
pub trait AlertSink: Send + Sync + 'static {
    /// Delivers one alert (already de-duplicated).
    fn send(&self, alert: &Alert);
}

impl<F: Fn(&Alert) + Send + Sync + 'static> AlertSink for F {
    fn send(&self, alert: &Alert) {
        self(alert)
    }
}

/// The default sink: logs through `tracing`, at ERROR for critical alerts and WARN for
/// warnings, target `sqlx_resilience::alert`, with `kind` and `subject` fields.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingSink;

impl AlertSink for TracingSink {
    fn send(&self, a: &Alert) {
        match a.severity {
            Severity::Critical => tracing::error!(
                target: "sqlx_resilience::alert",
                kind = a.kind.as_str(),
                subject = %a.subject,
                value = a.value,
                threshold = a.threshold,
                "{}",
                a.message
            ),
            Severity::Warning => tracing::warn!(
                target: "sqlx_resilience::alert",
                kind = a.kind.as_str(),
                subject = %a.subject,
                value = a.value,
                threshold = a.threshold,
                "{}",
                a.message
            ),
        }
    }
}

/// Sends an alert (same kind, same subject) at most once per cooldown.
#[derive(Debug)]
pub struct Dedup {
    cooldown: Duration,
    last: HashMap<(AlertKind, String), Instant>,
}

impl Dedup {
    /// A de-duplicator with this cooldown.
    pub fn new(cooldown: Duration) -> Self {
        Dedup {
            cooldown,
            last: HashMap::new(),
        }
    }

    /// Whether `alert` may be sent now (and, if so, starts its cooldown).
    pub fn admit(&mut self, alert: &Alert) -> bool {
        let now = Instant::now();
        let key = (alert.kind, alert.subject.clone());
        match self.last.get(&key) {
            Some(at) if now.saturating_duration_since(*at) < self.cooldown => false,
            _ => {
                self.last.insert(key, now);
                true
            }
        }
    }
}
