use super::units::{HOUR, secs};
use crate::DefaultIs::Value;
use crate::Typed::{Duration, Whole};
use crate::{Key, Rule, Schema};

/// A bulkhead: `bulkhead NAME { .. }`, `[bulkheads.NAME]`.
pub const BULKHEAD: Schema = Schema {
    kind: "bulkhead",
    one: "a bulkhead",
    keys: &[
        Key::new(
            "max_concurrent",
            Rule::whole(1, 100_000),
            Value(Whole(10)),
            "calls running at once",
        )
        .unit("calls"),
        Key::new(
            "max_queue",
            Rule::whole(0, 1_000_000),
            Value(Whole(0)),
            "calls waiting for a slot; beyond this, calls are shed at once",
        )
        .unit("calls"),
        Key::new(
            "max_wait",
            Rule::duration_to(HOUR),
            Value(Duration(secs(1))),
            "the longest a call waits in the queue",
        ),
    ],
    constraints: &[],
    groups: &[],
};
