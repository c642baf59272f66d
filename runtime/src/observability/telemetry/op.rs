use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
use tracing::Span;
use tracing::field::Empty;

use super::names;
use crate::classify::FailureKind;
use crate::error::Error;
use crate::histogram::{Histogram, Recorder};
use crate::observability::clock::unix_ms;
use crate::observer::OpObserver;

/// Outcome slots: `ok`, then every failure kind in [`FailureKind::ALL`] order.
const OUTCOMES: usize = 1 + FailureKind::ALL.len();

fn slot(failure: Option<FailureKind>) -> usize {
    match failure {
        None => 0,
        Some(kind) => FailureKind::ALL
            .iter()
            .position(|k| *k == kind)
            .map_or(OUTCOMES - 1, |i| i + 1),
    }
}

fn outcome_name(slot: usize) -> &'static str {
    match slot {
        0 => "ok",
        i => FailureKind::ALL[i - 1].as_str(),
    }
}

/// Where an op's pool connects: the span attributes OpenTelemetry asks for.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) pool: Arc<str>,
    pub(crate) namespace: String,
    pub(crate) address: String,
    pub(crate) port: u16,
}

impl Target {
    pub(crate) fn of(pool: &str, o: &PgConnectOptions) -> Self {
        Target {
            pool: Arc::from(pool),
            namespace: o.get_database().unwrap_or_default().to_owned(),
            address: o.get_host().to_owned(),
            port: o.get_port(),
        }
    }
}

/// One op's telemetry, shared by every call of that op on that pool: the duration histogram
/// handles (one per outcome, registered on first use), and counters the status page reads.
pub(crate) struct OpTelemetry {
    pub(crate) op: &'static str,
    pub(crate) target: Target,
    histograms: [OnceLock<metrics::Histogram>; OUTCOMES],
    counts: [AtomicU64; OUTCOMES],
    latency: Recorder,
    /// Milliseconds since the Unix epoch of the last failure, and its outcome slot.
    last_failure: AtomicU64,
}

impl std::fmt::Debug for OpTelemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpTelemetry")
            .field("op", &self.op)
            .field("pool", &self.target.pool)
            .finish_non_exhaustive()
    }
}

impl OpTelemetry {
    pub(crate) fn new(op: &'static str, pool: &str, connect: &PgConnectOptions) -> Self {
        OpTelemetry {
            op,
            target: Target::of(pool, connect),
            histograms: std::array::from_fn(|_| OnceLock::new()),
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            latency: Recorder::default(),
            last_failure: AtomicU64::new(0),
        }
    }

    fn histogram(&self, slot: usize) -> &metrics::Histogram {
        self.histograms[slot].get_or_init(|| {
            metrics::histogram!(
                names::OPERATION_DURATION,
                names::OP => self.op,
                names::POOL => self.target.pool.to_string(),
                names::OUTCOME => outcome_name(slot),
            )
        })
    }

    pub(crate) fn stats(&self) -> OpStats {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.load(Relaxed)).collect();
        let calls = counts.iter().sum::<u64>();
        let ok = counts[0];
        let failures = counts
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (outcome_name(i).to_owned(), *n))
            .collect();
        let last = self.last_failure.load(Relaxed);
        OpStats {
            op: self.op.to_owned(),
            pool: self.target.pool.to_string(),
            calls,
            ok,
            failed: calls - ok,
            failures,
            last_failure: (last != 0).then(|| LastFailure {
                outcome: outcome_name((last & 0xff) as usize).to_owned(),
                at_unix_ms: last >> 8,
            }),
            latency: self.latency.snapshot(),
        }
    }
}

impl OpObserver for OpTelemetry {
    /// Whether anyone listens for the op's span (a subscriber interested in it).
    #[inline]
    fn span_wanted(&self) -> bool {
        tracing::span_enabled!(target: "sqlx_resilience::op", tracing::Level::INFO)
    }

    /// Counts a call turned away before it started (an open breaker), when nobody listens for
    /// its span: its outcome and a zero duration, with no span and no clock of its own.
    fn turned_away(&self, error: &Error) {
        let slot = slot(Some(error.kind()));
        self.counts[slot].fetch_add(1, Relaxed);
        self.latency.record(Duration::ZERO);
        self.histogram(slot).record(0.0);
        self.last_failure
            .store((unix_ms() << 8) | slot as u64, Relaxed);
    }

    /// The op's span.
    #[inline]
    fn call_started(&self) -> Span {
        let t = &self.target;
        tracing::info_span!(
            target: "sqlx_resilience::op",
            "db.op",
            otel.name = self.op,
            otel.kind = "client",
            db.system.name = "postgresql",
            db.operation.name = self.op,
            db.namespace = t.namespace.as_str(),
            server.address = t.address.as_str(),
            server.port = t.port,
            db.client.connection.pool.name = &*t.pool,
            attempts = Empty,
            outcome = Empty,
            error.type = Empty,
            db.response.status_code = Empty,
        )
    }

    /// One event inside the op's span, with the failure's kind and SQLSTATE (never the
    /// statement or its parameters).
    fn attempt_failed(
        &self,
        attempt: u32,
        kind: FailureKind,
        retryable: bool,
        error: Option<&Error>,
    ) {
        let op = self.op;
        // Field values and the message are only evaluated when the event is enabled.
        let message = Shown(error);
        match kind {
            FailureKind::Rejected | FailureKind::BreakerOpen => tracing::debug!(
                target: "sqlx_resilience::op",
                op,
                attempt,
                error.type = kind.as_str(),
                "call rejected: {message}"
            ),
            _ => tracing::debug!(
                target: "sqlx_resilience::op",
                op,
                attempt,
                error.type = kind.as_str(),
                db.response.status_code = error.and_then(Error::sqlstate).as_deref(),
                retryable,
                "attempt failed: {message}"
            ),
        }
    }

    /// Records the call's outcome in the counters, the histograms and the span.
    #[inline]
    fn call_finished(
        &self,
        span: &Span,
        elapsed: Duration,
        attempts: u32,
        failure: Option<Option<&Error>>,
    ) {
        let kind = failure.map(|e| e.map_or(FailureKind::Application, Error::kind));
        let slot = slot(kind);
        self.counts[slot].fetch_add(1, Relaxed);
        self.latency.record(elapsed);
        self.histogram(slot).record(elapsed.as_secs_f64());
        if slot != 0 {
            self.last_failure
                .store((unix_ms() << 8) | slot as u64, Relaxed);
        }
        if !span.is_disabled() {
            if attempts > 0 {
                span.record("attempts", attempts);
            }
            span.record("outcome", outcome_name(slot));
            if let Some(kind) = kind {
                span.record("error.type", kind.as_str());
            }
            if let Some(code) = failure.flatten().and_then(Error::sqlstate) {
                span.record("db.response.status_code", code.as_str());
            }
        }
    }
}

/// An error's message, or nothing for an application error that is not ours.
struct Shown<'a>(Option<&'a Error>);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(e) => std::fmt::Display::fmt(e, f),
            None => f.write_str("the body's own error"),
        }
    }
}

/// The figures of one op since the runtime started: what the status page shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct OpStats {
    /// The op's name.
    pub op: String,
    /// The pool it runs on.
    pub pool: String,
    /// Calls finished.
    pub calls: u64,
    /// Calls that succeeded.
    pub ok: u64,
    /// Calls that failed.
    pub failed: u64,
    /// Failed calls by outcome ([`FailureKind`] name), kinds with none left out.
    pub failures: Vec<(String, u64)>,
    /// The most recent failure.
    pub last_failure: Option<LastFailure>,
    /// Call durations (whole calls: attempts, waits and retry delays).
    pub latency: Histogram,
}

impl OpStats {
    /// Failed calls in percent of all calls (0 before any call).
    pub fn error_pct(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.failed as f64 * 100.0 / self.calls as f64
        }
    }
}

/// When an op last failed, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LastFailure {
    /// The outcome ([`FailureKind`] name).
    pub outcome: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}
