use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::pool::PoolStats;
use crate::runtime::{Runtime, Shared};

/// One pool at one moment, kept in the runtime's ring of samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PoolSample {
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// Connections in use.
    pub in_use: u32,
    /// Idle connections.
    pub idle: u32,
    /// Callers waiting.
    pub waiting: u32,
    /// The pool's maximum.
    pub max: u32,
    /// `in_use / max` in percent.
    pub utilization_pct: f64,
    /// Acquire timeouts since start (cumulative).
    pub acquire_timeouts: u64,
    /// Connections opened since start (cumulative).
    pub opened: u64,
}

/// A pool's recent samples, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PoolHistory {
    /// The pool.
    pub pool: String,
    /// The sampling interval in milliseconds.
    pub interval_ms: u64,
    /// The samples, oldest first.
    pub samples: Vec<PoolSample>,
}

#[derive(Debug, Clone)]
pub(crate) struct Sampled {
    pub(crate) at: Instant,
    pub(crate) sample: PoolSample,
}

/// The bounded ring of samples per pool, and whether the sampling task runs.
#[derive(Debug, Default)]
pub(crate) struct Samples {
    rings: Mutex<BTreeMap<Arc<str>, VecDeque<Sampled>>>,
    started: std::sync::OnceLock<()>,
}

impl Samples {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Arc<str>, VecDeque<Sampled>>> {
        self.rings.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, stats: &[PoolStats], cap: usize) {
        let at = Instant::now();
        let at_unix_ms = crate::observability::clock::unix_ms();
        let mut rings = self.lock();
        for s in stats {
            let ring = rings.entry(Arc::from(s.name.as_str())).or_default();
            while ring.len() >= cap.max(1) {
                ring.pop_front();
            }
            ring.push_back(Sampled {
                at,
                sample: PoolSample {
                    at_unix_ms,
                    in_use: s.in_use,
                    idle: s.idle,
                    waiting: s.waiting,
                    max: s.max,
                    utilization_pct: s.utilization_pct,
                    acquire_timeouts: s.acquire_timeouts,
                    opened: s.opened,
                },
            });
        }
    }

    /// The newest sample of `pool` taken at least `age` ago (or the oldest there is).
    pub(crate) fn at_least(&self, pool: &str, age: Duration) -> Option<Sampled> {
        let rings = self.lock();
        let ring = rings.get(pool)?;
        let now = Instant::now();
        ring.iter()
            .rev()
            .find(|s| now.saturating_duration_since(s.at) >= age)
            .or_else(|| ring.front())
            .cloned()
    }

    pub(crate) fn history(&self, interval: Duration) -> Vec<PoolHistory> {
        self.lock()
            .iter()
            .map(|(pool, ring)| PoolHistory {
                pool: pool.to_string(),
                interval_ms: interval.as_millis() as u64,
                samples: ring.iter().map(|s| s.sample.clone()).collect(),
            })
            .collect()
    }
}

impl Runtime {
    /// Takes one sample of every pool into the runtime's ring (the sampling task does this
    /// every `monitor.sample_interval`; the ring keeps `monitor.samples` per pool).
    pub fn record_sample(&self) {
        let cap = self.config().settings.monitor.samples as usize;
        if let Some(t) = self.telemetry() {
            t.samples.push(&self.pool_stats(), cap);
        }
    }

    /// Each pool's recent samples, oldest first: what the status page charts.
    pub fn utilization_history(&self) -> Vec<PoolHistory> {
        self.telemetry().map_or_else(Vec::new, |t| {
            t.samples
                .history(self.config().settings.monitor.sample_interval)
        })
    }

    /// Starts the sampling task once per runtime (the health report, the monitor and the
    /// HTTP router need it). It holds the runtime weakly and stops when the runtime is dropped
    /// or shuts down.
    pub(crate) fn ensure_sampler(&self) {
        let Some(telemetry) = self.telemetry() else {
            return;
        };
        let samples = &telemetry.samples;
        if samples.started.get().is_some() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        if samples.started.set(()).is_err() {
            return;
        }
        self.record_sample();
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        let period = self.config().settings.monitor.sample_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(shared) = weak.upgrade() else { return };
                let rt = Runtime { shared };
                if rt.is_shutting_down() {
                    return;
                }
                rt.record_sample();
            }
        });
    }
}
