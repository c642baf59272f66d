//! One replica: its pool, what the lag monitor last measured, its health and its counters.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64};
use std::time::Duration;

use tokio::time::Instant;

use crate::pool::Pool;

/// What the monitor last found a replica to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum State {
    /// Not measured yet.
    Unknown = 0,
    /// A standby that answered the last measurement.
    Up = 1,
    /// Unreachable, or it failed an op in a way a primary would not.
    Down = 2,
    /// It answered but is not in recovery (promoted, or not a replica at all): never used.
    NotReplica = 3,
}

impl State {
    fn from_u8(v: u8) -> State {
        match v {
            1 => State::Up,
            2 => State::Down,
            3 => State::NotReplica,
            _ => State::Unknown,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Down => "down",
            State::NotReplica => "not_replica",
        }
    }
}

/// A replica of a pool's server.
pub(crate) struct Node {
    pub(crate) index: usize,
    pub(crate) pool: Pool,
    /// When the lag clocks started (shared by every replica of the set).
    base: Instant,
    state: AtomicU8,
    /// Every write the primary acknowledged before this moment (µs after `base`, plus one;
    /// 0: none known) is replayed on the replica.
    fresh_as_of_us: AtomicU64,
    /// The replay LSN last measured (0: none).
    replay_lsn: AtomicU64,
    pub(crate) in_flight: AtomicU32,
    /// Read-only ops that ended well on it.
    pub(crate) reads: AtomicU64,
    /// Ops it failed that ran again on the primary.
    pub(crate) rerouted: AtomicU64,
    /// The last failure, for the health report.
    pub(crate) last_error: std::sync::Mutex<Option<String>>,
}

impl Node {
    pub(crate) fn new(index: usize, pool: Pool, base: Instant) -> Node {
        Node {
            index,
            pool,
            base,
            state: AtomicU8::new(State::Unknown as u8),
            fresh_as_of_us: AtomicU64::new(0),
            replay_lsn: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            reads: AtomicU64::new(0),
            rerouted: AtomicU64::new(0),
            last_error: std::sync::Mutex::new(None),
        }
    }

    pub(crate) fn state(&self) -> State {
        State::from_u8(self.state.load(Relaxed))
    }

    /// µs after `base`, plus one (so that 0 means "never").
    pub(crate) fn stamp(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_micros()).unwrap_or(u64::MAX - 1)
            + 1
    }

    /// The replica answered as a standby: it has replayed `replay_lsn`, and with it every
    /// write acknowledged before `fresh_as_of` (when known).
    pub(crate) fn measured(&self, replay_lsn: u64, fresh_as_of: Option<Instant>) {
        self.replay_lsn.store(replay_lsn, Relaxed);
        if let Some(at) = fresh_as_of {
            self.fresh_as_of_us.fetch_max(self.stamp(at), Relaxed);
        }
        self.state.store(State::Up as u8, Relaxed);
    }

    /// Not a standby any more: never route to it.
    pub(crate) fn not_replica(&self) {
        self.state.store(State::NotReplica as u8, Relaxed);
        self.fresh_as_of_us.store(0, Relaxed);
    }

    /// Down: what it had replayed is forgotten, so it serves nothing until measured again
    /// (a restarted standby may come back behind where it was).
    pub(crate) fn down(&self, why: &str) {
        self.state.store(State::Down as u8, Relaxed);
        self.fresh_as_of_us.store(0, Relaxed);
        self.replay_lsn.store(0, Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.to_owned());
    }

    /// How far behind the replica may be now: the time since the newest moment up to which it
    /// has everything. `None` while nothing is known.
    pub(crate) fn lag(&self, now: Instant) -> Option<Duration> {
        let fresh = self.fresh_as_of_us.load(Relaxed);
        (fresh != 0).then(|| {
            let at = self.base + Duration::from_micros(fresh - 1);
            now.saturating_duration_since(at)
        })
    }

    pub(crate) fn replay_lsn(&self) -> Option<u64> {
        Some(self.replay_lsn.load(Relaxed)).filter(|l| *l != 0)
    }

    /// Whether it may serve a read that must see every write acknowledged more than
    /// `max_lag` ago (and, with `lsn`, the write at that WAL position).
    pub(crate) fn eligible(&self, now: Instant, max_lag: Duration, lsn: Option<u64>) -> bool {
        self.state() == State::Up
            && !self.pool.server().is_down()
            && self.in_flight.load(Relaxed) < self.pool.config().max
            && self.lag(now).is_some_and(|lag| lag <= max_lag)
            && lsn.is_none_or(|l| self.replay_lsn().is_some_and(|r| r >= l))
    }
}

/// A replica's slot for one attempt: counted in flight until dropped.
pub(crate) struct Lease {
    pub(crate) node: Arc<Node>,
}

impl Lease {
    pub(crate) fn new(node: Arc<Node>) -> Lease {
        node.in_flight.fetch_add(1, Relaxed);
        Lease { node }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.node.in_flight.fetch_sub(1, Relaxed);
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("replica", &self.node.index)
            .finish()
    }
}
