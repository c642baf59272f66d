use std::fmt;
use std::time::Duration;

use super::circuit::CircuitBreaker;
use super::state::{BreakerState, Word};

/// How an open breaker finds its way back to half-open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Recovery {
    /// It opened because the database could not be reached or was shutting down (lost
    /// connections, refused connects, class 08, 57P0x, a database closed to connections). The
    /// runtime probes the server and half-opens the breaker the moment the server answers;
    /// `open_for` is only the longest wait. Callers whose deadline leaves room wait for it.
    ServerProbe,
    /// It opened because of the ops' own failures (timeouts, statement timeouts, server
    /// errors, slow calls): a probe of the server cannot tell whether those are over, so the
    /// breaker half-opens after `open_for`.
    Timer,
}

impl Recovery {
    /// The stable name used in telemetry and the health report (`server_probe`, `timer`).
    pub fn as_str(self) -> &'static str {
        match self {
            Recovery::ServerProbe => "server_probe",
            Recovery::Timer => "timer",
        }
    }
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A breaker refused a call; the op runner turns this into `Error::BreakerOpen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerRejected {
    /// The state that rejected the call: open, forced open, or half-open with every probe
    /// slot taken.
    pub state: BreakerState,
    /// When the breaker will let a probe through at the latest, when known (open state only).
    /// With [`Recovery::ServerProbe`] it may be much sooner: as soon as the server answers.
    pub retry_after: Option<Duration>,
    /// How the breaker recovers, while it is open or half-open on its way back.
    pub recovery: Option<Recovery>,
}

impl fmt::Display for BreakerRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "circuit breaker {}", self.state)?;
        if let Some(d) = self.retry_after {
            write!(f, " (retry after {:?})", crate::error::rounded(d))?;
        }
        Ok(())
    }
}

/// How a permit's outcome is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Closed (or metrics-only closed): into the windows, if the state word is unchanged.
    Record(Word),
    /// A half-open probe issued under this word.
    Probe(Word),
    /// Nothing to record (disabled, or a call metrics-only mode let through while it would
    /// have rejected it).
    Unrecorded,
}

/// What became of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Success(Duration),
    /// A failure, and how the breaker recovers if this failure opens it.
    Failure(Duration, Recovery),
    Ignore,
}

/// Permission to run one call, from [`CircuitBreaker::try_acquire`]. Record what became of
/// the call with [`success`](Self::success), [`failure`](Self::failure) or
/// [`ignore`](Self::ignore); dropping the permit unrecorded counts as `ignore` (and frees a
/// half-open probe slot).
///
/// The caller decides what a failure is: only failures that say the database is unhealthy
/// ([`FailureKind::counts_for_breaker`](crate::FailureKind::counts_for_breaker): connection
/// lost, server shutdown or failure, failover, timeouts). Constraint violations, a missing
/// row, application errors and our own limiter or bulkhead rejections are recorded as
/// `ignore` (or as a success: the database answered).
#[must_use = "a dropped permit records nothing; call success, failure or ignore"]
pub struct BreakerPermit<'a> {
    pub(super) breaker: &'a CircuitBreaker,
    pub(super) kind: Kind,
    pub(super) done: bool,
}

impl BreakerPermit<'_> {
    /// The call succeeded after `elapsed` (a slow success still counts toward the slow-call
    /// rate).
    pub fn success(mut self, elapsed: Duration) {
        self.finish(Outcome::Success(elapsed), None);
    }

    /// Records a success that ended at `now`, a clock reading the caller already has (saves
    /// the breaker reading the clock again on the hot path).
    pub fn success_at(mut self, elapsed: Duration, now: tokio::time::Instant) {
        self.finish(Outcome::Success(elapsed), Some(now));
    }

    /// Records a failure that ended at `now` (see [`BreakerPermit::success_at`]).
    pub fn failure_at(mut self, elapsed: Duration, now: tokio::time::Instant) {
        self.finish(Outcome::Failure(elapsed, Recovery::Timer), Some(now));
    }

    /// The call failed after `elapsed` in a way that says the database is unhealthy.
    pub fn failure(mut self, elapsed: Duration) {
        self.finish(Outcome::Failure(elapsed, Recovery::Timer), None);
    }

    /// The call failed because the server could not be reached or was going away (a lost
    /// connection, a refused connect, 57P01): if this failure opens the breaker, it recovers
    /// by [`Recovery::ServerProbe`], half-open as soon as
    /// [`CircuitBreaker::server_answered`] is called.
    pub fn unreachable(mut self, elapsed: Duration) {
        self.finish(Outcome::Failure(elapsed, Recovery::ServerProbe), None);
    }

    /// Records an unreachable server at `now` (see [`BreakerPermit::unreachable`]).
    pub fn unreachable_at(mut self, elapsed: Duration, now: tokio::time::Instant) {
        self.finish(Outcome::Failure(elapsed, Recovery::ServerProbe), Some(now));
    }

    /// The call says nothing about the database's health: record nothing.
    pub fn ignore(mut self) {
        self.finish(Outcome::Ignore, None);
    }

    /// Is this a half-open probe (its outcome decides whether the breaker closes)?
    pub fn is_probe(&self) -> bool {
        matches!(self.kind, Kind::Probe(_))
    }

    fn finish(&mut self, outcome: Outcome, now: Option<tokio::time::Instant>) {
        if !std::mem::replace(&mut self.done, true) {
            self.breaker.record(self.kind, outcome, now);
        }
    }
}

impl Drop for BreakerPermit<'_> {
    fn drop(&mut self) {
        self.finish(Outcome::Ignore, None);
    }
}

impl fmt::Debug for BreakerPermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerPermit")
            .field("breaker", &self.breaker.name())
            .field("probe", &self.is_probe())
            .finish()
    }
}
