//! Scratch space for the engines the test kit runs: temp directories owned by the user the
//! servers run as, files written for them, and free loopback ports.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sqlx_resilience_runtime::Error;

use crate::Result;
use crate::admin::random_token;
use crate::cleanup::DIR_PREFIX;
use crate::command::RunAs;

/// Creates `<temp>/sqlx-resilience-pg-<pid>-<random>` (mode 0700, owned by `run_as` when
/// given) and returns its canonical path. `action` names what failed in errors.
pub(crate) fn make_dir(temp: &Path, run_as: Option<&RunAs>, action: &str) -> Result<PathBuf> {
    for _ in 0..10 {
        let dir = temp.join(format!(
            "{DIR_PREFIX}{}-{}",
            std::process::id(),
            random_token(8)
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_failure(action, "create the temp directory", &dir, e)),
        }
        let setup = || -> std::io::Result<PathBuf> {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
            if let Some(user) = run_as {
                user.chown(&dir)?;
            }
            // The watchdog compares processes' working directories with the canonical path.
            dir.canonicalize()
        };
        return setup().map_err(|e| {
            let _ = std::fs::remove_dir_all(&dir);
            io_failure(action, "prepare the temp directory", &dir, e)
        });
    }
    Err(Error::test_kit(
        action,
        format!("cannot find a free directory name in {}", temp.display()),
        "remove old sqlx-resilience-pg-* directories from the temp directory",
    ))
}

/// Writes `contents` to `path` with `mode`, owned by `run_as` when given.
pub(crate) fn write_file(
    path: &Path,
    contents: &str,
    mode: u32,
    run_as: Option<&RunAs>,
) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    if let Some(user) = run_as {
        user.chown(path)?;
    }
    Ok(())
}

/// A loopback port nobody listens on right now. Another process may take it before the
/// engine binds it; callers that can tell retry with a fresh one.
pub(crate) fn free_port(action: &str) -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| {
            Error::test_kit(
                action,
                format!("cannot bind a loopback port: {e}"),
                "check that the loopback interface is up",
            )
        })
}

/// A failed file operation in the temp directory.
pub(crate) fn io_failure(action: &str, what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::test_kit(
        action,
        format!("cannot {what} ({}): {e}", path.display()),
        "check the temp directory (TMPDIR): it must exist, be writable and have free space",
    )
}

/// `value` quoted for `sh`: a single-quoted word.
pub(crate) fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_shell_words() {
        assert_eq!(shell_quote("plain"), "'plain'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
