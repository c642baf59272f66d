use std::cell::Cell;

use governor::clock::Clock;
use governor::nanos::Nanos;
use tokio::time::Instant;

thread_local! {
    /// A reading of the clock the caller already has, lent to the checks of one call on this
    /// thread (see [`at`]); `None` outside such a check.
    static LENT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// governor's clock over `tokio::time::Instant`, so that tokio's paused clock (tests, drills)
/// drives the limiter exactly as it drives sleeps. Readings are nanoseconds since the clock
/// was made.
///
/// governor reads its clock itself and takes no instant from its caller; a check made through
/// [`at`] reads the caller's instant instead of the clock (a clock reading is the costliest
/// part of a permit check).
#[derive(Debug, Clone, Copy)]
pub(super) struct TokioClock {
    origin: Instant,
}

impl TokioClock {
    pub(super) fn new() -> Self {
        TokioClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        let now = LENT.with(Cell::get).unwrap_or_else(Instant::now);
        Nanos::from(now.saturating_duration_since(self.origin))
    }
}

/// Runs `check` with every reading of a [`TokioClock`] on this thread answering `now`. The
/// check is synchronous, so no other call's check can run on this thread in between.
pub(super) fn at<R>(now: Instant, check: impl FnOnce() -> R) -> R {
    /// Takes the reading back even if `check` panics.
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            LENT.with(|l| l.set(self.0));
        }
    }
    let _restore = Restore(LENT.with(|l| l.replace(Some(now))));
    check()
}
