//! [`PgServer`]: one PostgreSQL server for tests, and how it is started or found. Its
//! controls are in `controls.rs`, its test databases in `database.rs`.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use sqlx::postgres::PgConnectOptions;
use sqlx_resilience_runtime::{Error, redact};

use crate::Result;
use crate::admin::{self, block_on, off_thread};
use crate::cluster::Cluster;
use crate::options::ServerOptions;
use crate::url::rewrite;

/// A PostgreSQL server for tests: a throwaway cluster the test kit started, or the server
/// named by `DATABASE_URL`.
///
/// `Send + Sync`: many tests share one, and controls work while pools are connected. A
/// dedicated server stops, and its directory is removed, when the `PgServer` and every
/// [`TestDb`](crate::TestDb) created from it are dropped — or when the test process ends in
/// any way.
pub struct PgServer {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) addr: SocketAddr,
    /// The superuser's URL to the maintenance database.
    pub(crate) admin_url: String,
    /// The URL tests connect with (the `app` role; the `DATABASE_URL` user on external servers).
    pub(crate) app_url: String,
    pub(crate) version_num: u32,
    /// `None` for an external server.
    pub(crate) cluster: Option<Cluster>,
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
        let server =
            PgServer::from_cluster(Cluster::create(options)?, "start a throwaway PostgreSQL")?;
        tracing::info!(
            elapsed = ?started.elapsed(),
            port = server.port(),
            dir = ?server.data_dir(),
            "started a throwaway PostgreSQL"
        );
        Ok(server)
    }

    /// A server for a running cluster (a fresh one, or a replica cloned from another).
    pub(crate) fn from_cluster(cluster: Cluster, action: &str) -> Result<PgServer> {
        let admin_url = cluster.superuser_url("postgres");
        let version_num = block_on(server_version_num(&admin_url))
            .map_err(|detail| Error::test_kit(action, detail, crate::error::SERVER_HINT))?;
        let port = cluster.port;
        let app_url = format!(
            "postgres://app:{}@127.0.0.1:{port}/postgres?sslmode=disable",
            cluster.app_password
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

    /// Another handle to the same server (kept by each [`TestDb`](crate::TestDb)).
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

    /// The certificates of a server started with [`ServerOptions::tls`] (`None` otherwise).
    pub fn tls_files(&self) -> Option<&crate::TlsFiles> {
        self.inner.cluster.as_ref().and_then(|c| c.tls.as_ref())
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

    /// The URL of the app user (or the superuser) to `database`, optionally through `host_port`.
    pub(crate) fn url_for(&self, app: bool, database: &str, host_port: Option<&str>) -> String {
        let base = if app {
            &self.inner.app_url
        } else {
            &self.inner.admin_url
        };
        rewrite(base, database, host_port).unwrap_or_else(|| base.clone())
    }
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
