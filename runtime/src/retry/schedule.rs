use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use rand::RngExt;
use rand::rngs::SmallRng;

use super::config::Jitter;

/// One failure kind's schedule: how many attempts and which delays.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Plan {
    pub(super) attempts: u32,
    pub(super) base: Duration,
    pub(super) factor: f64,
    pub(super) max_delay: Duration,
}

impl Plan {
    /// The un-jittered delays, from backon's exponential backoff. backon computes in `f32`,
    /// which leaves sub-microsecond noise (50 ms × 2 comes out as 100.000001 ms): delays are
    /// rounded to the microsecond.
    pub(super) fn backoff(&self) -> Schedule {
        let backoff = ExponentialBuilder::new()
            .with_min_delay(self.base)
            .with_factor(self.factor as f32)
            .with_max_delay(self.max_delay)
            .without_max_times()
            .build();
        Schedule {
            backoff,
            max_delay: self.max_delay,
        }
    }
}

/// The delays of one failure kind within one call.
#[derive(Debug)]
pub(super) struct Schedule {
    backoff: ExponentialBackoff,
    max_delay: Duration,
}

impl Schedule {
    pub(super) fn next_delay(&mut self) -> Duration {
        let d = self.backoff.next().unwrap_or(self.max_delay);
        let micros = (d.as_nanos() + 500) / 1000;
        Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX)).min(self.max_delay)
    }
}

/// Applies jitter to a computed delay. backon's own jitter adds a random amount in
/// `[0, delay)` on top of the delay (so delays land in `[delay, 2 × delay)`), which is not
/// full jitter: we take backon's un-jittered delays and randomise them here.
pub(super) fn jitter(delay: Duration, jitter: Jitter, rng: Option<&mut SmallRng>) -> Duration {
    let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
    let (floor, spread) = match jitter {
        Jitter::None => return delay,
        Jitter::Full => (0, nanos),
        Jitter::Equal => (nanos / 2, nanos - nanos / 2),
    };
    let random = match rng {
        Some(rng) => rng.random_range(0..=spread),
        None => rand::rng().random_range(0..=spread),
    };
    Duration::from_nanos(floor + random)
}
