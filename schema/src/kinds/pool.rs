use super::units::{DAY, HOUR, MONTH, SECOND, ms, secs};
use crate::Constraint::Order;
use crate::DefaultIs::{Absent, Derived, Value};
use crate::Rule::{Ascii, Choice, SchemaList, Url, UrlList};
use crate::Typed::{Duration, Text, Whole};
use crate::{Key, Rule, Schema, Side};

/// A named connection pool: `pool NAME { .. }`, `[pools.NAME]`.
pub const POOL: Schema = Schema {
    kind: "pool",
    one: "a connection pool",
    keys: &[
        Key::new(
            "url",
            Url,
            Absent("the runtime's `url`"),
            "server URL for this pool",
        ),
        Key::new(
            "password_file",
            Ascii { max_len: 4096 },
            Absent("the password in `url`"),
            "a file holding the password (a mounted secret), read again before the pool opens \
             a connection, so a rotated password is picked up without a restart",
        ),
        Key::new(
            "max",
            Rule::whole(1, 10_000),
            Value(Whole(10)),
            "maximum connections",
        )
        .unit("connections"),
        Key::new(
            "min",
            Rule::whole(0, 10_000),
            Value(Whole(0)),
            "connections kept open when idle",
        )
        .unit("connections"),
        Key::new(
            "acquire_timeout",
            Rule::duration_to(DAY),
            Value(Duration(secs(5))),
            "how long a caller waits for a connection",
        ),
        Key::new(
            "idle_timeout",
            Rule::duration_to(DAY),
            Value(Duration(secs(600))),
            "idle connections above `min` close after this long",
        ),
        Key::new(
            "max_lifetime",
            Rule::duration_to(MONTH),
            Value(Duration(secs(1800))),
            "connections are replaced after this long",
        ),
        Key::new(
            "connect_timeout",
            Rule::duration_to(DAY),
            Value(Duration(secs(10))),
            "time allowed to open one connection",
        ),
        Key::new(
            "startup",
            Choice(&["eager", "lazy"]),
            Value(Text("eager")),
            "`\"eager\"`: open `min` connections (at least one) at start-up and fail fast; \
             `\"lazy\"`: on first use",
        ),
        Key::new(
            "startup_timeout",
            Rule::duration_to(DAY),
            Value(Duration(secs(10))),
            "how long an eager start-up may take",
        ),
        Key::new(
            "validation",
            Choice(&["idle", "always", "never"]),
            Value(Text("idle")),
            "when a connection is pinged before use: `\"idle\"`: after `validation_window` \
             idle; `\"always\"`; `\"never\"`",
        ),
        Key::new(
            "validation_window",
            Rule::duration_to(DAY),
            Value(Duration(ms(500))),
            "idle time after which a connection is pinged before use",
        ),
        Key::new(
            "leak_threshold",
            Rule::duration_to(DAY),
            Absent("off"),
            "warn when an op holds a connection longer, naming the op",
        ),
        Key::new(
            "statement_timeout",
            Rule::duration_to(DAY),
            Absent("the server's"),
            "`statement_timeout` of every session",
        ),
        Key::new(
            "lock_timeout",
            Rule::duration_to(DAY),
            Absent("the server's"),
            "`lock_timeout` of every session",
        ),
        Key::new(
            "idle_in_transaction_session_timeout",
            Rule::duration_to(DAY),
            Absent("the server's"),
            "`idle_in_transaction_session_timeout` of every session",
        ),
        Key::new(
            "application_name",
            Ascii { max_len: 63 },
            Derived("the one in `url` or the connect options, else the pool's name"),
            "`application_name` of every session, visible in `pg_stat_activity`",
        ),
        Key::new(
            "search_path",
            SchemaList,
            Absent("the server's"),
            "`search_path` of every session",
        ),
        Key::new(
            "client_connection_check_interval",
            Rule::duration_to(DAY),
            Value(Duration(ms(250))),
            "PostgreSQL 14+: how often the server checks during a statement that the client \
             is still there, so a statement the client gave up on stops",
        ),
        Key::new(
            "pooler",
            Choice(&["none", "transaction", "session"]),
            Value(Text("none")),
            "what sits between the pool and the server: `\"none\"`; `\"transaction\"`: a \
             transaction pooler (PgBouncer `pool_mode = transaction`), so nothing relies on \
             session state; `\"session\"`: a session pooler",
        ),
        Key::new(
            "background_capacity",
            Rule::whole(1, 10_000_000),
            Value(Whole(1000)),
            "background writes queued or running at most on this pool (`Op::submit`)",
        )
        .unit("writes"),
        Key::new(
            "background_when_full",
            Choice(&["wait", "drop_oldest", "reject"]),
            Value(Text("wait")),
            "what a full background queue does with one more write: the submitter waits, the \
             oldest queued write is dropped, or the submitter gets `Error::BackgroundFull`",
        ),
        Key::new(
            "background_workers",
            Rule::whole(1, 1000),
            Value(Whole(2)),
            "tasks making this pool's background writes, each on one connection at a time",
        ),
        Key::new(
            "outage_wait",
            Rule::duration_to(DAY),
            Value(Duration(secs(5))),
            "while the server is down, callers wait for it only while the outage is younger \
             than this",
        ),
        Key::new(
            "probe_timeout",
            Rule::duration_to(HOUR),
            Value(Duration(secs(2))),
            "the longest one probe of a down server may take (at most `connect_timeout`)",
        ),
        Key::new(
            "outage_waiters",
            Rule::whole(0, 1_000_000),
            Derived("10 per connection, at least 100"),
            "the most callers waiting for a down server at once; beyond, they fail at once \
             with `Error::Unavailable`",
        )
        .unit("callers"),
        Key::new(
            "host_breaker_failures",
            Rule::whole(1, 100),
            Value(Whole(2)),
            "failures in a row that open the breaker of one host of a multi-host `url`: failed \
             checks, and the pool's connects to the host that fail at the connection level \
             (refused, reset, no answer in time); while it is open, finding the host to use \
             does not wait for that host (unless no other host suits)",
        )
        .unit("failures"),
        Key::new(
            "host_breaker_open_max",
            Rule::Duration {
                min: SECOND,
                max: HOUR,
            },
            Value(Duration(secs(30))),
            "the longest the breaker of one host of a multi-host `url` stays open: it \
             half-opens as soon as the host's health watch reaches the server, and at the \
             latest after this, when one check is let through again",
        ),
        Key::new(
            "replicas",
            UrlList,
            Absent("none: every op uses `url`"),
            "streaming replicas of this pool's server, comma-separated; or `\"hosts\"`: every \
             host of the pool's multi-host `url` that is in recovery, found anew after a \
             failover; or the `http://` URLs of a Patroni cluster's REST API (any members', \
             asked in turn): every member it lists that is in recovery, the members asked for \
             again every `replicas_refresh`. `read_only` ops go to one whose measured lag is \
             within `max_lag`, else to the primary",
        ),
        Key::new(
            "replicas_refresh",
            Rule::Duration {
                min: ms(100),
                max: HOUR,
            },
            Value(Duration(secs(5))),
            "with `replicas` from Patroni's REST API: how often its `/cluster` endpoint is asked \
             for the cluster's members; a member that joins serves reads from the next answer, \
             one that leaves stops at once",
        ),
        Key::new(
            "replica_max",
            Rule::whole(1, 10_000),
            Derived("the pool's `max`"),
            "maximum connections to each replica (each replica also has one for measuring lag)",
        )
        .unit("connections"),
        Key::new(
            "max_lag",
            Rule::duration_to(HOUR),
            Value(Duration(secs(1))),
            "a replica serves a `read_only` op only if it has replayed every write the primary \
             acknowledged longer ago than this",
        ),
        Key::new(
            "read_your_writes",
            Choice(&["primary", "wait", "off"]),
            Value(Text("primary")),
            "after a write in a `ReadSession`, its reads: `\"primary\"`: go to the primary for \
             `read_your_writes_window`; `\"wait\"`: wait (up to the window) for a replica that \
             replayed the write, else the primary; `\"off\"`: no difference",
        ),
        Key::new(
            "read_your_writes_window",
            Rule::duration_to(HOUR),
            Value(Duration(secs(2))),
            "how long after a write `read_your_writes` applies",
        ),
    ],
    constraints: &[
        Order {
            small: "min",
            large: "max",
            blame: Side::Small,
            default_capped: false,
            why: "a pool keeps at most `max` connections; lower `min` or raise `max`",
        },
        Order {
            small: "lock_timeout",
            large: "statement_timeout",
            blame: Side::Small,
            default_capped: false,
            why: "the lock wait is part of the statement, so it could never fire; lower \
                  `lock_timeout`",
        },
        Order {
            small: "idle_timeout",
            large: "max_lifetime",
            blame: Side::Small,
            default_capped: false,
            why: "a connection is closed at `max_lifetime` before it could idle that long; \
                  lower `idle_timeout`",
        },
    ],
    groups: &[],
};
