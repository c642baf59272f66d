//! Hand-off: a connection that finished an op cleanly goes straight to a caller waiting for
//! one, as HikariCP's hand-off queue does, instead of back through sqlx's pool.
//!
//! sqlx's pool takes a connection back in a task of its own and pings it first (a `Sync`
//! round trip, `return_to_pool` in sqlx-core 0.9's `pool/connection.rs`) before the next
//! waiter can have it. On a saturated pool that round trip sits between every two ops on
//! every connection. A connection whose op has just succeeded needs no such test (it is
//! the same judgement as validating by idle time: used a moment ago, it is alive), so when
//! callers are waiting, the runtime gives it to the longest-waiting one directly. sqlx has no
//! hook for this (its `after_release` runs before the ping, and can only keep or close), hence
//! this module.
//!
//! Bounds: a connection is handed on at most [`MAX_HANDOFFS`] times in a row, then goes back
//! through sqlx (its ping, its max-lifetime check); only ops that ended well hand on, never
//! code holding a connection from `Pool::acquire()`, never an evicted connection, never
//! while the pool closes. A caller that must test a reused connection first (an op that
//! cannot run again safely, or any caller after recent failures) pings a handed-on one as it
//! would one from the pool; every waiter, whatever its op, takes hand-offs in turn, so none
//! starves behind the others.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{AcqRel, Acquire};

use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use tokio::sync::oneshot;

/// How many times in a row a connection may be handed on without going back through sqlx.
pub(crate) const MAX_HANDOFFS: u32 = 32;

/// A connection handed on, with how many times in a row it has been.
#[derive(Debug)]
pub(crate) struct Handed {
    pub(crate) conn: PoolConnection<Postgres>,
    pub(crate) handoffs: u32,
    /// The multi-host generation it was acquired under (see `crate::hosts`).
    pub(crate) generation: u64,
}

/// The callers waiting for a hand-off, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Handoff {
    waiters: Mutex<VecDeque<oneshot::Sender<Handed>>>,
    /// Waiters still waiting (their receivers alive): read without the lock on every release.
    waiting: AtomicUsize,
}

/// A registered waiter; dropping it (got a connection, gave up, cancelled) withdraws it.
#[derive(Debug)]
pub(crate) struct Waiter<'a> {
    handoff: &'a Handoff,
    pub(crate) rx: oneshot::Receiver<Handed>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.handoff.waiting.fetch_sub(1, AcqRel);
        // A connection sent after the waiter stopped listening goes back through sqlx when
        // the receiver, and with it the connection, is dropped here.
        self.rx.close();
    }
}

impl Handoff {
    /// Registers a caller that is about to wait for a connection.
    pub(crate) fn register(&self) -> Waiter<'_> {
        let (tx, rx) = oneshot::channel();
        self.waiting.fetch_add(1, AcqRel);
        let mut waiters = self.lock();
        // Senders of waiters that left accumulate only until a release or a registration
        // finds them; keep the queue within a small multiple of the live waiters.
        let live = self.waiting.load(Acquire);
        if waiters.len() > 2 * live + 16 {
            waiters.retain(|w| !w.is_closed());
        }
        waiters.push_back(tx);
        drop(waiters);
        Waiter { handoff: self, rx }
    }

    /// Gives `handed` to the longest-waiting caller, or returns it when nobody is waiting.
    pub(crate) fn give(&self, mut handed: Handed) -> Result<(), Handed> {
        if self.waiting.load(Acquire) == 0 {
            return Err(handed);
        }
        let mut waiters = self.lock();
        while let Some(tx) = waiters.pop_front() {
            match tx.send(handed) {
                Ok(()) => return Ok(()),
                Err(back) => handed = back,
            }
        }
        Err(handed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<oneshot::Sender<Handed>>> {
        // The queue holds no invariant a panic could break halfway.
        self.waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
