use super::units::{DAY, HOUR, secs};
use crate::Constraint::{Excludes, Needs, Order};
use crate::DefaultIs::{Absent, Derived, Value};
use crate::Rule::{Choice, Number, Percent};
use crate::Typed::{Duration, Text, Whole};
use crate::{Key, Rule, Schema, Side, Typed};

/// A circuit breaker: `breaker NAME { .. }`, `[breakers.NAME]`.
///
/// The derived defaults (`failure_rate`, `window`, `open_for_max`) are computed by the
/// runtime's `BreakerConfig::resolved` from [`DEFAULT_FAILURE_RATE`], [`DEFAULT_RATE_WINDOW`]
/// and [`DEFAULT_OPEN_FOR_MAX`]; a test checks that the words below name them.
pub const BREAKER: Schema = Schema {
    kind: "breaker",
    one: "a circuit breaker",
    keys: &[
        Key::new(
            "failures",
            Rule::whole(1, 1_000_000),
            Absent("off"),
            "trip after this many failures within `within`",
        )
        .unit("failures"),
        Key::new(
            "within",
            Rule::duration_to(HOUR),
            Absent("none"),
            "the sliding time window of `failures`",
        ),
        Key::new(
            "consecutive_failures",
            Rule::whole(1, 1_000_000),
            Absent("off"),
            "trip after this many failures in a row",
        )
        .unit("failures"),
        Key::new(
            "failure_rate",
            Percent {
                min: 0.0,
                above_min: true,
            },
            Derived("50 when no other trip condition is set"),
            "trip when at least this share of the calls in the window failed",
        ),
        Key::new(
            "slow_rate",
            Percent {
                min: 0.0,
                above_min: true,
            },
            Absent("off"),
            "trip when at least this share of the calls in the window were slow",
        ),
        Key::new(
            "slow_call",
            Rule::duration_to(HOUR),
            Absent("none"),
            "a call that takes at least this long counts as slow, even when it succeeds",
        ),
        Key::new(
            "window",
            Rule::duration_to(HOUR),
            Derived("1m when a rate is set without `window_calls`"),
            "a time window for the rates",
        ),
        Key::new(
            "window_calls",
            Rule::whole(2, 100_000),
            Absent("none"),
            "a count window for the rates: the last N calls",
        )
        .unit("calls"),
        Key::new(
            "minimum_calls",
            Rule::whole(1, 100_000),
            Value(Whole(10)),
            "rates are judged once the window holds this many calls (the default is capped at \
             `window_calls`)",
        )
        .unit("calls"),
        Key::new(
            "open_for",
            Rule::duration_to(HOUR),
            Value(Duration(secs(10))),
            "how long a breaker opened by the ops' own failures stays open before probing; for \
             an unreachable server, the longest wait",
        ),
        Key::new(
            "open_for_max",
            Rule::duration_to(DAY),
            Derived("5m, or `open_for` when longer"),
            "the cap on the open time when `open_backoff` grows it",
        ),
        Key::new(
            "open_backoff",
            Number {
                min: 1.0,
                max: 10.0,
                above_min: false,
            },
            Value(Typed::Number(1.0)),
            "the open time is multiplied by this each time a probe fails (1: no growth)",
        ),
        Key::new(
            "half_open",
            Rule::whole(1, 1000),
            Value(Whole(1)),
            "probes let through when half-open; all must succeed to close",
        )
        .unit("calls"),
        Key::new(
            "mode",
            Choice(&["normal", "disabled", "metrics_only", "forced_open"]),
            Value(Text("normal")),
            "`\"disabled\"`: permits and records nothing; `\"metrics_only\"`: records and reports \
             transitions, never rejects; `\"forced_open\"`: rejects every call",
        ),
    ],
    constraints: &[
        Needs {
            key: "failures",
            needs: &["within"],
            why: "failures count within a time window, such as `failures = 5, within = \"60s\"` \
                  (or use `consecutive_failures = 5`)",
        },
        Needs {
            key: "within",
            needs: &["failures"],
            why: "`within` is the window of `failures`, such as `failures = 5, within = \"60s\"`",
        },
        Excludes {
            key: "window_calls",
            other: "window",
            why: "give either `window` (a time window) or `window_calls` (the last N calls), \
                  not both",
        },
        Needs {
            key: "window",
            needs: &["failure_rate", "slow_rate"],
            why: "the window only applies to rates",
        },
        Needs {
            key: "window_calls",
            needs: &["failure_rate", "slow_rate"],
            why: "the window only applies to rates",
        },
        Needs {
            key: "slow_rate",
            needs: &["slow_call"],
            why: "the duration from which a call counts as slow",
        },
        Order {
            small: "minimum_calls",
            large: "window_calls",
            blame: Side::Small,
            default_capped: true,
            why: "the window never holds enough calls to trip; lower `minimum_calls`",
        },
        Order {
            small: "open_for",
            large: "open_for_max",
            blame: Side::Large,
            default_capped: false,
            why: "the open time starts at `open_for` and grows up to `open_for_max`; raise \
                  `open_for_max`",
        },
    ],
    groups: &[],
};

/// The failure rate (percent) a breaker trips at when no trip condition is configured.
pub const DEFAULT_FAILURE_RATE: f64 = 50.0;

/// The rate window when `failure_rate` or `slow_rate` is set without `window` or
/// `window_calls`.
pub const DEFAULT_RATE_WINDOW: std::time::Duration = secs(60);

/// The cap on the open time when `open_for_max` is not set (or `open_for`, when longer).
pub const DEFAULT_OPEN_FOR_MAX: std::time::Duration = secs(300);
