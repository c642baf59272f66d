//! What the core reports as it runs, and to whom.
//!
//! The runner (`crate::op`) and the pools (`crate::pool`) report what happens to a call and to
//! a connection through these traits; telemetry, the monitor, the health report, the
//! PostgreSQL statistics and the HTTP endpoints (`crate::observability`) implement them and
//! read the core's own counters. The core knows nothing else about them: a runtime gets its
//! [`Observer`] from its builder, asks it once per op and once per pool, and calls the
//! answers on the hot path. Breakers, retry policies, limiters, bulkheads and the server
//! watches keep counters of their own, which the observability modules read.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use tracing::Span;

use crate::classify::FailureKind;
use crate::error::Error;

/// Receives a runtime's events. One per runtime, made when the runtime is built.
pub(crate) trait Observer: Send + Sync + Debug + 'static {
    /// The observer of op `op` on the pool named `pool`, which connects with `connect`; asked
    /// once when the op is resolved.
    fn op(&self, op: &'static str, pool: &str, connect: &PgConnectOptions) -> Arc<dyn OpObserver>;

    /// The observer of the pool named `pool`, asked once when the pool is built.
    fn pool(&self, pool: &str) -> Arc<dyn PoolObserver>;

    /// The observer itself, for the modules that implement it to find their state again.
    fn as_any(&self) -> &dyn Any;
}

/// Receives the events of one op's calls.
pub(crate) trait OpObserver: Send + Sync + Debug {
    /// Whether anyone wants the call's span; when nobody does, a call an open breaker turns
    /// away is reported with [`turned_away`](Self::turned_away) alone.
    fn span_wanted(&self) -> bool;

    /// A call was turned away before it started (an open breaker), with no span.
    fn turned_away(&self, error: &Error);

    /// A call starts: the span the runner runs it in (disabled when nobody listens).
    fn call_started(&self) -> Span;

    /// Attempt `attempt` of the call failed with `kind`; `retryable` when it may run again.
    /// `error` is `None` for the body's own error, which is not one of ours.
    fn attempt_failed(
        &self,
        attempt: u32,
        kind: FailureKind,
        retryable: bool,
        error: Option<&Error>,
    );

    /// The call ended after `attempts` attempts (0 when it never started) and `elapsed`:
    /// `failure` is `None` on success, `Some(None)` for the body's own error.
    fn call_finished(
        &self,
        span: &Span,
        elapsed: Duration,
        attempts: u32,
        failure: Option<Option<&Error>>,
    );
}

/// Receives the events of one pool's connections.
pub(crate) trait PoolObserver: Send + Sync + Debug {
    /// A caller got a connection after `waited`; `reused` is false when it was opened for it.
    fn acquired(&self, waited: Duration, reused: bool);

    /// A caller gave a connection back after holding it for `held`.
    fn released(&self, held: Duration);
}

/// Observes nothing: the observer of a pool built on its own, and of a runtime built without
/// one.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Unobserved;

impl Observer for Unobserved {
    fn op(&self, _: &'static str, _: &str, _: &PgConnectOptions) -> Arc<dyn OpObserver> {
        Arc::new(Unobserved)
    }

    fn pool(&self, _: &str) -> Arc<dyn PoolObserver> {
        Arc::new(Unobserved)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl OpObserver for Unobserved {
    fn span_wanted(&self) -> bool {
        false
    }

    fn turned_away(&self, _: &Error) {}

    fn call_started(&self) -> Span {
        Span::none()
    }

    fn attempt_failed(&self, _: u32, _: FailureKind, _: bool, _: Option<&Error>) {}

    fn call_finished(&self, _: &Span, _: Duration, _: u32, _: Option<Option<&Error>>) {}
}

impl PoolObserver for Unobserved {
    fn acquired(&self, _: Duration, _: bool) {}

    fn released(&self, _: Duration) {}
}

/// Makes a runtime's observer when the runtime is built.
pub(crate) type MakeObserver = fn() -> Arc<dyn Observer>;
