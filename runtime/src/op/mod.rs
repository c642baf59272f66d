//! The op API: one call to the database under named policies.

mod attempt;
mod builder;
mod conn;
mod registry;
mod resolve;
mod run;
mod spec;

pub use self::builder::{Op, OpBuilder, run_static, run_tx_static};
pub use self::conn::{BoxFuture, Conn, Tx};
pub use self::registry::{OpInfo, OpRegistration, OpsCheck, registered};
pub(crate) use self::resolve::Resolved;
pub use self::spec::{Isolation, Location, OpSpec, TxSpec};
