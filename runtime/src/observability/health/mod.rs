//! The health report, readiness and liveness.
//!
//! [`Runtime::health`](crate::Runtime::health) probes every database server the pools use (one round trip, within
//! `monitor.health_timeout`, so it answers in bounded time even when the server hangs) and
//! combines the answer with every pool's statistics and every breaker's state into a
//! [`HealthReport`]: a status, a 0-100 score with the penalties that explain it, and
//! recommendations in plain words. The formula is in `docs/OBSERVABILITY.md`:
//!
//! | condition | penalty |
//! | --- | --- |
//! | a database server does not answer within `monitor.health_timeout` | 100 |
//! | database round trip ≥ 1 s / ≥ 100 ms | 20 / 10 |
//! | a pool at ≥ 100 % / ≥ 95 % / above `monitor.utilization` | 25 / 20 / 10 |
//! | callers waiting for a connection of a pool now | 10 |
//! | acquire timeouts in a pool within the last minute | 15 |
//! | (one pool's penalties together at most) | 40 |
//! | a breaker open or forced open / half-open | 25 / 10 |
//!
//! The score is 100 minus the penalties, at least 0. The status is **unhealthy** when a
//! server does not answer, the runtime is shutting down, or the score is below 50;
//! **degraded** when the score is below 90; **healthy** otherwise.
//!
//! **Readiness** ([`Runtime::ready`](crate::Runtime::ready)): the runtime is not shutting down and every server
//! answers the probe. **Liveness** ([`Runtime::live`](crate::Runtime::live)): the runtime has not been shut down;
//! a database outage never fails liveness, because restarting the application does not fix
//! the database.

mod probe;
mod report;

pub use self::probe::DatabaseHealth;
pub use self::report::{
    BreakerHealth, FaultHealth, HealthReport, HealthStatus, Penalty, PoolHealth, Readiness,
};
pub(crate) use self::report::{fmt_us, pool_advice, why_open};
mod status;
pub use self::status::{
    BulkheadStatus, LimiterStatus, PoolConfigReport, PoolSettings, RetryStatus, StatusReport,
};
