use std::fmt;
use std::time::Duration;

use super::circuit::CircuitBreaker;
use super::state::{BreakerState, Word};

/// A breaker refused a call; the op runner turns this into `Error::BreakerOpen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerRejected {
    /// The state that rejected the call: open, forced open, or half-open with every probe
    /// slot taken.
    pub state: BreakerState,
    /// When the breaker will let a probe through, when known (open state only).
    pub retry_after: Option<Duration>,
}

impl fmt::Display for BreakerRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "circuit breaker {}", self.state)?;
        if let Some(d) = self.retry_after {
            write!(f, " (retry after {d:?})")?;
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
    Failure(Duration),
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
        self.finish(Outcome::Failure(elapsed), Some(now));
    }

    /// The call failed after `elapsed` in a way that says the database is unhealthy.
    pub fn failure(mut self, elapsed: Duration) {
        self.finish(Outcome::Failure(elapsed), None);
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
