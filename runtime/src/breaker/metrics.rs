use std::time::Duration;

use super::outcome::Recovery;
use super::state::BreakerState;

/// A snapshot of one breaker, from [`CircuitBreaker::metrics`](super::CircuitBreaker::metrics).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BreakerMetrics {
    /// The current state.
    pub state: BreakerState,
    /// Calls in the rate window (`None` when no rate is configured).
    pub window_calls: Option<u64>,
    /// Failures in the rate window (`None` when no rate is configured).
    pub window_failures: Option<u64>,
    /// The failure rate over the rate window, in percent (`None` without a rate window or
    /// before any call).
    pub failure_rate: Option<f64>,
    /// The slow-call rate over the rate window, in percent (`None` without a rate window or
    /// before any call).
    pub slow_rate: Option<f64>,
    /// Failures within `within` (`None` when `failures`/`within` is not configured).
    pub recent_failures: Option<u32>,
    /// Failures in a row since the last success.
    pub consecutive_failures: u32,
    /// Calls recorded since the breaker was created (successes and failures).
    pub calls_total: u64,
    /// Failures recorded since the breaker was created.
    pub failures_total: u64,
    /// Slow calls recorded since the breaker was created.
    pub slow_total: u64,
    /// Calls rejected since the breaker was created.
    pub rejected_total: u64,
    /// State transitions since the breaker was created.
    pub transitions_total: u64,
    /// How long the breaker stays open when it opens next (or is open now): `open_for`, grown
    /// by `open_backoff` after failed probes.
    pub open_duration: Duration,
    /// When open: the time until the next call may probe (zero when it may probe now). With
    /// [`Recovery::ServerProbe`] this is the longest wait: the breaker half-opens as soon as
    /// the server answers.
    pub half_open_in: Option<Duration>,
    /// How the breaker recovers, while open or half-open.
    pub recovery: Option<Recovery>,
}
