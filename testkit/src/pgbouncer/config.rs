//! The files a PgBouncer runs from: `pgbouncer.ini` and the auth file with SCRAM verifiers.
//!
//! Authentication: the kit copies the SCRAM verifiers of the roles it needs from `pg_authid`
//! into PgBouncer's auth file (`auth_file`) rather than using `auth_query`. Debian 12's
//! PgBouncer 1.18 runs `auth_query` in the database the client asks for (`auth_dbname`
//! arrived in 1.20), so every per-test database would need the lookup function, and its
//! `auth_user` needs an auth-file entry anyway. With the verifier in the auth file, PgBouncer
//! checks the client's SCRAM exchange itself and reuses the client's proof to log in to
//! PostgreSQL (SCRAM pass-through, since 1.14), which works because the stored verifier is
//! the server's own: same salt and iterations. No plaintext password is written to disk.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::options::PgBouncerOptions;

/// One role's entry of the auth file.
pub(crate) struct AuthEntry {
    pub(crate) user: String,
    /// The role's `SCRAM-SHA-256$...` verifier from `pg_authid.rolpassword`.
    pub(crate) verifier: String,
}

/// The auth file: `"user" "verifier"` per line, `"` doubled inside values.
pub(crate) fn auth_file(entries: &[AuthEntry]) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    entries
        .iter()
        .map(|e| format!("{} {}\n", quote(&e.user), quote(&e.verifier)))
        .collect()
}

/// Where PgBouncer listens and what it fronts.
pub(crate) struct Layout<'a> {
    pub(crate) port: u16,
    pub(crate) server_host: &'a str,
    pub(crate) server_port: u16,
    pub(crate) auth_file: &'a Path,
    pub(crate) admin_user: &'a str,
}

/// `pgbouncer.ini`: every database name goes to the server (the `*` fallback), TCP on
/// loopback only, no Unix socket (it would be left in /tmp after a kill), logs to stderr
/// (which the watchdog writes to the program's log).
pub(crate) fn ini(layout: &Layout<'_>, options: &PgBouncerOptions) -> String {
    let mut text = String::from("; written by sqlx-resilience-testkit\n[databases]\n");
    let _ = writeln!(
        text,
        "* = host={} port={}",
        layout.server_host, layout.server_port
    );
    text.push_str("\n[pgbouncer]\n");
    let mut set = |name: &str, value: &str| {
        let _ = writeln!(text, "{name} = {value}");
    };
    set("listen_addr", "127.0.0.1");
    set("listen_port", &layout.port.to_string());
    set("unix_socket_dir", "");
    set("auth_type", "scram-sha-256");
    set("auth_file", &layout.auth_file.to_string_lossy());
    set("admin_users", layout.admin_user);
    set("stats_users", layout.admin_user);
    set("pool_mode", options.pool_mode.as_str());
    set("default_pool_size", &options.default_pool_size.to_string());
    set("max_client_conn", &options.max_client_conn.to_string());
    set("query_wait_timeout", &seconds(options.query_wait_timeout));
    set("server_login_retry", &seconds(options.server_login_retry));
    set(
        "ignore_startup_parameters",
        &options.ignore_startup_parameters.join(","),
    );
    // Connections are many in drills; failures are logged either way.
    set("log_connections", "0");
    set("log_disconnections", "0");
    for (name, value) in &options.settings {
        set(name, value);
    }
    text
}

/// A duration in PgBouncer's unit, seconds, with the fraction when there is one.
fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{:.3}", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PoolMode;

    #[test]
    fn the_auth_file_quotes_its_values() {
        let text = auth_file(&[AuthEntry {
            user: "a\"b".into(),
            verifier: "SCRAM-SHA-256$4096:x$y:z".into(),
        }]);
        assert_eq!(text, "\"a\"\"b\" \"SCRAM-SHA-256$4096:x$y:z\"\n");
    }

    #[test]
    fn the_ini_names_the_server_and_the_options() {
        let options = PgBouncerOptions::new()
            .pool_mode(PoolMode::Session)
            .query_wait_timeout(Duration::from_millis(1500))
            .setting("stats_period", "1");
        let text = ini(
            &Layout {
                port: 6432,
                server_host: "127.0.0.1",
                server_port: 5432,
                auth_file: Path::new("/tmp/x/userlist.txt"),
                admin_user: "postgres",
            },
            &options,
        );
        for line in [
            "* = host=127.0.0.1 port=5432",
            "listen_port = 6432",
            "unix_socket_dir = \n",
            "pool_mode = session",
            "query_wait_timeout = 1.500",
            "server_login_retry = 15",
            "ignore_startup_parameters = extra_float_digits",
            "stats_period = 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
