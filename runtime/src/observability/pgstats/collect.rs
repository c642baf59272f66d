use std::time::Duration;

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::types::*;
use crate::error::{Error, Result};
use crate::runtime::Runtime;

impl Runtime {
    /// Collects [`PgStats`] on a connection of the default pool (or the first pool), within
    /// 10 seconds.
    pub async fn pg_stats(&self, options: &PgStatsOptions) -> Result<PgStats> {
        let pool = self
            .default_pool()
            .or_else(|| self.pools().next())
            .ok_or_else(|| Error::config("pools", "(none)", "at least one pool", "pg_stats"))?;
        let mut conn = pool.acquire().await?;
        match tokio::time::timeout(Duration::from_secs(10), collect(&mut conn, options)).await {
            Ok(r) => r,
            Err(_) => {
                conn.evict(crate::pool::CloseReason::Timeout);
                Err(Error::Timeout {
                    site: crate::error::Site::pool(pool.name().to_owned()),
                    timeout: Duration::from_secs(10),
                    attempt: 1,
                })
            }
        }
    }
}

/// Collects [`PgStats`] on `conn` (a few catalog queries; no locks beyond the catalogs').
pub async fn collect(conn: &mut PgConnection, options: &PgStatsOptions) -> Result<PgStats> {
    let r = one(
        conn,
        "select current_setting('server_version'), \
                current_setting('server_version_num')::int4, current_database()::text, \
                current_setting('max_connections')::int4",
    )
    .await?;
    let (server_version, version_num, database_name, max_connections): (String, i32, String, i32) =
        (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);

    // Connections.
    let rows = all(
        conn,
        "select coalesce(state, ''), count(*), \
                count(*) filter (where wait_event_type = 'Lock') \
         from pg_stat_activity \
         where backend_type = 'client backend' and datname = current_database() \
         group by 1",
    )
    .await?;
    let mut states = ConnectionStates::default();
    let mut waiting_on_locks = 0;
    for r in rows {
        let (state, n, locks): (String, i64, i64) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        states.total += n;
        waiting_on_locks += locks;
        match state.as_str() {
            "active" => states.active += n,
            "idle" => states.idle += n,
            "idle in transaction" => states.idle_in_transaction += n,
            "idle in transaction (aborted)" => states.idle_in_transaction_aborted += n,
            _ => states.other += n,
        }
    }
    let server_total: i64 = one(
        conn,
        "select count(*) from pg_stat_activity where backend_type = 'client backend'",
    )
    .await?
    .try_get(0)?;
    let by_application = all(
        conn,
        "select coalesce(application_name, ''), count(*) from pg_stat_activity \
         where backend_type = 'client backend' and datname = current_database() \
         group by 1 order by 2 desc, 1 limit 50",
    )
    .await?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .collect::<std::result::Result<Vec<(String, i64)>, sqlx::Error>>()?;

    // Sessions.
    let session_sql = |filter: &str, duration: &str| {
        format!(
            "select pid, coalesce(application_name, ''), coalesce(state, ''), wait_event_type, \
                    wait_event, \
                    extract(epoch from now() - {duration})::float8 * 1000, \
                    extract(epoch from now() - state_change)::float8 * 1000, \
                    left(coalesce(query, ''), 300) \
             from pg_stat_activity \
             where backend_type = 'client backend' and datname = current_database() \
               and pid <> pg_backend_pid() and {filter} \
             order by 6 desc limit 50"
        )
    };
    let long_running = sessions(
        conn,
        &session_sql(
            "state = 'active' and now() - query_start > make_interval(secs => $1::float8)",
            "query_start",
        ),
        options.long_running,
    )
    .await?;
    let idle_in_transaction = sessions(
        conn,
        &session_sql(
            "state like 'idle in transaction%' and now() - state_change > make_interval(secs => $1::float8)",
            "xact_start",
        ),
        options.idle_in_transaction,
    )
    .await?;

    // pg_stat_database.
    let r = one(
        conn,
        "select xact_commit, xact_rollback, blks_hit, blks_read, deadlocks, temp_files, \
                temp_bytes, conflicts, tup_inserted, tup_updated, tup_deleted, \
                extract(epoch from now() - coalesce(stats_reset, pg_postmaster_start_time()))::float8, \
                pg_database_size(datname) \
         from pg_stat_database where datname = current_database()",
    )
    .await?;
    let (commit, rollback, hit, read): (i64, i64, i64, i64) =
        (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
    let secs: f64 = r.try_get(11)?;
    let secs = secs.max(1e-3);
    let database = DatabaseActivity {
        xact_commit: commit,
        xact_rollback: rollback,
        blks_hit: hit,
        blks_read: read,
        cache_hit_pct: (hit + read > 0).then(|| hit as f64 * 100.0 / (hit + read) as f64),
        deadlocks: r.try_get(4)?,
        temp_files: r.try_get(5)?,
        temp_bytes: r.try_get(6)?,
        conflicts: r.try_get(7)?,
        tup_inserted: r.try_get(8)?,
        tup_updated: r.try_get(9)?,
        tup_deleted: r.try_get(10)?,
        stats_seconds: secs,
        commits_per_sec: commit as f64 / secs,
        rollbacks_per_sec: rollback as f64 / secs,
        rollback_pct: (commit + rollback > 0)
            .then(|| rollback as f64 * 100.0 / (commit + rollback) as f64),
        size_bytes: r.try_get(12)?,
    };

    // Tables.
    let rows = all(
        conn,
        format!(
            "select schemaname::text, relname::text, pg_total_relation_size(relid), \
                    pg_relation_size(relid), pg_indexes_size(relid), n_live_tup, n_dead_tup, \
                    coalesce(seq_scan, 0), coalesce(idx_scan, 0), \
                    (extract(epoch from greatest(last_vacuum, last_autovacuum)) * 1000)::int8 \
             from pg_stat_user_tables order by 3 desc, 2 limit {}",
            options.tables
        ),
    )
    .await?;
    let mut tables = Vec::with_capacity(rows.len());
    for r in rows {
        let table_bytes: i64 = r.try_get(3)?;
        let live: i64 = r.try_get(5)?;
        let dead: i64 = r.try_get(6)?;
        let dead_pct = if live + dead > 0 {
            dead as f64 * 100.0 / (live + dead) as f64
        } else {
            0.0
        };
        tables.push(TableStats {
            schema: r.try_get(0)?,
            name: r.try_get(1)?,
            total_bytes: r.try_get(2)?,
            table_bytes,
            index_bytes: r.try_get(4)?,
            live_tuples: live,
            dead_tuples: dead,
            dead_pct,
            bloat_bytes_estimate: (table_bytes as f64 * dead_pct / 100.0) as i64,
            seq_scans: r.try_get(7)?,
            idx_scans: r.try_get(8)?,
            last_vacuum_unix_ms: r.try_get(9)?,
        });
    }

    // Indexes.
    let index_sql = |filter: &str| {
        format!(
            "select s.schemaname::text, s.relname::text, s.indexrelname::text, s.idx_scan, \
                    pg_relation_size(s.indexrelid), i.indisunique, i.indisprimary \
             from pg_stat_user_indexes s join pg_index i on i.indexrelid = s.indexrelid \
             {filter} order by 5 desc, 3 limit $1"
        )
    };
    let indexes = index_rows(conn, &index_sql(""), options.indexes).await?;
    let unused_indexes = index_rows(
        conn,
        &index_sql("where s.idx_scan = 0 and not i.indisunique and not i.indisprimary"),
        options.indexes,
    )
    .await?;

    let statements = statements(conn, version_num, options.statements).await?;

    Ok(PgStats {
        server_version,
        database_name,
        collected_at_unix_ms: crate::observability::clock::unix_ms(),
        connections: Connections {
            server_total,
            max_connections: i64::from(max_connections),
            states,
            waiting_on_locks,
            by_application,
        },
        long_running,
        idle_in_transaction,
        database,
        tables,
        indexes,
        unused_indexes,
        statements,
    })
}

/// Runs `sql` as a simple query: one round trip and no prepared statement, so it works
/// through a transaction pooler (each statement may run on another server connection, and a
/// named statement left there would meet another client's of the same name). Its numbers are
/// the options' own, written into the text.
async fn all(conn: &mut PgConnection, sql: impl Into<String>) -> sqlx::Result<Vec<PgRow>> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.into()))
        .fetch_all(&mut *conn)
        .await
}

/// [`all`] for a query of one row.
async fn one(conn: &mut PgConnection, sql: impl Into<String>) -> sqlx::Result<PgRow> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.into()))
        .fetch_one(&mut *conn)
        .await
}

async fn sessions(conn: &mut PgConnection, sql: &str, older: Duration) -> Result<Vec<Session>> {
    let rows = all(conn, sql.replace("$1", &older.as_secs_f64().to_string())).await?;
    rows.iter()
        .map(|r| {
            Ok(Session {
                pid: r.try_get(0)?,
                application_name: r.try_get(1)?,
                state: r.try_get(2)?,
                wait_event_type: r.try_get(3)?,
                wait_event: r.try_get(4)?,
                duration_ms: r.try_get::<Option<f64>, _>(5)?.unwrap_or(0.0),
                state_for_ms: r.try_get::<Option<f64>, _>(6)?.unwrap_or(0.0),
                query: r.try_get(7)?,
            })
        })
        .collect::<std::result::Result<_, sqlx::Error>>()
        .map_err(Error::from)
}

async fn index_rows(conn: &mut PgConnection, sql: &str, limit: u32) -> Result<Vec<IndexStats>> {
    let rows = all(conn, sql.replace("$1", &limit.to_string())).await?;
    rows.iter()
        .map(|r| {
            Ok(IndexStats {
                schema: r.try_get(0)?,
                table: r.try_get(1)?,
                name: r.try_get(2)?,
                scans: r.try_get::<Option<i64>, _>(3)?.unwrap_or(0),
                bytes: r.try_get(4)?,
                unique: r.try_get(5)?,
                primary: r.try_get(6)?,
            })
        })
        .collect::<std::result::Result<_, sqlx::Error>>()
        .map_err(Error::from)
}

const NOT_INSTALLED: &str = "pg_stat_statements is not installed in this database: add it to \
    shared_preload_libraries in postgresql.conf, restart the server, then run \
    CREATE EXTENSION pg_stat_statements";

async fn statements(conn: &mut PgConnection, version_num: i32, limit: u32) -> Result<Statements> {
    let installed: bool = one(
        conn,
        "select exists (select 1 from pg_extension where extname = 'pg_stat_statements')",
    )
    .await?
    .try_get(0)?;
    if !installed {
        return Ok(Statements {
            available: false,
            note: Some(NOT_INSTALLED.to_owned()),
            top: Vec::new(),
        });
    }
    let (total, mean, max) = if version_num >= 130_000 {
        ("total_exec_time", "mean_exec_time", "max_exec_time")
    } else {
        ("total_time", "mean_time", "max_time")
    };
    let sql = format!(
        "select queryid, left(query, 300), calls, {total}, {mean}, {max}, rows, \
                shared_blks_hit, shared_blks_read \
         from pg_stat_statements \
         where dbid = (select oid from pg_database where datname = current_database()) \
         order by {total} desc limit {limit}"
    );
    let rows = match all(conn, sql).await {
        Ok(rows) => rows,
        Err(sqlx::Error::Database(e)) => {
            return Ok(Statements {
                available: false,
                note: Some(format!(
                    "pg_stat_statements is installed but does not answer ({}): it must be in \
                     shared_preload_libraries, and the server restarted",
                    e.message()
                )),
                top: Vec::new(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let top = rows
        .iter()
        .map(|r| {
            Ok(Statement {
                query_id: r.try_get(0)?,
                query: r.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
                calls: r.try_get(2)?,
                total_ms: r.try_get(3)?,
                mean_ms: r.try_get(4)?,
                max_ms: r.try_get(5)?,
                rows: r.try_get(6)?,
                shared_blks_hit: r.try_get(7)?,
                shared_blks_read: r.try_get(8)?,
            })
        })
        .collect::<std::result::Result<_, sqlx::Error>>()
        .map_err(Error::from)?;
    Ok(Statements {
        available: true,
        note: None,
        top,
    })
}
