use super::units::{HOUR, secs};
use crate::Constraint::Useless;
use crate::DefaultIs::{Derived, Required, Value};
use crate::Rule::{Flag, Number};
use crate::Typed::{Duration, Whole};
use crate::{Key, Rule, Schema, Typed};

/// A rate limiter: `limiter NAME { .. }`, `[limiters.NAME]`.
pub const LIMITER: Schema = Schema {
    kind: "limiter",
    one: "a rate limiter",
    keys: &[
        Key::new(
            "per_second",
            Number {
                min: 0.0,
                max: 1_000_000.0,
                above_min: true,
            },
            Required(
                "every limiter needs a rate, such as `per_second = 100` (configuration may change \
                 it; there is no default rate)",
            ),
            "permits per second, fractions allowed (`0.5`: one every two seconds)",
        )
        .unit("permits a second"),
        Key::new(
            "burst",
            Rule::whole(1, 1_000_000),
            Derived("one second's worth: `per_second` rounded up"),
            "permits that may be taken at once after a quiet period",
        )
        .unit("permits"),
        Key::new(
            "wait",
            Flag,
            Value(Typed::Flag(false)),
            "wait for a permit (within `max_wait` and the caller's deadline) instead of \
             rejecting at once",
        ),
        Key::new(
            "max_wait",
            Rule::duration_to(HOUR),
            Value(Duration(secs(1))),
            "the longest a call waits for a permit when `wait` is on",
        ),
        Key::new(
            "per_key",
            Flag,
            Value(Typed::Flag(false)),
            "one limit per key (tenant) instead of one for all",
        ),
        Key::new(
            "max_keys",
            Rule::whole(1, 10_000_000),
            Value(Whole(10_000)),
            "the most keys tracked at once; new keys beyond are rejected",
        )
        .unit("keys"),
    ],
    constraints: &[Useless {
        key: "max_wait",
        other: "wait",
        value: Typed::Flag(false),
        why: "`max_wait` bounds how long a call waits for a permit, but `wait = false` rejects \
              calls at once; set `wait = true` or remove `max_wait`",
    }],
    groups: &[],
};
