//! One throwaway cluster: its directory, `initdb`, and starting and stopping its postmaster.
//!
//! Everything here blocks (std::process, polling), so it never depends on a tokio runtime
//! staying alive; callers run it on a thread of its own.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use sqlx_resilience_runtime::Error;

use crate::Result;
use crate::admin::{block_on, connect, literal, random_token};
use crate::binaries::{Binaries, Search};
use crate::cleanup::{
    Watchdog, become_subreaper, is_alive, processes_in, reap_orphans, remove_stale_dirs,
    signal_pid, wait_until, watchdog_failed,
};
use crate::command::{RunAs, run_bounded, server_command};
use crate::error::{SERVER_HINT, START, log_tail, scrub, start_failed};
use crate::options::{ServerOptions, ShutdownMode};
use crate::scratch::{free_port, io_failure, make_dir, write_file};
use crate::tls::TlsFiles;

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
    pub(crate) binaries: Binaries,
    pub(crate) run_as: Option<RunAs>,
    /// Whether `pg_stat_statements` is preloaded (a replica preloads what its primary does).
    pub(crate) preload: bool,
    pub(crate) log: PathBuf,
    /// The certificates of a server that speaks TLS.
    pub(crate) tls: Option<TlsFiles>,
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
        let preload = options
            .preload_pg_stat_statements
            .unwrap_or_else(|| binaries.has_pg_stat_statements());
        let mut cluster = Cluster::prepare(
            binaries,
            run_as,
            random_token(24),
            random_token(24),
            preload,
        )?;
        cluster.initdb()?;
        if options.tls {
            cluster.tls = Some(TlsFiles::make(&cluster.dir, cluster.run_as.as_ref())?);
        }
        cluster.include_testkit_conf()?;
        cluster.configure_and_launch(options)?;
        let create_app = format!(
            "CREATE ROLE app LOGIN PASSWORD {}",
            literal(&cluster.app_password)
        );
        let url = cluster.superuser_url("postgres");
        // The failed statement is quoted in the error: without the password.
        block_on(crate::admin::execute(&url, create_app)).map_err(|e| {
            let detail = scrub(&e, std::slice::from_ref(&cluster.app_password));
            start_failed(detail, &cluster.log, SERVER_HINT)
        })?;
        Ok(cluster)
    }

    /// A cluster with its directory and watchdog, and nothing in it yet. From here on the
    /// watchdog owns the directory: any later failure, or the end of the test process,
    /// removes it.
    pub(crate) fn prepare(
        binaries: Binaries,
        run_as: Option<RunAs>,
        superuser_password: String,
        app_password: String,
        preload: bool,
    ) -> Result<Cluster> {
        let temp = std::env::temp_dir();
        remove_stale_dirs(&temp);
        let dir = make_dir(&temp, run_as.as_ref(), START)?;
        let watchdog = Watchdog::spawn(&dir, &binaries.postgres, run_as.as_ref())
            .map_err(|e| watchdog_failed(&dir, START, e))?;
        Ok(Cluster {
            data: dir.join("data"),
            log: dir.join("log"),
            port: 0,
            superuser_password,
            app_password,
            binaries,
            run_as,
            preload,
            tls: None,
            watchdog: Mutex::new(watchdog),
            dir,
        })
    }

    fn initdb(&self) -> Result<()> {
        let run_as = self.run_as.as_ref();
        let binaries = &self.binaries;
        let pwfile = self.dir.join("pwfile");
        write_file(&pwfile, &self.superuser_password, 0o600, run_as)
            .map_err(|e| io_failure(START, "write the superuser password file", &pwfile, e))?;
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
            return Err(Error::test_kit(
                START,
                format!(
                    "initdb exited with {}:\n    {}\n",
                    output.status,
                    output.tail()
                ),
                format!("fix what initdb reports{}", self.reach_hint()),
            ));
        }
        tracing::debug!(elapsed = ?started.elapsed(), dir = %self.dir.display(), "initdb done");
        Ok(())
    }

    /// A hint that the server user must reach the temp directory, when there is one.
    pub(crate) fn reach_hint(&self) -> String {
        match &self.run_as {
            Some(user) => format!(
                "; check that the `{}` user can write to {} (set TMPDIR to a directory it can reach)",
                user.name,
                self.dir.display()
            ),
            None => String::new(),
        }
    }

    /// Makes postgresql.conf include `testkit.conf`, which holds the test kit's settings.
    fn include_testkit_conf(&self) -> Result<()> {
        let conf = self.data.join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(|e| io_failure(START, "open postgresql.conf", &conf, e))?;
        file.write_all(b"\n# sqlx-resilience-testkit\ninclude 'testkit.conf'\n")
            .map_err(|e| io_failure(START, "write postgresql.conf", &conf, e))
    }

    /// Writes `testkit.conf` with a free port and starts the server, with a fresh port each
    /// time another process takes the chosen one first.
    pub(crate) fn configure_and_launch(&mut self, options: &ServerOptions) -> Result<()> {
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            self.port = free_port(START)?;
            let settings = self.settings(options, self.preload);
            let path = self.data.join("testkit.conf");
            write_file(&path, &settings, 0o600, self.run_as.as_ref())
                .map_err(|e| io_failure(START, "write the server settings", &path, e))?;
            match self.launch(&mut self.lock()) {
                Ok(()) => return Ok(()),
                Err(LaunchError::PortTaken) => last = Some(self.port),
                Err(LaunchError::Failed(e)) => return Err(e),
            }
        }
        Err(start_failed(
            format!(
                "port {} and {} others were taken by other processes as the server started",
                last.unwrap_or(0),
                PORT_ATTEMPTS - 1
            ),
            &self.log,
            "free some loopback ports, or run fewer test processes at once",
        ))
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
        let tls = self
            .tls
            .as_ref()
            .map(TlsFiles::settings)
            .unwrap_or_default();
        for (name, value) in tls.iter().chain(&options.settings) {
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
            // A hot standby reports `standby` once it accepts read-only connections.
            && lines
                .get(7)
                .is_some_and(|l| matches!(l.trim(), "ready" | "standby"))
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
        self.kill9_locked(&mut watchdog)?;
        let result = self.start_locked(&mut watchdog);
        reap_orphans();
        result
    }

    /// SIGKILLs the postmaster and waits until every process of the server is gone; the
    /// server stays down until [`Cluster::start`].
    pub(crate) fn kill9(&self) -> Result<()> {
        let mut watchdog = self.lock();
        self.kill9_locked(&mut watchdog)
    }

    fn kill9_locked(&self, watchdog: &mut Watchdog) -> Result<()> {
        // Backends orphaned by the killed postmaster are handed to this process, which
        // collects them, instead of to init.
        become_subreaper();
        if let Some(pid) = self.postmaster_pid() {
            signal_pid(pid, Signal::SIGKILL);
            let _ = wait_until(Duration::from_secs(10), || !is_alive(pid));
        }
        kill_processes_in(&self.data, "kill the server with SIGKILL")?;
        let _ = watchdog.send("reap");
        reap_orphans();
        Ok(())
    }
}

/// Waits (10 s) for the processes working in `data` to exit, then SIGKILLs those left and
/// waits again; an error naming `action` if some still run.
pub(crate) fn kill_processes_in(data: &Path, action: &str) -> Result<()> {
    if wait_until(Duration::from_secs(10), || processes_in(data).is_empty()) {
        return Ok(());
    }
    for pid in processes_in(data) {
        signal_pid(pid, Signal::SIGKILL);
    }
    if wait_until(Duration::from_secs(10), || processes_in(data).is_empty()) {
        return Ok(());
    }
    Err(Error::test_kit(
        action,
        format!(
            "processes {:?} still run in {}",
            processes_in(data),
            data.display()
        ),
        "they ignore SIGKILL (uninterruptible I/O?); check `ps` for them",
    ))
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
