//! Runs seed 001's example as its users would (`cargo run -p sqlx-resilience-web-examples
//! --example seed_001_manufacturing`) and holds its KPI line to the seed's claims: both
//! profiles run, the breaker trips and recovers, the endpoints answer, no order lost or
//! written twice. Like the root package's `tests/examples.rs`, it checks that the example
//! exits 0 and leaves no server directory behind.
//!
//! `cargo test` builds the package's examples before its integration tests; the binary is
//! found next to this test's executable (`target/<profile>/examples/<name>`).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The example binary built by cargo for this test's profile.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/seed_001-HASH -> target/<profile>/examples/<name>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test executable lives in target/<profile>/deps");
    let bin = profile_dir.join("examples").join(name);
    assert!(
        bin.exists(),
        "example binary {} not found; `cargo test -p sqlx-resilience-web-examples --test \
         seed_001` builds it, or run `cargo build -p sqlx-resilience-web-examples --example \
         {name}` first",
        bin.display()
    );
    bin
}

/// Runs an example to completion and returns its standard output and error; fails with both
/// when it exits non-zero or leaves its throwaway server's directory behind.
fn run(name: &str) -> (String, String) {
    let started = Instant::now();
    let child = Command::new(example(name))
        .env_remove("DB__PROFILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"));
    let pid = child.id();
    let output = child.wait_with_output().expect("the example's output");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    eprintln!(
        "{name}: exit {:?} in {:.1}s",
        output.status.code(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        output.status.success(),
        "example {name} failed with {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    assert_nothing_left_behind(name, pid);
    (stdout, stderr)
}

/// The test kit's watchdog removes `<temp>/sqlx-resilience-pg-<pid>-*` once the process is
/// gone; give it a few seconds.
fn assert_nothing_left_behind(name: &str, pid: u32) {
    let prefix = format!("sqlx-resilience-pg-{pid}-");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left: Vec<String> = std::fs::read_dir(std::env::temp_dir())
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "example {name} left its server directory behind: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_line(name: &str, stdout: &str, expected: &str) {
    assert!(
        stdout.lines().any(|l| l.contains(expected)),
        "example {name} did not print a line containing {expected:?}\n--- stdout\n{stdout}"
    );
}

/// The example's last line: one JSON object of the seed's KPIs, measured in the run.
fn kpi_line<'a>(name: &str, stdout: &'a str) -> &'a str {
    let line = stdout.lines().last().unwrap_or_default();
    assert!(
        line.starts_with("{\"seed\":") && line.ends_with('}'),
        "example {name} did not end with its KPI line\n--- stdout\n{stdout}"
    );
    line
}

/// The text of `key`'s value in a flat JSON object (a number, or an array's inside).
fn kpi<'a>(line: &'a str, key: &str) -> &'a str {
    let at = line
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no `{key}` in the KPI line {line}"));
    let rest = &line[at + key.len() + 3..];
    if let Some(list) = rest.strip_prefix('[') {
        return &list[..list.find(']').expect("a closed array")];
    }
    &rest[..rest.find([',', '}']).expect("a value")]
}

fn kpi_number(line: &str, key: &str) -> f64 {
    kpi(line, key)
        .parse()
        .unwrap_or_else(|e| panic!("`{key}` is not a number in {line}: {e}"))
}

#[test]
fn seed_001_both_profiles_its_breaker_and_endpoints_and_no_order_lost_or_written_twice() {
    let name = "seed_001_manufacturing";
    let (out, log) = run(name);
    assert_line(name, &out, "server restarted mid-load");
    // The seed's query timing: each shift report over its `slow = "1s"` is logged with its time.
    assert_line(name, &log, "slow op: took ");
    assert_line(name, &out, "the shift report in flight finished: true");
    assert_line(name, &out, "after shutdown: ");
    // The seed's claims: both environments' settings in effect and their work done; the
    // breaker opens on the network failure and closes once it heals; every endpoint answers
    // as the phase expects (503 from /ready during the outage and after shutdown); no order
    // lost, half-written or written twice; the utilization and query-time alerts raised;
    // SIGTERM drains the work in flight and refuses new work.
    let line = kpi_line(name, &out);
    let profiles = kpi(line, "profiles_run");
    for profile in ["production", "development"] {
        assert!(
            profiles.contains(&format!("\"{profile}\"")),
            "{profile} not run: {line}"
        );
    }
    assert_eq!(kpi(line, "breaker_tripped"), "true", "{line}");
    assert_eq!(kpi(line, "breaker_recovered"), "true", "{line}");
    assert_eq!(kpi(line, "endpoints_ok"), "true", "{line}");
    assert!(kpi_number(line, "endpoints_answered") >= 20.0, "{line}");
    assert!(kpi_number(line, "orders") > 0.0, "{line}");
    assert_eq!(kpi(line, "orders_lost"), "0", "{line}");
    assert_eq!(kpi(line, "orders_duplicated"), "0", "{line}");
    assert_eq!(kpi(line, "orders_incomplete"), "0", "{line}");
    // The plain insert cut off mid-call was reported as an unknown outcome, not run again.
    assert_eq!(kpi(line, "unknown_outcomes"), "1", "{line}");
    let alerts = kpi(line, "alerts");
    for alert in ["pool_utilization", "slow_ops"] {
        assert!(
            alerts.contains(&format!("\"{alert}\"")),
            "{alert} not raised: {line}"
        );
    }
    assert_eq!(kpi(line, "sigterm_drained"), "true", "{line}");
}
