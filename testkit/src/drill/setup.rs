//! What the drills share: their sizes and options, a server, a runtime and its ops.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx_resilience_runtime::breaker::BreakerState;
use sqlx_resilience_runtime::op::RetryScope;
use sqlx_resilience_runtime::{Error, PolicyKind, Runtime, Value};

use super::load::{Ops, Workload};
use crate::{PgServer, Result, ServerOptions, TestDb};

/// How big a drill runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Size {
    /// A few seconds, little CPU: what the integration tests run.
    Small,
    /// The documented size (under a minute per fault drill): what `docs/DRILLS.md` reports.
    #[default]
    Full,
}

impl FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "small" => Ok(Size::Small),
            "full" => Ok(Size::Full),
            other => Err(format!("unknown size `{other}`: expected small or full")),
        }
    }
}

impl Size {
    pub(super) fn pick<T>(self, small: T, full: T) -> T {
        match self {
            Size::Small => small,
            Size::Full => full,
        }
    }
}

/// How a drill's callers behave, beyond its scenario and size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Test-only: the load's callers run an insert again, with the same key, when its outcome
    /// was unknown, as a careless caller would. Where unknown outcomes were applied, the
    /// drill then reports duplicates: the proof that its duplicate count can fail.
    pub retry_unknown_outcomes: bool,
    /// `nemesis`: the seed of its fault schedule (1 when not set).
    pub seed: Option<u64>,
    /// `nemesis`: how long the load runs, in seconds (8 small, 60 full, when not set).
    pub secs: Option<u64>,
}

impl Options {
    /// Callers that run an insert again after an unknown outcome (see the field).
    pub fn retrying_unknown_outcomes() -> Options {
        Options {
            retry_unknown_outcomes: true,
            ..Options::default()
        }
    }

    /// `nemesis` with this seed and length (see the fields).
    pub fn nemesis(seed: u64, secs: u64) -> Options {
        Options {
            seed: Some(seed),
            secs: Some(secs),
            ..Options::default()
        }
    }
}

/// The `application_name` of the drill's pool.
pub(super) const APP: &str = "sqlx-resilience-drill";

/// A dedicated server with durable commits, a database on it and the drill's tables.
pub(super) async fn server_and_database() -> Result<(PgServer, TestDb)> {
    let server =
        PgServer::start_with(ServerOptions::new().setting("synchronous_commit", "on")).await?;
    let db = server.create_database().await?;
    super::load::create_schema(db.url()).await?;
    Ok((server, db))
}

/// The time limits of the drill's ops.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) timeout: Duration,
    pub(super) deadline: Duration,
}

/// A runtime with the pool `drill` (`pool` settings on top of the drill's own) and the
/// drill's breaker and retry policy, connecting to `url`.
pub(super) async fn runtime(url: &str, pool: &[(&str, Value)]) -> Result<Runtime> {
    let mut settings: Vec<(&str, Value)> = vec![("application_name", APP.into())];
    settings.extend(pool.iter().cloned());
    Runtime::builder()
        .url(url)
        .env_vars(Vec::<(String, String)>::new())
        .pool("drill", &settings)
        .declare(
            PolicyKind::Breaker,
            "drill",
            &[
                ("failure_rate", 50u32.into()),
                ("window", "2s".into()),
                ("minimum_calls", 10u32.into()),
                ("open_for", "500ms".into()),
                ("half_open", 3u32.into()),
            ],
        )
        .declare(
            PolicyKind::Retry,
            "drill",
            &[
                ("attempts", 5u32.into()),
                ("base", "25ms".into()),
                ("max_delay", "500ms".into()),
            ],
        )
        .build()
        .await
}

/// The drill's ops on `rt`: a read-only read, a plain insert (not idempotent), an idempotent
/// upsert and a transaction, each behind the breaker `drill` when `breaker` is set.
pub(super) fn ops(rt: &Runtime, limits: Limits, breaker: bool) -> Result<Ops> {
    let op = |name: &'static str| {
        let op = rt
            .op(name)
            .pool("drill")
            .timeout(limits.timeout)
            .deadline(limits.deadline)
            .retry("drill");
        if breaker { op.breaker("drill") } else { op }
    };
    Ok(Ops {
        read: op("drill::read").read_only(true).build()?,
        // A retry policy on an op that may write and is not idempotent: only failures before
        // the statement was sent are retried.
        insert: op("drill::insert")
            .retry_scope(RetryScope::BeforeSend)
            .build()?,
        upsert: op("drill::upsert").idempotent(true).build()?,
        tx: op("drill::transaction").build()?,
    })
}

/// The workload on `rt` with `limits`.
pub(super) fn workload(rt: &Runtime, limits: Limits, options: Options) -> Result<Arc<Workload>> {
    let mut w = Workload::new(ops(rt, limits, true)?, limits.deadline);
    w.retry_unknown = options.retry_unknown_outcomes;
    Ok(Arc::new(w))
}

/// Counts the times the drill's breaker opens.
#[derive(Debug)]
pub(super) struct BreakerOpens {
    count: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl BreakerOpens {
    pub(super) fn watch(rt: &Runtime) -> Result<BreakerOpens> {
        Self::watch_named(rt, "drill")
    }

    pub(super) fn watch_named(rt: &Runtime, name: &str) -> Result<BreakerOpens> {
        let breaker = rt.breaker(name).ok_or_else(|| {
            Error::test_kit(
                "watch the drill's breaker",
                format!("the runtime has no breaker `{name}`"),
                "this is a bug in the drill",
            )
        })?;
        let mut events = breaker.subscribe();
        let count = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&count);
        let task = tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match events.recv().await {
                    Ok(e) if e.to == BreakerState::Open && e.enforced => {
                        counter.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(reason = %e.reason, "breaker opened");
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                }
            }
        });
        Ok(BreakerOpens { count, task })
    }

    pub(super) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for BreakerOpens {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Shuts the runtime down, bounded, ignoring ops that will not finish.
pub(super) async fn close(rt: &Runtime) {
    let _ = rt.shutdown(Duration::from_secs(5)).await;
}
