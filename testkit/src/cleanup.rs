//! Nothing outlives the test process: the watchdog, stale-directory cleanup and process checks.
//!
//! Every temp directory the test kit runs engines in (a throwaway cluster, a PgBouncer, a
//! Patroni cluster with its etcd) has a watchdog: a small `sh` script whose standard input is
//! a pipe held only by the test process (Rust opens pipes close-on-exec, so no other child
//! inherits it). The watchdog launches the engines (so it is their parent and reaps them), and
//! blocks reading commands. When the pipe reaches end-of-file — the owner was dropped, or the
//! test process ended in any way, SIGKILL included — it stops what it launched, shuts down
//! every postmaster of the directory (SIGQUIT, then SIGKILL), kills any process still working
//! inside the directory, and removes it. The same script, run with no input, removes stale
//! directories of earlier runs.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sqlx_resilience_runtime::Error;

use crate::command::{RunAs, run_bounded};

/// Throwaway cluster directories are `<temp dir>/sqlx-resilience-pg-<owner pid>-<random>`.
pub(crate) const DIR_PREFIX: &str = "sqlx-resilience-pg-";

/// How long dropping a cluster waits for its watchdog to finish.
const FINISH_LIMIT: Duration = Duration::from_secs(30);

/// The watchdog. `$1` is the directory, `$2` the `postgres` binary of a throwaway cluster
/// (unused by other engines). Commands on standard input:
///
/// - `start` launches the postmaster of `$1/data` (a throwaway cluster);
/// - `run NAME SIGNAL` launches the service `NAME` from its script `$1/NAME.sh`, logging to
///   `$1/NAME.log`, and records `PID SIGNAL` in `$1/NAME.launched`; at the end it is stopped
///   with `SIGNAL`;
/// - `reap` collects launched processes that have exited.
///
/// End-of-file stops everything and removes the directory: services first (a supervisor such
/// as Patroni would start again the postgres it runs), then every postmaster of a data
/// directory inside (SIGQUIT, which ends its children and frees its shared memory), then any
/// process still working inside the directory (SIGKILL). Every wait is bounded. Processes are
/// signalled only when their working directory is inside the directory, so a PID reused by an
/// unrelated process is left alone.
const SCRIPT: &str = r#"
dir=$1
postgres=$2
data=$dir/data
pm=
launched=
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    [ -r /proc/self/stat ] || return 0
    read -r st < "/proc/$1/stat" || return 1
    case $st in *") Z "*|*") X "*) return 1 ;; esac
}
cwd_of() { readlink "/proc/$1/cwd" 2>/dev/null; }
in_dir() { case $(cwd_of "$1") in "$dir"|"$dir"/*) return 0 ;; esac; return 1; }
pause() { sleep 0.05 2>/dev/null || sleep 1; }
reap() {
    if [ -n "$pm" ] && ! alive "$pm"; then wait "$pm" 2>/dev/null; pm=; fi
    keep=
    for p in $launched; do
        if alive "$p"; then keep="$keep $p"; else wait "$p" 2>/dev/null; fi
    done
    launched=$keep
}
wait_gone() {
    rounds=$1
    shift
    n=0
    while [ $n -lt "$rounds" ]; do
        left=
        for p in "$@"; do alive "$p" && left=1; done
        [ -z "$left" ] && return 0
        pause
        n=$((n + 1))
    done
    return 1
}
stop_all() {
    targets=
    for f in "$dir"/*.launched; do
        [ -r "$f" ] || continue
        read -r p sig < "$f" || continue
        case $p in ''|*[!0-9]*) continue ;; esac
        case $sig in ''|*[!A-Z0-9]*) sig=KILL ;; esac
        if alive "$p" && in_dir "$p"; then kill "-$sig" "$p" 2>/dev/null; targets="$targets $p"; fi
    done
    wait_gone 100 $targets
    for p in $targets; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
    targets=$pm
    for f in $(find "$dir" -maxdepth 3 -name postmaster.pid 2>/dev/null); do
        read -r p < "$f" || continue
        case $p in ''|*[!0-9]*) continue ;; esac
        if [ "$p" != "$pm" ] && [ "$(cwd_of "$p")" = "${f%/postmaster.pid}" ]; then targets="$targets $p"; fi
    done
    for p in $targets; do alive "$p" && kill -QUIT "$p" 2>/dev/null; done
    wait_gone 200 $targets
    for p in $targets; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
    n=0
    while [ $n -lt 100 ]; do
        left=$(find /proc -mindepth 2 -maxdepth 2 -name cwd \( -lname "$dir" -o -lname "$dir/*" \) 2>/dev/null)
        [ -z "$left" ] && break
        for c in $left; do p=${c#/proc/}; kill -KILL "${p%/cwd}" 2>/dev/null; done
        pause
        n=$((n + 1))
    done
    reap
}
while read -r cmd name sig; do
    case $cmd in
        start)
            reap
            "$postgres" -D "$data" >>"$dir/log" 2>&1 </dev/null &
            pm=$!
            echo "$pm" > "$dir/launched.tmp" && mv "$dir/launched.tmp" "$dir/launched"
            ;;
        run)
            reap
            case $name in ''|*[!a-z0-9_-]*) continue ;; esac
            sh "$dir/$name.sh" >>"$dir/$name.log" 2>&1 </dev/null &
            p=$!
            launched="$launched $p"
            echo "$p $sig" > "$dir/$name.tmp" && mv "$dir/$name.tmp" "$dir/$name.launched"
            ;;
        reap) reap ;;
    esac
done
stop_all
rm -rf "$dir"
"#;

/// The watchdog of one temp directory. Dropping it stops everything it launched and removes
/// the directory.
#[derive(Debug)]
pub(crate) struct Watchdog {
    child: Child,
    stdin: Option<ChildStdin>,
    dir: PathBuf,
}

impl Watchdog {
    /// Starts the watchdog of `dir` (which must exist).
    pub(crate) fn spawn(
        dir: &Path,
        postgres: &Path,
        run_as: Option<&RunAs>,
    ) -> std::io::Result<Watchdog> {
        let mut cmd = script_command(dir, postgres);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: Ctrl-C in a terminal ends the test process, which the
            // watchdog then notices, instead of ending the watchdog first.
            .process_group(0);
        if let Some(user) = run_as {
            user.apply(&mut cmd);
        }
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take();
        Ok(Watchdog {
            child,
            stdin,
            dir: dir.to_path_buf(),
        })
    }

    /// Sends one command (`start`, `run NAME SIGNAL` or `reap`).
    pub(crate) fn send(&mut self, command: &str) -> std::io::Result<()> {
        let stdin = self.stdin.as_mut().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the watchdog has finished")
        })?;
        stdin.write_all(format!("{command}\n").as_bytes())?;
        stdin.flush()
    }

    /// Stops the cluster, removes its directory and waits (bounded) for all of it to be done.
    pub(crate) fn finish(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + FINISH_LIMIT;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    tracing::warn!(
                        dir = %self.dir.display(),
                        "the cluster's watchdog did not finish within {FINISH_LIMIT:?}; \
                         its directory may be left behind"
                    );
                    return;
                }
            }
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.finish();
    }
}

fn script_command(dir: &Path, postgres: &Path) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(SCRIPT)
        .arg("sqlx-resilience-watchdog")
        .arg(dir)
        .arg(postgres)
        .current_dir(std::env::temp_dir());
    cmd
}

/// Removes the temp directories of test processes that are gone (killed before their watchdog
/// could run, or whose watchdog was killed too), stopping any engine still running in them.
/// Returns how many were removed. Directories it may not touch are left alone.
pub(crate) fn remove_stale_dirs(temp: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return 0;
    };
    let own = std::process::id();
    let mut removed = 0;
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(owner_pid) else {
            continue;
        };
        if owner == own || is_alive(owner) {
            continue;
        }
        let dir = entry.path();
        // Without input the script goes straight to stopping and removing.
        let result = run_bounded(
            script_command(&dir, Path::new("postgres")).stdin(Stdio::null()),
            Duration::from_secs(60),
        );
        if !dir.exists() {
            removed += 1;
            tracing::debug!(dir = %dir.display(), owner, "removed a stale test cluster");
        } else {
            tracing::debug!(dir = %dir.display(), ?result, "cannot remove a stale test cluster");
        }
    }
    removed
}

/// The owner PID in a cluster directory name, if `name` is one.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(DIR_PREFIX)?;
    let (pid, random) = rest.split_once('-')?;
    if random.is_empty() {
        return None;
    }
    pid.parse().ok()
}

/// Whether a process exists and has not exited. A zombie (exited, not yet collected by its
/// parent) counts as gone.
pub(crate) fn is_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    match kill(Pid::from_raw(raw), None) {
        Ok(()) => !is_zombie(pid),
        Err(Errno::ESRCH) => false,
        Err(_) => true,
    }
}

fn is_zombie(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => matches!(stat_fields(&stat), Some(("Z" | "X", _))),
        // No /proc (not Linux): trust kill(2). A vanished entry means the process is gone.
        Err(_) => Path::new("/proc/self/stat").exists(),
    }
}

/// The state and parent PID from a `/proc/<pid>/stat` line.
fn stat_fields(stat: &str) -> Option<(&str, u32)> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Live processes whose working directory is `data` (a postmaster and its children all work
/// in the data directory).
pub(crate) fn processes_in(data: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == data)
                && is_alive(*pid)
        })
        .collect()
}

/// Collects exited `postgres` processes that were handed to this process (it is their
/// subreaper after a postmaster was killed), so none lingers as a zombie.
pub(crate) fn reap_orphans() {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    let own = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for pid in entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ours = stat.contains("(postgres)")
            && matches!(stat_fields(&stat), Some(("Z", ppid)) if ppid == own);
        if ours {
            let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        }
    }
}

/// Makes this process the subreaper of its descendants, so backends orphaned by a killed
/// postmaster are handed to it (and collected by [`reap_orphans`]) rather than to init.
pub(crate) fn become_subreaper() {
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::debug!("cannot become a child subreaper: {e}");
    }
}

/// Collects orphaned `postgres` processes handed to this process every 100 ms while it lives.
///
/// Patroni starts each postmaster through a helper that exits at once, so the postmaster is an
/// orphan from the start; with this process as subreaper it becomes a child of the test
/// process. When Patroni stops it, Patroni waits until the PID is gone, which a zombie never
/// is: without prompt collection Patroni would wait forever. Init, when it is the one that
/// adopts, collects them itself; a container's PID 1 may not.
#[derive(Debug)]
pub(crate) struct Reaper {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Reaper {
    /// Makes this process the subreaper of its descendants and starts collecting.
    pub(crate) fn start() -> Reaper {
        use std::sync::atomic::{AtomicBool, Ordering};
        become_subreaper();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let spawned = thread::Builder::new()
            .name("sqlx-resilience-reaper".to_owned())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    reap_orphans();
                    thread::sleep(Duration::from_millis(100));
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(
                "cannot start the thread that collects orphaned postgres processes: {e}"
            );
        }
        Reaper { stop }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reap_orphans();
    }
}

/// Sends `signal` to `pid`; a failure (the process is gone) is ignored.
pub(crate) fn signal_pid(pid: u32, signal: Signal) {
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

/// The watchdog of a new temp directory could not be started; the directory is removed.
pub(crate) fn watchdog_failed(dir: &Path, action: &str, e: std::io::Error) -> Error {
    let _ = std::fs::remove_dir_all(dir);
    Error::test_kit(
        action,
        format!(
            "cannot run /bin/sh for the watchdog of {}: {e}",
            dir.display()
        ),
        "the test kit needs a POSIX shell at /bin/sh",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_owner_pids_from_directory_names() {
        assert_eq!(owner_pid("sqlx-resilience-pg-1234-abcd"), Some(1234));
        assert_eq!(owner_pid("sqlx-resilience-pg-1234-"), None);
        assert_eq!(owner_pid("sqlx-resilience-pg-x-abcd"), None);
        assert_eq!(owner_pid("other-1234-abcd"), None);
    }

    #[test]
    fn reads_state_and_parent_from_proc_stat() {
        assert_eq!(stat_fields("42 (post gres) Z 7 42 42 0 -1"), Some(("Z", 7)));
        assert_eq!(stat_fields("garbage"), None);
    }

    #[test]
    fn own_process_is_alive_and_an_exited_one_is_not() {
        assert!(is_alive(std::process::id()));
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Exited but not collected yet: a zombie counts as gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        while is_alive(pid) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        assert!(!is_alive(pid));
        child.wait().unwrap();
        assert!(!is_alive(pid));
    }

    /// A dead owner's directory is removed; the process recorded as its postmaster is stopped
    /// only if it really works in that data directory (a reused PID is left alone).
    #[test]
    fn stale_dirs_of_dead_owners_are_removed_and_unrelated_processes_spared() {
        let temp =
            std::env::temp_dir().join(format!("sqlx-resilience-stale-test-{}", std::process::id()));
        std::fs::create_dir_all(&temp).unwrap();
        let mut gone = Command::new("true").spawn().unwrap();
        let dead = gone.id();
        gone.wait().unwrap();

        // A stand-in postmaster working in the stale data directory.
        let stale = temp.join(format!("{DIR_PREFIX}{dead}-abc"));
        let data = stale.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let data = data.canonicalize().unwrap();
        let mut postmaster = Command::new("sleep")
            .arg("60")
            .current_dir(&data)
            .spawn()
            .unwrap();
        std::fs::write(
            data.join("postmaster.pid"),
            format!("{}\n", postmaster.id()),
        )
        .unwrap();

        // A second stale directory whose recorded PID belongs to an unrelated process.
        let reused = temp.join(format!("{DIR_PREFIX}{dead}-def"));
        std::fs::create_dir_all(reused.join("data")).unwrap();
        let mut unrelated = Command::new("sleep").arg("60").spawn().unwrap();
        std::fs::write(
            reused.join("data/postmaster.pid"),
            format!("{}\n", unrelated.id()),
        )
        .unwrap();

        // A directory of a live owner (this process) stays.
        let live = temp.join(format!("{DIR_PREFIX}{}-ghi", std::process::id()));
        std::fs::create_dir_all(&live).unwrap();

        let removed = remove_stale_dirs(&temp);

        let postmaster_status = postmaster.try_wait().unwrap();
        let unrelated_alive = is_alive(unrelated.id());
        let _ = unrelated.kill();
        let _ = unrelated.wait();
        let _ = postmaster.kill();
        let _ = postmaster.wait();
        let live_kept = live.exists();
        std::fs::remove_dir_all(&temp).unwrap();

        assert_eq!(removed, 2);
        assert!(!stale.exists() && !reused.exists());
        assert!(
            postmaster_status.is_some(),
            "the stale postmaster was not stopped"
        );
        assert!(unrelated_alive, "an unrelated process was signalled");
        assert!(live_kept, "the directory of a live owner was removed");
    }

    /// A stale directory of services: launched programs are stopped with their signal, any
    /// other process working inside is killed, and a recorded PID that now belongs to an
    /// unrelated process is spared.
    #[test]
    fn stale_dirs_of_services_stop_everything_working_inside() {
        let temp = std::env::temp_dir().join(format!(
            "sqlx-resilience-stale-services-test-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&temp).unwrap();
        let mut gone = Command::new("true").spawn().unwrap();
        let dead = gone.id();
        gone.wait().unwrap();

        let stale = temp.join(format!("{DIR_PREFIX}{dead}-svc"));
        let work = stale.join("node1");
        std::fs::create_dir_all(&work).unwrap();
        let work = work.canonicalize().unwrap();
        let spawn_in = |dir: &Path| {
            Command::new("sleep")
                .arg("60")
                .current_dir(dir)
                .spawn()
                .unwrap()
        };
        let mut service = spawn_in(&work);
        let mut helper = spawn_in(&work);
        let mut unrelated = Command::new("sleep").arg("60").spawn().unwrap();
        std::fs::write(
            stale.join("svc.launched"),
            format!("{} TERM\n", service.id()),
        )
        .unwrap();
        std::fs::write(
            stale.join("other.launched"),
            format!("{} KILL\n", unrelated.id()),
        )
        .unwrap();

        let removed = remove_stale_dirs(&temp);

        let service_status = service.try_wait().unwrap();
        let helper_status = helper.try_wait().unwrap();
        let unrelated_alive = is_alive(unrelated.id());
        for child in [&mut service, &mut helper, &mut unrelated] {
            let _ = child.kill();
            let _ = child.wait();
        }
        std::fs::remove_dir_all(&temp).unwrap();

        assert_eq!(removed, 1);
        assert!(!stale.exists());
        assert!(
            service_status.is_some(),
            "the launched program was not stopped"
        );
        assert!(
            helper_status.is_some(),
            "a process working inside was not stopped"
        );
        assert!(unrelated_alive, "an unrelated process was signalled");
    }
}
