//! sqlx-resilience: PostgreSQL access that survives the real world.

pub use sqlx_resilience_macros::{db_op, policies};
pub use sqlx_resilience_runtime::*;

#[doc(hidden)]
pub mod __private {}
