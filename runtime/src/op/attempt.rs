//! One attempt: run the body on a pooled connection (plain or in a transaction), within the
//! attempt's time limit, and report what happened in a form the runner can judge.

use std::time::Duration;

use sqlx::postgres::PgTransactionManager;
use sqlx::{AssertSqlSafe, SqlSafeStr};
use sqlx_core::transaction::TransactionManager;
use tokio::time::Instant;

use super::conn::{BoxFuture, Conn, EnvMarker, Tx};
use super::resolve::Resolved;
use super::spec::TxSpec;
use crate::error::Error;
use crate::pool::pooler;
use crate::pool::{PoolConfig, PooledConn, Pooler};
use crate::timeout::within;

/// Where in an attempt a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// `BEGIN` (nothing ran).
    Begin,
    /// The body.
    Body,
    /// `COMMIT` (the outcome may be unknown).
    Commit,
}

/// How an attempt ended.
pub(crate) enum Ended<T, E> {
    Ok(T),
    /// The body (or begin/commit) failed.
    Failed(E, Phase),
    /// The attempt's time ran out.
    TimedOut(Phase),
}

/// Runs a body once on a connection: the one thing that differs between a plain op and a
/// transactional one. How a transaction begins is data of the op ([`Resolved::tx`]).
pub(crate) trait Attempt<T, E>: Send {
    /// Whether the body runs in a transaction.
    fn is_tx(&self) -> bool;

    /// Runs the body once; gives the connection back so the runner can evict it.
    ///
    /// Boxed rather than `impl Future`: the runner's future must be provably `Send` for every
    /// caller, and a projection through this trait (whose impls depend on the body's borrow
    /// lifetime) defeats that proof ("implementation is not general enough").
    fn run<'a>(
        &'a mut self,
        op: &'a Resolved,
        conn: PooledConn,
        until: Option<Instant>,
    ) -> BoxFuture<'a, (Ended<T, E>, PooledConn)>
    where
        T: 'a,
        E: 'a;
}

/// A body on a plain connection.
pub(crate) struct Plain<F>(pub(crate) F);

/// A plain body, with the lifetime of what it borrows.
pub(crate) fn plain<'env, T, E, F>(body: F) -> (Plain<F>, EnvMarker<'env>)
where
    F: for<'c> FnMut(&'c mut Conn<'env>) -> BoxFuture<'c, Result<T, E>> + Send + 'env,
{
    (Plain(body), EnvMarker::default())
}

/// A transactional body, with the lifetime of what it borrows.
pub(crate) fn in_tx<'env, T, E, G>(body: G) -> (InTx<G>, EnvMarker<'env>)
where
    G: for<'c> FnMut(&'c mut Tx<'env>) -> BoxFuture<'c, Result<T, E>> + Send + 'env,
{
    (InTx(body), EnvMarker::default())
}

impl<'env, T, E, F> Attempt<T, E> for (Plain<F>, EnvMarker<'env>)
where
    F: for<'c> FnMut(&'c mut Conn<'env>) -> BoxFuture<'c, Result<T, E>> + Send,
    T: Send,
    E: From<Error> + Send,
{
    fn is_tx(&self) -> bool {
        false
    }

    fn run<'a>(
        &'a mut self,
        op: &'a Resolved,
        conn: PooledConn,
        until: Option<Instant>,
    ) -> BoxFuture<'a, (Ended<T, E>, PooledConn)>
    where
        T: 'a,
        E: 'a,
    {
        Box::pin(async move {
            let mut conn = Conn {
                inner: conn,
                _env: self.1,
            };
            if op.pool.config().pooler == Pooler::Transaction {
                return run_pinned(&mut self.0.0, op, conn, until).await;
            }
            let ended = match within(until, (self.0.0)(&mut conn)).await {
                Some(Ok(v)) => Ended::Ok(v),
                Some(Err(e)) => Ended::Failed(e, Phase::Body),
                None => Ended::TimedOut(Phase::Body),
            };
            (ended, conn.inner)
        })
    }
}

/// A plain body behind a transaction pooler: in a transaction, so that each of sqlx's
/// prepare-then-execute round trips stays on one server connection (the pooler may hand each
/// statement outside a transaction to another). The op still counts as plain: a failure or
/// timeout mid-body is judged as one, though nothing of a body that did not finish is left
/// applied (the transaction is rolled back, or dies with its evicted connection).
async fn run_pinned<'env, T, E, F>(
    body: &mut F,
    op: &Resolved,
    conn: Conn<'env>,
    until: Option<Instant>,
) -> (Ended<T, E>, PooledConn)
where
    F: for<'c> FnMut(&'c mut Conn<'env>) -> BoxFuture<'c, Result<T, E>> + Send,
    E: From<Error>,
{
    type Manager = PgTransactionManager;
    /// Rolls back when dropped open (a failure, a panic, or the call cancelled).
    struct Pinned<'env> {
        conn: Option<Conn<'env>>,
        open: bool,
    }
    impl Drop for Pinned<'_> {
        fn drop(&mut self) {
            if self.open
                && let Some(conn) = self.conn.as_mut()
            {
                // Queued, and sent before the connection is used again.
                <Manager as TransactionManager>::start_rollback(&mut conn.inner);
            }
        }
    }
    let version = conn.server_version_num().unwrap_or(0);
    let mut pinned = Pinned {
        conn: Some(conn),
        open: false,
    };
    let begin = begin_sql(
        TxSpec::default(),
        op.spec.name,
        until,
        Some((op.pool.config(), version)),
    );
    let ended = 'attempt: {
        let conn = pinned.conn.as_mut().expect("present until the end");
        match within(until, Manager::begin(&mut conn.inner, Some(begin))).await {
            Some(Ok(())) => pinned.open = true,
            Some(Err(e)) => break 'attempt Ended::Failed(E::from(Error::from(e)), Phase::Begin),
            None => break 'attempt Ended::TimedOut(Phase::Begin),
        }
        match within(until, body(conn)).await {
            Some(Ok(v)) => match within(until, Manager::commit(&mut conn.inner)).await {
                Some(Ok(())) => {
                    pinned.open = false;
                    Ended::Ok(v)
                }
                Some(Err(e)) => Ended::Failed(E::from(Error::from(e)), Phase::Commit),
                None => Ended::TimedOut(Phase::Commit),
            },
            Some(Err(e)) => Ended::Failed(e, Phase::Body),
            None => Ended::TimedOut(Phase::Body),
        }
    };
    if pinned.open {
        let conn = pinned.conn.as_mut().expect("present until the end");
        <Manager as TransactionManager>::start_rollback(&mut conn.inner);
        pinned.open = false;
    }
    let conn = pinned.conn.take().expect("present until the end");
    (ended, conn.inner)
}

/// A body in a transaction: begun with the op's isolation and, when the attempt has a time
/// limit, `SET LOCAL statement_timeout` from the time left (one round trip with `BEGIN`);
/// committed when the body succeeds, rolled back otherwise (also on panic and cancellation,
/// by the transaction's guard). The transaction goes through sqlx's transaction manager, so
/// sqlx knows it is in one: a nested `begin` in the body opens a savepoint. The op's name is
/// the transaction's `application_name`.
pub(crate) struct InTx<G>(pub(crate) G);

impl<'env, T, E, G> Attempt<T, E> for (InTx<G>, EnvMarker<'env>)
where
    G: for<'c> FnMut(&'c mut Tx<'env>) -> BoxFuture<'c, Result<T, E>> + Send,
    T: Send,
    E: From<Error> + Send,
{
    fn is_tx(&self) -> bool {
        true
    }

    fn run<'a>(
        &'a mut self,
        op: &'a Resolved,
        conn: PooledConn,
        until: Option<Instant>,
    ) -> BoxFuture<'a, (Ended<T, E>, PooledConn)>
    where
        T: 'a,
        E: 'a,
    {
        Box::pin(run_tx(
            &mut self.0.0,
            self.1,
            op.tx,
            (op.spec.name, op.pool.config()),
            conn,
            until,
        ))
    }
}

async fn run_tx<'env, T, E, G>(
    body: &mut G,
    env: EnvMarker<'env>,
    spec: TxSpec,
    (name, config): (&str, &PoolConfig),
    conn: PooledConn,
    until: Option<Instant>,
) -> (Ended<T, E>, PooledConn)
where
    G: for<'c> FnMut(&'c mut Tx<'env>) -> BoxFuture<'c, Result<T, E>> + Send,
    T: Send,
    E: From<Error> + Send,
{
    type Manager = PgTransactionManager;
    let mut tx = Tx {
        conn: Some(conn),
        open: false,
        _env: env,
    };
    let behind = (config.pooler == Pooler::Transaction)
        .then(|| (config, tx.conn().server_version_num().unwrap_or(0)));
    let begin = begin_sql(spec, name, until, behind);
    let ended = 'attempt: {
        match within(until, Manager::begin(tx.conn(), Some(begin))).await {
            Some(Ok(())) => tx.open = true,
            Some(Err(e)) => break 'attempt Ended::Failed(E::from(Error::from(e)), Phase::Begin),
            None => break 'attempt Ended::TimedOut(Phase::Begin),
        }
        match within(until, body(&mut tx)).await {
            Some(Ok(v)) => {
                let committed = within(until, Manager::commit(tx.conn())).await;
                match committed {
                    Some(Ok(())) => {
                        tx.open = false;
                        Ended::Ok(v)
                    }
                    Some(Err(e)) => Ended::Failed(E::from(Error::from(e)), Phase::Commit),
                    None => Ended::TimedOut(Phase::Commit),
                }
            }
            // ROLLBACK is queued when the transaction is let go, and sent before the
            // connection is used again (or the connection is closed when evicted).
            Some(Err(e)) => Ended::Failed(e, Phase::Body),
            None => Ended::TimedOut(Phase::Body),
        }
    };
    (ended, tx.into_conn())
}

/// `BEGIN` with the op's isolation and access mode, then, in the same round trip, the op's
/// name as the transaction's `application_name` (so `pg_stat_activity` shows which op holds a
/// lock or runs long; it reverts at the end of the transaction) and, when the attempt has a
/// time limit, `SET LOCAL statement_timeout` from the time left.
///
/// Behind a transaction pooler (`behind`: the pool's settings and the server's version), also
/// `DEALLOCATE ALL` and the pool's session settings as `SET LOCAL`, with `statement_timeout`
/// the shorter of the pool's and the time left.
fn begin_sql(
    spec: TxSpec,
    name: &str,
    until: Option<Instant>,
    behind: Option<(&PoolConfig, u32)>,
) -> sqlx::SqlStr {
    let mut sql = String::from("BEGIN");
    if let Some(level) = spec.isolation {
        sql.push_str(" ISOLATION LEVEL ");
        sql.push_str(level.as_sql());
    }
    if spec.read_only {
        sql.push_str(" READ ONLY");
    }
    // application_name holds at most 63 bytes; cut on a character boundary.
    let mut end = name.len().min(63);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    sql.push_str("; SET LOCAL application_name = '");
    sql.push_str(&name[..end].replace('\'', "''"));
    sql.push('\'');
    let mut limit = behind.and_then(|(config, _)| config.statement_timeout);
    if let Some((config, version)) = behind {
        sql.push_str(&pooler::begin_sql(config, version));
    }
    if let Some(at) = until {
        // The server stops the transaction's statements when the client would give up anyway.
        let left = at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        limit = Some(limit.map_or(left, |l| l.min(left)));
    }
    if let Some(limit) = limit {
        sql.push_str(&format!(
            "; SET LOCAL statement_timeout = {}",
            limit.as_millis().max(1)
        ));
    }
    AssertSqlSafe(sql).into_sql_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::Isolation;

    #[test]
    fn begin_statement_carries_isolation_name_and_remaining_time() {
        let spec = TxSpec {
            isolation: Some(Isolation::Serializable),
            read_only: true,
        };
        assert_eq!(
            begin_sql(spec, "orders::o'brien", None, None).as_str(),
            "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY; \
             SET LOCAL application_name = 'orders::o''brien'"
        );
        let sql = begin_sql(
            TxSpec::default(),
            "t",
            Some(Instant::now() + Duration::from_secs(5)),
            None,
        );
        let ms: u64 = sql.as_str().rsplit(' ').next().unwrap().parse().unwrap();
        assert!(
            sql.as_str().starts_with(
                "BEGIN; SET LOCAL application_name = 't'; SET LOCAL statement_timeout = "
            ),
            "{}",
            sql.as_str()
        );
        assert!(ms > 4_000 && ms <= 5_000, "{ms}");
        let long = "x".repeat(100);
        assert!(
            begin_sql(TxSpec::default(), &long, None, None)
                .as_str()
                .ends_with(&format!("'{}'", "x".repeat(63)))
        );
    }
}
