//! What changes when a pooler sits between the pool and the server (`pooler = "transaction"`
//! or `"session"`): the startup packet carries nothing a pooler refuses, and the pool's session
//! settings are applied by statements instead (`SET` once per connection behind a session
//! pooler, `SET LOCAL` in every transaction behind a transaction pooler).
//!
//! Behind a transaction pooler each transaction may run on another server connection, and
//! sqlx 0.9 prepares a statement with bound arguments in one round trip and executes it in the
//! next, so every op body runs in a transaction (see `op::attempt`). sqlx also names every
//! statement it prepares (`sqlx_s_N`, numbered per client connection) unless the query is
//! marked `persistent(false)`, and with its statement cache off it never closes them
//! (sqlx #4328): they would stay on the server connection and collide with another client's
//! `sqlx_s_N`. So the cache is off (a cached name would not exist on the next server
//! connection) and every transaction begins with `DEALLOCATE ALL`: a server connection then
//! holds at most one transaction's statements, and never another client's.

use std::fmt::Write as _;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use super::config::{PoolConfig, Pooler};

/// PostgreSQL 14 added `client_connection_check_interval`.
const CHECK_INTERVAL_SINCE: u32 = 140_000;

/// The connect options behind a pooler: no `options` and no `extra_float_digits` in the
/// startup packet (PgBouncer refuses both unless told to ignore them), and behind a
/// transaction pooler no statement cache. `application_name` stays: PgBouncer tracks it and
/// sets it on whichever server connection serves the client.
pub(super) fn startup(options: PgConnectOptions, pooler: Pooler) -> PgConnectOptions {
    match pooler {
        Pooler::None => options,
        Pooler::Session => options.extra_float_digits(None),
        Pooler::Transaction => options.extra_float_digits(None).statement_cache_capacity(0),
    }
}

/// The pool's session settings as `SET` (or, with `local`, `SET LOCAL`) statements, each
/// preceded by `"; "`: `statement_timeout` only when `with_statement_timeout`, and
/// `client_connection_check_interval` only on servers that have it.
pub(crate) fn settings_sql(
    config: &PoolConfig,
    server_version: u32,
    local: bool,
    with_statement_timeout: bool,
) -> String {
    let verb = if local { "SET LOCAL" } else { "SET" };
    let mut sql = String::new();
    let ms = |d: Duration| d.as_millis().max(1);
    let mut set = |name: &str, value: &dyn std::fmt::Display| {
        let _ = write!(sql, "; {verb} {name} = {value}");
    };
    if with_statement_timeout && let Some(d) = config.statement_timeout {
        set("statement_timeout", &ms(d));
    }
    if let Some(d) = config.lock_timeout {
        set("lock_timeout", &ms(d));
    }
    if let Some(d) = config.idle_in_transaction_session_timeout {
        set("idle_in_transaction_session_timeout", &ms(d));
    }
    if let Some(d) = config.client_connection_check_interval
        && server_version >= CHECK_INTERVAL_SINCE
    {
        set("client_connection_check_interval", &ms(d));
    }
    if let Some(path) = &config.search_path {
        // `SET search_path = 'a, b'` would name one schema "a, b"; set_config reads the list.
        // The schema rejects quotes, semicolons and backslashes in `search_path`.
        let _ = write!(sql, "; SELECT set_config('search_path', '{path}', {local})");
    }
    sql
}

/// What a transaction begins with behind a transaction pooler, after `BEGIN ...`:
/// `DEALLOCATE ALL` and the session settings as `SET LOCAL`, except `statement_timeout`
/// (the caller sets it from the pool's and the attempt's time left).
pub(crate) fn begin_sql(config: &PoolConfig, server_version: u32) -> String {
    let mut sql = String::from("; DEALLOCATE ALL");
    sql.push_str(&settings_sql(config, server_version, true, false));
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_statements_and_the_check_interval_needs_postgresql_14() {
        let c = PoolConfig {
            statement_timeout: Some(Duration::from_secs(5)),
            lock_timeout: Some(Duration::from_secs(1)),
            search_path: Some("app, public".into()),
            client_connection_check_interval: Some(Duration::from_millis(250)),
            ..PoolConfig::default()
        };
        assert_eq!(
            settings_sql(&c, 150_000, false, true),
            "; SET statement_timeout = 5000; SET lock_timeout = 1000; \
             SET client_connection_check_interval = 250; \
             SELECT set_config('search_path', 'app, public', false)"
        );
        assert_eq!(
            begin_sql(&c, 130_000),
            "; DEALLOCATE ALL; SET LOCAL lock_timeout = 1000; \
             SELECT set_config('search_path', 'app, public', true)"
        );
    }
}
