use super::names;
use crate::breaker::BreakerState;
use crate::runtime::Runtime;

/// A breaker state as the number [`names::BREAKER_STATE`] reports.
pub(crate) fn state_number(state: BreakerState) -> f64 {
    match state {
        BreakerState::Closed => 0.0,
        BreakerState::HalfOpen => 1.0,
        BreakerState::Open => 2.0,
        BreakerState::ForcedOpen => 3.0,
        BreakerState::Disabled => 4.0,
        BreakerState::MetricsOnly => 5.0,
    }
}

impl Runtime {
    /// Publishes the gauges and the counters the pools and policies keep themselves, through
    /// the `metrics` facade's current recorder: connection counts, maxima, minima, waiting
    /// callers and acquire timeouts of every pool; state, transitions and rejections of every
    /// breaker; retries by kind; limiter and bulkhead rejections.
    ///
    /// The monitor calls it every `monitor.pool_interval`, and the HTTP `/metrics` endpoint on
    /// every scrape; call it yourself before a push exporter reads. Histograms are recorded as
    /// calls happen and need no publishing. See `docs/OBSERVABILITY.md` for every name.
    pub fn publish_metrics(&self) {
        for s in self.pool_stats() {
            let pool = s.name.clone();
            metrics::gauge!(names::CONNECTION_COUNT, names::POOL => pool.clone(), names::STATE => "idle")
                .set(f64::from(s.idle));
            metrics::gauge!(names::CONNECTION_COUNT, names::POOL => pool.clone(), names::STATE => "used")
                .set(f64::from(s.in_use));
            metrics::gauge!(names::CONNECTION_MAX, names::POOL => pool.clone())
                .set(f64::from(s.max));
            metrics::gauge!(names::CONNECTION_IDLE_MIN, names::POOL => pool.clone())
                .set(f64::from(s.min));
            metrics::gauge!(names::CONNECTION_PENDING_REQUESTS, names::POOL => pool.clone())
                .set(f64::from(s.waiting));
            metrics::counter!(names::CONNECTION_TIMEOUTS, names::POOL => pool)
                .absolute(s.acquire_timeouts);
        }
        for pool in self.pools() {
            publish_hosts(pool);
        }
        for report in self.pools().filter_map(|p| p.replica_report()) {
            publish_replicas(&report);
        }
        for b in self.breakers() {
            let name = b.name().to_string();
            let m = b.metrics();
            metrics::gauge!(names::BREAKER_STATE, names::BREAKER => name.clone())
                .set(state_number(m.state));
            metrics::counter!(names::BREAKER_TRANSITIONS, names::BREAKER => name.clone())
                .absolute(m.transitions_total);
            metrics::counter!(names::BREAKER_REJECTIONS, names::BREAKER => name)
                .absolute(m.rejected_total);
        }
        for r in self.retry_policies() {
            let name = r.name().to_string();
            for (kind, n) in r.metrics().retries {
                metrics::counter!(names::RETRIES, names::POLICY => name.clone(), names::KIND => kind.as_str())
                    .absolute(n);
            }
        }
        for l in self.limiters() {
            metrics::counter!(names::LIMITER_REJECTIONS, names::LIMITER => l.name().to_string())
                .absolute(l.metrics().rejected);
        }
        for b in self.bulkheads() {
            let name = b.name().to_string();
            let m = b.metrics();
            metrics::counter!(names::BULKHEAD_REJECTIONS, names::BULKHEAD => name.clone(), names::REASON => "queue_full")
                .absolute(m.shed);
            metrics::counter!(names::BULKHEAD_REJECTIONS, names::BULKHEAD => name.clone(), names::REASON => "wait_timed_out")
                .absolute(m.timed_out);
            metrics::gauge!(names::BULKHEAD_RUNNING, names::BULKHEAD => name.clone())
                .set(f64::from(m.running));
            metrics::gauge!(names::BULKHEAD_QUEUED, names::BULKHEAD => name)
                .set(f64::from(m.queued));
        }
        for q in self.background().stats() {
            let pool = q.pool.clone();
            metrics::gauge!(names::BACKGROUND_DEPTH, names::POOL => pool.clone())
                .set(f64::from(q.depth));
            metrics::gauge!(names::BACKGROUND_OLDEST_AGE, names::POOL => pool.clone())
                .set(q.oldest_age_ms as f64 / 1000.0);
            metrics::counter!(names::BACKGROUND_WRITTEN, names::POOL => pool.clone())
                .absolute(q.written);
            for (reason, n) in [
                ("rejected", q.rejected),
                ("dropped_oldest", q.dropped_oldest),
                ("failed", q.failed),
                ("shutdown_deadline", q.unwritten_at_shutdown),
            ] {
                metrics::counter!(names::BACKGROUND_DROPPED, names::POOL => pool.clone(), names::REASON => reason)
                    .absolute(n);
            }
        }
        let cache = self.cache().stats();
        metrics::gauge!(names::CACHE_ENTRIES).set(cache.entries as f64);
        for o in cache.ops {
            metrics::counter!(names::CACHE_HITS, names::OP => o.op).absolute(o.hits);
            metrics::counter!(names::CACHE_MISSES, names::OP => o.op).absolute(o.misses);
            if let Some(ratio) = o.hit_ratio {
                metrics::gauge!(names::CACHE_HIT_RATIO, names::OP => o.op).set(ratio);
            }
        }
    }
}

/// The per-host figures of a multi-host pool.
fn publish_hosts(pool: &crate::Pool) {
    let (Some(hosts), Some(failovers)) = (pool.hosts(), pool.failovers()) else {
        return;
    };
    let name = pool.name().to_owned();
    metrics::counter!(names::POOL_FAILOVERS, names::POOL => name.clone()).absolute(failovers);
    for h in hosts {
        let labels = [
            (names::POOL, name.clone()),
            (names::SERVER_ADDRESS, h.address.clone()),
            (names::SERVER_PORT, h.port.to_string()),
        ];
        let flag = |yes: bool| if yes { 1.0 } else { 0.0 };
        metrics::gauge!(names::HOST_CURRENT, &labels).set(flag(h.current));
        let primary = h.role == crate::hosts::HostRole::Primary;
        metrics::gauge!(names::HOST_PRIMARY, &labels).set(flag(primary));
        metrics::gauge!(names::HOST_DOWN, &labels).set(flag(h.down));
        metrics::gauge!(names::HOST_BREAKER, &labels).set(state_number(h.breaker));
        let mut ok = labels.to_vec();
        ok.push((names::OUTCOME, "ok".to_owned()));
        metrics::counter!(names::HOST_CHECKS, &ok)
            .absolute(h.checks.saturating_sub(h.failed_checks));
        let mut failed = labels.to_vec();
        failed.push((names::OUTCOME, "unreachable".to_owned()));
        metrics::counter!(names::HOST_CHECKS, &failed).absolute(h.failed_checks);
        metrics::counter!(names::HOST_FAILED_CONNECTS, &labels).absolute(h.failed_connects);
    }
}

/// A pool's read replicas: lag, serving, reads and reroutes of each, reads on the primary,
/// and how asking Patroni for them went.
fn publish_replicas(report: &crate::replica::ReplicaReport) {
    let pool = report.pool.clone();
    metrics::counter!(names::REPLICA_PRIMARY_READS, names::POOL => pool.clone())
        .absolute(report.primary_reads);
    for r in &report.replicas {
        let labels = [
            (names::POOL, pool.clone()),
            (names::SERVER_ADDRESS, r.address.clone()),
            (names::SERVER_PORT, r.port.to_string()),
        ];
        if let Some(ms) = r.lag_ms {
            metrics::gauge!(names::REPLICA_LAG, &labels).set(ms / 1000.0);
        }
        metrics::gauge!(names::REPLICA_SERVING, &labels).set(f64::from(u8::from(r.serving)));
        metrics::counter!(names::REPLICA_READS, &labels).absolute(r.reads);
        metrics::counter!(names::REPLICA_REROUTED, &labels).absolute(r.rerouted);
    }
    if let Some(d) = &report.discovery {
        for (outcome, count) in [("ok", d.answers), ("failed", d.failures)] {
            metrics::counter!(
                names::REPLICA_DISCOVERY,
                names::POOL => pool.clone(),
                names::OUTCOME => outcome
            )
            .absolute(count);
        }
    }
}
