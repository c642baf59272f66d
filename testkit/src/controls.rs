//! Controls of a [`PgServer`]: restart, stop, kill -9, ending backends, refusing connections
//! and changing settings, all usable while clients are connected.

use std::sync::Arc;

use sqlx_resilience_runtime::{Error, redact};

use crate::Result;
use crate::admin::{self, ident, literal, off_thread};
use crate::cluster::Cluster;
use crate::error::SERVER_HINT;
use crate::options::{RestartMode, ShutdownMode, is_setting_name};
use crate::server::PgServer;

impl PgServer {
    /// The cluster behind a throwaway server, or an error naming `action` for an external one.
    fn cluster(&self, action: &str) -> Result<&Cluster> {
        self.inner.cluster.as_ref().ok_or_else(|| not_owned(action))
    }

    /// Runs a blocking control of the cluster on a thread of its own.
    async fn control(
        &self,
        action: &'static str,
        work: impl FnOnce(&Cluster) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        self.cluster(action)?;
        let inner = Arc::clone(&self.inner);
        off_thread(action, move || match &inner.cluster {
            Some(cluster) => work(cluster),
            None => Err(not_owned(action)),
        })
        .await
    }

    /// Shuts the server down in `mode` and starts it again; returns once it accepts
    /// connections. Existing connections are ended. Throwaway servers only.
    pub async fn restart(&self, mode: RestartMode) -> Result<()> {
        self.control("restart the server", move |c| c.restart(mode))
            .await
    }

    /// Kills the postmaster with SIGKILL, waits until all its processes are gone (killing any
    /// that linger), then starts it again: the server runs crash recovery, as after a crash of
    /// the server process. Throwaway servers only.
    ///
    /// Throwaway servers run with `synchronous_commit = off`, so, as on any server with that
    /// setting, commits of the last fraction of a second before the kill may be lost. A test
    /// that asserts durability commits with `SET synchronous_commit = on` (or starts its server
    /// with that setting).
    ///
    /// The test process becomes the child subreaper of its descendants (Linux), so the
    /// backends the killed postmaster leaves behind are collected instead of lingering.
    pub async fn kill9_and_start(&self) -> Result<()> {
        self.control("kill the server with SIGKILL and start it", |c| {
            c.kill9_and_start()
        })
        .await
    }

    /// Kills the postmaster with SIGKILL and waits until all its processes are gone (killing
    /// any that linger); the server stays down until [`PgServer::start_again`], which runs
    /// crash recovery. Clients see their connections drop, and new ones are refused. Throwaway
    /// servers only.
    pub async fn kill9(&self) -> Result<()> {
        self.control("kill the server with SIGKILL", Cluster::kill9)
            .await
    }

    /// Shuts the server down in `mode` and waits until it has exited; it stays down until
    /// [`PgServer::start_again`]. Throwaway servers only.
    pub async fn stop(&self, mode: ShutdownMode) -> Result<()> {
        self.control("stop the server", move |c| c.stop(mode)).await
    }

    /// Starts a server stopped with [`PgServer::stop`] (or [`PgServer::kill9`]) on the same port; returns once it
    /// accepts connections. Does nothing if it is running. Throwaway servers only.
    pub async fn start_again(&self) -> Result<()> {
        self.control("start the server again", Cluster::start).await
    }

    /// Ends (`pg_terminate_backend`) every backend connected to `database` except the one
    /// asking, and waits (up to 5 s each, PostgreSQL 14 and later) until they have exited.
    /// Their clients get SQLSTATE 57P01 on their next statement. Returns how many were ended.
    /// Works on external servers too.
    pub async fn terminate_backends(&self, database: &str) -> Result<u64> {
        const ACTION: &str = "terminate backends";
        let call = if self.inner.version_num >= 140_000 {
            "pg_terminate_backend(pid, 5000)"
        } else {
            "pg_terminate_backend(pid)"
        };
        let sql = format!(
            "SELECT count(*) FILTER (WHERE {call}) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()"
        );
        let mut conn = admin::connect(&self.inner.admin_url)
            .await
            .map_err(|detail| Error::test_kit(ACTION, detail, SERVER_HINT))?;
        let result = tokio::time::timeout(
            admin::STATEMENT_LIMIT,
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                .bind(database)
                .fetch_one(&mut conn),
        )
        .await;
        let _ = sqlx::Connection::close(conn).await;
        match result {
            Ok(Ok(n)) => Ok(u64::try_from(n).unwrap_or(0)),
            Ok(Err(e)) => Err(Error::test_kit(
                ACTION,
                redact(&e.to_string()),
                "the admin user must be a superuser (or a member of pg_signal_backend)",
            )),
            Err(_) => Err(Error::test_kit(
                ACTION,
                format!("no answer within {:?}", admin::STATEMENT_LIMIT),
                SERVER_HINT,
            )),
        }
    }

    /// Makes new connections to `database` fail (`ALTER DATABASE .. ALLOW_CONNECTIONS false`);
    /// connections already open keep working.
    pub async fn refuse_connections(&self, database: &str) -> Result<()> {
        self.admin(
            "refuse connections",
            format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", ident(database)),
        )
        .await
    }

    /// Undoes [`PgServer::refuse_connections`].
    pub async fn allow_connections(&self, database: &str) -> Result<()> {
        self.admin(
            "allow connections",
            format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", ident(database)),
        )
        .await
    }

    /// Makes the server re-read its configuration (`pg_reload_conf()`). Backends apply it
    /// before their next statement; new connections see it at once.
    pub async fn reload(&self) -> Result<()> {
        self.admin(
            "reload the configuration",
            "SELECT pg_reload_conf()".to_owned(),
        )
        .await
    }

    /// Sets a server parameter with `ALTER SYSTEM SET name = 'value'` and reloads. Parameters
    /// that need a restart take effect after [`PgServer::restart`]. Throwaway servers only:
    /// `ALTER SYSTEM` would outlive the test on a server you own.
    pub async fn set_setting(&self, name: &str, value: &str) -> Result<()> {
        const ACTION: &str = "change a server setting";
        self.cluster(ACTION)?;
        if !is_setting_name(name) {
            return Err(Error::test_kit(
                ACTION,
                format!("`{name}` is not a setting name"),
                "use a postgresql.conf parameter name such as `work_mem`",
            ));
        }
        self.admin(
            ACTION,
            format!("ALTER SYSTEM SET {name} = {}", literal(value)),
        )
        .await?;
        self.reload().await
    }

    async fn admin(&self, action: &str, sql: String) -> Result<()> {
        admin::execute(&self.inner.admin_url, sql)
            .await
            .map_err(|detail| Error::test_kit(action, detail, SERVER_HINT))
    }
}

fn not_owned(action: &str) -> Error {
    Error::test_kit(
        action,
        "the server comes from DATABASE_URL, which the test kit does not own",
        "use PgServer::start() for a dedicated throwaway server in tests that control the server",
    )
}
