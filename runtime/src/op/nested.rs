//! Ops called inside another op's transaction.
//!
//! An op run on its own takes a pooled connection and runs under its policies, in a
//! transaction of its own when it is transactional. Called from inside another op, it must do
//! neither: the caller's connection is already in the caller's transaction, and the caller's
//! policies decide about running the whole transaction again. [`Nested`] is what the nested
//! form of an op (`#[db_op(nested = name)]`) runs in: it joins the transaction the caller's
//! connection is in, and begins one only when there is none, so a transactional op stays
//! atomic even when it is handed a connection outside any transaction.

use sqlx::postgres::PgTransactionManager;
use sqlx::{AssertSqlSafe, PgConnection, SqlSafeStr};
use sqlx_core::transaction::TransactionManager;

use super::spec::TxSpec;
use crate::error::{Error, Result};

type Manager = PgTransactionManager;

/// The body of an op run on the caller's connection, with no policies of its own (no pool,
/// retry, breaker, limiter, bulkhead or timeout: the caller's apply, once, to the whole).
///
/// ```no_run
/// use sqlx::PgConnection;
/// use sqlx_resilience_runtime::op::{Nested, TxSpec};
/// use sqlx_resilience_runtime::{DbError, Runtime};
///
/// /// Adds an order line; joins the caller's transaction, or begins one.
/// async fn add_line(conn: &mut PgConnection, order: i64) -> Result<(), DbError> {
///     let mut nested = Nested::enter(conn, Some(TxSpec::default())).await?;
///     let result = async {
///         sqlx::query("insert into lines (order_id) values ($1)")
///             .bind(order)
///             .execute(nested.conn())
///             .await?;
///         Ok(())
///     }
///     .await;
///     nested.leave(result).await
/// }
///
/// async fn place(rt: &Runtime, order: i64) -> Result<(), DbError> {
///     rt.op("orders::place")
///         .run_tx(|tx| {
///             Box::pin(async move {
///                 sqlx::query("insert into orders (id) values ($1)")
///                     .bind(order)
///                     .execute(&mut *tx)
///                     .await?;
///                 add_line(tx, order).await // the same transaction: both or neither
///             })
///         })
///         .await
/// }
/// ```
#[derive(Debug)]
pub struct Nested<'c> {
    conn: &'c mut PgConnection,
    /// This op began the transaction (the connection was in none), and has not ended it.
    began: bool,
}

impl<'c> Nested<'c> {
    /// Joins the transaction `conn` is in (one begun through sqlx's transaction manager, as
    /// every op's and every `sqlx::Connection::begin` is). When it is in none and `tx` is
    /// given (a transactional op), begins one with `tx`'s isolation and access mode.
    pub async fn enter(conn: &'c mut PgConnection, tx: Option<TxSpec>) -> Result<Nested<'c>> {
        let began = match tx {
            Some(spec) if Manager::get_transaction_depth(conn) == 0 => {
                Manager::begin(conn, Some(begin_sql(spec))).await?;
                true
            }
            _ => false,
        };
        Ok(Nested { conn, began })
    }

    /// The connection, inside the transaction.
    pub fn conn(&mut self) -> &mut PgConnection {
        self.conn
    }

    /// Whether this op began the transaction itself (the connection was in none).
    pub fn began(&self) -> bool {
        self.began
    }

    /// Ends the nested op with the body's `result`. A joined transaction is left to its
    /// owner, whatever the result: an error goes back to the caller, whose op then rolls the
    /// whole transaction back. A transaction this op began is committed when the body
    /// succeeded (a failed commit is the op's error) and rolled back otherwise.
    pub async fn leave<T, E: From<Error>>(
        mut self,
        result: std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        if !self.began {
            return result;
        }
        self.began = false;
        match result {
            Ok(value) => match Manager::commit(self.conn).await {
                Ok(()) => Ok(value),
                Err(e) => Err(E::from(Error::from(e))),
            },
            Err(e) => {
                // The body's error says what went wrong; a failed rollback leaves the
                // connection to sqlx, which discards one whose transaction it cannot end.
                let _ = Manager::rollback(self.conn).await;
                Err(e)
            }
        }
    }
}

impl Drop for Nested<'_> {
    /// Cancelled or panicked with a transaction it began: ROLLBACK is queued, and sent before
    /// the connection is used again (as sqlx's own transaction guard does).
    fn drop(&mut self) {
        if self.began {
            Manager::start_rollback(self.conn);
        }
    }
}

fn begin_sql(spec: TxSpec) -> sqlx::SqlStr {
    let mut sql = String::from("BEGIN");
    if let Some(level) = spec.isolation {
        sql.push_str(" ISOLATION LEVEL ");
        sql.push_str(level.as_sql());
    }
    if spec.read_only {
        sql.push_str(" READ ONLY");
    }
    AssertSqlSafe(sql).into_sql_str()
}
