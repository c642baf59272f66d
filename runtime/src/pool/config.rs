use std::time::Duration;

use crate::config::{Invalid, KeySpec, Section, Value, parse};
use crate::error::PolicyKind;
use crate::secret::DatabaseUrl;

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

/// Settings of one named pool.
#[derive(Clone, PartialEq)]
pub struct PoolConfig {
    /// Server URL for this pool; defaults to the runtime's URL.
    pub url: Option<DatabaseUrl>,
    /// Maximum connections.
    pub max: u32,
    /// Connections kept open when idle.
    pub min: u32,
    /// How long a caller waits for a connection.
    pub acquire_timeout: Duration,
    /// Idle connections above `min` are closed after this long.
    pub idle_timeout: Option<Duration>,
    /// Connections are replaced after this long.
    pub max_lifetime: Option<Duration>,
    /// Time allowed to open one connection.
    pub connect_timeout: Duration,
    /// Eager or lazy start-up.
    pub startup: Startup,
    /// How long an eager start-up may take before it fails.
    pub startup_timeout: Duration,
    /// How connections are checked before use.
    pub validation: Validation,
    /// Idle time after which a connection is pinged before use.
    pub validation_window: Duration,
    /// Warn when an op holds a connection longer than this.
    pub leak_threshold: Option<Duration>,
    /// `statement_timeout` for every session.
    pub statement_timeout: Option<Duration>,
    /// `lock_timeout` for every session.
    pub lock_timeout: Option<Duration>,
    /// `idle_in_transaction_session_timeout` for every session.
    pub idle_in_transaction_session_timeout: Option<Duration>,
    /// `application_name` for every session (default: the pool's name).
    pub application_name: Option<String>,
    /// `search_path` for every session.
    pub search_path: Option<String>,
    /// `client_connection_check_interval` (PostgreSQL 14+): how often the server checks that
    /// the client is still there while a statement runs, so abandoned statements stop.
    pub client_connection_check_interval: Option<Duration>,
    /// While the server is down, callers wait for it to come back only while the outage is
    /// younger than this (and within their deadline and `acquire_timeout`); afterwards they
    /// fail at once with `Error::Unavailable` until a probe reaches the server.
    pub outage_wait: Duration,
    /// The most callers that may wait for the server at once (default: ten per connection,
    /// at least 100); beyond it, callers fail at once with `Error::Unavailable`.
    pub outage_waiters: Option<u32>,
}

impl std::fmt::Debug for PoolConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolConfig")
            .field("url", &self.url)
            .field("max", &self.max)
            .field("min", &self.min)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_lifetime", &self.max_lifetime)
            .field("connect_timeout", &self.connect_timeout)
            .field("startup", &self.startup)
            .field("startup_timeout", &self.startup_timeout)
            .field("validation", &self.validation)
            .field("validation_window", &self.validation_window)
            .field("leak_threshold", &self.leak_threshold)
            .field("statement_timeout", &self.statement_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .field(
                "idle_in_transaction_session_timeout",
                &self.idle_in_transaction_session_timeout,
            )
            .field("application_name", &self.application_name)
            .field("search_path", &self.search_path)
            .field(
                "client_connection_check_interval",
                &self.client_connection_check_interval,
            )
            .field("outage_wait", &self.outage_wait)
            .field("outage_waiters", &self.outage_waiters)
            .finish()
    }
}

impl Default for PoolConfig {
    /// HikariCP-like defaults, with a shorter acquire timeout: a caller waiting 30 s for a
    /// connection is a caller that has already given up.
    fn default() -> Self {
        PoolConfig {
            url: None,
            max: 10,
            min: 0,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            connect_timeout: Duration::from_secs(10),
            startup: Startup::Eager,
            startup_timeout: Duration::from_secs(10),
            validation: Validation::Idle,
            validation_window: Duration::from_millis(500),
            leak_threshold: None,
            statement_timeout: None,
            lock_timeout: None,
            idle_in_transaction_session_timeout: None,
            application_name: None,
            search_path: None,
            client_connection_check_interval: Some(Duration::from_millis(250)),
            outage_wait: Duration::from_secs(5),
            outage_waiters: None,
        }
    }
}

impl PoolConfig {
    /// The most callers that may wait for the server at once: `outage_waiters`, or ten per
    /// connection and at least 100.
    pub fn max_outage_waiters(&self) -> u32 {
        self.outage_waiters
            .unwrap_or_else(|| self.max.saturating_mul(10).max(100))
    }
}

const DAY: Duration = Duration::from_secs(24 * 3600);

macro_rules! key {
    ($key:literal, $expected:literal, $doc:literal) => {
        KeySpec {
            key: $key,
            expected: $expected,
            doc: $doc,
        }
    };
}

impl Section for PoolConfig {
    const KIND: PolicyKind = PolicyKind::Pool;

    const KEYS: &'static [KeySpec] = &[
        key!(
            "url",
            "a postgres:// URL",
            "server URL for this pool (default: the runtime's URL)"
        ),
        key!(
            "max",
            "a whole number from 1 to 10000",
            "maximum connections"
        ),
        key!(
            "min",
            "a whole number from 0 to max",
            "connections kept open when idle"
        ),
        key!(
            "acquire_timeout",
            "a duration",
            "how long a caller waits for a connection"
        ),
        key!(
            "idle_timeout",
            "a duration",
            "idle connections above min close after this long"
        ),
        key!(
            "max_lifetime",
            "a duration",
            "connections are replaced after this long"
        ),
        key!(
            "connect_timeout",
            "a duration",
            "time allowed to open one connection"
        ),
        key!(
            "startup",
            "\"eager\" or \"lazy\"",
            "open connections at start-up or on first use"
        ),
        key!(
            "startup_timeout",
            "a duration",
            "how long an eager start-up may take"
        ),
        key!(
            "validation",
            "\"idle\", \"always\" or \"never\"",
            "when connections are pinged before use"
        ),
        key!(
            "validation_window",
            "a duration",
            "idle time after which a connection is pinged"
        ),
        key!(
            "leak_threshold",
            "a duration",
            "warn when an op holds a connection longer"
        ),
        key!(
            "statement_timeout",
            "a duration",
            "statement_timeout of every session"
        ),
        key!(
            "lock_timeout",
            "a duration",
            "lock_timeout of every session"
        ),
        key!(
            "idle_in_transaction_session_timeout",
            "a duration",
            "idle_in_transaction_session_timeout of every session"
        ),
        key!(
            "application_name",
            "text",
            "application_name of every session"
        ),
        key!("search_path", "text", "search_path of every session"),
        key!(
            "client_connection_check_interval",
            "a duration",
            "how often the server checks the client is still there during a statement"
        ),
        key!(
            "outage_wait",
            "a duration",
            "callers wait for a down server only while the outage is younger than this (default 5s)"
        ),
        key!(
            "outage_waiters",
            "a whole number from 0 to 1000000",
            "the most callers waiting for a down server at once (default 10 per connection, at least 100)"
        ),
    ];

    fn set(&mut self, key: &str, value: &Value) -> Result<(), String> {
        match key {
            "url" => {
                let url = value.as_str().ok_or("a postgres:// URL")?;
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err("a URL starting with postgres:// or postgresql://".into());
                }
                self.url = Some(DatabaseUrl::new(url));
            }
            "max" => self.max = parse::count(value, 1, 10_000)?,
            "min" => self.min = parse::count(value, 0, 10_000)?,
            "acquire_timeout" => self.acquire_timeout = parse::duration(value, DAY)?,
            "idle_timeout" => self.idle_timeout = Some(parse::duration(value, DAY)?),
            "max_lifetime" => self.max_lifetime = Some(parse::duration(value, 30 * DAY)?),
            "connect_timeout" => self.connect_timeout = parse::duration(value, DAY)?,
            "startup" => {
                self.startup = match parse::choice(value, &["eager", "lazy"])? {
                    "eager" => Startup::Eager,
                    _ => Startup::Lazy,
                }
            }
            "startup_timeout" => self.startup_timeout = parse::duration(value, DAY)?,
            "validation" => {
                self.validation = match parse::choice(value, &["idle", "always", "never"])? {
                    "idle" => Validation::Idle,
                    "always" => Validation::Always,
                    _ => Validation::Never,
                }
            }
            "validation_window" => self.validation_window = parse::duration(value, DAY)?,
            "leak_threshold" => self.leak_threshold = Some(parse::duration(value, DAY)?),
            "statement_timeout" => self.statement_timeout = Some(parse::duration(value, DAY)?),
            "lock_timeout" => self.lock_timeout = Some(parse::duration(value, DAY)?),
            "idle_in_transaction_session_timeout" => {
                self.idle_in_transaction_session_timeout = Some(parse::duration(value, DAY)?)
            }
            "application_name" => {
                let name = value.as_str().ok_or("text")?;
                if name.len() > 63 || !name.is_ascii() {
                    return Err("ASCII text of at most 63 bytes".into());
                }
                self.application_name = Some(name.to_owned());
            }
            "search_path" => {
                let path = value.as_str().ok_or("text")?;
                if path.contains(['\'', ';', '\\']) {
                    return Err("a comma-separated list of schema names".into());
                }
                self.search_path = Some(path.to_owned());
            }
            "client_connection_check_interval" => {
                self.client_connection_check_interval = Some(parse::duration(value, DAY)?)
            }
            "outage_wait" => self.outage_wait = parse::duration(value, DAY)?,
            "outage_waiters" => self.outage_waiters = Some(parse::count(value, 0, 1_000_000)?),
            other => return Err(format!("one of the pool keys (not `{other}`)")),
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), Invalid> {
        if self.min > self.max {
            return Err(Invalid::new(
                "min",
                self.min,
                format!("at most max ({})", self.max),
            ));
        }
        if let (Some(lock), Some(stmt)) = (self.lock_timeout, self.statement_timeout)
            && lock > stmt
        {
            return Err(Invalid::new(
                "lock_timeout",
                humantime::format_duration(lock),
                format!(
                    "at most statement_timeout ({}), or it can never fire",
                    humantime::format_duration(stmt)
                ),
            ));
        }
        if let (Some(idle), Some(life)) = (self.idle_timeout, self.max_lifetime)
            && idle > life
        {
            return Err(Invalid::new(
                "idle_timeout",
                humantime::format_duration(idle),
                format!(
                    "at most max_lifetime ({})",
                    humantime::format_duration(life)
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_accepted() {
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
        ];
        for (k, v) in good {
            c.set(k, v).unwrap_or_else(|e| panic!("{k}: {e}"));
        }
        assert_eq!(
            PoolConfig::KEYS.len(),
            good.len(),
            "a key is missing from the test"
        );
        assert_eq!(c.max, 150);
        assert_eq!(c.startup, Startup::Lazy);
        assert_eq!(c.validation, Validation::Always);
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
        assert_eq!(e.expected, "at most max (5)");
    }

    #[test]
    fn url_password_stays_out_of_debug() {
        let mut c = PoolConfig::default();
        c.set("url", &"postgres://app:topsecret@h/d".into())
            .unwrap();
        assert!(!format!("{c:?}").contains("topsecret"));
    }
}
