//! [`PgServer`]: one PostgreSQL server for tests, its options and its controls.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use sqlx::postgres::PgConnectOptions;
use sqlx_resilience_runtime::{Error, redact};

use crate::Result;
use crate::admin::{self, block_on, ident, literal, off_thread, random_token};
use crate::cluster::Cluster;
use crate::database::TestDb;
use crate::url::rewrite;

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

/// The modes [`PgServer::restart`] accepts: the same as [`ShutdownMode`].
pub type RestartMode = ShutdownMode;

/// Options of a dedicated throwaway server ([`PgServer::start_with`]).
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
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 300,
            superuser_reserved_connections: 3,
            settings: Vec::new(),
            preload_pg_stat_statements: None,
            bindir: None,
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

fn is_setting_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// A PostgreSQL server for tests: a throwaway cluster the test kit started, or the server
/// named by `DATABASE_URL`.
///
/// `Send + Sync`: many tests share one, and controls work while pools are connected. A
/// dedicated server stops, and its directory is removed, when the `PgServer` and every
/// [`TestDb`] created from it are dropped — or when the test process ends in any way.
pub struct PgServer {
    inner: Arc<Inner>,
}

struct Inner {
    host: String,
    port: u16,
    addr: SocketAddr,
    /// The superuser's URL to the maintenance database.
    admin_url: String,
    /// The URL tests connect with (the `app` role; the `DATABASE_URL` user on external servers).
    app_url: String,
    version_num: u32,
    /// `None` for an external server.
    cluster: Option<Cluster>,
}

/// A failed start of the shared server, kept so every test reports it without retrying.
#[derive(Debug)]
struct Failure {
    action: String,
    detail: String,
    hint: String,
}

impl Failure {
    fn from_error(error: Error) -> Failure {
        match error {
            Error::TestKit {
                action,
                detail,
                hint,
            } => Failure {
                action,
                detail,
                hint,
            },
            other => Failure {
                action: "start the shared test server".to_owned(),
                detail: other.to_string(),
                hint: "see the detail".to_owned(),
            },
        }
    }

    fn to_error(&self) -> Error {
        Error::test_kit(&self.action, &self.detail, self.hint.clone())
    }
}

impl PgServer {
    /// The server every test of this process shares, started on first use.
    ///
    /// With `DATABASE_URL` set, that server (a superuser is expected; nothing is started).
    /// Otherwise a throwaway cluster, started once however many tests ask at the same time
    /// and from whichever runtimes; it is never dropped, and its watchdog stops it and
    /// removes its directory when the test process ends. A failed start is reported to every
    /// caller without starting again.
    pub async fn shared() -> Result<&'static PgServer> {
        static SHARED: OnceLock<std::result::Result<PgServer, Failure>> = OnceLock::new();
        if SHARED.get().is_none() {
            off_thread("start the shared test server", || {
                SHARED.get_or_init(|| PgServer::open_shared().map_err(Failure::from_error));
                Ok(())
            })
            .await?;
        }
        match SHARED.get() {
            Some(Ok(server)) => Ok(server),
            Some(Err(failure)) => Err(failure.to_error()),
            None => unreachable!("initialised above"),
        }
    }

    /// A dedicated throwaway cluster with default options, even when `DATABASE_URL` is set.
    /// Use it for tests that restart, stop or kill the server.
    pub async fn start() -> Result<PgServer> {
        Self::start_with(ServerOptions::default()).await
    }

    /// A dedicated throwaway cluster with `options`.
    pub async fn start_with(options: ServerOptions) -> Result<PgServer> {
        off_thread("start a throwaway PostgreSQL", move || {
            PgServer::throwaway(&options)
        })
        .await
    }

    fn open_shared() -> Result<PgServer> {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => PgServer::external(url),
            _ => PgServer::throwaway(&ServerOptions::default()),
        }
    }

    fn throwaway(options: &ServerOptions) -> Result<PgServer> {
        let started = std::time::Instant::now();
        let cluster = Cluster::create(options)?;
        let admin_url = cluster.superuser_url("postgres");
        let version_num = block_on(server_version_num(&admin_url)).map_err(|detail| {
            Error::test_kit(
                "start a throwaway PostgreSQL",
                detail,
                crate::error::SERVER_HINT,
            )
        })?;
        let port = cluster.port;
        let app_url = format!(
            "postgres://app:{}@127.0.0.1:{port}/postgres?sslmode=disable",
            cluster.app_password
        );
        tracing::info!(
            elapsed = ?started.elapsed(),
            port,
            dir = %cluster.dir.display(),
            "started a throwaway PostgreSQL"
        );
        Ok(PgServer {
            inner: Arc::new(Inner {
                host: "127.0.0.1".to_owned(),
                port,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                admin_url,
                app_url,
                version_num,
                cluster: Some(cluster),
            }),
        })
    }

    fn external(url: String) -> Result<PgServer> {
        const ACTION: &str = "use the server in DATABASE_URL";
        let options = PgConnectOptions::from_str(&url).map_err(|e| {
            Error::test_kit(
                ACTION,
                format!(
                    "`{}` is not a valid URL: {}",
                    redact(&url),
                    redact(&e.to_string())
                ),
                "set DATABASE_URL to postgres://user:password@host:port/database",
            )
        })?;
        let host = options.get_host().to_owned();
        let port = options.get_port();
        if host.starts_with('/') {
            return Err(Error::test_kit(
                ACTION,
                format!("`{}` names a Unix socket", redact(&url)),
                "name a TCP host and port: the fault proxy and url_via need one",
            ));
        }
        let addr = (host.as_str(), port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| {
                Error::test_kit(
                    ACTION,
                    format!("cannot resolve `{host}:{port}`"),
                    "check the host name in DATABASE_URL",
                )
            })?;
        let version_num = block_on(server_version_num(&url)).map_err(|detail| {
            Error::test_kit(
                ACTION,
                detail,
                "check that the server is up and DATABASE_URL's user and password are right, \
                 or unset DATABASE_URL to use a throwaway server",
            )
        })?;
        Ok(PgServer {
            inner: Arc::new(Inner {
                host,
                port,
                addr,
                admin_url: url.clone(),
                app_url: url,
                version_num,
                cluster: None,
            }),
        })
    }

    /// Another handle to the same server (kept by each [`TestDb`]).
    pub(crate) fn handle(&self) -> PgServer {
        PgServer {
            inner: Arc::clone(&self.inner),
        }
    }

    /// The host clients connect to (`127.0.0.1` for throwaway clusters).
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// The server's TCP address: the upstream of a [`crate::FaultProxy`].
    pub fn tcp_addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The superuser's URL to the `postgres` database (for an external server: `DATABASE_URL`
    /// itself).
    ///
    /// It contains the password: keep it out of logs and assertion messages (`Debug` of
    /// `PgServer` redacts it; `sqlx_resilience_runtime::redact` does the same for any text).
    pub fn admin_url(&self) -> &str {
        &self.inner.admin_url
    }

    /// Whether the test kit started this server (and so may restart, stop or kill it).
    pub fn is_throwaway(&self) -> bool {
        self.inner.cluster.is_some()
    }

    /// The cluster's data directory (`None` for an external server).
    pub fn data_dir(&self) -> Option<&Path> {
        self.inner.cluster.as_ref().map(|c| c.data.as_path())
    }

    /// The server's version as `server_version_num` (150018 for 15.18).
    pub fn version_num(&self) -> u32 {
        self.inner.version_num
    }

    /// The PID of the running postmaster of a throwaway cluster (`None` for an external
    /// server, or while it is stopped).
    pub fn postmaster_pid(&self) -> Option<u32> {
        self.inner
            .cluster
            .as_ref()
            .and_then(Cluster::postmaster_pid)
    }

    /// A fresh database with a unique name (`t_<counter>_<random>`), owned by the `app` role
    /// (on an external server: by `DATABASE_URL`'s user). Dropped when the [`TestDb`] is.
    pub async fn create_database(&self) -> Result<TestDb> {
        static COUNTER: AtomicU64 = AtomicU64::new(1);
        let name = format!(
            "t_{}_{}",
            COUNTER.fetch_add(1, Ordering::Relaxed),
            random_token(8)
        );
        let owner = if self.is_throwaway() {
            " OWNER app"
        } else {
            ""
        };
        admin::execute(
            &self.inner.admin_url,
            format!("CREATE DATABASE {}{owner}", ident(&name)),
        )
        .await
        .map_err(|detail| {
            Error::test_kit(
                "create a test database",
                detail,
                "check that the server is up and the user may create databases",
            )
        })?;
        Ok(TestDb::new(self.handle(), name))
    }

    /// The URL of the app user (or the superuser) to `database`, optionally through `host_port`.
    pub(crate) fn url_for(&self, app: bool, database: &str, host_port: Option<&str>) -> String {
        let base = if app {
            &self.inner.app_url
        } else {
            &self.inner.admin_url
        };
        rewrite(base, database, host_port).unwrap_or_else(|| base.clone())
    }

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
    /// that linger), then starts it again: the server runs crash recovery, as after a power
    /// loss, and committed data survives. Throwaway servers only.
    ///
    /// The test process becomes the child subreaper of its descendants (Linux), so the
    /// backends the killed postmaster leaves behind are collected instead of lingering.
    pub async fn kill9_and_start(&self) -> Result<()> {
        self.control("kill the server with SIGKILL and start it", |c| {
            c.kill9_and_start()
        })
        .await
    }

    /// Shuts the server down in `mode` and waits until it has exited; it stays down until
    /// [`PgServer::start_again`]. Throwaway servers only.
    pub async fn stop(&self, mode: ShutdownMode) -> Result<()> {
        self.control("stop the server", move |c| c.stop(mode)).await
    }

    /// Starts a server stopped with [`PgServer::stop`] on the same port; returns once it
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
            .map_err(|detail| Error::test_kit(ACTION, detail, crate::error::SERVER_HINT))?;
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
                crate::error::SERVER_HINT,
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
            .map_err(|detail| Error::test_kit(action, detail, crate::error::SERVER_HINT))
    }
}

fn not_owned(action: &str) -> Error {
    Error::test_kit(
        action,
        "the server comes from DATABASE_URL, which the test kit does not own",
        "use PgServer::start() for a dedicated throwaway server in tests that control the server",
    )
}

async fn server_version_num(url: &str) -> std::result::Result<u32, String> {
    let text: String = admin::scalar(url, "SHOW server_version_num").await?;
    text.trim()
        .parse()
        .map_err(|_| format!("unexpected server_version_num `{text}`"))
}

impl fmt::Debug for PgServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgServer")
            .field("addr", &self.inner.addr)
            .field("throwaway", &self.is_throwaway())
            .field("data_dir", &self.data_dir())
            .field("version_num", &self.inner.version_num)
            .field("admin_url", &redact(&self.inner.admin_url))
            .finish()
    }
}
