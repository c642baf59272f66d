//! PostgreSQL's own statistics, typed (seed 002's monitoring queries, done once and well):
//! connection states from `pg_stat_activity`, long-running and idle-in-transaction sessions,
//! cache hit ratio, deadlocks and transaction rates from `pg_stat_database`, table sizes with a
//! dead-tuple bloat estimate, index usage and unused indexes, and the top statements from
//! `pg_stat_statements` when the extension is installed (a note says what to do when not).
//!
//! ```no_run
//! # async fn f(rt: sqlx_resilience_runtime::Runtime) -> sqlx_resilience_runtime::Result<()> {
//! use sqlx_resilience_runtime::pgstats::PgStatsOptions;
//!
//! let stats = rt.pg_stats(&PgStatsOptions::default()).await?;
//! println!("cache hit ratio {:?}%", stats.database.cache_hit_pct);
//! for i in &stats.unused_indexes {
//!     println!("unused index {}.{} ({} bytes)", i.table, i.name, i.bytes);
//! }
//! # Ok(()) }
//! ```
//!
//! Every figure is for the pool's database (`current_database()`), except
//! [`Connections::server_total`] and [`Connections::max_connections`]. A role without
//! `pg_read_all_stats` sees other roles' sessions without their query text, and only its own
//! statements in `pg_stat_statements`. Query texts are cut to 300 characters; they are the
//! statements as sent (with `$1` placeholders for bound parameters, never their values).

mod collect;
mod types;

pub use self::collect::collect;
pub use self::types::{
    ConnectionStates, Connections, DatabaseActivity, IndexStats, PgStats, PgStatsOptions, Session,
    Statement, Statements, TableStats,
};
