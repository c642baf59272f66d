//! One `#[db_op]` declared (see `declared_ops/bench.rs`).

include!("declared_ops/bench.rs");
