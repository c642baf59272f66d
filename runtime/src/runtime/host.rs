//! The runtime as the runner sees it (`op::Host`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Runtime;
use crate::breaker::CircuitBreaker;
use crate::bulkhead::Bulkhead;
use crate::cache::ResultCache;
use crate::error::{Error, PolicyKind, Result};
use crate::faults::Faults;
use crate::limiter::RateLimiter;
use crate::observer::Observer;
use crate::op::{BackgroundWrite, BoxFuture, Host};
use crate::pool::Pool;
use crate::retry::RetryPolicy;

impl Host for Runtime {
    fn handle(&self) -> Arc<dyn Host> {
        Arc::new(self.clone())
    }

    fn enter(&self) -> bool {
        let shared = &self.shared;
        shared.in_flight.fetch_add(1, Ordering::AcqRel);
        // Checked after counting, so shutdown never misses an op that got past this point.
        if shared.closing.load(Ordering::Acquire) {
            self.leave();
            return false;
        }
        true
    }

    fn leave(&self) {
        let shared = &self.shared;
        if shared.in_flight.fetch_sub(1, Ordering::AcqRel) == 1
            && shared.closing.load(Ordering::Acquire)
        {
            shared.drained.notify_waiters();
        }
    }

    fn is_shutting_down(&self) -> bool {
        Runtime::is_shutting_down(self)
    }

    fn resolve_pool(&self, name: Option<&str>, op: &str) -> Result<&Pool> {
        Runtime::resolve_pool(self, name, op)
    }

    fn declares(&self, kind: PolicyKind, name: &str) -> bool {
        Runtime::declares(self, kind, name)
    }

    fn undeclared(&self, kind: PolicyKind, name: &str, op: &str) -> Error {
        Runtime::undeclared(self, kind, name, op)
    }

    fn breaker(&self, name: &str) -> Option<Arc<CircuitBreaker>> {
        self.shared.breakers.get(name).cloned()
    }

    fn retry(&self, name: &str) -> Option<Arc<RetryPolicy>> {
        self.shared.retries.get(name).cloned()
    }

    fn limiter(&self, name: &str) -> Option<Arc<RateLimiter>> {
        self.shared.limiters.get(name).cloned()
    }

    fn bulkhead(&self, name: &str) -> Option<Arc<Bulkhead>> {
        self.shared.bulkheads.get(name).cloned()
    }

    fn observer(&self) -> &dyn Observer {
        &*self.shared.observer
    }

    fn faults(&self) -> Option<Arc<Faults>> {
        self.shared.faults.clone()
    }

    fn cache(&self) -> &ResultCache {
        &self.shared.cache
    }

    fn submit_background(&self, write: BackgroundWrite) -> BoxFuture<'_, Result<u64>> {
        Box::pin(self.shared.background.submit(write))
    }
}
