//! A bulkhead's running slots: a counting semaphore with tokio's semantics where they matter
//! (waiters are served in arrival order, a newcomer never takes a slot while others wait, a
//! waiter dropped before it is served takes nothing) and a cheaper uncontended path: taking
//! and giving back a slot with nobody waiting is one compare-and-swap each, where tokio's
//! semaphore takes its waiters' lock on every release.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// One waiter in the queue.
#[derive(Debug)]
struct Node {
    /// Set, under the queue's lock, when a release takes the node off the queue and hands it
    /// its slot.
    served: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Node {
    fn waker(&self) -> MutexGuard<'_, Option<Waker>> {
        // A waker slot cannot be left half-written by a panic.
        self.waker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One waiter more, in the high half of the state word.
const WAITER: u64 = 1 << 32;

fn free(state: u64) -> u32 {
    state as u32
}

fn waiting(state: u64) -> u32 {
    (state >> 32) as u32
}

/// The slots. The state word holds the free slots (low half) and the waiters in the queue
/// (high half). Both are never above zero at once: a release with waiters hands its slot to
/// the first of them instead of freeing it, and a caller queues only when no slot is free.
/// The waiters' count changes only under the queue's lock, so under the lock it equals the
/// queue's length.
#[derive(Debug)]
pub(super) struct Slots {
    state: AtomicU64,
    queue: Mutex<VecDeque<Arc<Node>>>,
    total: u32,
}

impl Slots {
    pub(super) fn new(total: u32) -> Self {
        Slots {
            state: AtomicU64::new(u64::from(total)),
            queue: Mutex::new(VecDeque::new()),
            total,
        }
    }

    /// Slots taken now.
    pub(super) fn taken(&self) -> u32 {
        self.total
            .saturating_sub(free(self.state.load(Ordering::Relaxed)))
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Arc<Node>>> {
        // Every change to the queue is a single push, pop or removal: a panic elsewhere
        // cannot leave it half-updated.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a free slot, if there is one (there is none while callers wait).
    pub(super) fn try_take(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        while free(s) > 0 {
            match self
                .state
                .compare_exchange_weak(s, s - 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
        false
    }

    /// Waits for a slot, in arrival order. Dropping the future before it is ready takes no
    /// slot.
    pub(super) fn take(&self) -> Take<'_> {
        Take {
            slots: self,
            node: None,
            done: false,
        }
    }

    /// Gives a slot back: to the first waiter if there is one, else to the free slots.
    pub(super) fn give_back(&self) {
        let mut s = self.state.load(Ordering::Relaxed);
        while waiting(s) == 0 {
            match self
                .state
                .compare_exchange_weak(s, s + 1, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => s = now,
            }
        }
        self.hand_over();
    }

    #[cold]
    fn hand_over(&self) {
        let mut queue = self.lock();
        let Some(node) = queue.pop_front() else {
            // The waiters left while this release looked: nobody waits now.
            self.state.fetch_add(1, Ordering::Release);
            return;
        };
        self.state.fetch_sub(WAITER, Ordering::Relaxed);
        node.served.store(true, Ordering::Release);
        drop(queue);
        let waker = node.waker().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// A waiter that had not been served leaves the queue; one that had been (as it was
    /// dropped) passes its slot on.
    fn leave(&self, node: &Arc<Node>) {
        let mut queue = self.lock();
        if let Some(i) = queue.iter().position(|n| Arc::ptr_eq(n, node)) {
            queue.remove(i);
            self.state.fetch_sub(WAITER, Ordering::Relaxed);
            return;
        }
        drop(queue);
        self.give_back();
    }
}

/// The future of [`Slots::take`].
#[derive(Debug)]
pub(super) struct Take<'a> {
    slots: &'a Slots,
    /// Its place in the queue, once it has one.
    node: Option<Arc<Node>>,
    /// It returned its slot to the caller.
    done: bool,
}

impl Future for Take<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(());
        }
        if let Some(node) = &this.node {
            if !node.served.load(Ordering::Acquire) {
                *node.waker() = Some(cx.waker().clone());
                // Served between the first look and the waker being stored: the releaser
                // found no waker to wake.
                if !node.served.load(Ordering::Acquire) {
                    return Poll::Pending;
                }
            }
            this.done = true;
            return Poll::Ready(());
        }
        let slots = this.slots;
        let mut queue = slots.lock();
        let mut s = slots.state.load(Ordering::Relaxed);
        loop {
            let (next, order) = if free(s) > 0 {
                (s - 1, Ordering::Acquire)
            } else {
                (s + WAITER, Ordering::Relaxed)
            };
            match slots
                .state
                .compare_exchange_weak(s, next, order, Ordering::Relaxed)
            {
                Ok(_) if free(s) > 0 => {
                    this.done = true;
                    return Poll::Ready(());
                }
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        let node = Arc::new(Node {
            served: AtomicBool::new(false),
            waker: Mutex::new(Some(cx.waker().clone())),
        });
        queue.push_back(node.clone());
        this.node = Some(node);
        Poll::Pending
    }
}

impl Drop for Take<'_> {
    fn drop(&mut self) {
        if !self.done
            && let Some(node) = self.node.take()
        {
            self.slots.leave(&node);
        }
    }
}
