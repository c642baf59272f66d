//! 1,000 `#[db_op]`s declared (see `declared_ops/bench.rs`).

include!("declared_ops/bench.rs");
