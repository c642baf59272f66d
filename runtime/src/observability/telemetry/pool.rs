use std::time::Duration;

use metrics::Histogram;

use super::describe::describe;
use super::names;
use crate::observer::PoolObserver;

/// A pool's hot-path histograms, registered once when the pool is built (with the recorder
/// installed then) so recording is a handle call, not a registry lookup.
pub(crate) struct PoolTelemetry {
    wait: Histogram,
    use_time: Histogram,
    create: Histogram,
}

impl std::fmt::Debug for PoolTelemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolTelemetry").finish_non_exhaustive()
    }
}

impl PoolTelemetry {
    pub(crate) fn new(pool: &str) -> Self {
        describe();
        let pool = pool.to_owned();
        PoolTelemetry {
            wait: metrics::histogram!(names::CONNECTION_WAIT_TIME, names::POOL => pool.clone()),
            use_time: metrics::histogram!(names::CONNECTION_USE_TIME, names::POOL => pool.clone()),
            create: metrics::histogram!(names::CONNECTION_CREATE_TIME, names::POOL => pool),
        }
    }
}

impl PoolObserver for PoolTelemetry {
    #[inline]
    fn acquired(&self, waited: Duration, reused: bool) {
        let secs = waited.as_secs_f64();
        self.wait.record(secs);
        if !reused {
            self.create.record(secs);
        }
    }

    #[inline]
    fn released(&self, held: Duration) {
        self.use_time.record(held.as_secs_f64());
    }
}
