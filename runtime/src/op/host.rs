//! What the runner needs of the runtime it runs on. The runtime implements `Host`, so the
//! runner depends on nothing of the runtime's and the runtime builds on the runner.

use std::sync::Arc;

use super::conn::{BoxFuture, Conn};
use crate::breaker::CircuitBreaker;
use crate::bulkhead::Bulkhead;
use crate::cache::ResultCache;
use crate::error::{Error, PolicyKind, Result, Site};
use crate::faults::Faults;
use crate::limiter::RateLimiter;
use crate::observer::Observer;
use crate::pool::Pool;
use crate::retry::RetryPolicy;

/// A background write's body: run once per attempt, and again after a hold.
pub(crate) type BackgroundBody =
    Box<dyn for<'c> FnMut(&'c mut Conn<'static>) -> BoxFuture<'c, Result<()>> + Send>;

/// A background write as the runtime's queues take it: the op's name and pool, and what runs
/// one attempt of it (the op's policies around its body) each time it is called.
pub(crate) struct BackgroundWrite {
    /// The op's name.
    pub(crate) op: &'static str,
    /// The pool whose queue takes it.
    pub(crate) pool: Arc<str>,
    /// Runs the write once, through the op's policies.
    pub(crate) attempt: Box<dyn Fn() -> BoxFuture<'static, Result<()>> + Send + Sync>,
}

/// The runtime as the runner sees it: its pools and policies by name, its shutdown gate, its
/// result cache and background queues.
pub(crate) trait Host: std::fmt::Debug + Send + Sync + 'static {
    /// An owned handle to the same runtime, for an `Op` that outlives the borrow.
    fn handle(&self) -> Arc<dyn Host>;
    /// Counts one op in flight, unless shutdown has begun (then counts nothing, `false`).
    fn enter(&self) -> bool;
    /// Ends what `Host::enter` counted.
    fn leave(&self);
    /// Whether shutdown has begun.
    fn is_shutting_down(&self) -> bool;
    /// The pool named `name`, or the default pool; `op` names the op for the error.
    fn resolve_pool(&self, name: Option<&str>, op: &str) -> Result<&Pool>;
    /// Whether the runtime declares a `kind` named `name`.
    fn declares(&self, kind: PolicyKind, name: &str) -> bool;
    /// The error for an op naming a `kind` the runtime does not declare.
    fn undeclared(&self, kind: PolicyKind, name: &str, op: &str) -> Error;
    /// The breaker named `name`, when declared.
    fn breaker(&self, name: &str) -> Option<Arc<CircuitBreaker>>;
    /// The retry policy named `name`, when declared.
    fn retry(&self, name: &str) -> Option<Arc<RetryPolicy>>;
    /// The rate limiter named `name`, when declared.
    fn limiter(&self, name: &str) -> Option<Arc<RateLimiter>>;
    /// The bulkhead named `name`, when declared.
    fn bulkhead(&self, name: &str) -> Option<Arc<Bulkhead>>;
    /// Where the ops report what happens.
    fn observer(&self) -> &dyn Observer;
    /// The injected faults, when enabled.
    fn faults(&self) -> Option<Arc<Faults>>;
    /// The result cache of read-only ops.
    fn cache(&self) -> &ResultCache;
    /// Queues a background write on its pool's queue.
    fn submit_background(&self, write: BackgroundWrite) -> BoxFuture<'_, Result<u64>>;
}

/// An op in flight; shutdown waits for these.
pub(crate) struct InFlight<'a>(&'a dyn Host);

impl<'a> InFlight<'a> {
    /// Registers an op in flight, or refuses when shutting down.
    pub(crate) fn enter(host: &'a dyn Host, site: impl FnOnce() -> Site) -> Result<Self> {
        if host.enter() {
            Ok(InFlight(host))
        } else {
            Err(Error::ShuttingDown { site: site() })
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}
