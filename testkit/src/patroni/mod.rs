//! [`PatroniCluster`]: one etcd and two or three Patroni nodes on loopback ports in a temp
//! directory, their URLs and databases. Controls and waits are in `controls.rs`, the REST API
//! in `rest.rs`.

mod config;
mod controls;
mod options;
mod rest;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx_resilience_runtime::Error;

use self::config::{Credentials, NodeLayout, etcd_args, node_config};
use crate::Result;
use crate::admin::{self, block_on, ident, literal, off_thread, random_token};
use crate::binaries::Search;
use crate::cleanup::{Reaper, is_alive};
use crate::command::RunAs;
use crate::error::SERVER_HINT;
use crate::http;
use crate::scratch::free_port;
use crate::service::{Program, Services};
use crate::tools::{ETCD, PATRONI};
use crate::url::multi_host_url;

pub use self::options::PatroniOptions;
pub use self::rest::{ClusterStatus, MemberRole, MemberStatus};

/// The action of every failure while bringing the cluster up.
const START: &str = "start a Patroni cluster";

/// How long etcd may take to answer `/health`.
const ETCD_LIMIT: Duration = Duration::from_secs(60);

/// How long the cluster may take to elect a leader and stream to every replica.
const START_LIMIT: Duration = Duration::from_secs(180);

/// How often waits poll.
const POLL: Duration = Duration::from_millis(200);

/// One Patroni node: its name, ports and directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatroniNode {
    name: String,
    pg_port: u16,
    api_port: u16,
    dir: PathBuf,
    data_dir: PathBuf,
}

impl PatroniNode {
    /// The member name (`node1`, `node2`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its PostgreSQL's address.
    pub fn pg_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.pg_port))
    }

    /// Its Patroni REST API's address.
    pub fn api_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.api_port))
    }

    /// Its directory (`patroni.yml`, `pgpass`, the data directory).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its PostgreSQL data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

/// A Patroni cluster: one etcd (Debian's `etcd-server`) and 1 to 5 Patroni nodes (Debian's
/// `patroni`, each running PostgreSQL from the binaries the kit finds), all on loopback ports
/// in one `sqlx-resilience-pg-*` temp directory, run as the `postgres` user when the test
/// process is root.
///
/// [`PatroniCluster::start`] returns once a leader is elected and every replica streams. The
/// superuser is `postgres`; the kit adds the login role `app` (not a superuser), which owns
/// the databases of [`PatroniCluster::create_database`]. Timings are tight for tests
/// ([`PatroniOptions`]), and a crashed primary fails over at once
/// (`primary_start_timeout = 0`).
///
/// Dropping the cluster stops everything and removes the directory; so does the end of the
/// test process, in any way. While a cluster lives, the test process is the subreaper of its
/// descendants and a thread collects exited `postgres` processes every 100 ms: Patroni starts
/// each postmaster orphaned, and waits for it to be gone when it stops it. Starting one takes a few seconds to a minute on a loaded
/// machine: share one per test file where tests allow it.
///
/// ```no_run
/// use std::time::Duration;
/// use sqlx_resilience_testkit::PatroniCluster;
///
/// # async fn example() -> sqlx_resilience_testkit::Result<()> {
/// let cluster = PatroniCluster::start().await?;
/// let db = cluster.create_database().await?;
/// let leader = cluster.wait_for_leader(Duration::from_secs(60)).await?;
/// let url = cluster.url(&leader, &db);                 // writes go here
/// let new = cluster.switchover(None).await?;          // REST POST /switchover
/// let old = cluster.kill_leader_postgres().await?;    // kill -9 of the postmaster
/// let next = cluster.wait_for_new_leader(&old, Duration::from_secs(120)).await?;
/// # Ok(()) }
/// ```
pub struct PatroniCluster {
    inner: Arc<Inner>,
}

struct Inner {
    /// Declared first: everything stops before the rest goes.
    services: Services,
    /// Collects the postmasters Patroni orphans, which Patroni waits on.
    _reaper: Reaper,
    nodes: Vec<PatroniNode>,
    etcd_port: u16,
    scope: String,
    superuser_password: String,
    app_password: String,
    patroni: PathBuf,
    options: PatroniOptions,
}

impl PatroniCluster {
    /// A cluster with the default [`PatroniOptions`] (3 nodes).
    pub async fn start() -> Result<PatroniCluster> {
        Self::start_with(PatroniOptions::default()).await
    }

    /// A cluster with `options`.
    pub async fn start_with(options: PatroniOptions) -> Result<PatroniCluster> {
        let cluster = off_thread(START, move || PatroniCluster::launch_all(options)).await?;
        let started = Instant::now();
        cluster.settle().await?;
        tracing::info!(
            elapsed = ?started.elapsed(),
            dir = %cluster.inner.services.dir.display(),
            nodes = cluster.inner.nodes.len(),
            "started a Patroni cluster"
        );
        Ok(cluster)
    }

    /// Writes every configuration and launches etcd and the Patroni nodes.
    fn launch_all(options: PatroniOptions) -> Result<PatroniCluster> {
        options.check()?;
        let binaries = Search::from_env(options.bindir.clone()).find()?;
        let patroni = PATRONI.find()?;
        let etcd = ETCD.find()?;
        let run_as = RunAs::detect()?;
        let reaper = Reaper::start();
        let superuser_password = random_token(24);
        let replication_password = random_token(24);
        let app_password = random_token(24);
        let services = Services::create(
            START,
            run_as,
            vec![
                superuser_password.clone(),
                replication_password.clone(),
                app_password.clone(),
            ],
        )?;
        let scope = format!("sqlx-resilience-{}", random_token(8));
        let mut ports = distinct_ports(2 + 2 * options.nodes)?.into_iter();
        let mut port = || ports.next().unwrap_or_default();
        let (etcd_port, peer_port) = (port(), port());

        let etcd_dir = services.subdir("etcd")?;
        services.launch(&Program {
            name: "etcd".to_owned(),
            path: etcd,
            args: etcd_args(&etcd_dir.join("data"), etcd_port, peer_port, &scope),
            cwd: etcd_dir,
            stop_signal: "TERM",
        })?;

        let mut nodes = Vec::with_capacity(options.nodes);
        for i in 1..=options.nodes {
            let name = format!("node{i}");
            let dir = services.subdir(&name)?;
            let node = PatroniNode {
                data_dir: dir.join("data"),
                dir,
                pg_port: port(),
                api_port: port(),
                name,
            };
            let text = node_config(
                &scope,
                &NodeLayout {
                    name: &node.name,
                    node_dir: &node.dir,
                    data_dir: &node.data_dir,
                    pg_port: node.pg_port,
                    api_port: node.api_port,
                    etcd_port,
                    bindir: &binaries.bindir,
                },
                &Credentials {
                    superuser: &superuser_password,
                    replication: &replication_password,
                },
                &options,
            );
            services.write(&node.dir.join("patroni.yml"), &text)?;
            nodes.push(node);
        }
        let cluster = PatroniCluster {
            inner: Arc::new(Inner {
                services,
                _reaper: reaper,
                nodes,
                etcd_port,
                scope,
                superuser_password,
                app_password,
                patroni,
                options,
            }),
        };
        block_on(cluster.wait_for_etcd())?;
        for node in &cluster.inner.nodes {
            cluster.launch_patroni(node)?;
        }
        Ok(cluster)
    }

    /// Waits for a leader, adds the `app` role, and waits until every replica streams.
    async fn settle(&self) -> Result<()> {
        let leader = self.wait_for_leader_while_alive(START_LIMIT).await?;
        let create_app = format!(
            "DO $$ BEGIN CREATE ROLE app LOGIN PASSWORD {}; \
             EXCEPTION WHEN duplicate_object THEN NULL; END $$",
            literal(&self.inner.app_password)
        );
        admin::execute(&self.admin_url(&leader, "postgres"), create_app)
            .await
            .map_err(|detail| Error::test_kit(START, self.scrub(&detail), SERVER_HINT))?;
        self.wait_for_replicas_streaming(START_LIMIT).await
    }

    async fn wait_for_etcd(&self) -> Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.inner.etcd_port));
        let deadline = Instant::now() + ETCD_LIMIT;
        loop {
            let health = http::request(addr, "GET", "/health", None, rest::CALL_LIMIT).await;
            if health
                .as_ref()
                .is_ok_and(|r| r.status == 200 && r.body.contains("true"))
            {
                return Ok(());
            }
            if self.inner.services.pid("etcd").is_none() || Instant::now() >= deadline {
                let state = match self.inner.services.pid("etcd") {
                    Some(pid) => format!("etcd (pid {pid}) is not healthy after {ETCD_LIMIT:?}"),
                    None => "etcd exited while starting".to_owned(),
                };
                return Err(Error::test_kit(
                    START,
                    format!(
                        "{state}; last answer: {health:?}{}",
                        self.inner.services.log_tail("etcd")
                    ),
                    "fix what etcd reports above (another process may have taken its port: \
                     try again)",
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Launches the Patroni of `node` (blocking).
    fn launch_patroni(&self, node: &PatroniNode) -> Result<u32> {
        self.inner.services.launch(&Program {
            name: node.name.clone(),
            path: self.inner.patroni.clone(),
            args: vec![node.dir.join("patroni.yml").display().to_string()],
            cwd: node.dir.clone(),
            stop_signal: "KILL",
        })
    }

    /// Every node, in order (`node1` first).
    pub fn nodes(&self) -> &[PatroniNode] {
        &self.inner.nodes
    }

    /// The node named `name`. Panics when there is none.
    pub fn node(&self, name: &str) -> &PatroniNode {
        self.inner
            .nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("the Patroni cluster has no node `{name}`"))
    }

    fn checked(&self, name: &str, action: &str) -> Result<&PatroniNode> {
        self.inner
            .nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| {
                Error::test_kit(
                    action,
                    format!("the Patroni cluster has no node `{name}`"),
                    format!(
                        "use one of {:?}",
                        self.inner.nodes.iter().map(|n| &n.name).collect::<Vec<_>>()
                    ),
                )
            })
    }

    /// Patroni's `scope`: the cluster's name in etcd.
    pub fn scope(&self) -> &str {
        &self.inner.scope
    }

    /// etcd's client URL (`http://127.0.0.1:port`).
    pub fn etcd_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.inner.etcd_port)
    }

    /// The options it was started with.
    pub fn options(&self) -> &PatroniOptions {
        &self.inner.options
    }

    /// The temp directory everything runs in.
    pub fn dir(&self) -> &Path {
        &self.inner.services.dir
    }

    /// The log of `node` (Patroni's output and its PostgreSQL's).
    pub fn log_path(&self, node: &str) -> PathBuf {
        self.inner.services.log(&self.node(node).name)
    }

    /// The URL of the `app` role to `database` on `node`'s PostgreSQL. It contains the
    /// password; `Debug` of `PatroniCluster` never shows one.
    pub fn url(&self, node: &str, database: &str) -> String {
        format!(
            "postgres://app:{}@{}/{database}?sslmode=disable",
            self.inner.app_password,
            self.node(node).pg_addr()
        )
    }

    /// The superuser's URL to `database` on `node`'s PostgreSQL (it contains the password).
    pub fn admin_url(&self, node: &str, database: &str) -> String {
        format!(
            "postgres://postgres:{}@{}/{database}?sslmode=disable",
            self.inner.superuser_password,
            self.node(node).pg_addr()
        )
    }

    /// A libpq-style multi-host URL of the `app` role to `database`, every node in order:
    /// `postgres://app:pw@127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/db?sslmode=disable`.
    pub fn multi_host_url(&self, database: &str) -> String {
        let hosts: Vec<_> = self.inner.nodes.iter().map(PatroniNode::pg_addr).collect();
        multi_host_url(&self.url(&self.inner.nodes[0].name, database), &hosts)
    }

    /// A fresh database (`t_<counter>_<random>`) owned by `app`, created on the current
    /// leader (waiting up to 60 s for one). It lives as long as the cluster.
    pub async fn create_database(&self) -> Result<String> {
        const ACTION: &str = "create a database on the Patroni cluster";
        static COUNTER: AtomicU64 = AtomicU64::new(1);
        let name = format!(
            "t_{}_{}",
            COUNTER.fetch_add(1, Ordering::Relaxed),
            random_token(8)
        );
        let leader = self.wait_for_leader(Duration::from_secs(60)).await?;
        admin::execute(
            &self.admin_url(&leader, "postgres"),
            format!("CREATE DATABASE {} OWNER app", ident(&name)),
        )
        .await
        .map_err(|detail| Error::test_kit(ACTION, self.scrub(&detail), SERVER_HINT))?;
        Ok(name)
    }

    /// `text` without any of the cluster's passwords.
    fn scrub(&self, text: &str) -> String {
        self.inner.services.scrub(text)
    }

    /// The PID of `node`'s Patroni while it runs.
    pub fn patroni_pid(&self, node: &str) -> Option<u32> {
        self.inner.services.pid(&self.node(node).name)
    }

    /// The PID of `node`'s postmaster while it runs.
    pub fn postmaster_pid(&self, node: &str) -> Option<u32> {
        let data = &self.node(node).data_dir;
        let text = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
        let pid: u32 = text.lines().next()?.trim().parse().ok()?;
        let works_there =
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == *data);
        (is_alive(pid) && works_there).then_some(pid)
    }
}

/// `n` distinct free ports.
fn distinct_ports(n: usize) -> Result<Vec<u16>> {
    let mut ports: Vec<u16> = Vec::with_capacity(n);
    while ports.len() < n {
        let port = free_port(START)?;
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    Ok(ports)
}

impl fmt::Debug for PatroniCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the passwords.
        f.debug_struct("PatroniCluster")
            .field("scope", &self.inner.scope)
            .field("dir", &self.inner.services.dir)
            .field("etcd_port", &self.inner.etcd_port)
            .field("nodes", &self.inner.nodes)
            .finish_non_exhaustive()
    }
}
