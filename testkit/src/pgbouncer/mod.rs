//! [`PgBouncer`]: a real PgBouncer in front of a [`PgServer`], its URLs, its admin console and
//! its controls (`PAUSE`/`RESUME`, `RECONNECT`, kill -9 and start again on the same port).

mod config;
mod console;
mod options;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx_resilience_runtime::{Error, redact};

use self::config::{AuthEntry, Layout, auth_file, ini};
use crate::Result;
use crate::admin::{block_on, off_thread};
use crate::command::RunAs;
use crate::database::TestDb;
use crate::error::SERVER_HINT;
use crate::scratch::free_port;
use crate::server::PgServer;
use crate::service::{Program, Services};
use crate::tools::PGBOUNCER;
use crate::url::{credentials, rewrite};

pub use self::console::{BouncerPoolRow, BouncerStatsRow, ConsoleRow};
pub use self::options::{PgBouncerOptions, PoolMode};

/// The action of every failure while bringing PgBouncer up.
const START: &str = "start PgBouncer";

/// The program's name among the services of its directory.
const NAME: &str = "pgbouncer";

/// How long PgBouncer may take to listen and answer its console.
const READY_LIMIT: Duration = Duration::from_secs(60);

/// How many fresh ports to try when another process takes the chosen one first.
const PORT_ATTEMPTS: usize = 5;

/// A PgBouncer in front of a [`PgServer`], on a loopback port, in a temp directory of its
/// own. Dropping it stops PgBouncer and removes the directory; so does the end of the test
/// process, in any way (see the crate docs).
///
/// Every database name is routed to the server (the `*` fallback), so [`TestDb`]s of that
/// server work through it: [`PgBouncer::url`]. Clients authenticate with SCRAM against the
/// roles' own verifiers, copied from `pg_authid` (needs a superuser: a throwaway server, or a
/// `DATABASE_URL` user that is one).
///
/// ```no_run
/// use sqlx::Connection;
/// use sqlx_resilience_testkit::{PgBouncer, PgServer};
///
/// # async fn example() -> sqlx_resilience_testkit::Result<()> {
/// let server = PgServer::shared().await?;
/// let db = server.create_database().await?;
/// let bouncer = PgBouncer::start(server).await?;          // transaction pooling
/// let mut conn = sqlx::PgConnection::connect(&bouncer.url(&db)).await?;
/// sqlx::raw_sql("SELECT 1").execute(&mut conn).await?;
/// let pools = bouncer.show_pools().await?;
/// bouncer.pause().await?;                                 // queries now wait...
/// bouncer.resume().await?;                                // ...and run
/// bouncer.kill9_and_start().await?;                       // same port, clients cut off
/// # Ok(()) }
/// ```
pub struct PgBouncer {
    inner: Arc<Inner>,
}

struct Inner {
    /// Declared first: PgBouncer stops before the server handle goes.
    services: Services,
    server: PgServer,
    program: PathBuf,
    port: u16,
    console_url: String,
    options: PgBouncerOptions,
}

impl PgBouncer {
    /// Starts PgBouncer in front of `server` with the default [`PgBouncerOptions`]
    /// (transaction pooling).
    pub async fn start(server: &PgServer) -> Result<PgBouncer> {
        Self::start_with(server, PgBouncerOptions::default()).await
    }

    /// Starts PgBouncer in front of `server` with `options`.
    pub async fn start_with(server: &PgServer, options: PgBouncerOptions) -> Result<PgBouncer> {
        let server = server.handle();
        off_thread(START, move || PgBouncer::start_blocking(server, options)).await
    }

    fn start_blocking(mut server: PgServer, mut options: PgBouncerOptions) -> Result<PgBouncer> {
        let started = Instant::now();
        options.check()?;
        let program = PGBOUNCER.find()?;
        let run_as = RunAs::detect()?;
        let (admin_user, admin_password) = user_of(server.admin_url())?;
        let (app_user, app_password) = user_of(&server.url_for(true, "postgres", None))?;
        let mut users = vec![admin_user.clone()];
        if app_user != admin_user {
            users.push(app_user);
        }
        let entries = block_on(verifiers(server.admin_url(), &users))?;
        let secrets = [admin_password, app_password]
            .into_iter()
            .flatten()
            .collect();
        let mut services = Services::create(START, run_as, secrets)?;
        let auth = services.dir.join("userlist.txt");
        services.write(&auth, &auth_file(&entries))?;
        let ini_path = services.dir.join("pgbouncer.ini");
        let console_base = server.admin_url().to_owned();
        let mut last_port = 0;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port(START)?;
            let layout = Layout {
                port,
                server_host: server.host(),
                server_port: server.port(),
                auth_file: &auth,
                admin_user: &admin_user,
            };
            services.write(&ini_path, &ini(&layout, &options))?;
            let console_url = rewrite(
                &console_base,
                "pgbouncer",
                Some(&format!("127.0.0.1:{port}")),
            )
            .unwrap_or_default();
            let bouncer = PgBouncer {
                inner: Arc::new(Inner {
                    services,
                    server,
                    program: program.clone(),
                    port,
                    console_url,
                    options,
                }),
            };
            match bouncer.launch() {
                Ok(()) => {
                    tracing::info!(
                        elapsed = ?started.elapsed(),
                        port,
                        dir = %bouncer.inner.services.dir.display(),
                        "started PgBouncer"
                    );
                    return Ok(bouncer);
                }
                Err(Launch::PortTaken) => {
                    last_port = port;
                    let inner = Arc::into_inner(bouncer.inner).expect("not shared yet");
                    (services, server, options) = (inner.services, inner.server, inner.options);
                }
                Err(Launch::Failed(e)) => return Err(e),
            }
        }
        Err(Error::test_kit(
            START,
            format!(
                "port {last_port} and {} others were taken by other processes as PgBouncer started",
                PORT_ATTEMPTS - 1
            ),
            "free some loopback ports, or run fewer test processes at once",
        ))
    }

    /// Launches the program and waits until its console answers.
    fn launch(&self) -> std::result::Result<(), Launch> {
        let services = &self.inner.services;
        let failed = |detail: String, hint: &str| {
            Launch::Failed(Error::test_kit(
                START,
                format!("{detail}{}", services.log_tail(NAME)),
                hint.to_owned(),
            ))
        };
        let log_before = services.log_len(NAME);
        let program = Program {
            name: NAME.to_owned(),
            path: self.inner.program.clone(),
            args: vec![services.dir.join("pgbouncer.ini").display().to_string()],
            cwd: services.dir.clone(),
            stop_signal: "TERM",
        };
        let pid = services.launch(&program).map_err(Launch::Failed)?;
        let started = Instant::now();
        loop {
            if !crate::cleanup::is_alive(pid) {
                services.reap();
                if services
                    .log_since(NAME, log_before)
                    .contains("Address already in use")
                {
                    return Err(Launch::PortTaken);
                }
                return Err(failed(
                    format!("pgbouncer (pid {pid}) exited while starting"),
                    "fix what PgBouncer reports above (its configuration is pgbouncer.ini in \
                     the same directory)",
                ));
            }
            if std::net::TcpStream::connect(self.addr()).is_ok() {
                break;
            }
            if started.elapsed() > READY_LIMIT {
                return Err(failed(
                    format!(
                        "pgbouncer (pid {pid}) did not listen on {} within {READY_LIMIT:?}",
                        self.addr()
                    ),
                    SERVER_HINT,
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        block_on(console::run(&self.inner.console_url, "SHOW VERSION"))
            .map(drop)
            .map_err(|e| {
                failed(
                    format!("PgBouncer listens but its console refuses the test kit: {e}"),
                    SERVER_HINT,
                )
            })
    }

    /// The loopback port PgBouncer listens on.
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// PgBouncer's address (`127.0.0.1:port`).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.inner.port))
    }

    /// The server behind PgBouncer.
    pub fn server(&self) -> &PgServer {
        &self.inner.server
    }

    /// The options it was started with.
    pub fn options(&self) -> &PgBouncerOptions {
        &self.inner.options
    }

    /// [`TestDb::url`] through PgBouncer: the `app` role (not a superuser) to `db`. It contains
    /// the password; `Debug` of `PgBouncer` never shows one.
    pub fn url(&self, db: &TestDb) -> String {
        db.url_via(self.addr())
    }

    /// The URL of the `app` role to `database` through PgBouncer.
    pub fn url_for(&self, database: &str) -> String {
        self.inner
            .server
            .url_for(true, database, Some(&self.addr().to_string()))
    }

    /// The superuser's URL to `db` through PgBouncer (it contains the password).
    pub fn admin_url(&self, db: &TestDb) -> String {
        self.inner
            .server
            .url_for(false, db.name(), Some(&self.addr().to_string()))
    }

    /// The URL of PgBouncer's admin console (the `pgbouncer` database, as the server's
    /// superuser, who is PgBouncer's `admin_users`). It contains the password.
    pub fn console_url(&self) -> &str {
        &self.inner.console_url
    }

    /// The PID of the running PgBouncer (`None` while it is killed).
    pub fn pid(&self) -> Option<u32> {
        self.inner.services.pid(NAME)
    }

    /// PgBouncer's log file (its stderr).
    pub fn log_path(&self) -> PathBuf {
        self.inner.services.log(NAME)
    }

    /// The directory PgBouncer runs in (`pgbouncer.ini`, the auth file, the log).
    pub fn dir(&self) -> &std::path::Path {
        &self.inner.services.dir
    }

    /// Runs one console command (`SHOW CLIENTS`, `PAUSE t_1`, `KILL t_1`, ...) and returns its
    /// rows; commands without rows return none.
    pub async fn console(&self, command: &str) -> Result<Vec<ConsoleRow>> {
        console::run(&self.inner.console_url, command).await
    }

    /// `SHOW POOLS`: one row per database and user, with client and server connection counts.
    pub async fn show_pools(&self) -> Result<Vec<BouncerPoolRow>> {
        Ok(self
            .console("SHOW POOLS")
            .await?
            .into_iter()
            .map(BouncerPoolRow::from)
            .collect())
    }

    /// The `SHOW POOLS` row of `db` for the `app` role, once a client has used it.
    pub async fn pool_of(&self, db: &TestDb) -> Result<Option<BouncerPoolRow>> {
        let (user, _) = user_of(db.url())?;
        Ok(self
            .show_pools()
            .await?
            .into_iter()
            .find(|p| p.database == db.name() && p.user == user))
    }

    /// `SHOW STATS`: one row per database, totals and averages.
    pub async fn show_stats(&self) -> Result<Vec<BouncerStatsRow>> {
        Ok(self
            .console("SHOW STATS")
            .await?
            .into_iter()
            .map(BouncerStatsRow::from)
            .collect())
    }

    /// The `SHOW STATS` row of `db`, once a client has used it.
    pub async fn stats_of(&self, db: &TestDb) -> Result<Option<BouncerStatsRow>> {
        Ok(self
            .show_stats()
            .await?
            .into_iter()
            .find(|s| s.database == db.name()))
    }

    /// `PAUSE`: waits until every server connection is released (in transaction mode, until
    /// open transactions end; bounded by 30 s), closes them, and makes every new query wait
    /// until [`PgBouncer::resume`]. `PAUSE <db>` through [`PgBouncer::console`] pauses one
    /// database.
    pub async fn pause(&self) -> Result<()> {
        self.console("PAUSE").await.map(drop)
    }

    /// `RESUME`: queries waiting since [`PgBouncer::pause`] run.
    pub async fn resume(&self) -> Result<()> {
        self.console("RESUME").await.map(drop)
    }

    /// `RECONNECT`: every server connection is closed once released and replaced by a new
    /// one on next use (what a pooler does after a failover, pointed at the new primary).
    pub async fn reconnect(&self) -> Result<()> {
        self.console("RECONNECT").await.map(drop)
    }

    /// Kills PgBouncer with SIGKILL and waits until it is gone: clients lose their
    /// connections, new ones are refused, and its server connections close. It stays down
    /// until [`PgBouncer::start_again`].
    pub async fn kill9(&self) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        off_thread("kill PgBouncer with SIGKILL", move || {
            inner.services.kill9(NAME, "kill PgBouncer with SIGKILL")
        })
        .await
    }

    /// Starts PgBouncer again on the same port, with the same configuration, after
    /// [`PgBouncer::kill9`]; returns once its console answers. Does nothing if it runs.
    pub async fn start_again(&self) -> Result<()> {
        let bouncer = self.handle();
        off_thread("start PgBouncer again", move || {
            if bouncer.pid().is_some() {
                return Ok(());
            }
            match bouncer.launch() {
                Ok(()) => Ok(()),
                Err(Launch::Failed(e)) => Err(e),
                Err(Launch::PortTaken) => Err(Error::test_kit(
                    "start PgBouncer again",
                    format!(
                        "another process took port {} while PgBouncer was down{}",
                        bouncer.port(),
                        bouncer.inner.services.log_tail(NAME)
                    ),
                    "keep PgBouncer down for less time, or use fewer loopback ports elsewhere",
                )),
            }
        })
        .await
    }

    /// [`PgBouncer::kill9`], then [`PgBouncer::start_again`] on the same port.
    pub async fn kill9_and_start(&self) -> Result<()> {
        self.kill9().await?;
        self.start_again().await
    }

    fn handle(&self) -> PgBouncer {
        PgBouncer {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// Why a launch failed: a port taken by someone else is worth another try.
enum Launch {
    PortTaken,
    Failed(Error),
}

/// The user and password of a URL the test kit holds.
fn user_of(url: &str) -> Result<(String, Option<String>)> {
    if let Some(found) = credentials(url) {
        return Ok(found);
    }
    let user = PgConnectOptions::from_str(url)
        .map(|o| o.get_username().to_owned())
        .map_err(|e| Error::test_kit(START, redact(&e.to_string()), SERVER_HINT))?;
    Ok((user, None))
}

/// The SCRAM verifiers of `users`, from `pg_authid` (superusers only).
async fn verifiers(admin_url: &str, users: &[String]) -> Result<Vec<AuthEntry>> {
    const ACTION: &str = "read SCRAM verifiers for PgBouncer";
    let mut conn = crate::admin::connect(admin_url)
        .await
        .map_err(|detail| Error::test_kit(ACTION, detail, SERVER_HINT))?;
    let rows: std::result::Result<Vec<(String, Option<String>)>, sqlx::Error> =
        sqlx::query_as("SELECT rolname::text, rolpassword FROM pg_authid WHERE rolname = ANY($1)")
            .bind(users)
            .fetch_all(&mut conn)
            .await;
    let _ = sqlx::Connection::close(conn).await;
    let rows = rows.map_err(|e| {
        Error::test_kit(
            ACTION,
            redact(&e.to_string()),
            "PgBouncer's auth file needs the roles' verifiers from pg_authid, which only a \
             superuser may read: use a throwaway server, or a DATABASE_URL user that is a superuser",
        )
    })?;
    users
        .iter()
        .map(|user| {
            let verifier = rows
                .iter()
                .find(|(name, _)| name == user)
                .and_then(|(_, v)| v.clone())
                .filter(|v| v.starts_with("SCRAM-SHA-256$"));
            verifier
                .map(|verifier| AuthEntry {
                    user: user.clone(),
                    verifier,
                })
                .ok_or_else(|| {
                    Error::test_kit(
                        ACTION,
                        format!("role `{user}` has no SCRAM-SHA-256 password"),
                        "set its password again with password_encryption = 'scram-sha-256'",
                    )
                })
        })
        .collect()
}

impl fmt::Debug for PgBouncer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgBouncer")
            .field("addr", &self.addr())
            .field("dir", &self.inner.services.dir)
            .field("pool_mode", &self.inner.options.pool_mode)
            .field("server", &self.inner.server.tcp_addr())
            .finish_non_exhaustive()
    }
}
