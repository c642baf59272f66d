//! Telemetry: one tracing span per op with OpenTelemetry's database attributes, events for
//! attempts, and metrics through the `metrics` facade under OpenTelemetry's database client
//! names ([`names`]).
//!
//! # What is recorded where
//!
//! - **On the op path**, per call: the span (free when no subscriber listens), one histogram
//!   record of [`names::OPERATION_DURATION`] labelled by op, pool and outcome, and a few
//!   relaxed atomic adds for the figures [`Runtime::op_stats`] reports. Histogram handles are
//!   registered once per op and outcome, so the recorder must be installed before the first
//!   call (in practice: before building the runtime).
//! - **On the pool path**: [`names::CONNECTION_WAIT_TIME`], [`names::CONNECTION_USE_TIME`]
//!   and [`names::CONNECTION_CREATE_TIME`] per acquire and release, with handles registered
//!   when the pool is built.
//! - **On publish** ([`Runtime::publish_metrics`]): gauges and the counters pools and
//!   policies already keep (timeouts, breaker transitions and rejections, retries by kind,
//!   limiter and bulkhead rejections), set as absolute values.
//!
//! Labels are bounded by construction: pool, breaker, policy, limiter and bulkhead names are
//! declared in code; op names are `&'static str`; outcomes and kinds are
//! [`FailureKind`](crate::FailureKind) names. No SQL text or parameter value is ever a label or
//! a span field.
//!
//! # The op span
//!
//! `db.op` at INFO level, target `sqlx_resilience::op`, with `otel.name`, `otel.kind =
//! "client"`, `db.system.name = "postgresql"`, `db.operation.name` (the op),
//! `db.namespace` (the database), `server.address`, `server.port`,
//! `db.client.connection.pool.name`; filled in when the call ends: `attempts`, `outcome`
//! (`ok` or the failure kind), `error.type` and `db.response.status_code` (the SQLSTATE).
//! Inside it: a DEBUG event per failed attempt (`error.type`, SQLSTATE, whether it may run
//! again), one per retry with its delay, breaker transitions, and the WARN slow-op event.

pub mod names;

mod describe;
mod op;
mod pool;
mod publish;
mod samples;

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sqlx::postgres::PgConnectOptions;

pub(crate) use self::op::OpTelemetry;
pub use self::op::{LastFailure, OpStats};
pub(crate) use self::pool::PoolTelemetry;
pub(crate) use self::publish::state_number;
pub(crate) use self::samples::Samples;
pub use self::samples::{PoolHistory, PoolSample};
use crate::observability::alerts::AlertLog;
use crate::observer::{Observer, OpObserver, PoolObserver};
use crate::runtime::Runtime;

/// An op's name and its pool's.
type OpKey = (&'static str, Arc<str>);

/// A runtime's telemetry state, and its observer: the ops seen so far, the ring of pool
/// samples and the alert history.
#[derive(Debug, Default)]
pub(crate) struct Telemetry {
    ops: RwLock<HashMap<OpKey, Arc<OpTelemetry>>>,
    pub(crate) samples: Samples,
    pub(crate) alerts: AlertLog,
}

impl Observer for Telemetry {
    fn op(&self, op: &'static str, pool: &str, connect: &PgConnectOptions) -> Arc<dyn OpObserver> {
        self.op_telemetry(op, pool, connect)
    }

    fn pool(&self, pool: &str) -> Arc<dyn PoolObserver> {
        Arc::new(PoolTelemetry::new(pool))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Telemetry {
    /// A new runtime's observer.
    pub(crate) fn observer() -> Arc<dyn Observer> {
        Arc::new(Telemetry::default())
    }

    /// The telemetry of op `op` on `pool`, created on first use.
    pub(crate) fn op_telemetry(
        &self,
        op: &'static str,
        pool: &str,
        connect: &PgConnectOptions,
    ) -> Arc<OpTelemetry> {
        let key = (op, Arc::<str>::from(pool));
        if let Some(t) = self.ops.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return t.clone();
        }
        self.ops
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_insert_with(|| Arc::new(OpTelemetry::new(op, pool, connect)))
            .clone()
    }

    pub(crate) fn ops(&self) -> Vec<Arc<OpTelemetry>> {
        let mut ops: Vec<Arc<OpTelemetry>> = self
            .ops
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        ops.sort_by(|a, b| (a.op, &a.target.pool).cmp(&(b.op, &b.target.pool)));
        ops
    }
}

impl Runtime {
    /// The runtime's telemetry (every runtime built with [`Runtime::builder`] has one).
    pub(crate) fn telemetry(&self) -> Option<&Telemetry> {
        self.observer().as_any().downcast_ref()
    }

    /// The figures of every op that has run, sorted by name: calls, failures by kind,
    /// durations.
    pub fn op_stats(&self) -> Vec<OpStats> {
        self.telemetry()
            .map_or_else(Vec::new, |t| t.ops().iter().map(|o| o.stats()).collect())
    }
}

/// The op-path hooks in isolation, for `benches/observe.rs`. Not part of the API.
#[doc(hidden)]
pub mod bench {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::{OpTelemetry, PoolTelemetry};
    use crate::observer::{OpObserver, PoolObserver};
    use crate::pool::Pool;

    /// One op's and one pool's telemetry, as the runner and the pool hold them (behind the
    /// observer interface).
    #[derive(Debug)]
    pub struct Hooks {
        op: Arc<dyn OpObserver>,
        pool: Arc<dyn PoolObserver>,
    }

    impl Hooks {
        /// Hooks for op `bench::op` on `pool` (registered with the current recorder).
        pub fn new(pool: &Pool) -> Self {
            Hooks {
                op: Arc::new(OpTelemetry::new(
                    "bench::op",
                    pool.name(),
                    &pool.sqlx().connect_options(),
                )),
                pool: Arc::new(PoolTelemetry::new(pool.name())),
            }
        }

        /// What one successful call adds: the span, the clock, the duration histogram and
        /// counters, the acquire and release histograms.
        #[inline]
        pub fn call(&self) {
            let span = self.op.call_started();
            let started = Instant::now();
            self.pool.acquired(Duration::from_micros(20), true);
            self.pool.released(Duration::from_micros(80));
            self.op.call_finished(&span, started.elapsed(), 1, None);
        }
    }
}
