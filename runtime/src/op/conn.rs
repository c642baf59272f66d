use std::future::Future;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;

use sqlx::{PgConnection, Postgres, Transaction};

use crate::pool::PooledConn;

/// A boxed, `Send` future: what an op's body returns for each attempt.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Marks the lifetime of what an op's body borrows from its caller. Invariant, so the body's
/// borrows cannot be stretched.
pub(crate) type EnvMarker<'env> = PhantomData<fn(&'env ()) -> &'env ()>;

/// The connection of one attempt of an op. Dereferences to [`PgConnection`], so sqlx queries
/// take `&mut **conn` or `conn.as_mut()`.
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

/// The transaction of one attempt of a transactional op. Dereferences to sqlx's
/// [`Transaction`]; the runtime commits it when the body succeeds and rolls it back otherwise,
/// so the body never commits or rolls back itself.
pub struct TxConn<'t, 'env> {
    pub(crate) tx: Transaction<'t, Postgres>,
    pub(crate) _env: EnvMarker<'env>,
}

impl std::fmt::Debug for TxConn<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxConn").finish_non_exhaustive()
    }
}

impl<'t> Deref for TxConn<'t, '_> {
    type Target = Transaction<'t, Postgres>;
    fn deref(&self) -> &Transaction<'t, Postgres> {
        &self.tx
    }
}

impl<'t> DerefMut for TxConn<'t, '_> {
    fn deref_mut(&mut self) -> &mut Transaction<'t, Postgres> {
        &mut self.tx
    }
}

impl AsMut<PgConnection> for TxConn<'_, '_> {
    fn as_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}
