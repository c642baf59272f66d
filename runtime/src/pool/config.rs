use std::time::Duration;

use crate::error::PolicyKind;
use crate::pool::replica::{ReadYourWrites, ReplicaUrls};
use crate::secret::DatabaseUrl;
use crate::settings::fields;
use crate::settings::{Invalid, Section, Value};
use sqlx_resilience_schema::{self as schema, Schema};

/// When a pool opens its first connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Startup {
    /// Open `min` connections (at least one) at start-up and fail start-up if the server cannot
    /// be reached within `startup_timeout`.
    Eager,
    /// Open connections on first use.
    Lazy,
}

/// How connections are checked before they are handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// Ping a connection only when it has been idle longer than `validation_window` (HikariCP's
    /// rule). Ops that may write and are neither idempotent nor transactional get a checked
    /// connection whenever it was idle at all, so a connection that died while idle never turns
    /// into an unknown outcome.
    Idle,
    /// Ping before every use (sqlx's `test_before_acquire`).
    Always,
    /// Never ping.
    Never,
}

/// What sits between the pool and the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooler {
    /// Nothing: the pool talks to PostgreSQL itself.
    None,
    /// A transaction pooler (PgBouncer's `pool_mode = transaction`): each transaction, and
    /// each statement outside one, may run on another server connection, so nothing may rely
    /// on session state. Every op body runs in a transaction (so sqlx's parse and execute
    /// round trips stay on one server connection), with unnamed statements only (no
    /// statement cache), the pool's session settings applied with `SET LOCAL` when the
    /// transaction begins, and no startup-packet parameters a pooler refuses.
    Transaction,
    /// A session pooler (PgBouncer's `pool_mode = session`): session state holds for the
    /// life of a connection, so the session settings are applied with `SET` after connect
    /// instead of in the startup packet, which PgBouncer refuses.
    Session,
}

crate::settings::fields::settings! {
    /// Settings of one named pool (`pool NAME { .. }`, `[pools.NAME]`); every key, its range
    /// and default are in the schema ([`schema::POOL`](crate::config::schema::POOL)).
    ///
    /// The defaults are HikariCP-like, with a shorter acquire timeout: a caller waiting 30 s
    /// for a connection is a caller that has already given up.
    #[derive(Debug, Clone, PartialEq)]
    pub struct PoolConfig: schema::POOL {
        /// Where this pool connects: a URL, or sqlx's connect options
        /// ([`DatabaseUrl::from_options`]); defaults to the runtime's.
        pub url: Option<DatabaseUrl> = "url",
        /// A file holding the password, read again before the pool opens a connection (see
        /// [`PasswordProvider`](crate::pool::PasswordProvider) for passwords from code).
        pub password_file: Option<String> = "password_file",
        /// Maximum connections.
        pub max: u32 = "max",
        /// Connections kept open when idle.
        pub min: u32 = "min",
        /// How long a caller waits for a connection.
        pub acquire_timeout: Duration = "acquire_timeout",
        /// Idle connections above `min` are closed after this long.
        pub idle_timeout: Option<Duration> = "idle_timeout",
        /// Connections are replaced after this long.
        pub max_lifetime: Option<Duration> = "max_lifetime",
        /// Time allowed to open one connection.
        pub connect_timeout: Duration = "connect_timeout",
        /// Eager or lazy start-up.
        pub startup: Startup = "startup",
        /// How long an eager start-up may take before it fails.
        pub startup_timeout: Duration = "startup_timeout",
        /// How connections are checked before use.
        pub validation: Validation = "validation",
        /// Idle time after which a connection is pinged before use.
        pub validation_window: Duration = "validation_window",
        /// Warn when an op holds a connection longer than this.
        pub leak_threshold: Option<Duration> = "leak_threshold",
        /// `statement_timeout` for every session.
        pub statement_timeout: Option<Duration> = "statement_timeout",
        /// `lock_timeout` for every session.
        pub lock_timeout: Option<Duration> = "lock_timeout",
        /// `idle_in_transaction_session_timeout` for every session.
        pub idle_in_transaction_session_timeout: Option<Duration> =
            "idle_in_transaction_session_timeout",
        /// `application_name` for every session (default: the one in `url` or the connect
        /// options, else the pool's name).
        pub application_name: Option<String> = "application_name",
        /// `search_path` for every session.
        pub search_path: Option<String> = "search_path",
        /// `client_connection_check_interval` (PostgreSQL 14+): how often the server checks
        /// that the client is still there while a statement runs, so abandoned statements
        /// stop.
        pub client_connection_check_interval: Option<Duration> =
            "client_connection_check_interval",
        /// Background writes queued or running at most (`crate::background`).
        pub background_capacity: u32 = "background_capacity",
        /// What a full background queue does with one more write.
        pub background_when_full: WhenFull = "background_when_full",
        /// Tasks making the pool's background writes.
        pub background_workers: u32 = "background_workers",
        /// While the server is down, callers wait for it to come back only while the outage is
        /// younger than this (and within their deadline and `acquire_timeout`); afterwards they
        /// fail at once with `Error::Unavailable` until a probe reaches the server.
        pub outage_wait: Duration = "outage_wait",
        /// The longest one probe of a down server may take (at most `connect_timeout`).
        pub probe_timeout: Duration = "probe_timeout",
        /// The most callers that may wait for the server at once (default: ten per connection,
        /// at least 100); beyond it, callers fail at once with `Error::Unavailable`.
        pub outage_waiters: Option<u32> = "outage_waiters",
        /// Failures in a row (failed checks, and the pool's connects to the host that fail at the
        /// connection level) that open the breaker of one host of a multi-host `url`: while it
        /// is open, finding the host to use does not wait for that host (unless no
        /// other host suits); the host's health watch half-opens it once it reaches the server.
        pub host_breaker_failures: u32 = "host_breaker_failures",
        /// The longest the breaker of one host of a multi-host `url` stays open: it half-opens
        /// as soon as the host's health watch reaches the server, and at the latest after
        /// this, when one check is let through again.
        pub host_breaker_open_max: Duration = "host_breaker_open_max",
        /// What sits between the pool and the server (a transaction pooler changes how ops
        /// run, see [`Pooler`]).
        pub pooler: Pooler = "pooler",
        /// Streaming replicas of this pool's server: `read_only` ops go to one whose lag is
        /// within `max_lag` (see [`crate::replica`]).
        pub replicas: Option<ReplicaUrls> = "replicas",
        /// With `replicas` from Patroni's REST API: how often its `/cluster` endpoint is asked
        /// for the cluster's members.
        pub replicas_refresh: Duration = "replicas_refresh",
        /// Maximum connections to each replica (default: `max`).
        pub replica_max: Option<u32> = "replica_max",
        /// A replica serves a `read_only` op only if it has replayed every write the primary
        /// acknowledged longer ago than this (an op may ask for less with
        /// [`OpBuilder::max_lag`](crate::OpBuilder::max_lag)).
        pub max_lag: Duration = "max_lag",
        /// What reads in a [`ReadSession`](crate::pool::replica::ReadSession) do after a write.
        pub read_your_writes: ReadYourWrites = "read_your_writes",
        /// How long after a write `read_your_writes` applies.
        pub read_your_writes_window: Duration = "read_your_writes_window",
    }
}

crate::settings::fields::choices!(
    /// The name used in configuration (`eager`, `lazy`).
    pub fn as_str for Startup { Eager = "eager", Lazy = "lazy" }
);

crate::settings::fields::choices!(
    /// The name used in configuration (`idle`, `always`, `never`).
    pub fn as_str for Validation { Idle = "idle", Always = "always", Never = "never" }
);

crate::settings::fields::choices!(
    /// The name used in configuration (`none`, `transaction`, `session`).
    pub fn as_str for Pooler { None = "none", Transaction = "transaction", Session = "session" }
);

impl PoolConfig {
    /// The most callers that may wait for the server at once: `outage_waiters`, or ten per
    /// connection and at least 100.
    pub fn max_outage_waiters(&self) -> u32 {
        self.outage_waiters
            .unwrap_or_else(|| self.max.saturating_mul(10).max(100))
    }
}

impl Section for PoolConfig {
    const KIND: PolicyKind = PolicyKind::Pool;
    const SCHEMA: &'static Schema = &schema::POOL;

    fn set(&mut self, key: &str, value: &Value) -> Result<(), String> {
        fields::set(self, key, value)
    }

    fn validate(&self) -> Result<(), Invalid> {
        fields::validate(self)
    }
}

/// What a full background queue does with one more write (`background_when_full`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// The submitter waits for room.
    Wait,
    /// The oldest queued write is dropped (and reported) to make room.
    DropOldest,
    /// The submitter gets `Error::BackgroundFull` (and the write is reported).
    Reject,
}

crate::settings::fields::choices!(
    /// The name used in configuration (`wait`, `drop_oldest`, `reject`).
    pub fn as_str for WhenFull { Wait = "wait", DropOldest = "drop_oldest", Reject = "reject" }
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Realistic values of many keys together; every key at its bounds is in
    /// `config::schema_test`.
    #[test]
    fn a_realistic_pool_is_accepted() {
        let mut c = PoolConfig::default();
        let good: &[(&str, Value)] = &[
            ("url", "postgres://a:b@h/d".into()),
            ("max", 150u32.into()),
            ("min", 10u32.into()),
            ("acquire_timeout", "2s".into()),
            ("idle_timeout", "5m".into()),
            ("max_lifetime", "30m".into()),
            ("connect_timeout", "10s".into()),
            ("startup", "lazy".into()),
            ("startup_timeout", "3s".into()),
            ("validation", "always".into()),
            ("validation_window", "250ms".into()),
            ("leak_threshold", "30s".into()),
            ("statement_timeout", "30s".into()),
            ("lock_timeout", "10s".into()),
            ("idle_in_transaction_session_timeout", "30s".into()),
            ("application_name", "harvest".into()),
            ("search_path", "app, public".into()),
            ("client_connection_check_interval", "1s".into()),
            ("outage_wait", "10s".into()),
            ("outage_waiters", 50u32.into()),
            ("pooler", "transaction".into()),
        ];
        for (k, v) in good {
            c.set(k, v).unwrap_or_else(|e| panic!("{k}: {e}"));
        }
        assert_eq!(c.max, 150);
        assert_eq!(c.startup, Startup::Lazy);
        assert_eq!(c.validation, Validation::Always);
        assert_eq!(c.pooler, Pooler::Transaction);
        c.validate().unwrap();
    }

    #[test]
    fn bad_values_say_what_was_expected() {
        let mut c = PoolConfig::default();
        assert_eq!(
            c.set("max", &0u32.into()).unwrap_err(),
            "a whole number from 1 to 10000"
        );
        assert!(
            c.set("acquire_timeout", &"2 parsecs".into())
                .unwrap_err()
                .contains("\"250ms\"")
        );
        assert_eq!(
            c.set("host_breaker_open_max", &"500ms".into()).unwrap_err(),
            "a duration such as \"250ms\" or \"5s\", from 1s to 1h"
        );
        assert!(
            c.set("startup", &"soon".into())
                .unwrap_err()
                .contains("\"eager\", \"lazy\"")
        );
        assert!(c.set("url", &"mysql://x".into()).is_err());
        assert!(c.set("search_path", &"a; drop table x".into()).is_err());
    }

    #[test]
    fn min_above_max_is_invalid() {
        let mut c = PoolConfig::default();
        c.set("max", &5u32.into()).unwrap();
        c.set("min", &6u32.into()).unwrap();
        let e = c.validate().unwrap_err();
        assert_eq!(e.key, "min");
        assert_eq!(
            e.expected,
            "at most `max` (5): a pool keeps at most `max` connections; lower `min` or raise `max`"
        );
    }

    #[test]
    fn url_password_stays_out_of_debug() {
        let mut c = PoolConfig::default();
        c.set("url", &"postgres://app:topsecret@h/d".into())
            .unwrap();
        assert!(!format!("{c:?}").contains("topsecret"));
    }
}
