//! The schemas, one per kind of settings.

mod breaker;
mod bulkhead;
mod limiter;
mod pool;
mod retry;
mod runtime;
mod units;

pub use self::breaker::{BREAKER, DEFAULT_FAILURE_RATE, DEFAULT_OPEN_FOR_MAX, DEFAULT_RATE_WINDOW};
pub use self::bulkhead::BULKHEAD;
pub use self::limiter::LIMITER;
pub use self::pool::POOL;
pub use self::retry::{CONTENTION_ATTEMPTS, RETRY, RETRY_ON, RETRY_ON_KINDS};
pub use self::runtime::{BUDGET, FAULTS, MONITOR, RUNTIME};

use crate::Schema;

/// The named policy kinds, in the order `policies!` and the docs list them.
pub const KINDS: [&Schema; 5] = [&POOL, &BREAKER, &RETRY, &LIMITER, &BULKHEAD];
