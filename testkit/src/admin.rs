//! Short-lived admin connections, and running work independently of the caller's runtime.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use sqlx_resilience_runtime::{Error, redact};

use crate::Result;

/// How long one admin connection attempt may take.
pub(crate) const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// How long one admin statement may take.
pub(crate) const STATEMENT_LIMIT: Duration = Duration::from_secs(30);

/// Runs `future` to completion on a fresh thread with its own current-thread runtime, so it
/// works from synchronous code (drops) and inside any runtime, and never depends on one.
pub(crate) fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread tokio runtime builds")
                    .block_on(future)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Runs blocking `work` on its own thread and waits for it without blocking the caller's
/// runtime. The work finishes even if the caller stops waiting (its runtime shuts down).
pub(crate) async fn off_thread<T, W>(action: &str, work: W) -> Result<T>
where
    T: Send + 'static,
    W: FnOnce() -> Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("sqlx-resilience-testkit".to_owned())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|e| {
            Error::test_kit(
                action,
                format!("cannot start a thread: {e}"),
                "free resources",
            )
        })?;
    rx.await.unwrap_or_else(|_| {
        Err(Error::test_kit(
            action,
            "the test kit's worker thread panicked",
            "read the panic message above; this is a bug in the test kit",
        ))
    })
}

/// Connects with `url`, bounded by [`CONNECT_LIMIT`]. The error text never shows a password.
pub(crate) async fn connect(url: &str) -> std::result::Result<PgConnection, String> {
    connect_tuned(url, |options| options).await
}

/// [`connect`] with the options changed by `tune` first (PgBouncer's console refuses sqlx's
/// default `extra_float_digits`).
pub(crate) async fn connect_tuned(
    url: &str,
    tune: impl FnOnce(PgConnectOptions) -> PgConnectOptions,
) -> std::result::Result<PgConnection, String> {
    let options = tune(
        PgConnectOptions::from_str(url)
            .map_err(|e| redact(&e.to_string()))?
            .disable_statement_logging(),
    );
    match tokio::time::timeout(CONNECT_LIMIT, options.connect()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(format!(
            "cannot connect to {}: {}",
            redact(url),
            redact(&e.to_string())
        )),
        Err(_) => Err(format!(
            "cannot connect to {} within {CONNECT_LIMIT:?}",
            redact(url)
        )),
    }
}

/// Runs `sql` (one or more statements, no parameters) on a fresh connection to `url`.
pub(crate) async fn execute(url: &str, sql: String) -> std::result::Result<(), String> {
    let mut conn = connect(url).await?;
    let result = run(&mut conn, sql).await;
    let _ = conn.close().await;
    result
}

/// Runs `sql` on `conn`, bounded by [`STATEMENT_LIMIT`].
pub(crate) async fn run(conn: &mut PgConnection, sql: String) -> std::result::Result<(), String> {
    let query = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()));
    match tokio::time::timeout(STATEMENT_LIMIT, query.execute(&mut *conn)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!(
            "`{}` failed: {}",
            redact(&sql),
            redact(&e.to_string())
        )),
        Err(_) => Err(format!(
            "`{}` did not finish within {STATEMENT_LIMIT:?}",
            redact(&sql)
        )),
    }
}

/// Runs a query returning one value on a fresh connection to `url`.
pub(crate) async fn scalar<T>(url: &str, sql: &'static str) -> std::result::Result<T, String>
where
    T: Send + Unpin + for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    let mut conn = connect(url).await?;
    let query = sqlx::query_scalar::<_, T>(sql).fetch_one(&mut conn);
    let result = match tokio::time::timeout(STATEMENT_LIMIT, query).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("`{sql}` failed: {}", redact(&e.to_string()))),
        Err(_) => Err(format!("`{sql}` did not finish within {STATEMENT_LIMIT:?}")),
    };
    let _ = conn.close().await;
    result
}

/// `name` as a quoted SQL identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `value` as a quoted SQL (and postgresql.conf) string literal.
pub(crate) fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A random string of lowercase letters and digits.
pub(crate) fn random_token(len: usize) -> String {
    use rand::RngExt;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers_and_literals() {
        assert_eq!(ident("t_1"), "\"t_1\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
    }

    #[test]
    fn random_tokens_differ_and_use_safe_characters() {
        let a = random_token(16);
        assert_eq!(a.len(), 16);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        assert_ne!(a, random_token(16));
    }
}
