use std::time::Duration;

use serde::Serialize;

/// What to collect and the thresholds for sessions.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PgStatsOptions {
    /// Active statements running longer than this are listed.
    pub long_running: Duration,
    /// Sessions idle in a transaction longer than this are listed.
    pub idle_in_transaction: Duration,
    /// The largest tables listed.
    pub tables: u32,
    /// The largest indexes listed.
    pub indexes: u32,
    /// The statements with the most total time listed.
    pub statements: u32,
}

impl Default for PgStatsOptions {
    fn default() -> Self {
        PgStatsOptions {
            long_running: Duration::from_secs(30),
            idle_in_transaction: Duration::from_secs(30),
            tables: 20,
            indexes: 20,
            statements: 10,
        }
    }
}

impl PgStatsOptions {
    /// Sets both session thresholds.
    pub fn session_thresholds(
        mut self,
        long_running: Duration,
        idle_in_transaction: Duration,
    ) -> Self {
        self.long_running = long_running;
        self.idle_in_transaction = idle_in_transaction;
        self
    }
}

/// Everything collected at once.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PgStats {
    /// `server_version`.
    pub server_version: String,
    /// The database.
    pub database_name: String,
    /// When collected, in milliseconds since the Unix epoch.
    pub collected_at_unix_ms: u64,
    /// Client connections.
    pub connections: Connections,
    /// Active statements running longer than [`PgStatsOptions::long_running`].
    pub long_running: Vec<Session>,
    /// Sessions idle in a transaction longer than [`PgStatsOptions::idle_in_transaction`].
    pub idle_in_transaction: Vec<Session>,
    /// `pg_stat_database` for this database.
    pub database: DatabaseActivity,
    /// The largest tables.
    pub tables: Vec<TableStats>,
    /// The largest indexes.
    pub indexes: Vec<IndexStats>,
    /// Indexes never scanned (neither unique nor primary keys, which enforce rules).
    pub unused_indexes: Vec<IndexStats>,
    /// `pg_stat_statements`.
    pub statements: Statements,
}

/// Client connections by state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Connections {
    /// Client connections to the whole server.
    pub server_total: i64,
    /// `max_connections`.
    pub max_connections: i64,
    /// Client connections to this database, by state.
    pub states: ConnectionStates,
    /// Sessions of this database waiting for a lock.
    pub waiting_on_locks: i64,
    /// Sessions of this database by `application_name` (the pool name by default), most
    /// first.
    pub by_application: Vec<(String, i64)>,
}

/// Counts by `pg_stat_activity.state`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ConnectionStates {
    /// All client connections to this database.
    pub total: i64,
    /// Running a statement.
    pub active: i64,
    /// Waiting for a command.
    pub idle: i64,
    /// In a transaction, waiting for a command.
    pub idle_in_transaction: i64,
    /// In a failed transaction, waiting for a rollback.
    pub idle_in_transaction_aborted: i64,
    /// Any other state (fastpath, disabled, or hidden from this role).
    pub other: i64,
}

/// One session from `pg_stat_activity`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Session {
    /// Backend process id.
    pub pid: i32,
    /// `application_name`.
    pub application_name: String,
    /// `state`.
    pub state: String,
    /// `wait_event_type`, when waiting.
    pub wait_event_type: Option<String>,
    /// `wait_event`, when waiting.
    pub wait_event: Option<String>,
    /// How long: the statement (long-running) or the transaction (idle in transaction), in
    /// milliseconds.
    pub duration_ms: f64,
    /// Time since the last state change, in milliseconds.
    pub state_for_ms: f64,
    /// The statement's text, cut to 300 characters (empty when hidden from this role).
    pub query: String,
}

/// `pg_stat_database` for one database, with derived ratios and rates.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DatabaseActivity {
    /// Committed transactions.
    pub xact_commit: i64,
    /// Rolled-back transactions.
    pub xact_rollback: i64,
    /// Blocks found in shared buffers.
    pub blks_hit: i64,
    /// Blocks read from disk (or the OS cache).
    pub blks_read: i64,
    /// `blks_hit / (blks_hit + blks_read)` in percent; `None` before any block access.
    pub cache_hit_pct: Option<f64>,
    /// Deadlocks detected.
    pub deadlocks: i64,
    /// Temporary files written.
    pub temp_files: i64,
    /// Bytes of temporary files written.
    pub temp_bytes: i64,
    /// Queries cancelled by recovery conflicts (standbys).
    pub conflicts: i64,
    /// Rows inserted.
    pub tup_inserted: i64,
    /// Rows updated.
    pub tup_updated: i64,
    /// Rows deleted.
    pub tup_deleted: i64,
    /// Seconds the counters cover (since `stats_reset`, or the server's start).
    pub stats_seconds: f64,
    /// Commits per second over `stats_seconds`.
    pub commits_per_sec: f64,
    /// Rollbacks per second over `stats_seconds`.
    pub rollbacks_per_sec: f64,
    /// Rollbacks in percent of all transactions.
    pub rollback_pct: Option<f64>,
    /// The database's size in bytes.
    pub size_bytes: i64,
}

impl DatabaseActivity {
    /// Commits and rollbacks per second between an earlier snapshot and this one.
    pub fn rates_since(&self, earlier: &DatabaseActivity, elapsed: Duration) -> (f64, f64) {
        let secs = elapsed.as_secs_f64().max(1e-9);
        (
            (self.xact_commit - earlier.xact_commit).max(0) as f64 / secs,
            (self.xact_rollback - earlier.xact_rollback).max(0) as f64 / secs,
        )
    }
}

/// One table from `pg_stat_user_tables`, with sizes and a bloat estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TableStats {
    /// Schema.
    pub schema: String,
    /// Table.
    pub name: String,
    /// Table, indexes and TOAST, in bytes.
    pub total_bytes: i64,
    /// The table's main fork, in bytes.
    pub table_bytes: i64,
    /// Its indexes, in bytes.
    pub index_bytes: i64,
    /// Estimated live rows.
    pub live_tuples: i64,
    /// Estimated dead rows (updated or deleted, not yet vacuumed).
    pub dead_tuples: i64,
    /// `dead / (live + dead)` in percent: the bloat estimate.
    pub dead_pct: f64,
    /// `table_bytes × dead_pct`: bytes a vacuum could make reusable (an estimate).
    pub bloat_bytes_estimate: i64,
    /// Sequential scans.
    pub seq_scans: i64,
    /// Index scans.
    pub idx_scans: i64,
    /// Last vacuum (manual or automatic), in milliseconds since the Unix epoch.
    pub last_vacuum_unix_ms: Option<i64>,
}

/// One index from `pg_stat_user_indexes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct IndexStats {
    /// Schema.
    pub schema: String,
    /// The table it indexes.
    pub table: String,
    /// The index.
    pub name: String,
    /// Scans that used it.
    pub scans: i64,
    /// Its size in bytes.
    pub bytes: i64,
    /// A unique index.
    pub unique: bool,
    /// The primary key.
    pub primary: bool,
}

/// `pg_stat_statements`, or why it is not there.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Statements {
    /// Whether the extension answered.
    pub available: bool,
    /// What to do when it did not.
    pub note: Option<String>,
    /// The statements with the most total execution time.
    pub top: Vec<Statement>,
}

/// One normalized statement from `pg_stat_statements`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Statement {
    /// `queryid`.
    pub query_id: Option<i64>,
    /// The normalized text (constants replaced by `$n`), cut to 300 characters.
    pub query: String,
    /// Calls.
    pub calls: i64,
    /// Total execution time in milliseconds.
    pub total_ms: f64,
    /// Mean execution time in milliseconds.
    pub mean_ms: f64,
    /// Longest execution in milliseconds.
    pub max_ms: f64,
    /// Rows returned or affected.
    pub rows: i64,
    /// Shared buffer hits.
    pub shared_blks_hit: i64,
    /// Shared blocks read.
    pub shared_blks_read: i64,
}
