//! Long-running programs beside PostgreSQL (PgBouncer, etcd, Patroni): one temp directory per
//! engine set, its watchdog, and the programs the watchdog launches.
//!
//! Each program gets a run script `<dir>/<name>.sh` written here (a clean environment, the
//! working directory, `exec` of the program, so the launched PID is the program's) and a log
//! `<dir>/<name>.log`. The watchdog records `PID SIGNAL` in `<dir>/<name>.launched`, and when
//! the owner is dropped or the test process ends in any way it stops every program with its
//! signal, every postmaster in the directory, and removes the directory.
//!
//! Everything here blocks; callers run it on a thread of their own.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use sqlx_resilience_runtime::Error;

use crate::Result;
use crate::cleanup::{
    Watchdog, is_alive, reap_orphans, remove_stale_dirs, signal_pid, wait_until, watchdog_failed,
};
use crate::command::RunAs;
use crate::error::{SERVER_HINT, scrub};
use crate::scratch::{io_failure, make_dir, make_subdir, shell_quote, write_file};

/// How long the watchdog may take to launch a program.
const LAUNCH_LIMIT: Duration = Duration::from_secs(10);

/// How long a killed program may take to be gone.
const KILL_LIMIT: Duration = Duration::from_secs(10);

/// One program to run: what, where, and how to stop it at the end.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    /// Names its files: lowercase letters, digits, `-` and `_` only.
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    pub(crate) args: Vec<String>,
    /// The working directory: inside the temp directory, so cleanup finds the process.
    pub(crate) cwd: PathBuf,
    /// The signal that stops it when everything is torn down (`TERM`, `KILL`).
    pub(crate) stop_signal: &'static str,
}

/// A temp directory, its watchdog, and the programs running in it. Dropping it stops them all
/// and removes the directory.
pub(crate) struct Services {
    pub(crate) dir: PathBuf,
    pub(crate) run_as: Option<RunAs>,
    /// What the owner does, for errors ("start PgBouncer").
    action: &'static str,
    /// Texts never shown in errors (passwords that may appear in logs).
    secrets: Vec<String>,
    /// Also serialises launches and kills.
    watchdog: Mutex<Watchdog>,
}

impl Services {
    /// A fresh temp directory with its watchdog. Removes stale directories of earlier runs
    /// first.
    pub(crate) fn create(
        action: &'static str,
        run_as: Option<RunAs>,
        secrets: Vec<String>,
    ) -> Result<Services> {
        let temp = std::env::temp_dir();
        remove_stale_dirs(&temp);
        let dir = make_dir(&temp, run_as.as_ref(), action)?;
        // The `postgres` argument is used only by clusters; nothing here launches one.
        let watchdog = Watchdog::spawn(&dir, Path::new("postgres"), run_as.as_ref())
            .map_err(|e| watchdog_failed(&dir, action, e))?;
        Ok(Services {
            dir,
            run_as,
            action,
            secrets,
            watchdog: Mutex::new(watchdog),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Watchdog> {
        self.watchdog.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates `<dir>/<name>` for the server user and returns its path.
    pub(crate) fn subdir(&self, name: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        make_subdir(&path, self.run_as.as_ref())
            .map_err(|e| io_failure(self.action, "create a directory", &path, e))?;
        Ok(path)
    }

    /// Writes a file readable only by the server user.
    pub(crate) fn write(&self, path: &Path, contents: &str) -> Result<()> {
        write_file(path, contents, 0o600, self.run_as.as_ref())
            .map_err(|e| io_failure(self.action, "write a file", path, e))
    }

    /// Launches `program` through the watchdog and returns its PID. It runs with a clean
    /// environment (`PATH`, `HOME` = its working directory, `LC_ALL=C.UTF-8`), so variables
    /// such as `PGPASSWORD`, `PATRONI_*` or `ETCD_*` of the test process cannot change it.
    pub(crate) fn launch(&self, program: &Program) -> Result<u32> {
        debug_assert!(
            program
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        );
        let cwd = program.cwd.to_string_lossy();
        let mut script = format!(
            "# written by sqlx-resilience-testkit\n\
             cd {cwd} || exit 1\n\
             ulimit -n \"$(ulimit -Hn)\" 2>/dev/null\n\
             exec /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
             HOME={cwd} LC_ALL=C.UTF-8 {}",
            shell_quote(&program.path.to_string_lossy()),
            cwd = shell_quote(&cwd),
        );
        for arg in &program.args {
            script.push(' ');
            script.push_str(&shell_quote(arg));
        }
        script.push('\n');
        let run = self.dir.join(format!("{}.sh", program.name));
        self.write(&run, &script)?;
        let launched = self.dir.join(format!("{}.launched", program.name));
        let _ = std::fs::remove_file(&launched);
        let mut watchdog = self.lock();
        watchdog
            .send(&format!("run {} {}", program.name, program.stop_signal))
            .map_err(|e| {
                Error::test_kit(
                    self.action,
                    format!("cannot reach the watchdog of {}: {e}", self.dir.display()),
                    SERVER_HINT,
                )
            })?;
        let started = Instant::now();
        loop {
            if let Some(pid) = read_pid(&launched) {
                tracing::debug!(name = %program.name, pid, "launched");
                return Ok(pid);
            }
            if started.elapsed() > LAUNCH_LIMIT {
                return Err(Error::test_kit(
                    self.action,
                    format!(
                        "the watchdog did not launch {} within {LAUNCH_LIMIT:?}",
                        program.name
                    ),
                    SERVER_HINT,
                ));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The PID of the program `name`, while it runs.
    pub(crate) fn pid(&self, name: &str) -> Option<u32> {
        read_pid(&self.dir.join(format!("{name}.launched"))).filter(|pid| is_alive(*pid))
    }

    /// Kills the program `name` with SIGKILL and waits until it is gone. Nothing to do when it
    /// is not running.
    pub(crate) fn kill9(&self, name: &str, action: &str) -> Result<()> {
        let mut watchdog = self.lock();
        if let Some(pid) = self.pid(name) {
            signal_pid(pid, Signal::SIGKILL);
            if !wait_until(KILL_LIMIT, || !is_alive(pid)) {
                return Err(Error::test_kit(
                    action,
                    format!("{name} (pid {pid}) still runs {KILL_LIMIT:?} after SIGKILL"),
                    "it ignores SIGKILL (uninterruptible I/O?); check `ps` for it",
                ));
            }
        }
        let _ = watchdog.send("reap");
        Ok(())
    }

    /// Has the watchdog collect programs that have exited.
    pub(crate) fn reap(&self) {
        let _ = self.lock().send("reap");
    }

    /// The log of the program `name`.
    pub(crate) fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// The length of the log of `name` now, to read what is written after.
    pub(crate) fn log_len(&self, name: &str) -> u64 {
        std::fs::metadata(self.log(name))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// What the log of `name` holds from byte `from` on.
    pub(crate) fn log_since(&self, name: &str, from: u64) -> String {
        let text = std::fs::read(self.log(name)).unwrap_or_default();
        let start = usize::try_from(from).unwrap_or(0).min(text.len());
        self.scrub(&String::from_utf8_lossy(&text[start..]))
    }

    /// The last lines of the log of `name`, formatted to follow a detail, secrets removed.
    /// Patroni's heartbeat line (`no action. I am ...`, once per loop) is left out: it would
    /// fill the tail and hide what happened.
    pub(crate) fn log_tail(&self, name: &str) -> String {
        self.scrub(&crate::error::named_log_tail(
            &self.log(name),
            &format!("the {name} log"),
            &["INFO: no action. "],
        ))
    }

    /// `text` with every secret replaced by `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        scrub(text, &self.secrets)
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        f.debug_struct("Services")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        let started = Instant::now();
        self.lock().finish();
        reap_orphans();
        tracing::debug!(elapsed = ?started.elapsed(), dir = %self.dir.display(), "services removed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A launched program gets a clean environment, and stops with the directory.
    #[test]
    fn launched_programs_stop_and_their_directory_goes_when_dropped() {
        // As root the programs run as `postgres`; this check is about the mechanism, so it
        // runs as the current user.
        let services = Services::create("test services", None, vec!["hidden".into()]).unwrap();
        let dir = services.dir.clone();
        let cwd = dir.join("work");
        std::fs::create_dir(&cwd).unwrap();
        let pid = services
            .launch(&Program {
                name: "sleeper".into(),
                path: "/bin/sh".into(),
                args: vec![
                    "-c".into(),
                    "echo \"home=$HOME pg=${PGPASSWORD-unset} hidden\"; exec sleep 60".into(),
                ],
                cwd: cwd.clone(),
                stop_signal: "TERM",
            })
            .unwrap();
        assert_eq!(services.pid("sleeper"), Some(pid));
        let logged = wait_until(Duration::from_secs(10), || {
            services.log_since("sleeper", 0).contains("home=")
        });
        assert!(logged, "the program wrote nothing to its log");
        let log = services.log_since("sleeper", 0);
        assert!(
            log.contains(&format!("home={} pg=unset ***", cwd.display())),
            "{log}"
        );
        drop(services);
        assert!(!is_alive(pid), "the program outlived its services");
        assert!(!dir.exists(), "the directory outlived its services");
    }

    #[test]
    fn kill9_ends_a_program_and_a_relaunch_gets_a_new_pid() {
        let services = Services::create("test services", None, Vec::new()).unwrap();
        let cwd = services.dir.join("work");
        std::fs::create_dir(&cwd).unwrap();
        let program = Program {
            name: "sleeper".into(),
            path: "/bin/sleep".into(),
            args: vec!["60".into()],
            cwd,
            stop_signal: "TERM",
        };
        let first = services.launch(&program).unwrap();
        services.kill9("sleeper", "test").unwrap();
        assert!(!is_alive(first));
        assert_eq!(services.pid("sleeper"), None);
        let second = services.launch(&program).unwrap();
        assert_ne!(first, second);
        assert_eq!(services.pid("sleeper"), Some(second));
    }
}
