//! Circuit breakers: stop calling a failing database for a while, then probe it.
//!
//! # States
//!
//! A [`CircuitBreaker`] starts **closed**: calls run and their outcomes are recorded. When a
//! trip condition holds it opens: calls are rejected at once with
//! [`BreakerRejected`] (the op runner turns it into `Error::BreakerOpen`) for `open_for`.
//! The first [`try_acquire`](CircuitBreaker::try_acquire) after that moves it to
//! **half-open** (lazily: no background task) and lets `half_open` probe calls run at once;
//! further calls are rejected. When every probe succeeds it closes with empty windows; when
//! one fails it opens again, for `open_for × open_backoff` (capped at `open_for_max`; the
//! duration returns to `open_for` after a successful close). A probe permit dropped or
//! recorded as `ignore` frees its slot for another probe. A probe that succeeds slowly
//! (`elapsed ≥ slow_call`) fails when `slow_rate` is configured.
//!
//! Modes ([`BreakerMode`], the `mode` key or [`CircuitBreaker::set_mode`]) override the
//! machine: **disabled** permits everything and records nothing; **forced open** rejects
//! everything until [`reset`](CircuitBreaker::reset); **metrics only** (Resilience4j's
//! METRICS_ONLY) permits everything, records outcomes and runs the state machine in the
//! shadows, reporting each would-be transition as a [`BreakerEvent`] with
//! `enforced = false`.
//!
//! # Trip conditions
//!
//! Any configured condition trips the breaker:
//!
//! | keys | trips when |
//! | --- | --- |
//! | `failures`, `within` | `failures` failures happened within the last `within` |
//! | `consecutive_failures` | that many failures in a row (a success resets the count) |
//! | `failure_rate`, `window` or `window_calls`, `minimum_calls` | the failed share of the calls in the window reaches the rate, once the window holds `minimum_calls` calls |
//! | `slow_rate`, `slow_call`, same window | the share of calls that took at least `slow_call` (failed or not) reaches the rate |
//!
//! With no condition configured, the breaker uses `failure_rate = 50` over `window = "60s"`
//! with `minimum_calls = 10` (see [`BreakerConfig`] for why). Conditions are evaluated when a
//! failure or a slow call is recorded: a fast success only lowers the rates, so the one case
//! this defers is a success that brings the window up to `minimum_calls` while the rate is
//! already over the threshold; the breaker then trips on the next failure.
//!
//! # What counts as a failure
//!
//! The caller decides, through the permit: [`BreakerPermit::failure`] only for failures that
//! say the database is unhealthy ([`FailureKind::counts_for_breaker`](crate::FailureKind::counts_for_breaker)).
//! Constraint violations, `RowNotFound`, application errors and rejections by our own rate
//! limiters and bulkheads are recorded with [`BreakerPermit::ignore`] (or as a success).
//!
//! # Design: no lock while closed
//!
//! The state, the mode and an epoch share one `AtomicU64`, so `try_acquire` in the closed
//! state is one atomic load, and an open breaker rejects with two loads and a clock read.
//! Recording in the closed state touches atomics only:
//!
//! - `failures within`: a ring of the last `failures` failure times (8 bytes each); the
//!   breaker trips when the oldest of them is younger than `within`. Exact.
//! - `consecutive_failures`: one atomic counter, reset by a success.
//! - time window (`window`): 20 buckets of `window / 20`; each counter packs its bucket index
//!   and its count in one `AtomicU64`, so a recorder that finds a stale bucket restarts it in
//!   the same compare-and-swap. An outcome leaves the window between 95 % and 100 % of
//!   `window` after it was recorded: that is the approximation.
//! - count window (`window_calls`): a ring of one byte per call with running totals updated
//!   by the difference of each swap. Exact once recorders are done.
//!
//! Transitions, half-open probes and metrics take a mutex; they are rare. A permit remembers
//! the state word it was issued under and its outcome is dropped if a transition happened
//! since, so calls that started before the breaker opened do not pollute the next closed
//! period.
//!
//! # Events
//!
//! Every transition is sent to [`CircuitBreaker::subscribe`] receivers (a
//! `tokio::sync::broadcast` channel, in order) and logged with `tracing` (warn when the
//! breaker opens, info otherwise). Rejections are counted in [`BreakerMetrics`].
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use sqlx_resilience_runtime::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
//! use sqlx_resilience_runtime::config::{Section, Value};
//!
//! let mut config = BreakerConfig::default();
//! config.set("failures", &Value::Int(5)).unwrap();
//! config.set("within", &"60s".into()).unwrap();
//! let breaker = CircuitBreaker::new("harvest_stats", config);
//!
//! for _ in 0..5 {
//!     let permit = breaker.try_acquire().expect("closed");
//!     // ... run the call; it lost its connection after 12 ms:
//!     permit.failure(Duration::from_millis(12));
//! }
//! let rejected = breaker.try_acquire().unwrap_err();
//! assert_eq!(rejected.state, BreakerState::Open);
//! assert!(rejected.retry_after.is_some());
//! ```

mod circuit;
mod config;
mod event;
mod metrics;
mod outcome;
mod permit;
mod rejected;
mod state;
mod window;

#[cfg(test)]
mod tests;

pub use self::circuit::CircuitBreaker;
pub use self::config::{
    BreakerConfig, BreakerMode, DEFAULT_FAILURE_RATE, DEFAULT_OPEN_FOR_MAX, DEFAULT_RATE_WINDOW,
};
pub use self::event::{BreakerEvent, TransitionReason};
pub use self::metrics::BreakerMetrics;
pub use self::outcome::Recovery;
pub use self::permit::BreakerPermit;
pub use self::rejected::BreakerRejected;
pub use self::state::BreakerState;
