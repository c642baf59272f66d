use super::units::{DAY, HOUR, MS, SECOND, secs};
use crate::DefaultIs::{Absent, Derived, Value};
use crate::Rule::{Ascii, Choice, Flag, Name, Percent, Url};
use crate::Typed::{Duration, Text, Whole};
use crate::{Group, Key, Rule, Schema, Typed};

/// The top level of the configuration: the server, the default pool, the profile, and the
/// `budget.*`, `monitor.*` and `faults.*` tables.
pub const RUNTIME: Schema = Schema {
    kind: "runtime",
    one: "the runtime",
    keys: &[
        Key::new(
            "url",
            Url,
            Absent("`DATABASE_URL`"),
            "the server URL of every pool that names none",
        ),
        Key::new(
            "default_pool",
            Name("pool"),
            Derived("the only pool, when there is one"),
            "the pool for ops that name none",
        ),
        Key::new(
            "profile",
            Name("profile"),
            Absent("none"),
            "which `[profiles.NAME]` section of the file applies",
        ),
        Key::new(
            "shutdown_timeout",
            Rule::duration_to(HOUR),
            Value(Duration(secs(30))),
            "how long shutdown waits for work in flight",
        ),
        Key::new(
            "cache_max_entries",
            Rule::whole(1, 100_000_000),
            Value(Whole(10_000)),
            "the most results the result cache of read-only ops holds, of every op together",
        ),
        Key::new(
            "ops_check",
            Choice(&["warn", "error", "off"]),
            Value(Text("warn")),
            "what start-up does about declared ops that do not fit the configuration",
        ),
    ],
    constraints: &[],
    groups: &[
        Group {
            name: "budget",
            each: None,
            inherits: None,
            schema: &BUDGET,
        },
        Group {
            name: "monitor",
            each: None,
            inherits: None,
            schema: &MONITOR,
        },
        Group {
            name: "faults",
            each: None,
            inherits: None,
            schema: &FAULTS,
        },
    ],
};

/// Injected faults: `[faults]`, off unless enabled, refused in the profiles it names. The
/// keys other than `enabled` and `forbidden_in` describe one fault armed at start-up; code
/// arms any number (`Runtime::faults`).
pub const FAULTS: Schema = Schema {
    kind: "faults",
    one: "fault injection",
    keys: &[
        Key::new(
            "enabled",
            Flag,
            Value(Typed::Flag(false)),
            "whether faults may be injected at all",
        ),
        Key::new(
            "forbidden_in",
            Ascii { max_len: 255 },
            Value(Text("production")),
            "comma-separated profiles in which `enabled = true` is refused at start-up",
        ),
        Key::new(
            "op",
            Ascii { max_len: 255 },
            Absent("every op"),
            "the op the start-up fault hits",
        ),
        Key::new(
            "pool",
            Name("pool"),
            Absent("every pool"),
            "the pool whose ops the start-up fault hits",
        ),
        Key::new(
            "sqlstate",
            Ascii { max_len: 5 },
            Absent("none"),
            "the SQLSTATE the server raises in place of the op's body (`40001`, `53300`, \
             `57P01`, ...)",
        ),
        Key::new(
            "drop_connection",
            Flag,
            Value(Typed::Flag(false)),
            "the server ends the op's session (`pg_terminate_backend`) in place of its body",
        ),
        Key::new(
            "latency",
            Rule::duration_to(HOUR),
            Absent("none"),
            "added before the op's body (or before the injected error)",
        ),
        Key::new(
            "probability",
            Percent {
                min: 0.0,
                above_min: true,
            },
            Value(Typed::Number(100.0)),
            "the share of matching calls hit, in percent",
        ),
        Key::new(
            "next",
            Rule::whole(1, 1_000_000_000),
            Absent("every matching call"),
            "only the next N matching calls are hit",
        )
        .unit("calls"),
    ],
    constraints: &[],
    groups: &[],
};

/// The connection budget: `[budget]`, checked against the server's `max_connections` at
/// start-up.
pub const BUDGET: Schema = Schema {
    kind: "budget",
    one: "the connection budget",
    keys: &[
        Key::new(
            "instances",
            Rule::whole(1, 10_000),
            Value(Whole(1)),
            "application instances sharing the server's connections",
        ),
        Key::new(
            "mode",
            Choice(&["error", "warn", "scale"]),
            Value(Text("error")),
            "what start-up does when the pools do not fit the server's connections (a read \
             replica's too, for its replica pools): refuse, warn, or scale every pool down \
             (`replica_max` on a replica)",
        ),
        Key::new(
            "headroom",
            Rule::whole(0, 10_000),
            Value(Whole(0)),
            "connections left free for other clients (consoles, migrations, monitoring)",
        )
        .unit("connections"),
        Key::new(
            "server_cores",
            Rule::whole(1, 4096),
            Derived("detected for a server on this machine"),
            "database server cores, for sizing advice",
        ),
        Key::new(
            "effective_spindles",
            Rule::whole(0, 1000),
            Value(Whole(1)),
            "effective spindles, for sizing advice",
        ),
    ],
    constraints: &[],
    groups: &[],
};

/// How often the monitor loop may check: at least every 10ms.
const INTERVAL: Rule = Rule::Duration {
    min: MS.saturating_mul(10),
    max: HOUR,
};

/// The monitor, the utilization samples and the health check: `[monitor]`.
pub const MONITOR: Schema = Schema {
    kind: "monitor",
    one: "the monitor",
    keys: &[
        Key::new(
            "enabled",
            Flag,
            Value(Typed::Flag(true)),
            "whether `start_monitor` runs the loop",
        ),
        Key::new(
            "pool_interval",
            INTERVAL,
            Value(Duration(secs(15))),
            "how often pools and ops are checked and metrics published",
        ),
        Key::new(
            "breaker_interval",
            INTERVAL,
            Value(Duration(secs(10))),
            "how often breakers are checked",
        ),
        Key::new(
            "health_interval",
            INTERVAL,
            Value(Duration(secs(30))),
            "how often the health report is made",
        ),
        Key::new(
            "sample_interval",
            INTERVAL,
            Value(Duration(secs(2))),
            "how often pools are sampled for the utilization chart",
        ),
        Key::new(
            "samples",
            Rule::whole(2, 100_000),
            Value(Whole(150)),
            "samples kept per pool (5 minutes at 2s)",
        ),
        Key::new(
            "utilization",
            Percent {
                min: 1.0,
                above_min: false,
            },
            Value(Typed::Number(80.0)),
            "pool utilization that raises an alert and costs health score",
        ),
        Key::new(
            "acquire_wait",
            Rule::duration_to(HOUR),
            Value(Duration(secs(5))),
            "an acquire wait that raises an alert",
        ),
        Key::new(
            "slow_op",
            Rule::duration_to(HOUR),
            Value(Duration(SECOND)),
            "an op duration that raises an alert",
        ),
        Key::new(
            "connection_storm",
            Rule::whole(1, 1_000_000),
            Value(Whole(100)),
            "new connections a minute per pool that raise an alert",
        )
        .unit("connections a minute"),
        Key::new(
            "cooldown",
            Rule::duration_to(DAY),
            Value(Duration(secs(300))),
            "the same alert is sent at most once per cooldown",
        ),
        Key::new(
            "history",
            Rule::whole(1, 100_000),
            Value(Whole(100)),
            "alerts kept in the history",
        ),
        Key::new(
            "health_timeout",
            INTERVAL,
            Value(Duration(secs(2))),
            "time allowed for the health check's round trip",
        ),
    ],
    constraints: &[],
    groups: &[],
};
