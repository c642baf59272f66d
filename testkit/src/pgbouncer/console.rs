//! PgBouncer's admin console: `SHOW` commands as rows of text, parsed into typed rows for
//! `SHOW POOLS` and `SHOW STATS`, and the commands that change what PgBouncer does.
//!
//! The console speaks only the simple query protocol, so everything goes through
//! `sqlx::raw_sql`, and every value arrives as text.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::{Row, ValueRef};
use sqlx_resilience_runtime::{Error, redact};

use crate::Result;
use crate::admin::{self, STATEMENT_LIMIT};

/// One row of a console `SHOW` command: column name to value (`None` for NULL).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleRow(pub BTreeMap<String, Option<String>>);

impl ConsoleRow {
    /// The value of `column`, when the column exists and is not NULL.
    pub fn get(&self, column: &str) -> Option<&str> {
        self.0.get(column).and_then(|v| v.as_deref())
    }

    fn text(&self, column: &str) -> String {
        self.get(column).unwrap_or_default().to_owned()
    }

    fn number(&self, column: &str) -> u64 {
        self.get(column)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    fn micros(&self, column: &str) -> Duration {
        Duration::from_micros(self.number(column))
    }
}

/// One pool (database and user) of `SHOW POOLS`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BouncerPoolRow {
    /// The database name clients asked for.
    pub database: String,
    /// The user.
    pub user: String,
    /// Clients linked to a server connection, or idle with nothing to run.
    pub cl_active: u64,
    /// Clients that sent a query and wait for a server connection.
    pub cl_waiting: u64,
    /// Server connections linked to a client.
    pub sv_active: u64,
    /// Server connections idle and ready for a client.
    pub sv_idle: u64,
    /// Server connections idle for longer than `server_check_delay`, to be checked before use.
    pub sv_used: u64,
    /// Server connections running `server_reset_query` or `server_check_query`.
    pub sv_tested: u64,
    /// Server connections logging in.
    pub sv_login: u64,
    /// How long the oldest waiting client has waited (`maxwait` and `maxwait_us`).
    pub maxwait: Duration,
    /// The pool mode in effect.
    pub pool_mode: String,
    /// Every column as PgBouncer sent it, including ones newer versions add.
    pub columns: ConsoleRow,
}

impl From<ConsoleRow> for BouncerPoolRow {
    fn from(row: ConsoleRow) -> Self {
        BouncerPoolRow {
            database: row.text("database"),
            user: row.text("user"),
            cl_active: row.number("cl_active"),
            cl_waiting: row.number("cl_waiting"),
            sv_active: row.number("sv_active"),
            sv_idle: row.number("sv_idle"),
            sv_used: row.number("sv_used"),
            sv_tested: row.number("sv_tested"),
            sv_login: row.number("sv_login"),
            maxwait: Duration::from_secs(row.number("maxwait")) + row.micros("maxwait_us"),
            pool_mode: row.text("pool_mode"),
            columns: row,
        }
    }
}

impl BouncerPoolRow {
    /// Server connections of every state: active, idle, used, tested and logging in.
    pub fn server_connections(&self) -> u64 {
        self.sv_active + self.sv_idle + self.sv_used + self.sv_tested + self.sv_login
    }
}

/// One database of `SHOW STATS`: totals since PgBouncer started, and averages over the last
/// `stats_period`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BouncerStatsRow {
    /// The database name.
    pub database: String,
    /// Transactions pooled (in transaction mode; SQL transactions otherwise).
    pub total_xact_count: u64,
    /// Queries pooled.
    pub total_query_count: u64,
    /// Bytes received from clients.
    pub total_received: u64,
    /// Bytes sent to clients.
    pub total_sent: u64,
    /// Time spent connected to a server in a transaction.
    pub total_xact_time: Duration,
    /// Time spent connected to a server running queries.
    pub total_query_time: Duration,
    /// Time clients spent waiting for a server connection.
    pub total_wait_time: Duration,
    /// Transactions per second over the last `stats_period`.
    pub avg_xact_count: u64,
    /// Queries per second over the last `stats_period`.
    pub avg_query_count: u64,
    /// Every column as PgBouncer sent it, including ones newer versions add.
    pub columns: ConsoleRow,
}

impl From<ConsoleRow> for BouncerStatsRow {
    fn from(row: ConsoleRow) -> Self {
        BouncerStatsRow {
            database: row.text("database"),
            total_xact_count: row.number("total_xact_count"),
            total_query_count: row.number("total_query_count"),
            total_received: row.number("total_received"),
            total_sent: row.number("total_sent"),
            total_xact_time: row.micros("total_xact_time"),
            total_query_time: row.micros("total_query_time"),
            total_wait_time: row.micros("total_wait_time"),
            avg_xact_count: row.number("avg_xact_count"),
            avg_query_count: row.number("avg_query_count"),
            columns: row,
        }
    }
}

/// Runs one console command on a fresh connection to `console_url` and returns its rows
/// (none for commands such as `PAUSE`). Bounded by the admin statement limit.
pub(crate) async fn run(console_url: &str, command: &str) -> Result<Vec<ConsoleRow>> {
    let action = format!("run `{command}` on the PgBouncer console");
    // The console accepts no startup parameters beyond the ones PgBouncer tracks, whatever
    // `ignore_startup_parameters` says.
    let connect = admin::connect_tuned(console_url, |o| o.extra_float_digits(None));
    let mut conn = connect.await.map_err(|detail| {
        Error::test_kit(
            &action,
            detail,
            "check that PgBouncer runs (PgBouncer::pid) and read its log (PgBouncer::log_path)",
        )
    })?;
    let query = sqlx::raw_sql(sqlx::AssertSqlSafe(command.to_owned())).fetch_all(&mut conn);
    let result = tokio::time::timeout(STATEMENT_LIMIT, query).await;
    let _ = sqlx::Connection::close(conn).await;
    let rows = match result {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => {
            return Err(Error::test_kit(
                &action,
                redact(&e.to_string()),
                "check the command against PgBouncer's console documentation (SHOW HELP)",
            ));
        }
        Err(_) => {
            return Err(Error::test_kit(
                &action,
                format!("no answer within {STATEMENT_LIMIT:?}"),
                "PAUSE waits for every server connection to be released: end open \
                 transactions first (or PAUSE a single database)",
            ));
        }
    };
    Ok(rows.iter().map(console_row).collect())
}

fn console_row(row: &sqlx::postgres::PgRow) -> ConsoleRow {
    use sqlx::Column;
    let mut values = BTreeMap::new();
    for column in row.columns() {
        let value = row
            .try_get_raw(column.ordinal())
            .ok()
            .filter(|v| !v.is_null())
            .and_then(|v| v.as_str().ok().map(str::to_owned));
        values.insert(column.name().to_owned(), value);
    }
    ConsoleRow(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, &str)]) -> ConsoleRow {
        ConsoleRow(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
                .collect(),
        )
    }

    #[test]
    fn pool_rows_parse_counts_and_waits() {
        let pool = BouncerPoolRow::from(row(&[
            ("database", "t_1"),
            ("user", "app"),
            ("cl_active", "3"),
            ("cl_waiting", "2"),
            ("sv_active", "1"),
            ("sv_idle", "4"),
            ("maxwait", "1"),
            ("maxwait_us", "250000"),
            ("pool_mode", "transaction"),
        ]));
        assert_eq!(pool.database, "t_1");
        assert_eq!((pool.cl_active, pool.cl_waiting), (3, 2));
        assert_eq!(pool.server_connections(), 5);
        assert_eq!(pool.maxwait, Duration::from_millis(1250));
        assert_eq!(pool.columns.get("user"), Some("app"));
    }

    #[test]
    fn stats_rows_read_microseconds() {
        let stats = BouncerStatsRow::from(row(&[
            ("database", "t_1"),
            ("total_xact_count", "10"),
            ("total_query_time", "1500"),
        ]));
        assert_eq!(stats.total_xact_count, 10);
        assert_eq!(stats.total_query_time, Duration::from_micros(1500));
        assert_eq!(stats.total_sent, 0);
    }
}
