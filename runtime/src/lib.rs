//! The runtime of sqlx-resilience: named pools, policies and the op API.
//!
//! Most users depend on the `sqlx-resilience` facade, which re-exports this crate and adds the
//! `#[db_op]` and `policies!` macros.

pub mod background;
pub mod breaker;
pub mod bulkhead;
pub mod cache;
pub mod classify;
pub mod config;
pub mod copy;
mod error;
pub mod faults;
pub mod histogram;
mod host_target;
pub mod hosts;
pub mod limiter;
mod location;
pub mod observability;
mod observer;
pub mod op;
pub mod pool;
pub mod recovery;
mod redact;
pub mod retry;
mod runtime;
mod secret;
mod settings;
pub mod timeout;

pub use self::classify::{Classification, FailureKind, Reach, classify};
pub use self::config::{PolicySet, RuntimeConfig, Value};
pub use self::error::{DbError, Error, OpError, PolicyKind, Result, Site};
#[cfg(feature = "axum")]
pub use self::observability::http;
pub use self::observability::{health, monitor, pgstats, telemetry};
pub use self::op::{BoxFuture, Conn, Isolation, Location, Op, OpBuilder, OpSpec, Tx, TxSpec};
pub use self::pool::replica;
pub use self::pool::{PasswordProvider, Pool, PoolConfig, PoolStats, PooledConn, ProviderError};
pub use self::redact::redact;
pub use self::runtime::{HasRuntime, Runtime, RuntimeBuilder};
#[doc(hidden)]
pub use self::runtime::{run_cached_static, run_static, run_tx_static};
pub use self::secret::DatabaseUrl;
