use governor::clock::Clock;
use governor::nanos::Nanos;
use tokio::time::Instant;

/// governor's clock over `tokio::time::Instant`, so that tokio's paused clock (tests, drills)
/// drives the limiter exactly as it drives sleeps. Readings are nanoseconds since the clock
/// was made.
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
        Nanos::from(self.origin.elapsed())
    }
}
