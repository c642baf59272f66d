use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::broadcast;

use crate::classify::FailureKind;

/// Something that happened to a pool's connections.
#[derive(Debug, Clone)]
pub struct PoolEvent {
    /// The pool.
    pub pool: Arc<str>,
    /// What happened.
    pub kind: PoolEventKind,
    /// When.
    pub at: SystemTime,
}

/// What happened to a connection.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PoolEventKind {
    /// A new connection was opened and its session set up.
    Connect {
        /// The server process serving it.
        backend_pid: Option<i32>,
    },
    /// A caller got a connection.
    Acquire {
        /// How long it waited.
        waited: Duration,
    },
    /// A caller gave a connection back.
    Release {
        /// How long it held it.
        held: Duration,
    },
    /// A connection was closed by the runtime.
    Close {
        /// Why.
        reason: CloseReason,
    },
    /// Acquiring or connecting failed.
    Error {
        /// The kind of failure.
        kind: FailureKind,
        /// The failure, without secrets.
        message: String,
    },
    /// A connection has been held longer than the leak threshold.
    Leak {
        /// How long it has been held.
        held: Duration,
        /// The op or caller holding it.
        holder: String,
    },
}

/// Why the runtime closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// A failure that leaves the connection unusable (class 08, 57P0x, 25006).
    Failure,
    /// The client gave up on a statement; closing stops it on the server.
    Timeout,
    /// A ping before use found it dead.
    ValidationFailed,
    /// The runtime shut down.
    Shutdown,
}

/// Sends pool events to subscribers, costing one atomic load when nobody listens.
#[derive(Debug)]
pub(crate) struct EventSink {
    pool: Arc<str>,
    tx: broadcast::Sender<PoolEvent>,
}

impl EventSink {
    pub(crate) fn new(pool: Arc<str>) -> Self {
        let (tx, _) = broadcast::channel(1024);
        EventSink { pool, tx }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<PoolEvent> {
        self.tx.subscribe()
    }

    #[inline]
    pub(crate) fn listening(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    pub(crate) fn emit(&self, kind: PoolEventKind) {
        if self.listening() {
            let _ = self.tx.send(PoolEvent {
                pool: self.pool.clone(),
                kind,
                at: SystemTime::now(),
            });
        }
    }
}
