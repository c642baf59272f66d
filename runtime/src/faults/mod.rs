//! Injected faults: PostgreSQL's own errors, a dropped session or added latency, in place of
//! an op's body, so an application can exercise its handling of them (Polly's Simmy does the
//! same for any call; here the errors are the server's).
//!
//! An injected SQLSTATE is raised by the server itself (`RAISE ... USING ERRCODE`) on the op's
//! connection, and a dropped connection is the server ending the op's session
//! (`pg_terminate_backend`), so what the runner sees is a real database error on a real
//! connection: classification, retry, breaker accounting and eviction take the path they take
//! for the real fault. The fault fires once the op holds its connection and its permits, as
//! if the body's first statement failed; like a real failure in the body, a non-idempotent
//! write hit by a lost connection is reported as an unknown outcome.
//!
//! Off unless `faults.enabled`; refused at start-up in the profiles `faults.forbidden_in`
//! names (default `production`).

mod config;
mod inject;
mod sqlstate;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::RngExt;

pub use self::config::FaultsConfig;
pub(crate) use self::inject::{Injected, apply};
use self::sqlstate::check_sqlstate;
use crate::error::{Error, Result};

/// What a fault does to the call it hits.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Effect {
    /// The server raises this SQLSTATE in place of the body.
    SqlState(String),
    /// The server ends the session in place of the body (57P01, then a closed connection).
    DropConnection,
    /// Nothing but the added latency: the body runs after it.
    LatencyOnly,
}

/// A fault to inject: what it does, which calls it hits, and how often.
///
/// ```
/// use std::time::Duration;
/// use sqlx_resilience_runtime::faults::Fault;
///
/// let fault = Fault::sqlstate("40001").op("orders::place").probability(0.2);
/// let slow = Fault::latency(Duration::from_millis(300)).pool("reports").next(5);
/// # let _ = (fault, slow);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    effect: Effect,
    latency: Option<Duration>,
    op: Option<String>,
    pool: Option<String>,
    probability: f64,
    next: Option<u32>,
}

impl Fault {
    /// The server raises `code` (such as `40001`, `40P01`, `53300`, `57P01`, `08006`,
    /// `25006`) in place of the op's body. The code is checked when the fault is armed.
    pub fn sqlstate(code: &str) -> Fault {
        Fault::of(Effect::SqlState(code.to_ascii_uppercase()))
    }

    /// The server ends the op's session in place of its body.
    pub fn drop_connection() -> Fault {
        Fault::of(Effect::DropConnection)
    }

    /// `delay` before the op's body, which then runs.
    pub fn latency(delay: Duration) -> Fault {
        Fault::of(Effect::LatencyOnly).with_latency(delay)
    }

    fn of(effect: Effect) -> Fault {
        Fault {
            effect,
            latency: None,
            op: None,
            pool: None,
            probability: 1.0,
            next: None,
        }
    }

    /// Adds `delay` before the fault's error (or before the body).
    pub fn with_latency(mut self, delay: Duration) -> Fault {
        self.latency = Some(delay);
        self
    }

    /// Hits only the op named `name` (its `#[db_op]` path or the name given to `Runtime::op`).
    pub fn op(mut self, name: &str) -> Fault {
        self.op = Some(name.to_owned());
        self
    }

    /// Hits only ops on the pool `name`.
    pub fn pool(mut self, name: &str) -> Fault {
        self.pool = Some(name.to_owned());
        self
    }

    /// Hits this share of matching calls (0 to 1; default 1).
    pub fn probability(mut self, share: f64) -> Fault {
        self.probability = share;
        self
    }

    /// Hits only the next `calls` matching calls.
    pub fn next(mut self, calls: u32) -> Fault {
        self.next = Some(calls);
        self
    }

    /// What it does.
    pub fn effect(&self) -> &Effect {
        &self.effect
    }

    /// The op it hits (`None`: every op).
    pub fn target_op(&self) -> Option<&str> {
        self.op.as_deref()
    }

    /// The pool whose ops it hits (`None`: every pool).
    pub fn target_pool(&self) -> Option<&str> {
        self.pool.as_deref()
    }

    /// The fault `[faults]` arms at start-up, if its keys name one.
    pub(crate) fn from_config(config: &FaultsConfig) -> Option<Fault> {
        if !config.arms_a_fault() {
            return None;
        }
        let effect = match (&config.sqlstate, config.drop_connection) {
            (Some(code), _) => Effect::SqlState(code.to_ascii_uppercase()),
            (None, true) => Effect::DropConnection,
            (None, false) => Effect::LatencyOnly,
        };
        Some(Fault {
            effect,
            latency: config.latency,
            op: config.op.clone(),
            pool: config.pool.clone(),
            probability: config.probability_pct / 100.0,
            next: config.next,
        })
    }

    /// A short name for metrics and reports: the SQLSTATE, `drop_connection` or `latency`.
    pub fn label(&self) -> &str {
        match &self.effect {
            Effect::SqlState(code) => code,
            Effect::DropConnection => "drop_connection",
            Effect::LatencyOnly => "latency",
        }
    }

    fn check(&self) -> std::result::Result<(), String> {
        if let Effect::SqlState(code) = &self.effect {
            check_sqlstate(code)?;
        }
        if !(self.probability > 0.0 && self.probability <= 1.0) {
            return Err(format!(
                "a probability above 0 and at most 1, not {}",
                self.probability
            ));
        }
        if self.next == Some(0) {
            return Err("`next` of at least 1 call".to_owned());
        }
        if self.effect == Effect::LatencyOnly && self.latency.is_none_or(|d| d.is_zero()) {
            return Err("a latency above zero".to_owned());
        }
        Ok(())
    }

    fn matches(&self, op: &str, pool: &str) -> bool {
        self.op.as_deref().is_none_or(|o| o == op) && self.pool.as_deref().is_none_or(|p| p == pool)
    }
}

/// One armed fault and what it did.
#[derive(Debug)]
struct Armed {
    id: u64,
    fault: Fault,
    /// Calls left for a fault armed for the next N.
    left: Option<AtomicU32>,
    hits: AtomicU64,
}

/// A fault as armed, with its hits so far (for the status page and tests).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ArmedFault {
    /// Its id, for [`Faults::disarm`].
    pub id: u64,
    /// The fault.
    pub fault: Fault,
    /// Calls it hit.
    pub hits: u64,
    /// Calls it may still hit, for one armed for the next N.
    pub left: Option<u32>,
}

/// The runtime's injected faults ([`Runtime::faults`](crate::Runtime::faults)).
#[derive(Debug, Default)]
pub struct Faults {
    armed: RwLock<Vec<Arc<Armed>>>,
    next_id: AtomicU64,
    injected: AtomicU64,
}

impl Faults {
    /// The faults of the configuration's `[faults]` table, or `None` when they are off.
    pub(crate) fn from_config(config: &FaultsConfig) -> Result<Option<Arc<Faults>>> {
        if !config.enabled {
            return Ok(None);
        }
        let faults = Arc::new(Faults::default());
        if let Some(fault) = Fault::from_config(config) {
            faults.arm(fault)?;
        }
        Ok(Some(faults))
    }

    /// Arms `fault`; returns its id. A malformed fault (a SQLSTATE that is not an error, a
    /// probability outside 0..=1) is [`Error::Config`].
    pub fn arm(&self, fault: Fault) -> Result<u64> {
        fault.check().map_err(|expected| {
            Error::config("faults", format!("{fault:?}"), expected, "Faults::arm")
        })?;
        let id = self.next_id.fetch_add(1, Relaxed) + 1;
        let armed = Arc::new(Armed {
            id,
            left: fault.next.map(AtomicU32::new),
            fault,
            hits: AtomicU64::new(0),
        });
        self.write().push(armed);
        Ok(id)
    }

    /// Disarms the fault `id`; whether it was armed.
    pub fn disarm(&self, id: u64) -> bool {
        let mut armed = self.write();
        let before = armed.len();
        armed.retain(|a| a.id != id);
        armed.len() != before
    }

    /// Disarms every fault.
    pub fn clear(&self) {
        self.write().clear();
    }

    /// The armed faults and their hits.
    pub fn armed(&self) -> Vec<ArmedFault> {
        self.read()
            .iter()
            .map(|a| ArmedFault {
                id: a.id,
                fault: a.fault.clone(),
                hits: a.hits.load(Relaxed),
                left: a.left.as_ref().map(|l| l.load(Relaxed)),
            })
            .collect()
    }

    /// Calls hit since the runtime started, over every fault armed.
    pub fn injected(&self) -> u64 {
        self.injected.load(Relaxed)
    }

    /// The fault that hits this call of `op` on `pool`, if one does: the first armed fault
    /// that matches, passes its probability and has calls left.
    pub(crate) fn pick(&self, op: &str, pool: &str) -> Option<Fault> {
        let armed = self.read();
        for a in armed.iter().filter(|a| a.fault.matches(op, pool)) {
            if a.fault.probability < 1.0 && rand::rng().random::<f64>() >= a.fault.probability {
                continue;
            }
            if let Some(left) = &a.left
                && left
                    .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
                    .is_err()
            {
                continue;
            }
            a.hits.fetch_add(1, Relaxed);
            self.injected.fetch_add(1, Relaxed);
            metrics::counter!(
                "db_faults_injected_total",
                "op" => op.to_owned(),
                "pool" => pool.to_owned(),
                "fault" => a.fault.label().to_owned(),
            )
            .increment(1);
            tracing::info!(op, pool, fault = a.fault.label(), "fault injected");
            return Some(a.fault.clone());
        }
        None
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Armed>>> {
        self.armed.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<Armed>>> {
        self.armed.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_n_calls_are_hit_and_no_more() {
        let faults = Faults::default();
        faults
            .arm(Fault::sqlstate("40001").op("a").next(2))
            .unwrap();
        assert!(faults.pick("b", "main").is_none(), "another op");
        assert!(faults.pick("a", "main").is_some());
        assert!(faults.pick("a", "main").is_some());
        assert!(faults.pick("a", "main").is_none(), "spent");
        assert_eq!(faults.injected(), 2);
        assert_eq!(faults.armed()[0].left, Some(0));
    }

    #[test]
    fn a_probability_hits_about_that_share() {
        let faults = Faults::default();
        let id = faults
            .arm(Fault::drop_connection().pool("p").probability(0.25))
            .unwrap();
        let hits = (0..4000)
            .filter(|_| faults.pick("x", "p").is_some())
            .count();
        assert!((700..1300).contains(&hits), "{hits} of 4000 at 25%");
        assert!(faults.disarm(id));
        assert!(faults.pick("x", "p").is_none());
    }

    #[test]
    fn malformed_faults_are_refused() {
        let faults = Faults::default();
        assert!(faults.arm(Fault::sqlstate("4000")).is_err());
        assert!(
            faults
                .arm(Fault::sqlstate("40001").probability(0.0))
                .is_err()
        );
        assert!(faults.arm(Fault::latency(Duration::ZERO)).is_err());
        assert!(faults.armed().is_empty());
    }
}
