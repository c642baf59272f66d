//! Ops whose results are kept in the runtime's result cache (`crate::cache`).

use std::future::Future;
use std::time::Duration;

use super::attempt::{in_tx, plain};
use super::builder::{Op, OpBuilder};
use super::conn::{BoxFuture, Conn, Tx};
use super::host::Host;
use super::resolve::Resolved;
use super::run::execute;
use super::spec::OpSpec;
use crate::cache::CacheKeyPart;
use crate::error::{Error, OpError, Result};

/// The op's time to live, when it has one; an op that may write is refused.
fn ttl_of(spec: &OpSpec) -> Result<Option<Duration>> {
    match spec.cache {
        Some(ttl) if !spec.is_read_only() => Err(Error::Config {
            key: "cache".into(),
            value: format!("{ttl:?}"),
            expected: "a result cache only on a read-only op: a result served from the cache \
                       skips the op, and with it any write; declare the op `read_only(true)` \
                       if it only reads, or remove `cache`"
                .into(),
            origin: format!("op `{}`", spec.name),
        }),
        ttl => Ok(ttl),
    }
}

pub(crate) async fn cached<T, E, F, Fut>(
    rt: &dyn Host,
    spec: &OpSpec,
    key: impl CacheKeyPart,
    run: F,
) -> Result<T, E>
where
    T: Clone + Send + Sync + 'static,
    E: From<Error>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    match ttl_of(spec).map_err(E::from)? {
        // The op's run is boxed: nested in the cache's single-flight future, its type is
        // deep enough to overflow the compiler's recursion limit in the caller's crate
        // ("queries overflow the depth limit" when laying out a cached `#[db_op]`).
        Some(ttl) => {
            let boxed = || Box::pin(run());
            rt.cache().get_or_run(spec.name, ttl, key, boxed).await
        }
        None => run().await,
    }
}

impl OpBuilder<'_> {
    /// Runs `body` (see [`OpBuilder::run`]), answering from the result cache when the op has a
    /// time to live ([`OpBuilder::cache`]) and a result for `key` is kept. The key is what the
    /// result depends on besides the op (its arguments, usually as a tuple); one caller of a
    /// missing key runs the body while the others wait for its result. Without a time to
    /// live it runs as [`OpBuilder::run`] does.
    pub async fn run_cached<'env, K, T, E, F>(self, key: K, body: F) -> Result<T, E>
    where
        K: CacheKeyPart,
        F: for<'c> FnMut(&'c mut Conn<'env>) -> BoxFuture<'c, Result<T, E>> + Send + 'env,
        T: Clone + Send + Sync + 'static,
        E: OpError,
    {
        let op = Resolved::new(self.rt, self.spec).map_err(E::from)?;
        let key_str = self.key.as_deref();
        cached(self.rt, &op.spec, key, || {
            execute(self.rt, &op, key_str, plain(body, E::db_error))
        })
        .await
    }

    /// Runs `body` in a transaction through the result cache (see [`OpBuilder::run_cached`]
    /// and [`OpBuilder::run_tx`]).
    pub async fn run_tx_cached<'env, K, T, E, G>(self, key: K, body: G) -> Result<T, E>
    where
        K: CacheKeyPart,
        G: for<'c> FnMut(&'c mut Tx<'env>) -> BoxFuture<'c, Result<T, E>> + Send + 'env,
        T: Clone + Send + Sync + 'static,
        E: OpError,
    {
        let op = Resolved::new(self.rt, self.spec).map_err(E::from)?;
        let key_str = self.key.as_deref();
        cached(self.rt, &op.spec, key, || {
            execute(self.rt, &op, key_str, in_tx(body, E::db_error))
        })
        .await
    }
}

impl Op {
    /// Runs `body` through the result cache (see [`OpBuilder::run_cached`]).
    pub async fn run_cached<'env, K, T, E, F>(&self, key: K, body: F) -> Result<T, E>
    where
        K: CacheKeyPart,
        F: for<'c> FnMut(&'c mut Conn<'env>) -> BoxFuture<'c, Result<T, E>> + Send + 'env,
        T: Clone + Send + Sync + 'static,
        E: OpError,
    {
        cached(&*self.rt, &self.resolved.spec, key, || {
            execute(&*self.rt, &self.resolved, None, plain(body, E::db_error))
        })
        .await
    }

    /// Runs `body` in a transaction through the result cache (see [`OpBuilder::run_cached`]
    /// and [`OpBuilder::run_tx`]).
    pub async fn run_tx_cached<'env, K, T, E, G>(&self, key: K, body: G) -> Result<T, E>
    where
        K: CacheKeyPart,
        G: for<'c> FnMut(&'c mut Tx<'env>) -> BoxFuture<'c, Result<T, E>> + Send + 'env,
        T: Clone + Send + Sync + 'static,
        E: OpError,
    {
        cached(&*self.rt, &self.resolved.spec, key, || {
            execute(&*self.rt, &self.resolved, None, in_tx(body, E::db_error))
        })
        .await
    }
}
