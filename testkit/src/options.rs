//! [`ServerOptions`] of a dedicated server, and the [`ShutdownMode`]s of its controls.

use std::path::PathBuf;

use sqlx_resilience_runtime::Error;

use crate::Result;

/// How a server shuts down, as in `pg_ctl stop -m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShutdownMode {
    /// Waits for every client to disconnect (SIGTERM). Bounded: an error after 60 s.
    Smart,
    /// Rolls back open transactions and disconnects clients (SIGINT).
    Fast,
    /// Ends every process at once without a checkpoint (SIGQUIT); the next start runs
    /// crash recovery.
    Immediate,
}

/// The modes [`PgServer::restart`](crate::PgServer::restart) accepts: the same as [`ShutdownMode`].
pub type RestartMode = ShutdownMode;

/// Options of a dedicated throwaway server ([`PgServer::start_with`](crate::PgServer::start_with)).
///
/// ```
/// use sqlx_resilience_testkit::ServerOptions;
///
/// let options = ServerOptions::new()
///     .max_connections(50)
///     .setting("statement_timeout", "5s")
///     .preload_pg_stat_statements(false);
/// assert_eq!(options.max_connections, 50);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerOptions {
    /// `max_connections` (default 300).
    pub max_connections: u32,
    /// `superuser_reserved_connections` (default 3).
    pub superuser_reserved_connections: u32,
    /// Extra `postgresql.conf` settings, written after the test kit's own (so they win).
    pub settings: Vec<(String, String)>,
    /// Whether to preload `pg_stat_statements`. `None` (the default): preload it when the
    /// installed version ships it (`pg_stat_statements.so` under `pg_config --pkglibdir`).
    pub preload_pg_stat_statements: Option<bool>,
    /// The directory holding `initdb` and `postgres`. `None` (the default):
    /// `SQLX_RESILIENCE_PG_BINDIR`, else `PATH`, `pg_config --bindir` and
    /// `/usr/lib/postgresql/*/bin`, newest version first.
    pub bindir: Option<PathBuf>,
    /// Whether the server speaks TLS, with certificates the test kit makes
    /// ([`PgServer::tls_files`](crate::PgServer::tls_files)). Default: off.
    pub tls: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 300,
            superuser_reserved_connections: 3,
            settings: Vec::new(),
            preload_pg_stat_statements: None,
            bindir: None,
            tls: false,
        }
    }
}

impl ServerOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `max_connections`.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets `superuser_reserved_connections`.
    pub fn superuser_reserved_connections(mut self, n: u32) -> Self {
        self.superuser_reserved_connections = n;
        self
    }

    /// Adds a `postgresql.conf` setting (`name = 'value'`).
    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }

    /// Preloads `pg_stat_statements` (or not), instead of deciding by what is installed.
    pub fn preload_pg_stat_statements(mut self, preload: bool) -> Self {
        self.preload_pg_stat_statements = Some(preload);
        self
    }

    /// Turns TLS on: the test kit makes a certificate authority and a server certificate for
    /// `127.0.0.1` and `localhost` (with the `openssl` command), so clients can connect with
    /// `sslmode=verify-full`.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Uses the server binaries in `dir`.
    pub fn bindir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bindir = Some(dir.into());
        self
    }

    pub(crate) fn check(&self) -> Result<()> {
        let invalid = |detail: String, hint: &str| {
            Err(Error::test_kit(
                "start a throwaway PostgreSQL",
                detail,
                hint.to_owned(),
            ))
        };
        if self.superuser_reserved_connections >= self.max_connections {
            return invalid(
                format!(
                    "superuser_reserved_connections ({}) must be below max_connections ({})",
                    self.superuser_reserved_connections, self.max_connections
                ),
                "raise max_connections or lower superuser_reserved_connections",
            );
        }
        if let Some((name, _)) = self
            .settings
            .iter()
            .find(|(name, _)| !is_setting_name(name))
        {
            return invalid(
                format!("`{name}` is not a setting name"),
                "use a postgresql.conf parameter name such as `work_mem` or `auto_explain.log_min_duration`",
            );
        }
        Ok(())
    }
}

pub(crate) fn is_setting_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}
