//! The op API: one call to the database under named policies.

mod attempt;
mod builder;
mod cached;
mod conn;
mod executor;
mod host;
mod nested;
mod registry;
mod resolve;
mod run;
mod spec;

pub(crate) use self::attempt::{Body, in_tx, plain};
pub use self::builder::{Op, OpBuilder};
pub(crate) use self::cached::cached;
pub use self::conn::{BoxFuture, Conn, Tx};
pub(crate) use self::host::{BackgroundBody, BackgroundWrite, Host};
pub use self::nested::Nested;
#[doc(hidden)]
pub use self::registry::OpRegistration;
pub use self::registry::{OpInfo, declared_ops};
pub(crate) use self::registry::{registered, resolve_all};
pub(crate) use self::resolve::Resolved;
pub(crate) use self::run::execute_erased;
#[doc(hidden)]
pub use self::spec::StaticOp;
pub use self::spec::{Isolation, Location, Name, OpSpec, RetryScope, TxSpec};
pub use crate::config::OpsCheck;
