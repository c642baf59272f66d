//! STAND-IN — to be replaced by the runtime's `op` module (`sqlx_resilience_runtime::op`).
//!
//! The op API (`OpSpec`, `run`, `run_tx`, `Conn`, `TxConn`, `Runtime`, `HasRuntime`,
//! `PolicySet`, ...) is being built in the runtime crate. Until it lands, this file provides the
//! same items with the same fields and signatures, so that `#[db_op]` and `policies!` expand to
//! code that type-checks and the trybuild pass cases compile. The behaviour here is minimal: one
//! attempt, no policies. Delete this file and re-export the runtime's items from `__private`
//! once `runtime/src/op/` exists.

#![allow(missing_docs)]

use std::future::Future;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use sqlx_resilience_runtime::config::Value;
use sqlx_resilience_runtime::{Error, PolicyKind};

/// Stand-in for the runtime: one pool, no policies.
#[derive(Debug, Clone)]
pub struct Runtime {
    pool: PgPool,
}

impl Runtime {
    /// A runtime over one pool.
    pub fn from_pool(pool: PgPool) -> Self {
        Runtime { pool }
    }
}

/// Gives access to the runtime an op runs on.
pub trait HasRuntime {
    /// The runtime.
    fn runtime(&self) -> &Runtime;
}

impl HasRuntime for Runtime {
    fn runtime(&self) -> &Runtime {
        self
    }
}
impl<T: HasRuntime + ?Sized> HasRuntime for &T {
    fn runtime(&self) -> &Runtime {
        (**self).runtime()
    }
}
impl<T: HasRuntime + ?Sized> HasRuntime for Arc<T> {
    fn runtime(&self) -> &Runtime {
        (**self).runtime()
    }
}
impl<T: HasRuntime + ?Sized> HasRuntime for Box<T> {
    fn runtime(&self) -> &Runtime {
        (**self).runtime()
    }
}

/// Where an op or a policy is declared in source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub file: &'static str,
    pub line: u32,
    pub column: u32,
}

/// Transaction isolation levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

/// How a transactional op begins its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxSpec {
    pub isolation: Option<Isolation>,
    pub read_only: bool,
}

/// Everything the runtime needs to know about one op.
#[derive(Debug)]
pub struct OpSpec {
    pub name: &'static str,
    pub pool: Option<&'static str>,
    pub timeout: Option<Duration>,
    pub deadline: Option<Duration>,
    pub retry: Option<&'static str>,
    pub breaker: Option<&'static str>,
    pub limiter: Option<&'static str>,
    pub bulkhead: Option<&'static str>,
    pub idempotent: bool,
    pub read_only: bool,
    pub tx: Option<TxSpec>,
    pub slow: Option<Duration>,
    pub location: Location,
}

/// One registered op, collected with `inventory`.
#[derive(Debug)]
pub struct OpRegistration(pub &'static OpSpec);

inventory::collect!(OpRegistration);

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The connection of one attempt.
#[derive(Debug)]
pub struct Conn<'env> {
    conn: PoolConnection<Postgres>,
    _env: PhantomData<&'env ()>,
}

impl Deref for Conn<'_> {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}
impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

/// The transaction of one attempt.
#[derive(Debug)]
pub struct TxConn<'env> {
    tx: Transaction<'static, Postgres>,
    _env: PhantomData<&'env ()>,
}

impl Deref for TxConn<'_> {
    type Target = Transaction<'static, Postgres>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}
impl DerefMut for TxConn<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// Runs an op's body once on a pooled connection.
pub fn run<'env, T, E, F>(
    rt: &'env Runtime,
    spec: &'static OpSpec,
    as_db_error: fn(&E) -> Option<&Error>,
    mut body: F,
) -> impl Future<Output = Result<T, E>> + Send + 'env
where
    F: for<'c> FnMut(&'c mut Conn<'env>) -> BoxFuture<'c, Result<T, E>> + Send + 'env,
    T: Send + 'env,
    E: From<Error> + Send + 'env,
{
    let _ = (spec, as_db_error);
    async move {
        let conn = rt.pool.acquire().await.map_err(Error::from)?;
        let mut conn = Conn {
            conn,
            _env: PhantomData,
        };
        body(&mut conn).await
    }
}

/// Runs a transactional op's body once inside a transaction.
pub fn run_tx<'env, T, E, F>(
    rt: &'env Runtime,
    spec: &'static OpSpec,
    as_db_error: fn(&E) -> Option<&Error>,
    mut body: F,
) -> impl Future<Output = Result<T, E>> + Send + 'env
where
    F: for<'c> FnMut(&'c mut TxConn<'env>) -> BoxFuture<'c, Result<T, E>> + Send + 'env,
    T: Send + 'env,
    E: From<Error> + Send + 'env,
{
    let _ = (spec, as_db_error);
    async move {
        let tx = rt.pool.begin().await.map_err(Error::from)?;
        let mut tx = TxConn {
            tx,
            _env: PhantomData,
        };
        let out = body(&mut tx).await;
        if out.is_ok() {
            tx.tx.commit().await.map_err(Error::from)?;
        }
        out
    }
}

/// The declarations of `policies!`.
#[derive(Debug, Default)]
pub struct PolicySet {
    declared: Vec<(
        PolicyKind,
        &'static str,
        Vec<(&'static str, Value)>,
        Location,
    )>,
}

impl PolicySet {
    /// An empty set.
    pub fn new() -> Self {
        PolicySet::default()
    }

    /// Declares one named policy with its default settings.
    pub fn declare(
        &mut self,
        kind: PolicyKind,
        name: &'static str,
        settings: &[(&'static str, Value)],
        location: Location,
    ) -> &mut Self {
        self.declared
            .push((kind, name, settings.to_vec(), location));
        self
    }
}
