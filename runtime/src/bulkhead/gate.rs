use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use tokio::time::Instant;

use super::config::BulkheadConfig;
use super::slots::Slots;

/// Why a bulkhead refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BulkheadRejection {
    /// Every slot was taken and the queue was full: shed at once.
    QueueFull,
    /// The call waited in the queue until `max_wait` or its deadline.
    WaitTimedOut,
}

impl BulkheadRejection {
    /// The stable name used in telemetry (`queue_full`, `wait_timed_out`).
    pub fn as_str(self) -> &'static str {
        match self {
            BulkheadRejection::QueueFull => "queue_full",
            BulkheadRejection::WaitTimedOut => "wait_timed_out",
        }
    }
}

/// A bulkhead refused a call; the op runner turns this into `Error::BulkheadFull`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkheadRejected {
    /// Shed at once, or gave up waiting.
    pub reason: BulkheadRejection,
    /// The bulkhead's concurrency limit.
    pub max_concurrent: u32,
    /// The bulkhead's queue limit.
    pub max_queue: u32,
}

impl fmt::Display for BulkheadRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.reason {
            BulkheadRejection::QueueFull => "full",
            BulkheadRejection::WaitTimedOut => "full until the wait ran out",
        };
        write!(
            f,
            "bulkhead {what} ({} running, {} queued)",
            self.max_concurrent, self.max_queue
        )
    }
}

/// One running slot of a bulkhead; the slot is released when the permit is dropped.
#[derive(Debug)]
pub struct BulkheadPermit {
    slots: Arc<Slots>,
}

impl Drop for BulkheadPermit {
    fn drop(&mut self) {
        self.slots.give_back();
    }
}

/// One running slot, borrowed from its bulkhead: a [`BulkheadPermit`] without the shared
/// handle it carries, for a caller that holds the bulkhead for as long as the call runs (the
/// op runner does). The slot is released when it is dropped.
#[derive(Debug)]
pub struct BulkheadSlot<'a> {
    slots: &'a Slots,
}

impl Drop for BulkheadSlot<'_> {
    fn drop(&mut self) {
        self.slots.give_back();
    }
}

/// A snapshot of a bulkhead, from [`Bulkhead::metrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BulkheadMetrics {
    /// Calls running now.
    pub running: u32,
    /// Calls waiting now.
    pub queued: u32,
    /// Calls admitted since the bulkhead was created.
    pub admitted: u64,
    /// Calls shed because the queue was full.
    pub shed: u64,
    /// Calls that gave up waiting.
    pub timed_out: u64,
}

/// A named bulkhead: at most `max_concurrent` calls run, at most `max_queue` wait. See the
/// [module documentation](super).
pub struct Bulkhead {
    name: Arc<str>,
    config: BulkheadConfig,
    slots: Arc<Slots>,
    queued: AtomicU32,
    admitted: AtomicU64,
    shed: AtomicU64,
    timed_out: AtomicU64,
}

/// A place in the queue, given back when dropped (admitted, timed out or cancelled).
struct QueueSlot<'a>(&'a AtomicU32);

impl<'a> QueueSlot<'a> {
    fn take(queued: &'a AtomicU32, max: u32) -> Option<Self> {
        queued
            .fetch_update(Relaxed, Relaxed, |q| (q < max).then_some(q + 1))
            .ok()
            .map(|_| QueueSlot(queued))
    }
}

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl Bulkhead {
    /// A bulkhead with these settings (every combination `Section::set` accepts is valid).
    pub fn new(name: impl Into<Arc<str>>, config: BulkheadConfig) -> Self {
        Bulkhead {
            name: name.into(),
            slots: Arc::new(Slots::new(config.max_concurrent.max(1))),
            config,
            queued: AtomicU32::new(0),
            admitted: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
        }
    }

    /// The bulkhead's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The settings in force.
    pub fn config(&self) -> &BulkheadConfig {
        &self.config
    }

    fn rejected(&self, reason: BulkheadRejection) -> BulkheadRejected {
        let counter = match reason {
            BulkheadRejection::QueueFull => &self.shed,
            BulkheadRejection::WaitTimedOut => &self.timed_out,
        };
        counter.fetch_add(1, Relaxed);
        BulkheadRejected {
            reason,
            max_concurrent: self.config.max_concurrent,
            max_queue: self.config.max_queue,
        }
    }

    /// The borrowed slot for a slot this call has taken.
    fn admit(&self) -> BulkheadSlot<'_> {
        self.admitted.fetch_add(1, Relaxed);
        BulkheadSlot { slots: &self.slots }
    }

    /// The slot, as a permit that owns a handle to the slots.
    fn owned(&self, slot: BulkheadSlot<'_>) -> BulkheadPermit {
        // The slot passes to the permit, which gives it back when dropped.
        std::mem::forget(slot);
        BulkheadPermit {
            slots: self.slots.clone(),
        }
    }

    /// Takes a slot if one is free now, without queueing.
    pub fn try_acquire(&self) -> Result<BulkheadPermit, BulkheadRejected> {
        if self.slots.try_take() {
            Ok(self.owned(self.admit()))
        } else {
            Err(self.rejected(BulkheadRejection::QueueFull))
        }
    }

    /// Takes a slot: at once if one is free; else waits in the queue (if it has room) until
    /// a slot frees, `max_wait` passes or `deadline` comes, whichever is first.
    ///
    /// Waiters are served first come, first served, and a newcomer cannot take a slot while
    /// others wait. Cancellation safe: a dropped waiter leaves the queue and takes no slot.
    pub async fn acquire(
        &self,
        deadline: Option<Instant>,
    ) -> Result<BulkheadPermit, BulkheadRejected> {
        let slot = self.acquire_slot(deadline).await?;
        Ok(self.owned(slot))
    }

    /// [`acquire`](Self::acquire), with the slot borrowed from the bulkhead rather than
    /// owned: it skips the permit's shared handle (two atomic operations) for a caller that
    /// holds the bulkhead anyway.
    pub async fn acquire_slot(
        &self,
        deadline: Option<Instant>,
    ) -> Result<BulkheadSlot<'_>, BulkheadRejected> {
        if self.slots.try_take() {
            return Ok(self.admit());
        }
        let Some(_slot) = QueueSlot::take(&self.queued, self.config.max_queue) else {
            return Err(self.rejected(BulkheadRejection::QueueFull));
        };
        let by_wait = Instant::now() + self.config.max_wait;
        let limit = deadline.map_or(by_wait, |d| d.min(by_wait));
        match tokio::time::timeout_at(limit, self.slots.take()).await {
            Ok(()) => Ok(self.admit()),
            Err(_) => Err(self.rejected(BulkheadRejection::WaitTimedOut)),
        }
    }

    /// A snapshot of the bulkhead's counters.
    pub fn metrics(&self) -> BulkheadMetrics {
        BulkheadMetrics {
            running: self.slots.taken(),
            queued: self.queued.load(Relaxed),
            admitted: self.admitted.load(Relaxed),
            shed: self.shed.load(Relaxed),
            timed_out: self.timed_out.load(Relaxed),
        }
    }
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
