//! One throwaway cluster: its directory, `initdb`, and starting and stopping its postmaster.
//!
//! Everything here blocks (std::process, polling), so it never depends on a tokio runtime
//! staying alive; callers run it on a thread of its own.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sqlx_resilience_runtime::Error;

use crate::Result;
use crate::admin::{block_on, connect, literal, random_token};
use crate::binaries::{Binaries, Search};
use crate::cleanup::{
    DIR_PREFIX, Watchdog, become_subreaper, is_alive, processes_in, reap_orphans, remove_stale_dirs,
};
use crate::command::{RunAs, run_bounded, server_command};
use crate::error::{SERVER_HINT, START, log_tail, start_failed};
use crate::options::{ServerOptions, ShutdownMode};

/// How long a postmaster may take to accept connections (crash recovery included).
const READY_LIMIT: Duration = Duration::from_secs(60);

/// How long a shutdown may take before it is reported as stuck.
const STOP_LIMIT: Duration = Duration::from_secs(60);

/// How many fresh ports to try when another process takes the chosen one first.
const PORT_ATTEMPTS: usize = 5;

/// A running throwaway cluster. Dropping it stops the server and removes its directory.
pub(crate) struct Cluster {
    pub(crate) dir: PathBuf,
    pub(crate) data: PathBuf,
    pub(crate) port: u16,
    pub(crate) superuser_password: String,
    pub(crate) app_password: String,
    log: PathBuf,
    /// Also serialises the controls: one start, stop or restart at a time.
    watchdog: Mutex<Watchdog>,
}

/// Why a launch failed: a port taken by someone else is worth another try.
enum LaunchError {
    PortTaken,
    Failed(Error),
}

impl Cluster {
    /// Creates, initialises and starts a cluster. Blocks for a second or two.
    pub(crate) fn create(options: &ServerOptions) -> Result<Cluster> {
        let binaries = Search::from_env(options.bindir.clone()).find()?;
        let run_as = RunAs::detect()?;
        options.check()?;
        tracing::debug!(
            bindir = %binaries.bindir.display(),
            major = binaries.major,
            run_as = run_as.as_ref().map(|u| u.name.as_str()),
            "starting a throwaway PostgreSQL"
        );
        let temp = std::env::temp_dir();
        remove_stale_dirs(&temp);
        let dir = make_dir(&temp, run_as.as_ref())?;
        // From here on the watchdog owns the directory: any failure below, or the end of the
        // test process, removes it.
        let watchdog = Watchdog::spawn(&dir, &binaries.postgres, run_as.as_ref()).map_err(|e| {
            let _ = std::fs::remove_dir_all(&dir);
            Error::test_kit(
                START,
                format!("cannot run /bin/sh for the cluster's watchdog: {e}"),
                "the test kit needs a POSIX shell at /bin/sh",
            )
        })?;
        let cluster = Cluster {
            data: dir.join("data"),
            log: dir.join("log"),
            port: 0,
            superuser_password: random_token(24),
            app_password: random_token(24),
            watchdog: Mutex::new(watchdog),
            dir,
        };
        cluster.initdb(&binaries, run_as.as_ref())?;
        cluster.finish_setup(&binaries, options, run_as.as_ref())
    }

    fn initdb(&self, binaries: &Binaries, run_as: Option<&RunAs>) -> Result<()> {
        let pwfile = self.dir.join("pwfile");
        write_file(&pwfile, &self.superuser_password, 0o600, run_as)
            .map_err(|e| io_failure("write the superuser password file", &pwfile, e))?;
        // SCRAM needs password_encryption = scram-sha-256, the default from PostgreSQL 14 on.
        let host_auth = if binaries.major >= 14 || binaries.major == 0 {
            "scram-sha-256"
        } else {
            "md5"
        };
        let mut cmd = server_command(&binaries.initdb, run_as);
        cmd.current_dir(&self.dir)
            .arg("-D")
            .arg(&self.data)
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C", "-N"])
            .arg("--auth-local=trust")
            .arg(format!("--auth-host={host_auth}"))
            .arg(format!("--pwfile={}", pwfile.display()));
        let started = Instant::now();
        let output = run_bounded(&mut cmd, Duration::from_secs(120));
        let _ = std::fs::remove_file(&pwfile);
        let output = output.map_err(|e| {
            Error::test_kit(
                START,
                format!("cannot run {}: {e}", binaries.initdb.display()),
                SERVER_HINT,
            )
        })?;
        if !output.status.success() {
            let reach = match run_as {
                Some(user) => format!(
                    "; check that the `{}` user can write to {} (set TMPDIR to a directory it can reach)",
                    user.name,
                    self.dir.display()
                ),
                None => String::new(),
            };
            return Err(Error::test_kit(
                START,
                format!(
                    "initdb exited with {}:\n    {}\n",
                    output.status,
                    output.tail()
                ),
                format!("fix what initdb reports{reach}"),
            ));
        }
        tracing::debug!(elapsed = ?started.elapsed(), dir = %self.dir.display(), "initdb done");
        Ok(())
    }

    fn finish_setup(
        mut self,
        binaries: &Binaries,
        options: &ServerOptions,
        run_as: Option<&RunAs>,
    ) -> Result<Cluster> {
        let conf = self.data.join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(|e| io_failure("open postgresql.conf", &conf, e))?;
        file.write_all(b"\n# sqlx-resilience-testkit\ninclude 'testkit.conf'\n")
            .map_err(|e| io_failure("write postgresql.conf", &conf, e))?;
        let preload = options
            .preload_pg_stat_statements
            .unwrap_or_else(|| binaries.has_pg_stat_statements());
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            self.port = free_port()?;
            let settings = self.settings(options, preload);
            let path = self.data.join("testkit.conf");
            write_file(&path, &settings, 0o600, run_as)
                .map_err(|e| io_failure("write the server settings", &path, e))?;
            match self.launch(&mut self.lock()) {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(LaunchError::PortTaken) => last = Some(self.port),
                Err(LaunchError::Failed(e)) => return Err(e),
            }
        }
        if let Some(port) = last {
            return Err(start_failed(
                format!(
                    "port {port} and {} others were taken by other processes as the server started",
                    PORT_ATTEMPTS - 1
                ),
                &self.log,
                "free some loopback ports, or run fewer test processes at once",
            ));
        }
        let create_app = format!(
            "CREATE ROLE app LOGIN PASSWORD {}",
            literal(&self.app_password)
        );
        let url = self.superuser_url("postgres");
        block_on(crate::admin::execute(&url, create_app))
            .map_err(|e| start_failed(e, &self.log, SERVER_HINT))?;
        Ok(self)
    }

    fn settings(&self, options: &ServerOptions, preload: bool) -> String {
        let mut lines = vec![
            "listen_addresses = '127.0.0.1'".to_owned(),
            format!("port = {}", self.port),
            // A socket path longer than the kernel's limit (about 100 bytes) fails the start.
            format!(
                "unix_socket_directories = {}",
                literal(if self.dir.as_os_str().len() < 80 {
                    self.dir.to_str().unwrap_or("")
                } else {
                    ""
                })
            ),
            "fsync = off".to_owned(),
            "synchronous_commit = off".to_owned(),
            "full_page_writes = off".to_owned(),
            "password_encryption = 'scram-sha-256'".to_owned(),
            format!("max_connections = {}", options.max_connections),
            format!(
                "superuser_reserved_connections = {}",
                options.superuser_reserved_connections
            ),
        ];
        if preload {
            lines.push("shared_preload_libraries = 'pg_stat_statements'".to_owned());
        }
        for (name, value) in &options.settings {
            lines.push(format!("{name} = {}", literal(value)));
        }
        lines.join("\n") + "\n"
    }

    /// The superuser's URL for `database`, over TCP.
    pub(crate) fn superuser_url(&self, database: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{database}?sslmode=disable",
            self.superuser_password, self.port
        )
    }

    fn lock(&self) -> MutexGuard<'_, Watchdog> {
        self.watchdog.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The PID of the running postmaster, if one is running.
    pub(crate) fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        let pid: u32 = text.lines().next()?.trim().parse().ok()?;
        is_alive(pid).then_some(pid)
    }

    /// Has the watchdog launch a postmaster and waits until it accepts connections.
    fn launch(&self, watchdog: &mut Watchdog) -> std::result::Result<(), LaunchError> {
        let failed =
            |detail: String| LaunchError::Failed(start_failed(detail, &self.log, SERVER_HINT));
        let log_before = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let launched_file = self.dir.join("launched");
        let _ = std::fs::remove_file(&launched_file);
        watchdog
            .send("start")
            .map_err(|e| failed(format!("cannot reach the cluster's watchdog: {e}")))?;
        let started = Instant::now();
        let launched = loop {
            if let Some(pid) = std::fs::read_to_string(&launched_file)
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
            {
                break pid;
            }
            if started.elapsed() > Duration::from_secs(10) {
                return Err(failed(
                    "the watchdog did not launch postgres within 10s".to_owned(),
                ));
            }
            thread::sleep(Duration::from_millis(5));
        };
        loop {
            if self.is_ready(launched) {
                break;
            }
            if !is_alive(launched) {
                let _ = watchdog.send("reap");
                if self
                    .new_log_text(log_before)
                    .contains("Address already in use")
                {
                    return Err(LaunchError::PortTaken);
                }
                return Err(failed(format!(
                    "postgres (pid {launched}) exited while starting"
                )));
            }
            if started.elapsed() > READY_LIMIT {
                return Err(failed(format!(
                    "postgres (pid {launched}) did not become ready within {READY_LIMIT:?}"
                )));
            }
            thread::sleep(Duration::from_millis(10));
        }
        // Ready as the postmaster sees it; wait until a client gets in too.
        let url = self.superuser_url("postgres");
        let result = block_on(async {
            loop {
                match connect(&url).await {
                    Ok(conn) => {
                        use sqlx::Connection;
                        let _ = conn.close().await;
                        return Ok(());
                    }
                    Err(e) if started.elapsed() > READY_LIMIT => return Err(e),
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        });
        result.map_err(failed)?;
        tracing::debug!(elapsed = ?started.elapsed(), port = self.port, "postgres accepts connections");
        Ok(())
    }

    fn is_ready(&self, launched: u32) -> bool {
        let Ok(text) = std::fs::read_to_string(self.data.join("postmaster.pid")) else {
            return false;
        };
        let lines: Vec<&str> = text.lines().collect();
        lines
            .first()
            .is_some_and(|l| l.trim() == launched.to_string())
            && lines.get(7).is_some_and(|l| l.trim() == "ready")
    }

    fn new_log_text(&self, from: u64) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let start = usize::try_from(from).unwrap_or(0).min(text.len());
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    /// Starts the server again after [`Cluster::stop`]. Does nothing if it is running.
    pub(crate) fn start(&self) -> Result<()> {
        let mut watchdog = self.lock();
        self.start_locked(&mut watchdog)
    }

    fn start_locked(&self, watchdog: &mut Watchdog) -> Result<()> {
        if self.postmaster_pid().is_some() {
            return Ok(());
        }
        match self.launch(watchdog) {
            Ok(()) => Ok(()),
            Err(LaunchError::Failed(e)) => Err(e),
            Err(LaunchError::PortTaken) => Err(Error::test_kit(
                "start the server again",
                format!(
                    "another process took port {} while the server was down{}",
                    self.port,
                    log_tail(&self.log)
                ),
                "keep the server down for less time, or use fewer loopback ports elsewhere",
            )),
        }
    }

    /// Shuts the server down in `mode` and waits until the postmaster has exited.
    pub(crate) fn stop(&self, mode: ShutdownMode) -> Result<()> {
        let mut watchdog = self.lock();
        self.stop_locked(&mut watchdog, mode)
    }

    fn stop_locked(&self, watchdog: &mut Watchdog, mode: ShutdownMode) -> Result<()> {
        let Some(pid) = self.postmaster_pid() else {
            return Ok(());
        };
        let signal = match mode {
            ShutdownMode::Smart => Signal::SIGTERM,
            ShutdownMode::Fast => Signal::SIGINT,
            ShutdownMode::Immediate => Signal::SIGQUIT,
        };
        signal_pid(pid, signal);
        if !wait_until(STOP_LIMIT, || !is_alive(pid)) {
            return Err(Error::test_kit(
                format!("stop the server ({mode:?})"),
                format!(
                    "the postmaster (pid {pid}) is still running after {STOP_LIMIT:?}{}",
                    log_tail(&self.log)
                ),
                "a smart shutdown waits for every client to disconnect: close pools first, or use ShutdownMode::Fast",
            ));
        }
        let _ = watchdog.send("reap");
        Ok(())
    }

    /// Stops the server in `mode` and starts it again.
    pub(crate) fn restart(&self, mode: ShutdownMode) -> Result<()> {
        let mut watchdog = self.lock();
        self.stop_locked(&mut watchdog, mode)?;
        self.start_locked(&mut watchdog)
    }

    /// SIGKILLs the postmaster, waits for its backends to notice and exit (killing stragglers),
    /// and starts the server again: it runs crash recovery.
    pub(crate) fn kill9_and_start(&self) -> Result<()> {
        let mut watchdog = self.lock();
        // Backends orphaned by the killed postmaster are handed to this process, which
        // collects them, instead of to init.
        become_subreaper();
        if let Some(pid) = self.postmaster_pid() {
            signal_pid(pid, Signal::SIGKILL);
            let _ = wait_until(Duration::from_secs(10), || !is_alive(pid));
        }
        let gone = wait_until(Duration::from_secs(10), || {
            processes_in(&self.data).is_empty()
        });
        if !gone {
            for pid in processes_in(&self.data) {
                signal_pid(pid, Signal::SIGKILL);
            }
            if !wait_until(Duration::from_secs(10), || {
                processes_in(&self.data).is_empty()
            }) {
                return Err(Error::test_kit(
                    "kill the server with SIGKILL",
                    format!(
                        "processes {:?} still run in {}",
                        processes_in(&self.data),
                        self.data.display()
                    ),
                    "they ignore SIGKILL (uninterruptible I/O?); check `ps` for them",
                ));
            }
        }
        reap_orphans();
        let result = self.start_locked(&mut watchdog);
        reap_orphans();
        result
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the passwords.
        f.debug_struct("Cluster")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let started = Instant::now();
        self.lock().finish();
        reap_orphans();
        tracing::debug!(elapsed = ?started.elapsed(), dir = %self.dir.display(), "cluster removed");
    }
}

fn signal_pid(pid: u32, signal: Signal) {
    if let Ok(raw) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(raw), signal);
    }
}

/// Polls `done` every few milliseconds until it holds or `limit` passes; returns whether it held.
pub(crate) fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Creates `<temp>/sqlx-resilience-pg-<pid>-<random>`, owned by `run_as` when given.
fn make_dir(temp: &Path, run_as: Option<&RunAs>) -> Result<PathBuf> {
    for _ in 0..10 {
        let dir = temp.join(format!(
            "{DIR_PREFIX}{}-{}",
            std::process::id(),
            random_token(8)
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_failure("create the cluster directory", &dir, e)),
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
            io_failure("prepare the cluster directory", &dir, e)
        });
    }
    Err(Error::test_kit(
        START,
        format!("cannot find a free directory name in {}", temp.display()),
        "remove old sqlx-resilience-pg-* directories from the temp directory",
    ))
}

fn write_file(
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

/// A loopback port nobody listens on right now.
fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| {
            Error::test_kit(
                START,
                format!("cannot bind a loopback port: {e}"),
                "check that the loopback interface is up",
            )
        })
}

fn io_failure(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::test_kit(
        START,
        format!("cannot {what} ({}): {e}", path.display()),
        "check the temp directory (TMPDIR): it must exist, be writable and have free space",
    )
}
