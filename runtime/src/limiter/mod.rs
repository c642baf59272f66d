//! Named rate limiters: at most `per_second` calls a second, with bursts.
//!
//! A [`RateLimiter`] runs governor's GCRA (generic cell rate algorithm: a token bucket
//! without a refill task) on a clock over `tokio::time::Instant`, so tokio's paused clock
//! drives it in tests exactly as it drives sleeps. A permit check is one compare-and-swap.
//!
//! - **Rejecting or waiting.** By default a call with no free permit is rejected at once
//!   with [`LimiterRejected`] (its `retry_after` says when a permit comes); the op runner
//!   turns it into `Error::RateLimited`. With `wait = true` the call sleeps until its permit
//!   if that comes before both `max_wait` and the caller's deadline, and is rejected at once
//!   otherwise: never a sleep that ends in a failure.
//! - **Per key.** With `per_key = true`, each key (a tenant, a customer) gets its own
//!   `per_second`/`burst`; calls without a key share one bucket of the same size. Memory is
//!   bounded by `max_keys`: when that many keys are tracked, idle ones are pruned (a key
//!   idle for `burst / per_second` is indistinguishable from a new one), and when none is
//!   idle a *new* key is rejected with the time until one will be, while known keys carry
//!   on. Evicting a busy key instead would give its tenant a fresh burst, so a flood of new
//!   keys could reset everybody's limits.
//!
//! # Example
//!
//! ```
//! use sqlx_resilience_runtime::config::{Section, Value};
//! use sqlx_resilience_runtime::limiter::{LimiterConfig, RateLimiter};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut config = LimiterConfig::default();
//! config.set("per_second", &Value::Int(100)).unwrap();
//! config.set("burst", &Value::Int(20)).unwrap();
//! let limiter = RateLimiter::new("api", config);
//! for _ in 0..20 {
//!     limiter.acquire(None, None).await.expect("within the burst");
//! }
//! let rejected = limiter.acquire(None, None).await.unwrap_err();
//! assert!(rejected.retry_after.as_millis() <= 10);
//! # }
//! ```

mod clock;
mod config;
mod keyed;
mod rate;

#[cfg(test)]
mod tests;

pub use self::config::LimiterConfig;
pub use self::rate::{LimiterMetrics, LimiterRejected, RateLimiter};
