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

/// How an attempt ended. The body's value or error is kept by the body ([`Body`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    Ok,
    /// The body (or begin/commit) failed; the error is kept.
    Failed(Phase),
    /// The attempt's time ran out.
    TimedOut(Phase),
}

/// An op's body as the runner sees it, with its output and error types hidden: the runner
/// (the retry loop, the policies around each attempt, begin and commit) is then compiled once,
/// in this crate, instead of once for every op of the application. That copy per op was most
/// of what an op cost to build.
///
/// The body keeps its last value or error itself ([`Kept`]); the runner says which to hand
/// back ([`Kept::finish`]).
pub(crate) trait Body<'env>: Send {
    /// Whether the body runs in a transaction ([`Body::call_tx`]) or on a plain connection
    /// ([`Body::call`]).
    fn is_tx(&self) -> bool;

    /// Runs a plain body once; true when it succeeded. Its value or error is kept.
    fn call<'c>(&'c mut self, conn: &'c mut Conn<'env>) -> BoxFuture<'c, bool>;

    /// Runs a transactional body once; true when it succeeded. Its value or error is kept.
    fn call_tx<'c>(&'c mut self, tx: &'c mut Tx<'env>) -> BoxFuture<'c, bool>;

    /// Keeps `error` (the runner's own, or from `BEGIN` or `COMMIT`) as the call's error,
    /// converted to the body's error type; a kept value is dropped.
    fn fail(&mut self, error: Error);

    /// The database failure inside the kept error, if the error type shows one.
    fn db_error(&mut self) -> Option<&mut Error>;
}

/// A body on a plain connection.
pub(crate) struct Plain<F>(F);

/// A body in a transaction: begun with the op's isolation and, when the attempt has a time
/// limit, `SET LOCAL statement_timeout` from the time left (one round trip with `BEGIN`);
/// committed when the body succeeds, rolled back otherwise (also on panic and cancellation,
/// by the transaction's guard). The transaction goes through sqlx's transaction manager, so
/// sqlx knows it is in one: a nested `begin` in the body opens a savepoint. The op's name is
/// the transaction's `application_name`.
pub(crate) struct InTx<G>(G);

/// A body (`Plain` or `InTx`) with its last value or error. The only part of the runner
/// compiled for each op.
pub(crate) struct Kept<'env, B, T, E> {
    body: B,
    value: Option<T>,
    error: Option<E>,
    access: fn(&mut E) -> Option<&mut Error>,
    _env: EnvMarker<'env>,
}

/// A plain body, with the lifetime of what it borrows, and how to find the database failure
/// in its error type.
pub(crate) fn plain<'env, T, E, F>(
    body: F,
    access: fn(&mut E) -> Option<&mut Error>,
) -> Kept<'env, Plain<F>, T, E>
where
    F: for<'c> FnMut(&'c mut Conn<'env>) -> BoxFuture<'c, Result<T, E>> + Send + 'env,
{
    Kept::new(Plain(body), access)
}

/// A transactional body (see [`plain`]).
pub(crate) fn in_tx<'env, T, E, G>(
    body: G,
    access: fn(&mut E) -> Option<&mut Error>,
) -> Kept<'env, InTx<G>, T, E>
where
    G: for<'c> FnMut(&'c mut Tx<'env>) -> BoxFuture<'c, Result<T, E>> + Send + 'env,
{
    Kept::new(InTx(body), access)
}

impl<B, T, E> Kept<'_, B, T, E> {
    fn new(body: B, access: fn(&mut E) -> Option<&mut Error>) -> Self {
        Kept {
            body,
            value: None,
            error: None,
            access,
            _env: EnvMarker::default(),
        }
    }
}

impl<B, T, E: From<Error>> Kept<'_, B, T, E> {
    /// The call's result: the kept value when the runner says it succeeded, else the kept
    /// error.
    pub(crate) fn finish(mut self, ok: bool) -> Result<T, E> {
        match (ok, self.value.take(), self.error.take()) {
            (true, Some(value), _) => Ok(value),
            (false, _, Some(error)) => Err(error),
            _ => Err(E::from(no_outcome())),
        }
    }

    fn keep(&mut self, result: Result<T, E>) -> bool {
        match result {
            Ok(value) => {
                self.value = Some(value);
                true
            }
            Err(error) => {
                self.error = Some(error);
                false
            }
        }
    }

    fn fail_with(&mut self, error: Error) {
        self.value = None;
        self.error = Some(E::from(error));
    }

    fn kept_db_error(&mut self) -> Option<&mut Error> {
        let access = self.access;
        self.error.as_mut().and_then(access)
    }
}

impl<'env, T, E, F> Body<'env> for Kept<'env, Plain<F>, T, E>
where
    F: for<'c> FnMut(&'c mut Conn<'env>) -> BoxFuture<'c, Result<T, E>> + Send,
    T: Send,
    E: From<Error> + Send,
{
    fn is_tx(&self) -> bool {
        false
    }

    fn call<'c>(&'c mut self, conn: &'c mut Conn<'env>) -> BoxFuture<'c, bool> {
        let future = (self.body.0)(conn);
        Box::pin(async move {
            let result = future.await;
            self.keep(result)
        })
    }

    fn call_tx<'c>(&'c mut self, _: &'c mut Tx<'env>) -> BoxFuture<'c, bool> {
        unreachable!("the runner calls a plain body with `call`")
    }

    fn fail(&mut self, error: Error) {
        self.fail_with(error);
    }

    fn db_error(&mut self) -> Option<&mut Error> {
        self.kept_db_error()
    }
}

impl<'env, T, E, G> Body<'env> for Kept<'env, InTx<G>, T, E>
where
    G: for<'c> FnMut(&'c mut Tx<'env>) -> BoxFuture<'c, Result<T, E>> + Send,
    T: Send,
    E: From<Error> + Send,
{
    fn is_tx(&self) -> bool {
        true
    }

    fn call<'c>(&'c mut self, _: &'c mut Conn<'env>) -> BoxFuture<'c, bool> {
        unreachable!("the runner calls a transactional body with `call_tx`")
    }

    fn call_tx<'c>(&'c mut self, tx: &'c mut Tx<'env>) -> BoxFuture<'c, bool> {
        let future = (self.body.0)(tx);
        Box::pin(async move {
            let result = future.await;
            self.keep(result)
        })
    }

    fn fail(&mut self, error: Error) {
        self.fail_with(error);
    }

    fn db_error(&mut self) -> Option<&mut Error> {
        self.kept_db_error()
    }
}

/// The runner keeps an error for every failure and ends on success only after a body kept its
/// value; this says so rather than panic if that ever breaks. Out of line: [`Kept::finish`] is
/// compiled once per op.
#[cold]
#[inline(never)]
fn no_outcome() -> Error {
    Error::Op {
        site: crate::error::Site::default(),
        message: "the op ended with neither a value nor an error (a bug in the runtime: please \
                  report it)"
            .to_owned(),
    }
}

/// Runs the body once on `conn` (plain, in a transaction, or pinned in one behind a
/// transaction pooler); gives the connection back so the runner can evict it.
///
/// Boxed: the three ways of running hold their own state across awaits, and every op's call
/// future would otherwise carry all of it inline (a bigger future to create and move on every
/// call, the calls an open breaker turns away included).
pub(crate) fn run<'a, 'env>(
    body: &'a mut dyn Body<'env>,
    op: &'a Resolved,
    conn: PooledConn,
    until: Option<Instant>,
) -> BoxFuture<'a, (Ended, PooledConn)> {
    Box::pin(async move {
        if body.is_tx() {
            return run_tx(body, op.tx, (op.spec.name, op.pool.config()), conn, until).await;
        }
        if op.pool.config().pooler == Pooler::Transaction {
            return run_pinned(body, op, conn, until).await;
        }
        let mut conn = Conn {
            inner: conn,
            _env: EnvMarker::default(),
        };
        let ended = match within(until, body.call(&mut conn)).await {
            Some(true) => Ended::Ok,
            Some(false) => Ended::Failed(Phase::Body),
            None => Ended::TimedOut(Phase::Body),
        };
        (ended, conn.inner)
    })
}

/// A plain body behind a transaction pooler: in a transaction, so that each of sqlx's
/// prepare-then-execute round trips stays on one server connection (the pooler may hand each
/// statement outside a transaction to another). The op still counts as plain: a failure or
/// timeout mid-body is judged as one, though nothing of a body that did not finish is left
/// applied (the transaction is rolled back, or dies with its evicted connection).
async fn run_pinned<'env>(
    body: &mut dyn Body<'env>,
    op: &Resolved,
    conn: PooledConn,
    until: Option<Instant>,
) -> (Ended, PooledConn) {
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
        conn: Some(Conn {
            inner: conn,
            _env: EnvMarker::default(),
        }),
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
            Some(Err(e)) => {
                body.fail(Error::from(e));
                break 'attempt Ended::Failed(Phase::Begin);
            }
            None => break 'attempt Ended::TimedOut(Phase::Begin),
        }
        match within(until, body.call(conn)).await {
            Some(true) => match within(until, Manager::commit(&mut conn.inner)).await {
                Some(Ok(())) => {
                    pinned.open = false;
                    Ended::Ok
                }
                Some(Err(e)) => {
                    body.fail(Error::from(e));
                    Ended::Failed(Phase::Commit)
                }
                None => Ended::TimedOut(Phase::Commit),
            },
            Some(false) => Ended::Failed(Phase::Body),
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

async fn run_tx<'env>(
    body: &mut dyn Body<'env>,
    spec: TxSpec,
    (name, config): (&str, &PoolConfig),
    conn: PooledConn,
    until: Option<Instant>,
) -> (Ended, PooledConn) {
    type Manager = PgTransactionManager;
    let mut tx = Tx {
        conn: Some(conn),
        open: false,
        _env: EnvMarker::default(),
    };
    let behind = (config.pooler == Pooler::Transaction)
        .then(|| (config, tx.conn().server_version_num().unwrap_or(0)));
    let begin = begin_sql(spec, name, until, behind);
    let ended = 'attempt: {
        match within(until, Manager::begin(tx.conn(), Some(begin))).await {
            Some(Ok(())) => tx.open = true,
            Some(Err(e)) => {
                body.fail(Error::from(e));
                break 'attempt Ended::Failed(Phase::Begin);
            }
            None => break 'attempt Ended::TimedOut(Phase::Begin),
        }
        match within(until, body.call_tx(&mut tx)).await {
            Some(true) => {
                let committed = within(until, Manager::commit(tx.conn())).await;
                match committed {
                    Some(Ok(())) => {
                        tx.open = false;
                        Ended::Ok
                    }
                    Some(Err(e)) => {
                        body.fail(Error::from(e));
                        Ended::Failed(Phase::Commit)
                    }
                    None => Ended::TimedOut(Phase::Commit),
                }
            }
            // ROLLBACK is queued when the transaction is let go, and sent before the
            // connection is used again (or the connection is closed when evicted).
            Some(false) => Ended::Failed(Phase::Body),
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
