//! One pool's queue of background writes and the workers that make them.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, TryAcquireError};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::WhenFull;
use super::report::{BackgroundStats, DropReason, DroppedWrite, millis};
use crate::error::{Error, Result, Site};
use crate::op::BackgroundWrite;

/// Receives every write that was not made.
pub(crate) type Hook = Arc<dyn Fn(&DroppedWrite) + Send + Sync>;

/// The longest a worker waits before trying a held write again.
const MAX_HOLD: Duration = Duration::from_secs(2);
const FIRST_HOLD: Duration = Duration::from_millis(50);

struct Job {
    id: u64,
    write: BackgroundWrite,
    submitted: Instant,
    /// The last failure while it was held, for the report if it is never written.
    last_error: Option<String>,
}

struct State {
    queued: VecDeque<Job>,
    /// Writes running now: their op and submission time, for reports and the oldest age.
    running: HashMap<u64, (&'static str, Instant, Option<String>)>,
    closed: bool,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    written: AtomicU64,
    rejected: AtomicU64,
    dropped_oldest: AtomicU64,
    failed: AtomicU64,
    unwritten_at_shutdown: AtomicU64,
    held: AtomicU64,
}

/// One pool's queue: a bounded deque, a semaphore of its slots (a write holds one from
/// submission until it is written or dropped), and its workers.
pub(crate) struct Queue {
    pool: Arc<str>,
    capacity: u32,
    when_full: WhenFull,
    workers: u32,
    slots: Semaphore,
    state: Mutex<State>,
    /// A write was queued, or the queue is closing.
    work: Notify,
    /// The queue became empty with nothing running.
    idle: Notify,
    counters: Counters,
    hook: Arc<RwLock<Option<Hook>>>,
    started: AtomicBool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Queue {
    pub(crate) fn new(
        pool: Arc<str>,
        capacity: u32,
        when_full: WhenFull,
        workers: u32,
        hook: Arc<RwLock<Option<Hook>>>,
    ) -> Queue {
        Queue {
            pool,
            capacity,
            when_full,
            workers: workers.max(1),
            slots: Semaphore::new(capacity as usize),
            state: Mutex::new(State {
                queued: VecDeque::new(),
                running: HashMap::new(),
                closed: false,
            }),
            work: Notify::new(),
            idle: Notify::new(),
            counters: Counters::default(),
            hook,
            started: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn site(&self, op: &'static str) -> Site {
        Site {
            op: Some(Arc::from(op)),
            pool: Some(self.pool.clone()),
        }
    }

    /// Hands a write that was not made to the hook, and logs it: never silent.
    fn report(
        &self,
        id: u64,
        op: &'static str,
        submitted: Instant,
        reason: DropReason,
        error: Option<String>,
    ) {
        let dropped = DroppedWrite {
            id,
            op,
            pool: self.pool.to_string(),
            reason,
            queued_for: submitted.elapsed(),
            error,
        };
        tracing::warn!(
            op,
            pool = %self.pool,
            id,
            reason = reason.as_str(),
            error = dropped.error.as_deref().unwrap_or(""),
            "background write not made"
        );
        let hook = self.hook.read().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(hook) = hook {
            hook(&dropped);
        }
    }

    /// Queues a write under the queue's rule for a full queue.
    pub(crate) async fn submit(self: &Arc<Self>, id: u64, write: BackgroundWrite) -> Result<()> {
        let name = write.op;
        let shutting_down = || Error::ShuttingDown {
            site: self.site(name),
        };
        if self.state().closed {
            return Err(shutting_down());
        }
        let submitted = Instant::now();
        let job = Job {
            id,
            write,
            submitted,
            last_error: None,
        };
        let permit = match self.slots.try_acquire() {
            Ok(permit) => Some(permit),
            Err(TryAcquireError::Closed) => return Err(shutting_down()),
            Err(TryAcquireError::NoPermits) => None,
        };
        match (permit, self.when_full) {
            (Some(permit), _) => permit.forget(),
            (None, WhenFull::Reject) => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                self.report(id, name, submitted, DropReason::Rejected, None);
                return Err(Error::BackgroundFull {
                    site: self.site(name),
                    capacity: self.capacity,
                });
            }
            (None, WhenFull::DropOldest) => {
                let oldest = self.state().queued.pop_front();
                match oldest {
                    // Its slot is this write's now.
                    Some(old) => {
                        self.counters.dropped_oldest.fetch_add(1, Ordering::Relaxed);
                        let op = old.write.op;
                        self.report(old.id, op, old.submitted, DropReason::DroppedOldest, None);
                    }
                    // Every slot is a running write: wait for one.
                    None => self
                        .slots
                        .acquire()
                        .await
                        .map_err(|_| shutting_down())?
                        .forget(),
                }
            }
            (None, WhenFull::Wait) => self
                .slots
                .acquire()
                .await
                .map_err(|_| shutting_down())?
                .forget(),
        }
        {
            let mut state = self.state();
            if state.closed {
                drop(state);
                self.slots.add_permits(1);
                return Err(shutting_down());
            }
            state.queued.push_back(job);
        }
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        self.start_workers();
        self.work.notify_one();
        Ok(())
    }

    fn start_workers(self: &Arc<Self>) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..self.workers {
            tasks.push(tokio::spawn(self.clone().work()));
        }
    }

    /// A worker: takes the oldest write and makes it through its op's policies.
    async fn work(self: Arc<Self>) {
        let mut hold = FIRST_HOLD;
        loop {
            let notified = self.work.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let job = {
                let mut state = self.state();
                match state.queued.pop_front() {
                    Some(job) => {
                        let running = (job.write.op, job.submitted, job.last_error.clone());
                        state.running.insert(job.id, running);
                        Some(job)
                    }
                    None if state.closed => return,
                    None => None,
                }
            };
            let Some(mut job) = job else {
                notified.await;
                continue;
            };
            let result = (job.write.attempt)().await;
            match result {
                Ok(()) => {
                    hold = FIRST_HOLD;
                    self.counters.written.fetch_add(1, Ordering::Relaxed);
                    self.finish(job.id);
                }
                Err(e) if waits_for_the_server(&e) => {
                    // Nothing reached the server: keep it, first in line, until it answers.
                    self.counters.held.fetch_add(1, Ordering::Relaxed);
                    job.last_error = Some(e.to_string());
                    {
                        let mut state = self.state();
                        state.running.remove(&job.id);
                        state.queued.push_front(job);
                    }
                    tokio::time::sleep(hold).await;
                    hold = (hold * 2).min(MAX_HOLD);
                }
                Err(e) => {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    let op = job.write.op;
                    self.report(
                        job.id,
                        op,
                        job.submitted,
                        DropReason::Failed,
                        Some(e.to_string()),
                    );
                    self.finish(job.id);
                }
            }
        }
    }

    fn finish(&self, id: u64) {
        let idle = {
            let mut state = self.state();
            state.running.remove(&id);
            state.queued.is_empty() && state.running.is_empty()
        };
        self.slots.add_permits(1);
        if idle {
            self.idle.notify_waiters();
        }
    }

    /// Refuses new writes, waits until every accepted one is made or `until`, then abandons
    /// and reports the rest. Returns how many were not written.
    pub(crate) async fn drain(&self, until: Instant) -> u64 {
        self.state().closed = true;
        self.slots.close();
        self.work.notify_waiters();
        let empty = async {
            loop {
                let idle = self.idle.notified();
                tokio::pin!(idle);
                idle.as_mut().enable();
                {
                    let state = self.state();
                    if state.queued.is_empty() && state.running.is_empty() {
                        return;
                    }
                }
                idle.await;
            }
        };
        let drained = tokio::time::timeout_at(until, empty).await.is_ok();
        // Idle workers see the closed queue and return; a worker still making a write at the
        // deadline is stopped. Awaited, so no op of theirs is in flight once this returns.
        let tasks: Vec<_> = self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        if drained {
            return 0;
        }
        let (queued, running) = {
            let mut state = self.state();
            (
                state.queued.drain(..).collect::<Vec<_>>(),
                state.running.drain().collect::<Vec<_>>(),
            )
        };
        let mut unwritten = 0;
        for (id, (op, submitted, last)) in running {
            let error = Some(match last {
                Some(e) => format!("abandoned while running (outcome unknown); earlier: {e}"),
                None => "abandoned while running (outcome unknown)".to_owned(),
            });
            self.report(id, op, submitted, DropReason::ShutdownDeadline, error);
            unwritten += 1;
        }
        for job in queued {
            let op = job.write.op;
            self.report(
                job.id,
                op,
                job.submitted,
                DropReason::ShutdownDeadline,
                job.last_error,
            );
            unwritten += 1;
        }
        self.counters
            .unwritten_at_shutdown
            .fetch_add(unwritten, Ordering::Relaxed);
        unwritten
    }

    /// Stops the workers without waiting (the runtime was dropped).
    pub(crate) fn abort(&self) {
        self.state().closed = true;
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }

    pub(crate) fn stats(&self) -> BackgroundStats {
        let (depth, running, oldest) = {
            let state = self.state();
            let oldest = state
                .queued
                .iter()
                .map(|j| j.submitted)
                .chain(state.running.values().map(|r| r.1))
                .min();
            (state.queued.len(), state.running.len(), oldest)
        };
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BackgroundStats {
            pool: self.pool.to_string(),
            capacity: self.capacity,
            when_full: self.when_full.as_str(),
            depth: u32::try_from(depth).unwrap_or(u32::MAX),
            running: u32::try_from(running).unwrap_or(u32::MAX),
            oldest_age_ms: oldest.map_or(0, |t| millis(t.elapsed())),
            accepted: load(&c.accepted),
            written: load(&c.written),
            rejected: load(&c.rejected),
            dropped_oldest: load(&c.dropped_oldest),
            failed: load(&c.failed),
            unwritten_at_shutdown: load(&c.unwritten_at_shutdown),
            held: load(&c.held),
        }
    }
}

/// Whether a write failed before anything reached the server because the database is down
/// or out of reach (breaker open, server unavailable, no connection, connect failure): then
/// running it again cannot apply it twice, and it waits for the server instead of being
/// dropped.
fn waits_for_the_server(e: &Error) -> bool {
    match e {
        Error::BreakerOpen { .. }
        | Error::Unavailable { .. }
        | Error::AcquireTimeout { .. }
        | Error::Connect { .. } => true,
        Error::DeadlineExceeded { attempts: 0, .. } => true,
        Error::DeadlineExceeded {
            last: Some(last), ..
        } => waits_for_the_server(last),
        _ => false,
    }
}
