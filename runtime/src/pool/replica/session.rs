//! [`ReadSession`]: the context in which reads see the session's own writes.
//!
//! The context is a value the application holds and enters around the code whose reads must
//! see its writes: one HTTP request, or one user's session kept across requests. Entering it
//! sets a tokio task-local, because an op's signature is the application's (`#[db_op]` adds
//! no parameter to carry it) and a task-local follows the future across `.await`s and worker
//! threads, and ends with the scope. A thread-local would not follow the future; a
//! runtime-wide "last write" would send every caller's reads to the primary after anyone's
//! write. Tasks spawned inside the scope do not inherit it: enter the same session there
//! (`session.scope(..)`, the value is a cheap clone).

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

tokio::task_local! {
    static SESSION: ReadSession;
}

/// A read-your-writes context: after a write inside it, its `read_only` ops read what the
/// write did (the pool's `read_your_writes` says how). Cheap to clone; clones share the
/// writes seen.
///
/// ```no_run
/// # async fn example(rt: sqlx_resilience_runtime::Runtime) {
/// use sqlx_resilience_runtime::replica::ReadSession;
///
/// let session = ReadSession::new(); // keep it per user to span requests
/// session
///     .scope(async {
///         // a write through any op of a pool with replicas, then reads
///     })
///     .await;
/// # }
/// ```
#[derive(Clone, Default)]
pub struct ReadSession {
    writes: Arc<Mutex<Vec<Written>>>,
}

/// The last write of a session on one pool.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    pub(crate) pool: Arc<str>,
    pub(crate) at: Instant,
    /// The primary's WAL position after the write, when it was read.
    pub(crate) lsn: Option<u64>,
}

impl ReadSession {
    /// A session with no writes yet.
    pub fn new() -> ReadSession {
        ReadSession::default()
    }

    /// Runs `fut` inside this session.
    pub async fn scope<F: Future>(&self, fut: F) -> F::Output {
        SESSION.scope(self.clone(), fut).await
    }

    /// The session the current task runs in, if any.
    pub fn current() -> Option<ReadSession> {
        SESSION.try_with(Clone::clone).ok()
    }

    /// How long ago the session last wrote through `pool`, if it did.
    pub fn since_last_write(&self, pool: &str) -> Option<std::time::Duration> {
        self.last_write(pool).map(|w| w.at.elapsed())
    }

    pub(crate) fn last_write(&self, pool: &str) -> Option<Written> {
        let writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        writes.iter().find(|w| &*w.pool == pool).cloned()
    }

    pub(crate) fn wrote(&self, pool: &Arc<str>, lsn: Option<u64>) {
        let mut writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        let now = Written {
            pool: pool.clone(),
            at: Instant::now(),
            lsn,
        };
        match writes.iter_mut().find(|w| w.pool == *pool) {
            Some(w) => *w = now,
            None => writes.push(now),
        }
    }
}

impl std::fmt::Debug for ReadSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("ReadSession")
            .field(
                "pools_written",
                &writes.iter().map(|w| &w.pool).collect::<Vec<_>>(),
            )
            .finish()
    }
}
