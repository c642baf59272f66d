//! Running helper programs with a time limit, as the user PostgreSQL runs as.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use nix::unistd::{Gid, Uid, User};
use sqlx_resilience_runtime::Error;

use crate::Result;
use crate::error::START;

/// What a finished program printed.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

impl Output {
    /// The last lines of stderr and stdout, for error messages.
    pub(crate) fn tail(&self) -> String {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&self.stderr),
            String::from_utf8_lossy(&self.stdout)
        );
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(10)..].join("\n    ")
    }
}

/// Runs `cmd` to completion, killing it when it runs past `limit`. Reports an `io::Error`
/// for a program that cannot be started or ran too long.
pub(crate) fn run_bounded(cmd: &mut Command, limit: Duration) -> std::io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let readers = [
        child.stdout.take().map(|mut s| {
            thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf);
                buf
            })
        }),
        child.stderr.take().map(|mut s| {
            thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf);
                buf
            })
        }),
    ];
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("still running after {limit:?}; it was killed"),
            ));
        }
        thread::sleep(Duration::from_millis(10));
    };
    let [out, err] = readers.map(|r| r.and_then(|h| h.join().ok()).unwrap_or_default());
    Ok(Output {
        status,
        stdout: out,
        stderr: err,
    })
}

/// The unprivileged user PostgreSQL runs as when the test process is root (initdb and
/// postgres refuse to run as root).
#[derive(Debug, Clone)]
pub(crate) struct RunAs {
    pub(crate) name: String,
    pub(crate) uid: Uid,
    pub(crate) gid: Gid,
}

impl RunAs {
    /// `None` when the process is not root: servers then run as the current user.
    pub(crate) fn detect() -> Result<Option<RunAs>> {
        static DETECTED: OnceLock<std::result::Result<Option<RunAs>, String>> = OnceLock::new();
        DETECTED
            .get_or_init(|| {
                if !nix::unistd::geteuid().is_root() {
                    return Ok(None);
                }
                match User::from_name("postgres") {
                    Ok(Some(user)) => Ok(Some(RunAs {
                        name: user.name,
                        uid: user.uid,
                        gid: user.gid,
                    })),
                    Ok(None) => Err(
                        "the process runs as root, and PostgreSQL refuses to run as \
                                     root, but there is no `postgres` user to run it as"
                            .to_owned(),
                    ),
                    Err(e) => Err(format!("cannot look up the `postgres` user: {e}")),
                }
            })
            .clone()
            .map_err(|detail| {
                Error::test_kit(
                    START,
                    detail,
                    "create it (useradd --system --user-group postgres; the PostgreSQL server \
                     package does this), run the tests as a non-root user, or set DATABASE_URL",
                )
            })
    }

    /// Makes `cmd` run as this user.
    pub(crate) fn apply(&self, cmd: &mut Command) {
        cmd.uid(self.uid.as_raw()).gid(self.gid.as_raw());
    }

    /// Gives `path` to this user.
    pub(crate) fn chown(&self, path: &std::path::Path) -> std::io::Result<()> {
        std::os::unix::fs::chown(path, Some(self.uid.as_raw()), Some(self.gid.as_raw()))
    }
}

/// Applies `run_as` (if any) to `cmd` and clears the libpq variables that would change what
/// the server does.
pub(crate) fn server_command(program: &std::path::Path, run_as: Option<&RunAs>) -> Command {
    let mut cmd = Command::new(program);
    for var in [
        "PGDATA",
        "PGPORT",
        "PGHOST",
        "PGOPTIONS",
        "PGUSER",
        "PGPASSWORD",
    ] {
        cmd.env_remove(var);
    }
    if let Some(user) = run_as {
        user.apply(&mut cmd);
    }
    cmd
}
