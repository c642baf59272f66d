//! The schemas, one per kind of settings.

mod breaker;
mod bulkhead;
mod limiter;
mod pool;
mod retry;
mod runtime;

use std::time::Duration;

pub use self::breaker::{BREAKER, DEFAULT_FAILURE_RATE, DEFAULT_OPEN_FOR_MAX, DEFAULT_RATE_WINDOW};
pub use self::bulkhead::BULKHEAD;
pub use self::limiter::LIMITER;
pub use self::pool::POOL;
pub use self::retry::{CONTENTION_ATTEMPTS, RETRY, RETRY_ON, RETRY_ON_KINDS};
pub use self::runtime::{BUDGET, FAULTS, MONITOR, RUNTIME};

use crate::Schema;

/// The named policy kinds, in the order `policies!` and the docs list them.
pub const KINDS: [&Schema; 5] = [&POOL, &BREAKER, &RETRY, &LIMITER, &BULKHEAD];

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);
const MONTH: Duration = Duration::from_secs(30 * 24 * 3600);

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
