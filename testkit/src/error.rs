//! The test kit's failures: every one is `Error::test_kit(action, detail, hint)`.

use std::fmt;
use std::path::Path;

use sqlx_resilience_runtime::Error;

/// The action of every failure while bringing up a throwaway server.
pub(crate) const START: &str = "start a throwaway PostgreSQL";

/// What to do when no server binaries are installed.
pub(crate) const INSTALL_HINT: &str = "install the PostgreSQL server package \
    (Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server; \
    macOS: brew install postgresql), set SQLX_RESILIENCE_PG_BINDIR to the directory holding \
    initdb and postgres, or set DATABASE_URL to a PostgreSQL server you own";

/// No usable `initdb`/`postgres` was found.
pub(crate) fn no_binaries(detail: impl fmt::Display) -> Error {
    Error::test_kit(START, detail, INSTALL_HINT)
}

/// A failure while starting, with the tail of the server log appended to the detail.
pub(crate) fn start_failed(detail: impl fmt::Display, log: &Path, hint: &str) -> Error {
    Error::test_kit(START, format!("{detail}{}", log_tail(log)), hint.to_owned())
}

/// The last lines of a server log, formatted to follow a detail, or nothing when it is empty.
pub(crate) fn log_tail(log: &Path) -> String {
    named_log_tail(log, "the server log", &[])
}

/// The last lines of the log `name` at `log`, without lines containing any of `skip`,
/// formatted to follow a detail, or nothing when it is empty.
pub(crate) fn named_log_tail(log: &Path, name: &str, skip: &[&str]) -> String {
    let Ok(text) = std::fs::read_to_string(log) else {
        return String::new();
    };
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !skip.iter().any(|s| l.contains(s)))
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(15)..];
    format!(
        "; last lines of {name} {}:\n    {}\n",
        log.display(),
        tail.join("\n    ")
    )
}

/// The hint for an unexpected failure of a server the test kit runs.
pub(crate) const SERVER_HINT: &str = "the server's own messages, where there are any, are \
    quoted above; if they do not explain the failure, report it with them";

/// `text` with every secret replaced by `***`.
pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret.as_str(), "***");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_secrets() {
        assert_eq!(
            scrub("password=abc and abc", &["abc".to_owned(), String::new()]),
            "password=*** and ***"
        );
    }

    #[test]
    fn log_tails_keep_the_last_lines_and_leave_out_noise() {
        let path = std::env::temp_dir().join(format!(
            "sqlx-resilience-log-tail-test-{}",
            std::process::id()
        ));
        let mut text = String::from("first\n");
        for i in 0..20 {
            text.push_str(&format!("line {i}\nINFO: no action. I am (node1)\n\n"));
        }
        std::fs::write(&path, text).unwrap();
        let tail = named_log_tail(&path, "the test log", &["INFO: no action. "]);
        std::fs::remove_file(&path).unwrap();
        assert!(tail.starts_with("; last lines of the test log"), "{tail}");
        assert!(
            tail.contains("line 19") && tail.contains("line 5"),
            "{tail}"
        );
        assert!(
            !tail.contains("line 4") && !tail.contains("first"),
            "{tail}"
        );
        assert!(!tail.contains("no action"), "{tail}");
        assert_eq!(named_log_tail(Path::new("/nonexistent/log"), "x", &[]), "");
    }
}
