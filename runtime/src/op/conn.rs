use std::future::Future;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;

use sqlx::PgConnection;
use sqlx::postgres::PgTransactionManager;
use sqlx_core::transaction::TransactionManager;

use crate::pool::PooledConn;

/// A boxed, `Send` future: what an op's body returns for each attempt.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Marks the lifetime of what an op's body borrows from its caller. Invariant, so the body's
/// borrows cannot be stretched.
pub(crate) type EnvMarker<'env> = PhantomData<fn(&'env ()) -> &'env ()>;

/// The connection of one attempt of an op. Implements sqlx's `Executor` and dereferences to
/// [`PgConnection`], so sqlx queries take `&mut *conn` (or `&mut **conn`, `conn.as_mut()`).
///
/// The `'env` lifetime ties the body's borrows of its surroundings to the call, which is what
/// lets a body capture local variables by reference while still being run again on retry.
pub struct Conn<'env> {
    pub(crate) inner: PooledConn,
    pub(crate) _env: EnvMarker<'env>,
}

impl std::fmt::Debug for Conn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Conn").field(&self.inner).finish()
    }
}

impl Deref for Conn<'_> {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.inner
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.inner
    }
}

impl AsMut<PgConnection> for Conn<'_> {
    fn as_mut(&mut self) -> &mut PgConnection {
        &mut self.inner
    }
}

/// The transaction of one attempt of a transactional op. Implements sqlx's `Executor` and
/// dereferences to [`PgConnection`] inside the transaction: queries take `&mut *tx`, as sqlx
/// users write a transaction (or `&mut **tx`, `tx.as_mut()`).
///
/// The runtime begins the transaction, commits it when the body succeeds and rolls it back
/// otherwise (also when the body panics or the call is cancelled), so the body never commits
/// or rolls back itself. A nested `sqlx::Connection::begin` on it opens a savepoint, as sqlx
/// does inside any transaction.
pub struct Tx<'env> {
    /// Present until the runner takes it back after the attempt.
    pub(crate) conn: Option<PooledConn>,
    /// Begun and neither committed nor rolled back.
    pub(crate) open: bool,
    pub(crate) _env: EnvMarker<'env>,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("conn", &self.conn)
            .field("open", &self.open)
            .finish()
    }
}

impl Tx<'_> {
    pub(crate) fn conn(&mut self) -> &mut PooledConn {
        self.conn
            .as_mut()
            .expect("connection present during the attempt")
    }

    /// The connection back out, with ROLLBACK queued if the transaction is still open.
    pub(crate) fn into_conn(mut self) -> PooledConn {
        self.close();
        self.conn
            .take()
            .expect("connection present during the attempt")
    }

    fn close(&mut self) {
        if self.open
            && let Some(conn) = self.conn.as_mut()
        {
            // Queued, and sent before the connection is used again (sqlx's own transaction
            // guard does the same).
            <PgTransactionManager as TransactionManager>::start_rollback(conn);
        }
        self.open = false;
    }
}

impl Deref for Tx<'_> {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn
            .as_ref()
            .expect("connection present during the attempt")
    }
}

impl DerefMut for Tx<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn()
    }
}

impl AsMut<PgConnection> for Tx<'_> {
    fn as_mut(&mut self) -> &mut PgConnection {
        self.conn()
    }
}

impl Drop for Tx<'_> {
    /// A panic or cancellation mid-transaction: roll back.
    fn drop(&mut self) {
        self.close();
    }
}
