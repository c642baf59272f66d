//! Bulkheads: concurrency limits with a bounded queue.
//!
//! A [`Bulkhead`] lets at most `max_concurrent` calls run at once (a fair semaphore whose
//! uncontended take and release are one compare-and-swap each), lets at most `max_queue`
//! more wait, and sheds the rest at once with [`BulkheadRejected`] (`QueueFull`); the op
//! runner turns it into `Error::BulkheadFull`. A waiter gives up after `max_wait` or at its
//! deadline, whichever comes first (`WaitTimedOut`). Waiters are served in arrival order,
//! and a newcomer never takes a slot while others wait. A dropped (cancelled) waiter leaves
//! the queue at once and takes no slot.

//! A bulkhead rejection says nothing about the database's health: callers record it as
//! `ignore` on a circuit breaker's permit, never as a failure.
//!
//! # Example
//!
//! ```
//! use sqlx_resilience_runtime::bulkhead::{Bulkhead, BulkheadConfig, BulkheadRejection};
//! use sqlx_resilience_runtime::config::{Section, Value};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut config = BulkheadConfig::default();
//! config.set("max_concurrent", &Value::Int(2)).unwrap();
//! let bulkhead = Bulkhead::new("reports", config);
//! let first = bulkhead.acquire(None).await.unwrap();
//! let _second = bulkhead.acquire(None).await.unwrap();
//! let shed = bulkhead.acquire(None).await.unwrap_err();
//! assert_eq!(shed.reason, BulkheadRejection::QueueFull);
//! drop(first); // frees a slot
//! assert!(bulkhead.acquire(None).await.is_ok());
//! # }
//! ```

mod config;
mod gate;
mod slots;

#[cfg(test)]
mod tests;

pub use self::config::BulkheadConfig;
pub use self::gate::{
    Bulkhead, BulkheadMetrics, BulkheadPermit, BulkheadRejected, BulkheadRejection, BulkheadSlot,
};
