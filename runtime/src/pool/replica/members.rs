//! Where a pool's replicas come from: the pool each replica gets (`Maker`), now for the
//! ones its `replicas` lists, later for the members of a Patroni cluster; and how asking
//! Patroni for them goes (`Discovery`), which `refresh` does every `replicas_refresh`.

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
use tokio::time::Instant;

use super::node::Node;
use super::patroni::{self, ApiUrl, Member};
use crate::error::Result;
use crate::observer::Unobserved;
use crate::pool::{Pool, PoolConfig, Source};
use crate::recovery::Servers;
use crate::secret::DatabaseUrl;

/// Builds the pool of each replica, now or when one is found later.
pub(super) struct Maker {
    name: Arc<str>,
    /// The pool's settings as a replica's pool takes them (`replica_max`, lazy, no replicas).
    template: PoolConfig,
    /// The pool's connect options: a member found later takes them with its host and port.
    base: PgConnectOptions,
    servers: Servers,
    password: Option<Source>,
    /// When the lag clocks started.
    started: Instant,
    /// The next replica's number (its pool is `pool.replicaN`); never reused.
    next: AtomicUsize,
}

impl Maker {
    pub(super) fn new(
        name: &Arc<str>,
        template: PoolConfig,
        base: PgConnectOptions,
        servers: &Servers,
        password: Option<&Source>,
    ) -> Maker {
        Maker {
            name: name.clone(),
            template,
            base,
            servers: servers.clone(),
            password: password.cloned(),
            started: Instant::now(),
            next: AtomicUsize::new(0),
        }
    }

    /// A replica on `url`, with its own lazy pool.
    pub(super) fn node(&self, url: DatabaseUrl) -> Result<Arc<Node>> {
        let index = self.next.fetch_add(1, Relaxed);
        let mut config = self.template.clone();
        config.url = Some(url);
        let pool = Pool::built(
            &format!("{}.replica{}", self.name, index + 1),
            config,
            None,
            &self.servers,
            &Unobserved,
            self.password.clone(),
        )?;
        Ok(Arc::new(Node::new(index, pool, self.started)))
    }

    /// A replica on a member's host and port.
    pub(super) fn member(&self, member: &Member) -> Result<Arc<Node>> {
        let options = self.base.clone().host(&member.host).port(member.port);
        self.node(DatabaseUrl::from_options(options))
    }
}

/// Replicas found through a Patroni cluster's REST API.
pub(super) struct Discovery {
    apis: Vec<ApiUrl>,
    pub(super) refresh: Duration,
    /// The longest one question to the API may take.
    limit: Duration,
    state: Mutex<Asked>,
}

/// How asking went.
#[derive(Default)]
struct Asked {
    /// The API that answered last: asked first next time.
    api: usize,
    last_answer: Option<Instant>,
    last_error: Option<String>,
    answers: u64,
    failures: u64,
}

/// How a pool's replicas are found from Patroni's REST API, for the replica report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DiscoveryReport {
    /// The REST API URLs, in the order written.
    pub apis: Vec<String>,
    /// How often they are asked (`replicas_refresh`), in milliseconds.
    pub refresh_ms: f64,
    /// The API that answered last.
    pub answered_by: Option<String>,
    /// How long ago the last answer came, in milliseconds; `None` before the first.
    pub last_answer_ms_ago: Option<f64>,
    /// Answers so far.
    pub answers: u64,
    /// Rounds in which no API answered.
    pub failures: u64,
    /// Why the last round failed, if it did.
    pub last_error: Option<String>,
}

impl Discovery {
    pub(super) fn new(apis: Vec<ApiUrl>, refresh: Duration, limit: Duration) -> Discovery {
        Discovery {
            apis,
            refresh,
            limit,
            state: Mutex::new(Asked::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Asked> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The members, from the first API that answers, starting with the one that did last.
    pub(super) async fn ask(&self) -> std::result::Result<Vec<Member>, String> {
        let first = self.state().api;
        let mut errors = Vec::new();
        for k in 0..self.apis.len() {
            let i = (first + k) % self.apis.len();
            match patroni::ask(&self.apis[i], self.limit).await {
                Ok(members) => {
                    let mut state = self.state();
                    state.api = i;
                    state.last_answer = Some(Instant::now());
                    state.last_error = None;
                    state.answers += 1;
                    return Ok(members);
                }
                Err(e) => errors.push(e),
            }
        }
        let why = errors.join("; ");
        let mut state = self.state();
        state.failures += 1;
        state.last_error = Some(why.clone());
        Err(why)
    }

    pub(super) fn report(&self) -> DiscoveryReport {
        let state = self.state();
        DiscoveryReport {
            apis: self.apis.iter().map(ToString::to_string).collect(),
            refresh_ms: self.refresh.as_secs_f64() * 1000.0,
            answered_by: state.last_answer.map(|_| self.apis[state.api].to_string()),
            last_answer_ms_ago: state
                .last_answer
                .map(|at| at.elapsed().as_secs_f64() * 1000.0),
            answers: state.answers,
            failures: state.failures,
            last_error: state.last_error.clone(),
        }
    }
}
