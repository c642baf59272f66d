//! Background writes: fire-and-forget ops on a bounded queue per pool.
//!
//! [`Op::submit`](crate::Op::submit) queues a write and returns at once with its number; the
//! pool's workers make it later, through the op's own policies (limiter, breaker, bulkhead,
//! timeout, retry, deadline), so the caller (a streamed response, say) never waits on the
//! database. Each pool has one queue of `background_capacity` writes (queued or running) and
//! `background_workers` workers, started on the first write.
//!
//! When the queue is full, `background_when_full` decides: `wait` (the submitter waits for
//! room), `drop_oldest` (the oldest queued write makes room) or `reject` (the submitter gets
//! [`Error::BackgroundFull`](crate::Error::BackgroundFull)). While the database is down (its
//! breaker open, the server unavailable, no connection to be had), a write that failed before
//! anything reached the server is put back first in line and tried again after a pause, so the
//! queue fills and its rule applies; a write that failed otherwise (a constraint, an unknown
//! outcome) is dropped as failed. Nothing is dropped silently: every write not made is
//! counted, logged, and handed to the hook set with [`BackgroundWrites::on_dropped`], with its
//! number, op, reason and age.
//!
//! [`Runtime::shutdown`](crate::Runtime::shutdown) first refuses new writes and waits for the
//! queues to empty within its deadline; writes still queued or running then are reported
//! ([`DropReason::ShutdownDeadline`]) and shutdown returns
//! [`Error::BackgroundUnwritten`](crate::Error::BackgroundUnwritten). Depth, running writes and
//! the oldest write's age are in [`BackgroundWrites::stats`], the health report and the
//! metrics.

mod queue;
mod report;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::time::Instant;

use self::queue::{Hook, Queue};
pub use self::report::{BackgroundStats, DropReason, DroppedWrite};
use crate::error::Result;
use crate::op::{BackgroundBody, BackgroundWrite, BoxFuture, Conn, Op, OpBuilder};
use crate::pool::PoolConfig;
pub use crate::pool::WhenFull;

/// A runtime's background queues, one per pool: see the [module documentation](self).
pub struct BackgroundWrites {
    queues: HashMap<Arc<str>, Arc<Queue>>,
    order: Vec<Arc<str>>,
    hook: Arc<RwLock<Option<Hook>>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for BackgroundWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundWrites")
            .field("pools", &self.order)
            .finish_non_exhaustive()
    }
}

impl BackgroundWrites {
    /// One queue per pool, from each pool's settings. No task starts until a write is queued.
    pub(crate) fn new<'a>(pools: impl Iterator<Item = (&'a Arc<str>, &'a PoolConfig)>) -> Self {
        let hook: Arc<RwLock<Option<Hook>>> = Arc::default();
        let mut queues = HashMap::new();
        let mut order = Vec::new();
        for (name, cfg) in pools {
            let queue = Queue::new(
                name.clone(),
                cfg.background_capacity,
                cfg.background_when_full,
                cfg.background_workers,
                hook.clone(),
            );
            queues.insert(name.clone(), Arc::new(queue));
            order.push(name.clone());
        }
        order.sort();
        BackgroundWrites {
            queues,
            order,
            hook,
            next_id: AtomicU64::new(1),
        }
    }

    /// Sets the hook that receives every background write not made (replacing any earlier
    /// one). It runs on the task that dropped the write: keep it short (count, log, send on a
    /// channel).
    pub fn on_dropped(&self, hook: impl Fn(&DroppedWrite) + Send + Sync + 'static) {
        *self.hook.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(hook));
    }

    /// Each pool's queue: depth, running writes, oldest age and counters.
    pub fn stats(&self) -> Vec<BackgroundStats> {
        self.order.iter().map(|n| self.queues[n].stats()).collect()
    }

    pub(crate) async fn submit(&self, write: BackgroundWrite) -> Result<u64> {
        let queue = self
            .queues
            .get(&write.pool)
            .expect("every pool has a queue")
            .clone();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        queue.submit(id, write).await?;
        Ok(id)
    }

    /// Drains every queue until `until`; returns the writes not made.
    pub(crate) async fn drain(&self, until: Instant) -> u64 {
        let drains = self.order.iter().map(|n| self.queues[n].drain(until));
        futures_util::future::join_all(drains)
            .await
            .into_iter()
            .sum()
    }
}

impl Drop for BackgroundWrites {
    fn drop(&mut self) {
        for queue in self.queues.values() {
            queue.abort();
        }
    }
}

impl Op {
    /// Queues `body` as a background write on the op's pool and returns its number at once
    /// (or, under `background_when_full = "wait"` with a full queue, once there is room). The
    /// body runs later, through the op's policies, once per attempt; see [`crate::background`]
    /// for what happens when the queue is full or the database is down. Fails with
    /// [`Error::BackgroundFull`](crate::Error::BackgroundFull) under `reject`, and with
    /// [`Error::ShuttingDown`](crate::Error::ShuttingDown) once
    /// shutdown has begun.
    pub async fn submit<F>(&self, body: F) -> Result<u64>
    where
        F: for<'c> FnMut(&'c mut Conn<'static>) -> BoxFuture<'c, Result<()>> + Send + 'static,
    {
        let body: Arc<Mutex<BackgroundBody>> = Arc::new(Mutex::new(Box::new(body)));
        let op = self.clone();
        let attempt = move || -> BoxFuture<'static, Result<()>> {
            let (op, body) = (op.clone(), body.clone());
            Box::pin(async move {
                op.run(move |conn| {
                    let mut body = body.lock().unwrap_or_else(|e| e.into_inner());
                    (*body)(conn)
                })
                .await
            })
        };
        let write = BackgroundWrite {
            op: self.name(),
            pool: self.pool_name().clone(),
            attempt: Box::new(attempt),
        };
        self.host().submit_background(write).await
    }
}

impl OpBuilder<'_> {
    /// Builds the op and queues `body` as a background write (see [`Op::submit`]).
    pub async fn submit<F>(self, body: F) -> Result<u64>
    where
        F: for<'c> FnMut(&'c mut Conn<'static>) -> BoxFuture<'c, Result<()>> + Send + 'static,
    {
        self.build()?.submit(body).await
    }
}
