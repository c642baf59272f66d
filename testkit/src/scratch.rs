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

/// Creates the directory `path` (mode 0700, owned by `run_as` when given).
pub(crate) fn make_subdir(path: &Path, run_as: Option<&RunAs>) -> std::io::Result<()> {
    match std::fs::create_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    if let Some(user) = run_as {
        user.chown(path)?;
    }
    Ok(())
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

/// A loopback port nobody listens on right now, below the kernel's ephemeral range.
///
/// Outgoing connections take their local ports from the ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`), so a port handed out by `bind(0)` can be taken
/// by some client's connection in the seconds before the engine binds it; with many tests
/// connecting at once that happens. Ports below the range are taken only by other listeners.
/// Another process may still take the port first; callers that can tell retry with a fresh one.
pub(crate) fn free_port(action: &str) -> Result<u16> {
    use rand::RngExt;
    let low = ephemeral_low().unwrap_or(32768);
    if low > 12_000 {
        let mut rng = rand::rng();
        for _ in 0..50 {
            let port = rng.random_range(10_000..low);
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
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

/// The first port of the kernel's ephemeral range.
fn ephemeral_low() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
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
    fn free_ports_can_be_bound_and_avoid_the_ephemeral_range() {
        let port = free_port("test").unwrap();
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        if let Some(low) = ephemeral_low().filter(|low| *low > 12_000) {
            assert!(port < low, "{port} is in the ephemeral range from {low}");
        }
    }

    #[test]
    fn quotes_shell_words() {
        assert_eq!(shell_quote("plain"), "'plain'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
