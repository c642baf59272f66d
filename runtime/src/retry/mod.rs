//! Retry policies, backoff schedules and the retry budget.
//!
//! A [`RetryPolicy`] is named and shared; each call gets a [`RetryState`] from
//! [`RetryPolicy::start`] and asks it, after each failed attempt,
//! [`next_delay`](RetryState::next_delay): [`RetryDecision::RetryAfter`] a delay, or
//! [`RetryDecision::Stop`] with a [`StopReason`]. The policy never sleeps itself; the op runner
//! sleeps, and it also decides whether the op may run again at all (idempotent, read-only,
//! not sent): this module only knows failure kinds.
//!
//! # Which failures, which delays
//!
//! By default the kinds that are [`FailureKind::is_transient`](crate::FailureKind::is_transient)
//! are retried: `attempts` attempts in all (the first counts as 1), with exponential delays
//! from `base` growing by `factor` up to `max_delay` (backon's [`ExponentialBuilder`]
//! computes them), randomised by `jitter` (full by default: uniform in `[0, delay]`; backon's
//! own jitter only adds to the delay, so we apply ours to its un-jittered values).
//!
//! `on.<kind>.attempts|base|factor|max_delay` give one kind its own schedule, and make it
//! retried even when it is not transient by default; `on.<kind>.attempts = 1` means never.
//! Seed system 004's table reads:
//!
//! ```toml
//! [retries.seed_004]
//! "on.connection_lost.attempts" = 5       # connection reset: 5 tries from 500 ms × 1.5
//! "on.connection_lost.base" = "500ms"
//! "on.connection_lost.factor" = 1.5
//! "on.connection_lost.max_delay" = "30s"
//! "on.backpressure.attempts" = 10         # pool exhaustion: 10 tries from 2 s × 2
//! "on.backpressure.base" = "2s"
//! "on.backpressure.max_delay" = "60s"
//! "on.contention.attempts" = 3            # lock timeout: 3 tries from 1 s × 2
//! "on.contention.base" = "1s"
//! # statement_timeout is not transient: never retried unless `on.statement_timeout.*` says so
//! ```
//!
//! A call keeps one schedule per kind it has seen, and its attempt count is shared: a call
//! that lost its connection twice and then met backpressure is on attempt 4, checked against
//! the backpressure limit, with the backpressure schedule's first delay.
//!
//! # Deadlines and time limits
//!
//! A retry whose delay would end after the caller's deadline is not made:
//! [`StopReason::DeadlineTooClose`] (the caller reports a deadline error rather than sleeping
//! and then failing). `max_elapsed` caps the time across all attempts and delays the same
//! way.
//!
//! # The retry budget
//!
//! Attempt counts bound one call, not the load: when the database is down, every call
//! retries. The [`RetryBudget`] (tower's `TpsBudget` design) bounds the sum: retries may add
//! at most `budget_percent` % of the calls of the last `budget_window`, plus
//! `budget_min_per_second` a second. Each call deposits when it starts; a retry withdraws only
//! when every other check passed. It is lock-free (10 time slots of packed atomics).
//!
//! Contention retries (serialization failures, deadlocks, lock timeouts) do not draw on the
//! budget: the server answered at once and is healthy, and running the transaction again is
//! the remedy, not a storm. Under heavy contention most calls fail at least once, so a budget
//! of 20 % of the calls would turn the remedy away and surface the failures it exists to hide.
//! They stay bounded by the contention schedule's attempts (3 by default), its growing,
//! jittered delays, `max_elapsed` and the caller's deadline.
//!//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use sqlx_resilience_runtime::FailureKind;
//! use sqlx_resilience_runtime::retry::{RetryConfig, RetryDecision, RetryPolicy, StopReason};
//!
//! let policy = RetryPolicy::new("transient", RetryConfig::default());
//! let mut call = policy.start();
//! // The first attempt lost its connection after 20 ms; 5 s are left before the deadline.
//! let elapsed = Duration::from_millis(20);
//! match call.next_delay(FailureKind::ConnectionLost, elapsed, Some(Duration::from_secs(5))) {
//!     RetryDecision::RetryAfter(delay) => assert!(delay <= Duration::from_millis(50)),
//!     RetryDecision::Stop(reason) => unreachable!("{reason}"),
//! }
//! // A constraint violation is never retried.
//! assert_eq!(
//!     call.next_delay(FailureKind::Constraint, elapsed, None),
//!     RetryDecision::Stop(StopReason::NotRetried(FailureKind::Constraint)),
//! );
//! ```
//!
//! [`ExponentialBuilder`]: backon::ExponentialBuilder

mod budget;
mod config;
mod policy;
mod schedule;

#[cfg(test)]
mod tests;

pub use self::budget::RetryBudget;
pub use self::config::{Jitter, KindOverride, RETRYABLE_KINDS, RetryConfig};
pub use self::policy::{
    RetryDecision, RetryMetrics, RetryPolicy, RetryState, StopCounts, StopReason,
};
