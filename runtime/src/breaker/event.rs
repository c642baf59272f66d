use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::state::BreakerState;

/// Why a breaker changed state.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TransitionReason {
    /// `failures` failures happened within `within`.
    FailureThreshold {
        /// The configured count.
        failures: u32,
        /// The configured window.
        within: Duration,
    },
    /// This many failures in a row.
    ConsecutiveFailures(u32),
    /// The failure rate (percent) over the window reached the threshold.
    FailureRate {
        /// The rate, in percent.
        rate: f64,
        /// Calls in the window.
        calls: u64,
    },
    /// The slow-call rate (percent) over the window reached the threshold.
    SlowCallRate {
        /// The rate, in percent.
        rate: f64,
        /// Calls in the window.
        calls: u64,
    },
    /// The open duration passed: probes may run.
    OpenElapsed,
    /// The server the breaker waited for answered a probe: calls may try it again.
    ServerAnswered,
    /// Every half-open probe succeeded.
    ProbesSucceeded,
    /// A half-open probe failed (or was slow).
    ProbeFailed,
    /// Someone called `reset`, `force_open`, `disable`, `metrics_only` or `set_mode`.
    Manual,
}

impl fmt::Display for TransitionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransitionReason::FailureThreshold { failures, within } => {
                write!(f, "{failures} failures within {within:?}")
            }
            TransitionReason::ConsecutiveFailures(n) => write!(f, "{n} consecutive failures"),
            TransitionReason::FailureRate { rate, calls } => {
                write!(f, "failure rate {rate:.1}% over {calls} calls")
            }
            TransitionReason::SlowCallRate { rate, calls } => {
                write!(f, "slow-call rate {rate:.1}% over {calls} calls")
            }
            TransitionReason::OpenElapsed => f.write_str("open duration elapsed"),
            TransitionReason::ServerAnswered => f.write_str("the server answered a probe"),
            TransitionReason::ProbesSucceeded => f.write_str("half-open probes succeeded"),
            TransitionReason::ProbeFailed => f.write_str("a half-open probe failed"),
            TransitionReason::Manual => f.write_str("manual"),
        }
    }
}

/// One state change of a breaker, sent to subscribers of
/// [`CircuitBreaker::subscribe`](super::CircuitBreaker::subscribe).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BreakerEvent {
    /// The breaker's name.
    pub breaker: Arc<str>,
    /// The state before.
    pub from: BreakerState,
    /// The state after.
    pub to: BreakerState,
    /// Why.
    pub reason: TransitionReason,
    /// When (wall clock).
    pub at: SystemTime,
    /// False for the transitions a breaker in metrics-only mode reports but does not enforce
    /// (`from`/`to` are then the states it would be in).
    pub enforced: bool,
}
