//! [`PgBouncerOptions`]: the settings of a PgBouncer the test kit starts.

use std::time::Duration;

use sqlx_resilience_runtime::Error;

use crate::Result;

/// When PgBouncer hands a server connection back to its pool (`pool_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolMode {
    /// After the client disconnects: session state (prepared statements, `SET`, advisory
    /// locks, `LISTEN`) works as without a pooler.
    Session,
    /// After each transaction (and each statement outside one): the mode many application
    /// instances share a server through, where nothing may rely on session state.
    Transaction,
    /// After each statement; multi-statement transactions are refused.
    Statement,
}

impl PoolMode {
    /// The value of `pool_mode` in pgbouncer.ini.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
            PoolMode::Statement => "statement",
        }
    }
}

/// Settings of a PgBouncer started by [`PgBouncer::start_with`](crate::PgBouncer::start_with).
///
/// The defaults are PgBouncer's own, except `pool_mode` (transaction) and
/// `ignore_startup_parameters` (`extra_float_digits`, which sqlx sends in every startup packet
/// and PgBouncer refuses unless told to ignore it).
///
/// ```
/// use std::time::Duration;
/// use sqlx_resilience_testkit::{PgBouncerOptions, PoolMode};
///
/// let options = PgBouncerOptions::new()
///     .pool_mode(PoolMode::Transaction)
///     .default_pool_size(5)
///     .query_wait_timeout(Duration::from_secs(2))
///     .server_login_retry(Duration::from_millis(500))
///     .setting("stats_period", "1");
/// assert_eq!(options.default_pool_size, 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgBouncerOptions {
    /// `pool_mode` (default [`PoolMode::Transaction`]).
    pub pool_mode: PoolMode,
    /// `default_pool_size`: server connections per database and user (default 20).
    pub default_pool_size: u32,
    /// `max_client_conn`: client connections PgBouncer accepts (default 100).
    pub max_client_conn: u32,
    /// `query_wait_timeout`: how long a query may wait for a server connection before the
    /// client is disconnected; zero waits forever (default 120 s).
    pub query_wait_timeout: Duration,
    /// `server_login_retry`: after a failed server login, how long PgBouncer refuses new
    /// clients of that pool at once instead of trying again (default 15 s).
    pub server_login_retry: Duration,
    /// `ignore_startup_parameters`: startup-packet parameters PgBouncer accepts without
    /// tracking them (default `extra_float_digits`). Empty makes sqlx's default connections
    /// fail, as against a PgBouncer configured without it.
    pub ignore_startup_parameters: Vec<String>,
    /// Extra `[pgbouncer]` settings, written after the test kit's own (so they win).
    pub settings: Vec<(String, String)>,
}

impl Default for PgBouncerOptions {
    fn default() -> Self {
        PgBouncerOptions {
            pool_mode: PoolMode::Transaction,
            default_pool_size: 20,
            max_client_conn: 100,
            query_wait_timeout: Duration::from_secs(120),
            server_login_retry: Duration::from_secs(15),
            ignore_startup_parameters: vec!["extra_float_digits".to_owned()],
            settings: Vec::new(),
        }
    }
}

impl PgBouncerOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `pool_mode`.
    pub fn pool_mode(mut self, mode: PoolMode) -> Self {
        self.pool_mode = mode;
        self
    }

    /// Sets `default_pool_size`.
    pub fn default_pool_size(mut self, n: u32) -> Self {
        self.default_pool_size = n;
        self
    }

    /// Sets `max_client_conn`.
    pub fn max_client_conn(mut self, n: u32) -> Self {
        self.max_client_conn = n;
        self
    }

    /// Sets `query_wait_timeout`.
    pub fn query_wait_timeout(mut self, limit: Duration) -> Self {
        self.query_wait_timeout = limit;
        self
    }

    /// Sets `server_login_retry`.
    pub fn server_login_retry(mut self, delay: Duration) -> Self {
        self.server_login_retry = delay;
        self
    }

    /// Replaces `ignore_startup_parameters`.
    pub fn ignore_startup_parameters<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.ignore_startup_parameters = names.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a `[pgbouncer]` setting (`name = value`), such as `("stats_period", "1")`.
    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }

    pub(crate) fn check(&self) -> Result<()> {
        let invalid = |detail: String, hint: &str| {
            Err(Error::test_kit("start PgBouncer", detail, hint.to_owned()))
        };
        if self.default_pool_size == 0 || self.max_client_conn == 0 {
            return invalid(
                "default_pool_size and max_client_conn must be at least 1".to_owned(),
                "raise them",
            );
        }
        let bad_name = |name: &str| {
            name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if let Some((name, _)) = self.settings.iter().find(|(name, _)| bad_name(name)) {
            return invalid(
                format!("`{name}` is not a PgBouncer setting name"),
                "use a pgbouncer.ini key such as `stats_period`",
            );
        }
        let bad_value = |value: &str| value.contains(['\n', '\r']);
        if let Some((name, _)) = self.settings.iter().find(|(_, value)| bad_value(value)) {
            return invalid(
                format!("the value of `{name}` spans lines"),
                "give a one-line value",
            );
        }
        if let Some(name) = self.ignore_startup_parameters.iter().find(|n| bad_name(n)) {
            return invalid(
                format!("`{name}` is not a startup parameter name"),
                "use names such as `extra_float_digits` or `options`",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_setting_names_and_values_that_would_break_the_file() {
        assert!(PgBouncerOptions::new().check().is_ok());
        let message = PgBouncerOptions::new()
            .setting("a = b\n[databases]", "x")
            .check()
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("not a PgBouncer setting name"),
            "{message}"
        );
        assert!(
            PgBouncerOptions::new()
                .setting("stats_period", "1\nx")
                .check()
                .is_err()
        );
        assert!(
            PgBouncerOptions::new()
                .default_pool_size(0)
                .check()
                .is_err()
        );
    }
}
