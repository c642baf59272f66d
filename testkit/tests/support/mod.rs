//! Helpers the scale-out test files share: polling, and a child test process killed with
//! SIGKILL to show that what it started goes away anyway.

// Each test file uses its own subset.
#![allow(dead_code)]

use std::future::Future;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Polls `check` every 100 ms until it holds or `limit` passes; returns whether it held.
pub(crate) async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Set in the child process of a SIGKILL test.
pub(crate) const VICTIM: &str = "SQLX_RESILIENCE_TESTKIT_VICTIM";

/// Whether this process is the child of a SIGKILL test.
pub(crate) fn is_victim() -> bool {
    std::env::var_os(VICTIM).is_some()
}

/// In the child: reports the temp directory of what it started, then waits to be killed.
pub(crate) async fn report_and_wait(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    println!("VICTIM {}", dir.display());
    tokio::time::sleep(Duration::from_secs(300)).await;
    Err("the victim was not killed".into())
}

/// Runs the test `name` of this test binary as a child with `VICTIM` set, waits (up to
/// `limit`) until it reports its directory, kills it with SIGKILL, and returns the directory
/// and the processes that worked in it or named it before the kill.
pub(crate) fn kill_victim(
    name: &str,
    limit: Duration,
) -> Result<(String, Vec<u32>), Box<dyn std::error::Error>> {
    let mut child = Command::new(std::env::current_exe()?)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(VICTIM, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            // libtest prints the test's name on the same line first.
            if let Some((_, rest)) = line.split_once("VICTIM ") {
                let _ = tx.send(rest.to_owned());
            }
        }
    });
    let report = rx.recv_timeout(limit);
    let before = report
        .as_ref()
        .map(|dir| processes_of(Path::new(dir)))
        .unwrap_or_default();
    child.kill()?;
    child.wait()?;
    let dir = report.map_err(|_| "the child did not report what it started")?;
    Ok((dir, before))
}

/// Live processes that work inside `dir` or name it on their command line.
pub(crate) fn processes_of(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let needle = dir.to_string_lossy().into_owned();
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let inside = std::fs::read_link(format!("/proc/{pid}/cwd"))
                .is_ok_and(|cwd| cwd.starts_with(dir));
            let named = std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle));
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "));
            (inside || named) && !zombie
        })
        .collect()
}
