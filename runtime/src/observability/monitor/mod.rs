//! The monitor: a background loop that checks pools, breakers, ops and health at
//! configurable intervals, raises [`Alert`]s past configurable thresholds, sends each to
//! pluggable [`AlertSink`]s at most once per cooldown, and keeps a bounded history.
//!
//! ```no_run
//! # async fn f(rt: sqlx_resilience_runtime::Runtime) {
//! use sqlx_resilience_runtime::monitor::{Alert, Monitor, TracingSink};
//!
//! // Settings from the `monitor.*` configuration keys; alerts logged through tracing.
//! let monitor = rt.start_monitor();
//!
//! // Or with sinks of your own (a closure is a sink):
//! let monitor = Monitor::builder(&rt)
//!     .sink(TracingSink)
//!     .sink(|alert: &Alert| eprintln!("PAGE: {alert}"))
//!     .start();
//! # drop(monitor);
//! # }
//! ```
//!
//! | every | checks | alerts |
//! | --- | --- | --- |
//! | `monitor.pool_interval` (15 s) | pool statistics, op durations; publishes metrics | `pool_utilization` above `monitor.utilization` (80 %), `acquire_wait` longer than `monitor.acquire_wait` (5 s), `acquire_timeouts`, `connection_storm` above `monitor.connection_storm` (100 a minute), `slow_ops` slower than `monitor.slow_op` (1 s) |
//! | `monitor.breaker_interval` (10 s) | breaker states | `breaker_open` |
//! | `monitor.health_interval` (30 s) | the health report | `database_unreachable`, `health_degraded` |
//!
//! An alert with the same kind and subject is sent at most once per `monitor.cooldown`
//! (5 min). The loop stops when the [`Monitor`] is dropped or stopped, and when the runtime
//! shuts down or is dropped (it holds the runtime weakly).

mod alert;
mod rules;

use std::sync::{Arc, Weak};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

pub use self::alert::{AlertSink, Dedup, TracingSink};
use self::rules::{Checker, SlowCount};
pub use crate::config::MonitorConfig;
pub use crate::observability::alerts::{Alert, AlertKind, Severity};
use crate::runtime::{Runtime, Shared};

/// A running monitor. Dropping it stops the loop.
#[derive(Debug)]
#[must_use = "the monitor stops when this handle is dropped"]
pub struct Monitor {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Configures a [`Monitor`]: settings and sinks.
#[must_use]
pub struct MonitorBuilder {
    rt: Runtime,
    config: MonitorConfig,
    sinks: Vec<Arc<dyn AlertSink>>,
}

impl std::fmt::Debug for MonitorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorBuilder")
            .field("config", &self.config)
            .field("sinks", &self.sinks.len())
            .finish()
    }
}

impl Runtime {
    /// Starts the monitor with the `monitor.*` settings and the [`TracingSink`]. With
    /// `monitor.enabled = false` the returned handle runs nothing.
    pub fn start_monitor(&self) -> Monitor {
        Monitor::builder(self).start()
    }

    /// The alerts the monitors of this runtime sent, oldest first (at most `monitor.history`).
    pub fn recent_alerts(&self) -> Vec<Alert> {
        self.telemetry()
            .map_or_else(Vec::new, |t| t.alerts.recent())
    }
}

impl Monitor {
    /// A builder with the runtime's `monitor.*` settings and no sinks (the [`TracingSink`] is
    /// used when none is added).
    pub fn builder(rt: &Runtime) -> MonitorBuilder {
        MonitorBuilder {
            rt: rt.clone(),
            config: rt.config().settings.monitor.clone(),
            sinks: Vec::new(),
        }
    }

    /// Whether the loop still runs.
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the loop and waits for it to end.
    pub async fn stop(mut self) {
        drop(self.stop.take());
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        drop(self.stop.take());
    }
}

impl MonitorBuilder {
    /// Replaces the settings.
    pub fn config(mut self, config: MonitorConfig) -> Self {
        self.config = config;
        self
    }

    /// Adds a sink.
    pub fn sink(mut self, sink: impl AlertSink) -> Self {
        self.sinks.push(Arc::new(sink));
        self
    }

    /// Starts the loop on the current tokio runtime.
    pub fn start(self) -> Monitor {
        if !self.config.enabled {
            tracing::info!("monitor disabled (monitor.enabled = false)");
            return Monitor {
                stop: None,
                task: None,
            };
        }
        self.rt.ensure_sampler();
        let (stop, stopped) = oneshot::channel();
        let mut sinks = self.sinks;
        if sinks.is_empty() {
            sinks.push(Arc::new(TracingSink));
        }
        let weak = Arc::downgrade(&self.rt.shared);
        let task = tokio::spawn(run(weak, self.config, sinks, stopped));
        Monitor {
            stop: Some(stop),
            task: Some(task),
        }
    }
}

async fn run(
    weak: Weak<Shared>,
    cfg: MonitorConfig,
    sinks: Vec<Arc<dyn AlertSink>>,
    mut stopped: oneshot::Receiver<()>,
) {
    let interval = |period| {
        let mut i = tokio::time::interval_at(Instant::now(), period);
        i.set_missed_tick_behavior(MissedTickBehavior::Delay);
        i
    };
    let mut pools = interval(cfg.pool_interval);
    let mut breakers = interval(cfg.breaker_interval);
    let mut health = interval(cfg.health_interval);
    let mut checker = Checker::new(cfg.clone());
    let mut dedup = Dedup::new(cfg.cooldown);
    let history = cfg.history as usize;
    let upgrade = || {
        let shared = weak.upgrade()?;
        let rt = Runtime { shared };
        (!rt.is_shutting_down()).then_some(rt)
    };
    loop {
        let alerts = tokio::select! {
            biased;
            _ = &mut stopped => return,
            _ = pools.tick() => {
                let Some(rt) = upgrade() else { return };
                rt.publish_metrics();
                let ops = rt.op_stats();
                let mut alerts = checker.pools(&rt.pool_stats(), &ops);
                let counts: Vec<SlowCount> = ops
                    .iter()
                    .map(|o| SlowCount {
                        op: o.op.clone(),
                        pool: o.pool.clone(),
                        slow: o.latency.count_over(cfg.slow_op),
                        p99_us: o.latency.p99_us,
                    })
                    .collect();
                alerts.extend(checker.ops(&counts));
                (rt, alerts)
            }
            _ = breakers.tick() => {
                let Some(rt) = upgrade() else { return };
                let list: Vec<_> = rt
                    .breakers()
                    .iter()
                    .map(|b| (b.name().to_string(), b.metrics()))
                    .collect();
                let alerts = checker.breakers(&list);
                (rt, alerts)
            }
            _ = health.tick() => {
                let Some(rt) = upgrade() else { return };
                let report = tokio::select! {
                    biased;
                    _ = &mut stopped => return,
                    r = rt.health() => r,
                };
                let alerts = checker.health(&report);
                (rt, alerts)
            }
        };
        let (rt, alerts) = alerts;
        for alert in alerts {
            if dedup.admit(&alert) {
                for sink in &sinks {
                    sink.send(&alert);
                }
                if let Some(t) = rt.telemetry() {
                    t.alerts.push(alert, history);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
