use super::units::{DAY, HOUR, ms, secs};
use crate::Constraint::Order;
use crate::DefaultIs::{Absent, Derived, Value};
use crate::Rule::{Choice, Number};
use crate::Typed::{Duration, Text, Whole};
use crate::{Each, Group, Key, Rule, Schema, Side, Typed};

const FACTOR: Rule = Number {
    min: 1.0,
    max: 10.0,
    above_min: false,
};

const BASE_AT_MOST_MAX_DELAY: crate::Constraint = Order {
    small: "base",
    large: "max_delay",
    blame: Side::Small,
    default_capped: false,
    why: "the first delay is above the longest delay; lower `base` or raise `max_delay`",
};

/// The failure kinds a retry policy can tune separately (`on <kind> { .. }`): those that
/// running again can fix.
pub const RETRY_ON_KINDS: &[&str] = &[
    "connection_lost",
    "contention",
    "backpressure",
    "server_shutdown",
    "failover",
    "deadline",
    "statement_timeout",
    "canceled",
];

/// A retry policy: `retry NAME { .. }`, `[retries.NAME]`.
pub const RETRY: Schema = Schema {
    kind: "retry",
    one: "a retry policy",
    keys: &[
        Key::new(
            "attempts",
            Rule::whole(1, 100),
            Value(Whole(3)),
            "attempts in all, the first included",
        )
        .unit("attempts"),
        Key::new(
            "base",
            Rule::duration_to(HOUR),
            Value(Duration(ms(50))),
            "the first delay",
        ),
        Key::new(
            "factor",
            FACTOR,
            Value(Typed::Number(2.0)),
            "each delay is the previous one times this",
        ),
        Key::new(
            "max_delay",
            Rule::duration_to(HOUR),
            Value(Duration(secs(2))),
            "the cap on one delay, before jitter",
        ),
        Key::new(
            "max_elapsed",
            Rule::duration_to(DAY),
            Absent("none (the caller's deadline still applies)"),
            "the cap on the time across all attempts and delays",
        ),
        Key::new(
            "jitter",
            Choice(&["full", "equal", "none"]),
            Value(Text("full")),
            "how delays are randomised: `\"full\"`: uniform in [0, delay]; `\"equal\"`: half \
             the delay plus up to half; `\"none\"`",
        ),
        Key::new(
            "budget_percent",
            Number {
                min: 0.0,
                max: 1000.0,
                above_min: false,
            },
            Value(Typed::Number(20.0)),
            "retries may add at most this percentage of the calls in the budget window",
        ),
        Key::new(
            "budget_min_per_second",
            Rule::whole(0, 1_000_000),
            Value(Whole(10)),
            "retries always allowed per second, on top of the percentage",
        )
        .unit("retries a second"),
        Key::new(
            "budget_window",
            Rule::duration_to(HOUR),
            Value(Duration(secs(10))),
            "the window the retry budget counts over",
        ),
    ],
    constraints: &[
        BASE_AT_MOST_MAX_DELAY,
        Order {
            small: "base",
            large: "max_elapsed",
            blame: Side::Large,
            default_capped: false,
            why: "no retry could start; raise `max_elapsed`",
        },
    ],
    groups: &[Group {
        name: "on",
        each: Some(Each {
            placeholder: "<kind>",
            what: "failure kind",
            names: RETRY_ON_KINDS,
        }),
        inherits: Some("the policy"),
        schema: &RETRY_ON,
    }],
};

/// The least attempts `contention` gets when its `on.contention.attempts` is not set and the
/// policy retries at all (the `on.<kind>.attempts` default above says so in words).
pub const CONTENTION_ATTEMPTS: u32 = 10;

/// One failure kind's schedule inside a retry policy: `on <kind> { .. }`,
/// `[retries.NAME.on.<kind>]`. Unset keys take the policy's.
pub const RETRY_ON: Schema = Schema {
    kind: "retry `on <kind>`",
    one: "a failure kind's schedule",
    keys: &[
        Key::new(
            "attempts",
            Rule::whole(1, 100),
            Derived(
                "the policy's `attempts`; for `contention`, at least 10 when the policy retries",
            ),
            "attempts for this failure kind; 1: never retried",
        )
        .unit("attempts"),
        Key::new(
            "base",
            Rule::duration_to(HOUR),
            Derived("the policy's `base`"),
            "the first delay for this failure kind",
        ),
        Key::new(
            "factor",
            FACTOR,
            Derived("the policy's `factor`"),
            "the growth factor for this failure kind",
        ),
        Key::new(
            "max_delay",
            Rule::duration_to(HOUR),
            Derived("the policy's `max_delay`"),
            "the cap on one delay for this failure kind; set it when this kind's `base` is \
             above the policy's `max_delay`",
        ),
    ],
    constraints: &[BASE_AT_MOST_MAX_DELAY],
    groups: &[],
};
