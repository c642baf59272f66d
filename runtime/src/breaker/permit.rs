use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use super::outcome::{Kind, Outcome, Recovery};

/// What a permit needs of the breaker that issued it: where to record the call's outcome.
/// `CircuitBreaker` implements it, so a permit names nothing else of the breaker. `Sync` keeps
/// a permit `Send` and `Sync`, as a `&CircuitBreaker` is. (Not `RefUnwindSafe`: the breaker's
/// event channel is not, when tokio is built with `parking_lot`.)
pub(super) trait Records: Sync {
    /// Records what became of a call issued as `kind`; `at` is a clock reading the caller
    /// already has.
    fn record(&self, kind: Kind, outcome: Outcome, at: Option<Instant>);

    /// The breaker's name, for `Debug`.
    fn name(&self) -> &str;
}

/// Permission to run one call, from
/// [`CircuitBreaker::try_acquire`](super::CircuitBreaker::try_acquire). Record what became of
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
    pub(super) breaker: &'a dyn Records,
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
    pub fn success_at(mut self, elapsed: Duration, now: Instant) {
        self.finish(Outcome::Success(elapsed), Some(now));
    }

    /// Records a failure that ended at `now` (see [`BreakerPermit::success_at`]).
    pub fn failure_at(mut self, elapsed: Duration, now: Instant) {
        self.finish(Outcome::Failure(elapsed, Recovery::Timer), Some(now));
    }

    /// The call failed after `elapsed` in a way that says the database is unhealthy.
    pub fn failure(mut self, elapsed: Duration) {
        self.finish(Outcome::Failure(elapsed, Recovery::Timer), None);
    }

    /// The call failed because the server could not be reached or was going away (a lost
    /// connection, a refused connect, 57P01): if this failure opens the breaker, it recovers
    /// by [`Recovery::ServerProbe`], half-open as soon as
    /// [`CircuitBreaker::server_answered`](super::CircuitBreaker::server_answered) is called.
    pub fn unreachable(mut self, elapsed: Duration) {
        self.finish(Outcome::Failure(elapsed, Recovery::ServerProbe), None);
    }

    /// Records an unreachable server at `now` (see [`BreakerPermit::unreachable`]).
    pub fn unreachable_at(mut self, elapsed: Duration, now: Instant) {
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

    fn finish(&mut self, outcome: Outcome, now: Option<Instant>) {
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
