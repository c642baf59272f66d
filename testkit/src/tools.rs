//! Finding the programs of the engines beside PostgreSQL: PgBouncer, Patroni and etcd.
//!
//! Each is looked up like the server binaries: an environment variable naming the program
//! wins; otherwise `PATH`, then the paths Debian's packages install to (`/usr/sbin` is often
//! missing from a non-root `PATH`, and `cargo test` keeps the caller's).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use sqlx_resilience_runtime::Error;

use crate::Result;

/// The environment variable naming the `pgbouncer` program to use.
pub const PGBOUNCER_ENV: &str = "SQLX_RESILIENCE_PGBOUNCER";

/// The environment variable naming the `patroni` program to use.
pub const PATRONI_ENV: &str = "SQLX_RESILIENCE_PATRONI";

/// The environment variable naming the `etcd` program to use.
pub const ETCD_ENV: &str = "SQLX_RESILIENCE_ETCD";

/// One program the test kit runs, and where to find it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tool {
    /// The program's file name.
    pub(crate) program: &'static str,
    /// The environment variable that names the program's path.
    pub(crate) env: &'static str,
    /// The Debian package that installs it.
    pub(crate) package: &'static str,
    /// Where Debian's package installs it.
    pub(crate) known: &'static [&'static str],
    /// What uses it, for errors ("run PgBouncer").
    pub(crate) action: &'static str,
}

/// PgBouncer, from Debian's `pgbouncer` package.
pub(crate) const PGBOUNCER: Tool = Tool {
    program: "pgbouncer",
    env: PGBOUNCER_ENV,
    package: "pgbouncer",
    known: &["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"],
    action: "start PgBouncer",
};

/// Patroni, from Debian's `patroni` package.
pub(crate) const PATRONI: Tool = Tool {
    program: "patroni",
    env: PATRONI_ENV,
    package: "patroni",
    known: &["/usr/bin/patroni"],
    action: "start a Patroni cluster",
};

/// etcd, from Debian's `etcd-server` package.
pub(crate) const ETCD: Tool = Tool {
    program: "etcd",
    env: ETCD_ENV,
    package: "etcd-server",
    known: &["/usr/bin/etcd"],
    action: "start a Patroni cluster",
};

impl Tool {
    /// The program's path, or an error saying which package to install.
    pub(crate) fn find(&self) -> Result<PathBuf> {
        self.find_in(
            std::env::var_os(self.env).filter(|v| !v.is_empty()),
            std::env::var_os("PATH"),
        )
    }

    fn find_in(&self, explicit: Option<OsString>, path: Option<OsString>) -> Result<PathBuf> {
        if let Some(explicit) = explicit {
            let explicit = PathBuf::from(explicit);
            return if is_executable(&explicit) {
                Ok(explicit)
            } else {
                Err(self.missing(format!(
                    "{} is `{}`, which is not an executable file",
                    self.env,
                    explicit.display()
                )))
            };
        }
        let on_path = path.as_ref().and_then(|path| {
            std::env::split_paths(path)
                .map(|dir| dir.join(self.program))
                .find(|candidate| is_executable(candidate))
        });
        if let Some(found) = on_path {
            return Ok(found);
        }
        if let Some(found) = self
            .known
            .iter()
            .map(PathBuf::from)
            .find(|candidate| is_executable(candidate))
        {
            return Ok(found);
        }
        Err(self.missing(format!(
            "no `{}` program found; searched PATH and {}",
            self.program,
            self.known.join(", ")
        )))
    }

    fn missing(&self, detail: String) -> Error {
        Error::test_kit(
            self.action,
            detail,
            format!(
                "install it (Debian/Ubuntu: apt-get install {}), or set {} to the program's path",
                self.package, self.env
            ),
        )
    }
}

pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOWHERE: Tool = Tool {
        program: "sqlx-resilience-no-such-program",
        env: "SQLX_RESILIENCE_NO_SUCH_PROGRAM",
        package: "no-such-package",
        known: &["/nonexistent/sqlx-resilience-no-such-program"],
        action: "start nothing",
    };

    #[test]
    fn a_missing_program_names_its_package_and_override() {
        let message = NOWHERE
            .find_in(None, Some(OsString::new()))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("apt-get install no-such-package"),
            "{message}"
        );
        assert!(
            message.contains("SQLX_RESILIENCE_NO_SUCH_PROGRAM"),
            "{message}"
        );
        assert!(
            message.contains("/nonexistent/sqlx-resilience-no-such-program"),
            "{message}"
        );
    }

    #[test]
    fn an_explicit_path_wins_and_must_be_a_program() {
        let sh = NOWHERE
            .find_in(Some("/bin/sh".into()), Some(OsString::new()))
            .unwrap();
        assert_eq!(sh, PathBuf::from("/bin/sh"));
        let message = NOWHERE
            .find_in(Some("/nonexistent/x".into()), None)
            .unwrap_err()
            .to_string();
        assert!(message.contains("`/nonexistent/x`"), "{message}");
    }

    #[test]
    fn the_path_is_searched() {
        let tool = Tool {
            program: "sh",
            ..NOWHERE
        };
        let found = tool
            .find_in(None, Some("/nonexistent:/bin".into()))
            .unwrap();
        assert_eq!(found, PathBuf::from("/bin/sh"));
    }
}
