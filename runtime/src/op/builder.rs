use std::sync::Arc;
use std::time::Duration;

use super::attempt::{in_tx, plain};
use super::conn::{BoxFuture, Conn, Tx};
use super::host::Host;
use super::resolve::Resolved;
use super::run::execute;
use super::spec::{Isolation, Name, OpSpec, RetryScope, TxSpec};
use crate::error::{OpError, Result};

/// Builds one op: its name and the policies it runs under, then runs a body.
///
/// ```no_run
/// # async fn f(rt: sqlx_resilience_runtime::Runtime) -> sqlx_resilience_runtime::Result<()> {
/// use std::time::Duration;
///
/// let estate = 42_i64;
/// let total: i64 = rt
///     .op("harvest::statistics")
///     .pool("http")
///     .timeout(Duration::from_secs(5))
///     .read_only(true)
///     .run(|conn| Box::pin(async move {
///         let (n,): (i64,) = sqlx::query_as("select count(*) from harvest where estate = $1")
///             .bind(estate)
///             .fetch_one(conn.as_mut())
///             .await?;
///         Ok::<_, sqlx_resilience_runtime::Error>(n)
///     }))
///     .await?;
/// # Ok(()) }
/// ```
///
/// The body runs once per attempt, so it may capture its surroundings by reference (or by
/// copy) but must not move a captured value out.
#[derive(Debug, Clone)]
#[must_use = "an op does nothing until it is run"]
pub struct OpBuilder<'rt> {
    pub(super) rt: &'rt dyn Host,
    pub(super) spec: OpSpec,
    pub(super) key: Option<String>,
}

impl<'rt> OpBuilder<'rt> {
    /// An op of `spec` on the runtime `rt` (what `Runtime::op` starts).
    pub(crate) fn new(rt: &'rt dyn Host, spec: OpSpec) -> Self {
        OpBuilder {
            rt,
            spec,
            key: None,
        }
    }

    /// The pool to run on (default: the runtime's default pool): a name, or a pool declared
    /// with `policies!` (`&policies::pool::http`).
    pub fn pool(mut self, name: impl Into<Name>) -> Self {
        self.spec.pool = Some(name.into());
        self
    }

    /// The time limit of each attempt. When it runs out, the statement is stopped on the
    /// server too.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.spec.timeout = Some(timeout);
        self
    }

    /// The time limit of the whole call: attempts, waits and retry delays.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.spec.deadline = Some(deadline);
        self
    }

    /// The retry policy: a name, or one declared with `policies!`.
    pub fn retry(mut self, name: impl Into<Name>) -> Self {
        self.spec.retry = Some(name.into());
        self
    }

    /// What the retry policy may run again (see [`RetryScope`]).
    pub fn retry_scope(mut self, scope: RetryScope) -> Self {
        self.spec.retry_scope = scope;
        self
    }

    /// The circuit breaker: a name, or one declared with `policies!`.
    pub fn breaker(mut self, name: impl Into<Name>) -> Self {
        self.spec.breaker = Some(name.into());
        self
    }

    /// The rate limiter: a name, or one declared with `policies!`.
    pub fn limiter(mut self, name: impl Into<Name>) -> Self {
        self.spec.limiter = Some(name.into());
        self
    }

    /// The key (tenant) for a per-key rate limiter.
    pub fn limiter_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// The bulkhead: a name, or one declared with `policies!`.
    pub fn bulkhead(mut self, name: impl Into<Name>) -> Self {
        self.spec.bulkhead = Some(name.into());
        self
    }

    /// Declares that running the body twice has the effect of running it once, so it may run
    /// again after a lost connection.
    pub fn idempotent(mut self, yes: bool) -> Self {
        self.spec.idempotent = yes;
        self
    }

    /// Declares that the body only reads (its transactions begin `READ ONLY`).
    pub fn read_only(mut self, yes: bool) -> Self {
        self.spec.read_only = yes;
        self
    }

    /// For a `read_only` op of a pool with replicas: the most replication lag it accepts,
    /// instead of the pool's `max_lag`.
    pub fn max_lag(mut self, max_lag: Duration) -> Self {
        self.spec.max_lag = Some(max_lag);
        self
    }

    /// Logs a warning when a call takes longer than this.
    pub fn slow(mut self, threshold: Duration) -> Self {
        self.spec.slow = Some(threshold);
        self
    }

    /// Keeps the op's successful results for `ttl` in the runtime's result cache, keyed by
    /// the key given to [`OpBuilder::run_cached`]. Only a read-only op may be cached.
    pub fn cache(mut self, ttl: Duration) -> Self {
        self.spec.cache = Some(ttl);
        self
    }

    /// Runs the body in a transaction at `isolation` (see [`OpBuilder::run_tx`]).
    pub fn isolation(mut self, isolation: Isolation) -> Self {
        self.spec.tx.get_or_insert_with(TxSpec::default).isolation = Some(isolation);
        self
    }

    /// The spec built so far.
    pub fn spec(&self) -> &OpSpec {
        &self.spec
    }

    /// Looks up every name once, for an op run many times.
    ///
    /// A per-key limiter key set with [`OpBuilder::limiter_key`] is not kept: pass it to
    /// [`Op::run_keyed`].
    pub fn build(self) -> Result<Op> {
        Ok(Op {
            resolved: Arc::new(Resolved::new(self.rt, self.spec)?),
            rt: self.rt.handle(),
        })
    }

    /// Runs `body` on a pooled connection under the op's policies.
    pub async fn run<'env, T, E, F>(self, body: F) -> Result<T, E>
    where
        F: for<'c> FnMut(&'c mut Conn<'env>) -> BoxFuture<'c, Result<T, E>> + Send + 'env,
        T: Send + 'env,
        E: OpError,
    {
        let op = Resolved::new(self.rt, self.spec).map_err(E::from)?;
        execute(self.rt, &op, self.key.as_deref(), plain(body, E::db_error)).await
    }

    /// Runs `body` in a transaction: committed when it succeeds, rolled back when it fails,
    /// panics or is cancelled, and run again whole after a serialization failure or deadlock
    /// when a retry policy allows. It begins with the op's isolation, and `READ ONLY` when the
    /// op is read-only ([`OpSpec::tx_options`]).
    pub async fn run_tx<'env, T, E, G>(self, body: G) -> Result<T, E>
    where
        G: for<'c> FnMut(&'c mut Tx<'env>) -> BoxFuture<'c, Result<T, E>> + Send + 'env,
        T: Send + 'env,
        E: OpError,
    {
        let op = Resolved::new(self.rt, self.spec).map_err(E::from)?;
        execute(self.rt, &op, self.key.as_deref(), in_tx(body, E::db_error)).await
    }
}

/// An op with its names looked up once; cheap to clone and run many times.
#[derive(Debug, Clone)]
pub struct Op {
    pub(super) rt: Arc<dyn Host>,
    pub(super) resolved: Arc<Resolved>,
}

impl Op {
    /// The op's name.
    pub fn name(&self) -> &'static str {
        self.resolved.spec.name
    }

    /// The runtime it runs on.
    pub(crate) fn host(&self) -> &dyn Host {
        &*self.rt
    }

    /// The pool it runs on.
    pub(crate) fn pool_name(&self) -> &Arc<str> {
        self.resolved.pool.name_arc()
    }

    /// Runs `body` (see [`OpBuilder::run`]).
    pub async fn run<'env, T, E, F>(&self, body: F) -> Result<T, E>
    where
        F: for<'c> FnMut(&'c mut Conn<'env>) -> BoxFuture<'c, Result<T, E>> + Send + 'env,
        T: Send + 'env,
        E: OpError,
    {
        execute(&*self.rt, &self.resolved, None, plain(body, E::db_error)).await
    }

    /// Runs `body` with `key` for a per-key (tenant) rate limiter.
    pub async fn run_keyed<'env, T, E, F>(&self, key: &str, body: F) -> Result<T, E>
    where
        F: for<'c> FnMut(&'c mut Conn<'env>) -> BoxFuture<'c, Result<T, E>> + Send + 'env,
        T: Send + 'env,
        E: OpError,
    {
        execute(
            &*self.rt,
            &self.resolved,
            Some(key),
            plain(body, E::db_error),
        )
        .await
    }

    /// Runs `body` in a transaction (see [`OpBuilder::run_tx`]).
    pub async fn run_tx<'env, T, E, G>(&self, body: G) -> Result<T, E>
    where
        G: for<'c> FnMut(&'c mut Tx<'env>) -> BoxFuture<'c, Result<T, E>> + Send + 'env,
        T: Send + 'env,
        E: OpError,
    {
        execute(&*self.rt, &self.resolved, None, in_tx(body, E::db_error)).await
    }
}
