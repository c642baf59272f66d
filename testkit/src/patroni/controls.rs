//! What tests do to a [`PatroniCluster`] and wait for: the leader from the REST API,
//! switchover, failover by killing the leader's postgres or its Patroni, and polling waits
//! with generous limits (a loaded two-core machine is slow).

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use sqlx::Connection;
use sqlx_resilience_runtime::{Error, redact};

use super::rest::{self, ClusterStatus, MemberRole};
use super::{POLL, PatroniCluster, PatroniNode};
use crate::Result;
use crate::admin::{self, off_thread};
use crate::cleanup::{is_alive, reap_orphans, signal_pid, wait_until};

/// How long a started Patroni may take to answer its REST API.
const API_LIMIT: Duration = Duration::from_secs(60);

impl PatroniCluster {
    /// `GET /cluster` from the first node whose REST API answers.
    pub async fn cluster_status(&self) -> Result<ClusterStatus> {
        self.status_from_any()
            .await
            .map_err(|detail| Error::test_kit("read the Patroni cluster's state", detail, LOG_HINT))
    }

    async fn status_from_any(&self) -> std::result::Result<ClusterStatus, String> {
        let mut failures = Vec::new();
        for node in &self.inner.nodes {
            if self.inner.services.pid(&node.name).is_none() {
                continue;
            }
            match rest::cluster(node.api_addr()).await {
                Ok(status) => return Ok(status),
                Err(e) => failures.push(e),
            }
        }
        Err(if failures.is_empty() {
            "no node's Patroni runs".to_owned()
        } else {
            failures.join("; ")
        })
    }

    /// The member that holds the leader lock and runs PostgreSQL, per `GET /cluster`; `None`
    /// while there is none (during a failover).
    pub async fn leader(&self) -> Result<Option<String>> {
        Ok(self
            .cluster_status()
            .await?
            .leader()
            .filter(|m| m.is_running_leader())
            .map(|m| m.name.clone()))
    }

    /// `GET /leader` on `node`'s REST API: whether that node holds the leader lock.
    pub async fn is_leader(&self, node: &str) -> Result<bool> {
        const ACTION: &str = "ask a Patroni node whether it leads";
        let node = self.checked(node, ACTION)?;
        rest::is_leader(node.api_addr())
            .await
            .map_err(|detail| Error::test_kit(ACTION, detail, LOG_HINT))
    }

    /// Waits until some member leads and its PostgreSQL takes writes (out of recovery:
    /// Patroni reports a new leader before its promotion ends); returns its name. Polls every
    /// 200 ms up to `limit`.
    pub async fn wait_for_leader(&self, limit: Duration) -> Result<String> {
        self.wait_for_leader_where("wait for a Patroni leader", limit, |_| true)
            .await
    }

    /// Waits until `node` leads and its PostgreSQL takes writes.
    pub async fn wait_for_leader_named(&self, node: &str, limit: Duration) -> Result<()> {
        let action = format!("wait until {node} leads the Patroni cluster");
        self.checked(node, &action)?;
        self.wait_for_leader_where(&action, limit, |leader| leader == node)
            .await
            .map(drop)
    }

    /// Waits until a member other than `old` leads and its PostgreSQL takes writes; returns
    /// its name.
    pub async fn wait_for_new_leader(&self, old: &str, limit: Duration) -> Result<String> {
        let action = format!("wait until a member other than {old} leads the Patroni cluster");
        self.wait_for_leader_where(&action, limit, |leader| leader != old)
            .await
    }

    /// Waits until there is a leader, every other member's PostgreSQL runs as Patroni sees
    /// it, and the leader's `pg_stat_replication` shows every other member streaming. After a
    /// switchover or failover this is when the cluster is whole again (a killed old leader
    /// rejoins after pg_rewind).
    pub async fn wait_for_replicas_streaming(&self, limit: Duration) -> Result<()> {
        const ACTION: &str = "wait until every Patroni replica streams";
        let deadline = Instant::now() + limit;
        loop {
            let last = match self.replicas_streaming().await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(Error::test_kit(
                    ACTION,
                    format!(
                        "not done after {limit:?}; last seen: {last}{}",
                        self.log_tails()
                    ),
                    LOG_HINT,
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// With `synchronous_mode`: waits until a member is the synchronous standby (Patroni
    /// refuses a switchover, and cannot fail over without loss, before one is chosen).
    pub async fn wait_for_sync_standby(&self, limit: Duration) -> Result<()> {
        const ACTION: &str = "wait for a Patroni synchronous standby";
        let deadline = Instant::now() + limit;
        loop {
            let status = self.status_from_any().await;
            if let Ok(s) = &status
                && s.members.iter().any(|m| m.role == MemberRole::SyncStandby)
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::test_kit(
                    ACTION,
                    format!("none after {limit:?}; last seen: {status:?}"),
                    LOG_HINT,
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn replicas_streaming(&self) -> std::result::Result<(), String> {
        let status = self.status_from_any().await?;
        let leader = status
            .leader()
            .filter(|m| m.is_running_leader())
            .ok_or_else(|| format!("no running leader in {status:?}"))?;
        let others: Vec<String> = self
            .inner
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .filter(|n| *n != leader.name)
            .collect();
        let not_running: Vec<&str> = others
            .iter()
            .filter(|n| {
                status
                    .member(n)
                    .is_none_or(|m| m.state != "running" && m.state != "streaming")
            })
            .map(String::as_str)
            .collect();
        if !not_running.is_empty() {
            return Err(format!("not running yet: {not_running:?} in {status:?}"));
        }
        let mut conn = admin::connect(&self.admin_url(&leader.name, "postgres")).await?;
        let streaming = sqlx::query_scalar::<_, String>(
            "SELECT application_name::text FROM pg_stat_replication \
             WHERE state = 'streaming' AND application_name = ANY($1)",
        )
        .bind(&others)
        .fetch_all(&mut conn)
        .await;
        let _ = conn.close().await;
        let streaming = streaming.map_err(|e| redact(&e.to_string()))?;
        if streaming.len() == others.len() {
            Ok(())
        } else {
            Err(format!(
                "{} streams to {streaming:?}, not to all of {others:?}",
                leader.name
            ))
        }
    }

    /// Polls until a running leader that `wanted` accepts is out of recovery.
    async fn wait_for_leader_where(
        &self,
        action: &str,
        limit: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            let last = match self.status_from_any().await {
                Ok(status) => match status.leader().filter(|m| m.is_running_leader()) {
                    Some(leader) if wanted(&leader.name) => {
                        match self.takes_writes(&leader.name).await {
                            Ok(true) => return Ok(leader.name.clone()),
                            Ok(false) => format!("{} leads but is still in recovery", leader.name),
                            Err(e) => format!("{} leads but {e}", leader.name),
                        }
                    }
                    _ => format!("{status:?}"),
                },
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(Error::test_kit(
                    action,
                    format!(
                        "not done after {limit:?}; last seen: {last}{}",
                        self.log_tails()
                    ),
                    LOG_HINT,
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The end of every node's log, to follow an error's detail.
    fn log_tails(&self) -> String {
        self.inner
            .nodes
            .iter()
            .map(|n| self.inner.services.log_tail(&n.name))
            .collect()
    }

    /// Whether `node`'s PostgreSQL is out of recovery.
    async fn takes_writes(&self, node: &str) -> std::result::Result<bool, String> {
        let mut conn = admin::connect(&self.admin_url(node, "postgres")).await?;
        let in_recovery = sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()")
            .fetch_one(&mut conn)
            .await;
        let _ = conn.close().await;
        in_recovery.map(|r| !r).map_err(|e| redact(&e.to_string()))
    }

    /// [`PatroniCluster::wait_for_leader`] while starting: a Patroni that exits ends the wait
    /// with its log.
    pub(super) async fn wait_for_leader_while_alive(&self, limit: Duration) -> Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(dead) = self
                .inner
                .nodes
                .iter()
                .find(|n| self.inner.services.pid(&n.name).is_none())
            {
                return Err(Error::test_kit(
                    super::START,
                    format!(
                        "the Patroni of {} exited while the cluster started{}",
                        dead.name,
                        self.inner.services.log_tail(&dead.name)
                    ),
                    "fix what Patroni reports above (its configuration is patroni.yml in the \
                     node's directory)",
                ));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self
                .wait_for_leader(remaining.min(Duration::from_secs(2)))
                .await
            {
                Ok(leader) => return Ok(leader),
                // The leader wait's error carries every node's log.
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => {}
            }
        }
    }

    /// Switches the leader over to `candidate` (any healthy replica when `None`) through the
    /// REST API (`POST /switchover`), then waits until the new leader runs; returns its name.
    /// The old leader rejoins as a replica: [`PatroniCluster::wait_for_replicas_streaming`].
    pub async fn switchover(&self, candidate: Option<&str>) -> Result<String> {
        const ACTION: &str = "switch the Patroni leader over";
        if let Some(candidate) = candidate {
            self.checked(candidate, ACTION)?;
        }
        let leader = self.wait_for_leader(Duration::from_secs(60)).await?;
        let api = self.checked(&leader, ACTION)?.api_addr();
        rest::switchover(api, &leader, candidate)
            .await
            .map_err(|detail| Error::test_kit(ACTION, detail, LOG_HINT))?;
        let new = self
            .wait_for_new_leader(&leader, Duration::from_secs(120))
            .await?;
        match candidate {
            Some(candidate) if candidate != new => Err(Error::test_kit(
                ACTION,
                format!("{new} leads now, not {candidate}"),
                "Patroni chose another member: the candidate was not healthy enough (lag, tags)",
            )),
            _ => Ok(new),
        }
    }

    /// Kills `node`'s postmaster with SIGKILL (its backends exit on their own) and waits until
    /// it is gone. Patroni notices: on the leader, with `primary_start_timeout = 0`, another
    /// member takes over and this one rejoins as a replica; on a replica, Patroni starts it
    /// again.
    pub async fn kill_postgres(&self, node: &str) -> Result<()> {
        const ACTION: &str = "kill a Patroni node's postgres";
        let name = self.checked(node, ACTION)?.name.clone();
        let cluster = self.handle();
        off_thread(ACTION, move || {
            let Some(pid) = cluster.postmaster_pid(&name) else {
                return Err(Error::test_kit(
                    ACTION,
                    format!("{name} runs no postmaster"),
                    "wait until its PostgreSQL runs (wait_for_replicas_streaming)",
                ));
            };
            signal_pid(pid, Signal::SIGKILL);
            let gone = wait_until(Duration::from_secs(10), || !is_alive(pid));
            reap_orphans();
            if gone {
                Ok(())
            } else {
                Err(Error::test_kit(
                    ACTION,
                    format!("the postmaster of {name} (pid {pid}) still runs 10 s after SIGKILL"),
                    "it ignores SIGKILL (uninterruptible I/O?); check `ps` for it",
                ))
            }
        })
        .await
    }

    /// Kills the current leader's postmaster with SIGKILL; returns the old leader's name.
    /// Wait for the next one with [`PatroniCluster::wait_for_new_leader`].
    pub async fn kill_leader_postgres(&self) -> Result<String> {
        let leader = self.wait_for_leader(Duration::from_secs(60)).await?;
        self.kill_postgres(&leader).await?;
        Ok(leader)
    }

    /// Kills `node`'s Patroni with SIGKILL and waits until it is gone. Its PostgreSQL keeps
    /// running, as after a crash of Patroni alone: on the leader, the lock expires after
    /// `ttl` and another member takes over while the old primary still accepts writes, until
    /// [`PatroniCluster::start_patroni`] brings its Patroni back, which demotes it.
    pub async fn kill_patroni(&self, node: &str) -> Result<()> {
        const ACTION: &str = "kill a Patroni process";
        let name = self.checked(node, ACTION)?.name.clone();
        let cluster = self.handle();
        off_thread(ACTION, move || cluster.inner.services.kill9(&name, ACTION)).await
    }

    /// Kills the current leader's Patroni with SIGKILL; returns the old leader's name.
    pub async fn kill_leader_patroni(&self) -> Result<String> {
        let leader = self.wait_for_leader(Duration::from_secs(60)).await?;
        self.kill_patroni(&leader).await?;
        Ok(leader)
    }

    /// Starts `node`'s Patroni again after [`PatroniCluster::kill_patroni`]; returns once its
    /// REST API answers. Does nothing if it runs.
    pub async fn start_patroni(&self, node: &str) -> Result<()> {
        const ACTION: &str = "start a Patroni process again";
        let node: PatroniNode = self.checked(node, ACTION)?.clone();
        if self.inner.services.pid(&node.name).is_some() {
            return Ok(());
        }
        let cluster = self.handle();
        let launched = node.clone();
        let pid = off_thread(ACTION, move || cluster.launch_patroni(&launched)).await?;
        let deadline = Instant::now() + API_LIMIT;
        loop {
            if rest::answers(node.api_addr()).await {
                return Ok(());
            }
            if !is_alive(pid) || Instant::now() >= deadline {
                self.inner.services.reap();
                return Err(Error::test_kit(
                    ACTION,
                    format!(
                        "the Patroni of {} (pid {pid}) {}{}",
                        node.name,
                        if is_alive(pid) {
                            format!("does not answer on {} after {API_LIMIT:?}", node.api_addr())
                        } else {
                            "exited while starting".to_owned()
                        },
                        self.inner.services.log_tail(&node.name)
                    ),
                    LOG_HINT,
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn handle(&self) -> PatroniCluster {
        PatroniCluster {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// Where to look when a Patroni wait fails.
const LOG_HINT: &str = "read the nodes' logs (PatroniCluster::log_path: Patroni's and \
    PostgreSQL's output) and etcd's (etcd.log in PatroniCluster::dir)";
