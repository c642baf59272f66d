//! The op API: one call to the database under named policies.

mod attempt;
mod builder;
mod cached;
mod conn;
mod executor;
mod nested;
mod registry;
mod resolve;
mod run;
mod spec;

pub use self::builder::{Op, OpBuilder};
#[doc(hidden)]
pub use self::builder::{run_static, run_tx_static};
#[doc(hidden)]
pub use self::cached::run_cached_static;
pub use self::conn::{BoxFuture, Conn, Tx};
pub use self::nested::Nested;
#[doc(hidden)]
pub use self::registry::OpRegistration;
pub(crate) use self::registry::resolve_all;
pub use self::registry::{OpInfo, declared_ops};
pub(crate) use self::resolve::Resolved;
#[doc(hidden)]
pub use self::spec::StaticOp;
pub use self::spec::{Isolation, Location, Name, OpSpec, RetryScope, TxSpec};
pub use crate::config::OpsCheck;
