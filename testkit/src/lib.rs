//! Real PostgreSQL for tests, examples and drills: throwaway clusters, a database per test,
//! server controls and a fault-injecting TCP proxy.
//!
//! - [`PgServer::shared`] hands every test of a process the same server: the one in
//!   `DATABASE_URL` when it is set, otherwise a throwaway cluster started on first use from
//!   the installed server binaries (`initdb`/`postgres`, found on `PATH`, via
//!   `pg_config --bindir`, or under `/usr/lib/postgresql/*/bin`; `SQLX_RESILIENCE_PG_BINDIR`
//!   overrides the search). As root, the cluster runs as the `postgres` user.
//! - [`PgServer::create_database`] gives each test a fresh database ([`TestDb`]), owned by a
//!   non-superuser role `app`, dropped when the `TestDb` is.
//! - [`PgServer::start`] starts a dedicated cluster for tests that restart, stop or kill the
//!   server ([`PgServer::restart`], [`PgServer::kill9_and_start`], [`PgServer::stop`]), and
//!   every server can end backends or refuse connections to one database.
//! - [`FaultProxy`] sits between client and server and adds latency, resets, blackholes,
//!   refusals and bandwidth caps at run time.
//! - [`PgBouncer::start`] puts a real PgBouncer (Debian's `pgbouncer`; `SQLX_RESILIENCE_PGBOUNCER`
//!   names another program) in front of a server: transaction or session pooling, SCRAM
//!   authentication, its admin console (`SHOW POOLS`, `SHOW STATS` as typed rows) and controls
//!   (`PAUSE`/`RESUME`, `RECONNECT`, kill -9 and start again on the same port).
//! - [`ReplicaSet::start`] starts a primary with streaming replicas (`pg_basebackup -R`,
//!   replication slots): pause and resume replay for lag on demand, measured lag, promotion;
//!   the primary is a [`PgServer`] with its stop and kill -9. [`multi_host_url`] writes the
//!   libpq-style multi-host URL of several nodes.
//! - [`PatroniCluster::start`] runs one etcd and 1 to 5 Patroni nodes (Debian's `etcd-server`
//!   and `patroni`; `SQLX_RESILIENCE_ETCD` and `SQLX_RESILIENCE_PATRONI` name other programs):
//!   the leader from Patroni's REST API, switchover, failover by kill -9 of the leader's
//!   postgres or of its Patroni, and waits for a leader, a given leader or streaming replicas.
//! - [`run_example`] runs an example program built next to the calling test, checks that it
//!   exits 0 and leaves no server directory behind, and reads a seed example's [`KpiLine`].
//!
//! ```no_run
//! use std::time::Duration;
//! use sqlx::Connection;
//! use sqlx_resilience_testkit::{Direction, FaultProxy, PgServer};
//!
//! # async fn example() -> sqlx_resilience_testkit::Result<()> {
//! let server = PgServer::shared().await?;
//! let db = server.create_database().await?;
//!
//! // Straight to the server...
//! let mut conn = sqlx::PgConnection::connect(db.url()).await?;
//! sqlx::query("CREATE TABLE t (id int)").execute(&mut conn).await?;
//!
//! // ...or through a proxy that adds 200 ms each way.
//! let proxy = FaultProxy::start(server.tcp_addr()).await?;
//! proxy.set_latency(Direction::Both, Duration::from_millis(200));
//! let mut slow = sqlx::PgConnection::connect(&db.url_via(proxy.addr())).await?;
//! sqlx::query("SELECT 1").execute(&mut slow).await?;
//! # Ok(()) }
//! ```
//!
//! # Nothing is left behind
//!
//! A throwaway cluster lives in `<temp dir>/sqlx-resilience-pg-<pid>-<random>`, and so does
//! every other node or engine the kit runs (replicas, PgBouncer, a Patroni cluster with its
//! etcd). A watchdog process, holding the only other end of a pipe from the test process,
//! launches the postmaster or the engine; when the pipe closes — the owner was dropped, or the
//! test process exited, panicked or was killed with SIGKILL — it stops everything working in
//! the directory and removes it. Each start also removes directories left by test processes
//! that no longer exist. Failures are
//! [`Error::TestKit`](sqlx_resilience_runtime::Error::TestKit) errors that
//! say what failed and what to do, with the end of the server log where there is one.
//!
//! Linux is the target: process checks read `/proc`.

#![forbid(unsafe_code)]

mod admin;
mod binaries;
mod cleanup;
mod cluster;
mod command;
mod controls;
mod database;
pub mod drill;
mod error;
pub mod example;
mod http;
mod options;
mod patroni;
mod pgbouncer;
mod proxy;
mod replicas;
mod scratch;
mod server;
mod service;
mod tls;
mod tools;
mod url;

pub use self::binaries::BINDIR_ENV;
pub use self::database::TestDb;
pub use self::example::{ExampleOutput, KpiLine, example_binary, run_example};
pub use self::options::{RestartMode, ServerOptions, ShutdownMode};
pub use self::patroni::{
    ClusterStatus, MemberRole, MemberStatus, PatroniCluster, PatroniNode, PatroniOptions,
};
pub use self::pgbouncer::{
    BouncerPoolRow, BouncerStatsRow, ConsoleRow, PgBouncer, PgBouncerOptions, PoolMode,
};
pub use self::proxy::{Direction, FaultProxy, ProxyStats};
pub use self::replicas::{Lsn, ReplicaSet, ReplicationLag};
pub use self::server::PgServer;
pub use self::tls::TlsFiles;
pub use self::tools::{ETCD_ENV, PATRONI_ENV, PGBOUNCER_ENV};
pub use self::url::multi_host_url;

/// `Result` with the project's one error type; test-kit failures are
/// [`Error::TestKit`](sqlx_resilience_runtime::Error::TestKit).
pub type Result<T> = sqlx_resilience_runtime::Result<T>;
