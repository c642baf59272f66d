//! Runs the quickstart and the seed examples as their users would, and checks that each
//! exits 0, shows that the fault it injects was handled, and leaves no server directory behind.
//! Seed 001 serves HTTP endpoints, so it lives in the web examples' package, with its test
//! (examples/web/tests/seed_001.rs).
//!
//! `cargo test` builds the examples before running integration tests; the binaries are found
//! next to this test's executable (`target/<profile>/examples/<name>`). The examples run one
//! at a time: each starts its own PostgreSQL.

use std::sync::Mutex;

use sqlx_resilience_testkit::example::{assert_line, kpi, kpi_line, kpi_number};
use sqlx_resilience_testkit::run_example;

/// One example at a time, whatever the test harness's thread count.
static SEQUENTIAL: Mutex<()> = Mutex::new(());

/// Runs an example to completion and returns its standard output; fails with both outputs
/// when it exits non-zero or leaves its throwaway server's directory behind.
fn run(name: &str) -> String {
    let _one_at_a_time = SEQUENTIAL.lock().unwrap_or_else(|e| e.into_inner());
    run_example(name).unwrap_or_else(|e| panic!("{e}")).stdout
}

#[test]
fn quickstart_answers_every_query_and_survives_the_server_ending_its_connections() {
    let name = "quickstart";
    let out = run(name);
    assert_line(name, &out, "http: 200 statistics queries answered");
    assert_line(name, &out, "background: 30 harvest records written");
    // The report's connection was ended mid-query: it ran again (on a replaced connection or
    // by the retry policy) and answered with the seed data's total.
    assert_line(name, &out, "fault: the server ended ");
    assert!(
        !out.contains("the report ran 1 times"),
        "the report did not run again\n{out}"
    );
    assert_line(name, &out, "times and answered 23933.7 t");
    // The sizing report and the pools tell one story: the pools as declared, no scaling.
    assert_line(
        name,
        &out,
        "connection budget: pools background 1 + http 4 = 5 per instance",
    );
}

#[test]
fn seed_000_http_is_served_while_the_ws_pool_is_exhausted() {
    let name = "seed_000_agrinova";
    let out = run(name);
    assert_line(name, &out, "http answered 60 of 60 while ws was exhausted");
    assert_line(
        name,
        &out,
        "ws approvals during exhaustion: 0 ok, 10 timed out",
    );
    assert_line(name, &out, "ws: first starved call: ");
    assert_line(
        name,
        &out,
        "breaker harvest_stats: closed after exhaustion (0 failures counted)",
    );
    assert_line(name, &out, "health while ws was exhausted: degraded");
    assert_line(
        name,
        &out,
        "acquire_timeouts: pool ws: 10 callers gave up waiting",
    );
    // The seed's own tests: at least 20 requests a second for 10 s, average under 2 s, errors
    // under 5 %; rapid requests trip the breaker, and it recovers.
    let line = kpi_line(name, &out);
    assert!(kpi_number(line, "req_per_s") >= 20.0, "{line}");
    assert!(kpi_number(line, "avg_ms") < 2000.0, "{line}");
    assert!(kpi_number(line, "error_rate") < 0.05, "{line}");
    assert_eq!(kpi(line, "breaker_tripped"), "true", "{line}");
    assert_eq!(kpi(line, "breaker_recovered"), "true", "{line}");
}

#[test]
fn seed_002_a_deadlock_victim_runs_again_and_statistics_are_reported() {
    let name = "seed_002_kol_scraper";
    let out = run(name);
    assert_line(
        name,
        &out,
        "deadlock: 1 victim transaction(s) ran again whole; both merges committed",
    );
    assert_line(name, &out, "slow_ops:");
    assert_line(name, &out, "pg statistics (");
    assert_line(
        name,
        &out,
        "unused index kol_metrics_engagement on kol_metrics",
    );
    // The seed's KPIs: cache hit ratio above 95 %, failed connections below 1 %, average
    // query under 100 ms.
    assert_line(name, &out, "api: 2000 profile reads, ");
    let line = kpi_line(name, &out);
    assert!(kpi_number(line, "cache_hit_ratio") > 0.95, "{line}");
    assert!(kpi_number(line, "failed_connection_rate") < 0.01, "{line}");
    assert!(kpi_number(line, "avg_query_ms") < 100.0, "{line}");
    // The bulk history load: every row once, in batches of 1,000.
    assert_line(
        name,
        &out,
        "history: 10000 rows in 10 batches by COPY; kol_metrics holds 10200 rows",
    );
    assert_eq!(kpi_number(line, "copy_rows"), 10_000.0, "{line}");
}

#[test]
fn seed_003_replies_keep_streaming_through_an_outage_and_no_message_is_lost() {
    let name = "seed_003_chat";
    let out = run(name);
    assert_line(
        name,
        &out,
        "turn 2 (database unreachable): 12 replies, 240 chunks streamed",
    );
    // The seed's claim: database writes never block the stream. Every chunk streamed, none
    // waited for the database, and every message queued during the outage was written once
    // the network healed.
    let line = kpi_line(name, &out);
    assert_eq!(kpi(line, "chunks"), "960", "{line}");
    assert_eq!(kpi(line, "chunks_waiting_on_db"), "0", "{line}");
    assert_eq!(kpi(line, "messages_saved"), "96", "{line}");
    assert_eq!(kpi(line, "messages_lost"), "0", "{line}");
    assert!(
        kpi_number(line, "slowest_chunk_ms") > 0.0,
        "measured: {line}"
    );
}

#[test]
fn seed_004_budget_is_18_of_20_and_the_breaker_opens_and_closes() {
    let name = "seed_004_kct";
    let out = run(name);
    assert_line(
        name,
        &out,
        "budget: pools main 18 = 18 per instance x 1 instance = 18 <= 18 available \
         (20 max_connections - 2 superuser_reserved_connections)",
    );
    assert_line(
        name,
        &out,
        "two instances: refused at start-up: connection budget exceeded",
    );
    assert_line(
        name,
        &out,
        "breaker kct: closed -> open (5 failures within 60s)",
    );
    assert_line(name, &out, "while open: rejected in ");
    assert_line(
        name,
        &out,
        "breaker kct: half_open -> closed (half-open probes succeeded)",
    );
    // The seed's success metrics: recovery under 30 s, health score above 80, more than 99 %
    // of the shoppers' calls ok under the injected faults, and its alerts raised.
    let line = kpi_line(name, &out);
    assert!(kpi_number(line, "recovery_s") < 30.0, "{line}");
    assert!(kpi_number(line, "score") > 80.0, "{line}");
    assert!(kpi_number(line, "success_rate") > 0.99, "{line}");
    let alerts = kpi(line, "alerts");
    for alert in ["breaker_open", "slow_ops", "database_unreachable"] {
        assert!(
            alerts.contains(&format!("\"{alert}\"")),
            "{alert} not raised: {line}"
        );
    }
}
