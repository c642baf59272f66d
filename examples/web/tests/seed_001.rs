//! Runs seed 001's example as its users would (`cargo run -p sqlx-resilience-web-examples
//! --example seed_001_manufacturing`) and holds its KPI line to the seed's claims: both
//! profiles run, the breaker trips and recovers, the endpoints answer, no order lost or
//! written twice. Like the root package's `tests/examples.rs`, it checks that the example
//! exits 0 and leaves no server directory behind.
//!
//! `cargo test` builds the package's examples before its integration tests; the binary is
//! found next to this test's executable (`target/<profile>/examples/<name>`).

use sqlx_resilience_testkit::example::{assert_line, kpi, kpi_line, kpi_number};
use sqlx_resilience_testkit::run_example;

/// Runs an example to completion and returns its standard output and error; fails with both
/// when it exits non-zero or leaves its throwaway server's directory behind.
fn run(name: &str) -> (String, String) {
    let out = run_example(name).unwrap_or_else(|e| panic!("{e}"));
    (out.stdout, out.stderr)
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
