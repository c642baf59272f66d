//! Drills: real load through the op API against a throwaway PostgreSQL, with faults injected,
//! summed up as one JSON object.
//!
//! `cargo run --release --example drill -- SCENARIO [--size small|full]` runs one and prints
//! the report as its last line; the integration tests run each at [`Size::Small`] and check
//! its outcome. Every drill starts a dedicated server (`synchronous_commit = on`, so a
//! kill -9 loses no acknowledged commit) and removes it afterwards; all traffic stays on
//! 127.0.0.1, and the load stops by itself, bounded in ops and in time.
//!
//! The load ([`Scenario::Restart`] to [`Scenario::Exhaust`]) mixes reads (`read_only`) and
//! writes (one op in four), each op with a timeout, a deadline, the retry policy and the
//! circuit breaker below. The writes take turns: a plain insert through an op that is not
//! idempotent (`retry_scope = before_send`), an idempotent upsert, and a transaction of two
//! inserts. Every write carries a unique key; inserts and transactions go to a table whose
//! key column is not unique, so what happened is counted in the tables at the end, not taken
//! from what the client believes: [`LoadReport::lost_writes`] (acknowledged, yet absent),
//! [`LoadReport::duplicate_writes`] (an insert or transaction applied twice),
//! [`LoadReport::torn_transactions`], [`LoadReport::unknown_outcome`] and
//! [`LoadReport::applied_but_reported_failed`] (a write reported failed, other than as an
//! unknown outcome, that was applied). [`Options::retry_unknown_outcomes`] makes the callers
//! careless, to show the duplicate count bites.
//!
//! Policies of every load drill:
//!
//! | policy | settings | why |
//! | --- | --- | --- |
//! | breaker `drill` | `failure_rate = 50`, `window = "2s"`, `minimum_calls = 10`, `open_for = "500ms"`, `half_open = 3` | a rate over a short window: a restart's handful of failed in-flight calls among thousands does not trip it, a dead network does within seconds; short open periods with a few probes find a healed server quickly |
//! | retry `drill` | `attempts = 5`, `base = "25ms"`, `max_delay = "500ms"`, full jitter, the default budget | enough tries to ride out a restart inside the op's deadline |
//!
//! Extras by scenario (besides the fields of [`LoadReport`]):
//!
//! - `blackhole`: `breaker_opened`, `worst_lateness_pct` (the latest op's overrun of its
//!   deadline, in percent of the deadline).
//! - `latency`: `server_active_after_ms` (the longest any abandoned statement stayed active on
//!   the server after its client gave up, from `pg_stat_activity` polled every 10 ms over a
//!   direct connection), `abandoned_statements`, `abandoned_seen_active`,
//!   `still_active_at_end`.
//! - `storm`: `ideal_ms` (ceil(callers / connections) x query time), `floor_ms` (the p99 the
//!   same statements reach on as many dedicated connections, without pool or op API: what
//!   the machine allows), `p99_wave_median_ms` (the same statistic for the op API's waves),
//!   `wave_p99_ms`, `callers`, `pool_max`, `waves`, `wave_ms`.
//! - `failover`: `unreported_unknown`, `late_ops`, `longest_gap_ms`, and per fault
//!   (`switchover`, `kill9`) its recovery and longest gap; `pool_failovers`; plain sqlx's
//!   side in the same run: `sqlx_ops`, `sqlx_ok`, `sqlx_failed`, `sqlx_writes`,
//!   `sqlx_writes_ok`, `sqlx_lost_writes` and its recovery per fault.
//! - `exhaust`: `leaked_connections`, `leak_warnings`, `acquire_timeouts`, and per phase
//!   (`normal`, `part_leaked`, `exhausted`, `returned`) ops, ok and p99.

mod blackhole;
mod contention;
mod copy;
mod exhaust;
mod failover;
mod failover_sqlx;
mod figures;
mod kill9;
mod latency;
mod load;
mod load_report;
mod nemesis;
mod outage;
mod overhead;
mod pgbouncer;
mod replica_lag;
mod report;
mod restart;
mod setup;
mod storm;

use std::fmt;
use std::str::FromStr;

pub use self::contention::{ContentionReport, ContentionSide};
pub use self::copy::CopyBench;
pub use self::load_report::LoadReport;
pub use self::outage::OutageCase;
pub use self::pgbouncer::PgBouncerReport;
pub use self::replica_lag::ReplicaLagReport;
pub use self::report::{OverheadReport, Report};
pub use self::setup::{Options, Size};

use crate::Result;

/// A drill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// A fast restart (`pg_ctl restart -m fast`) in the middle of the load.
    Restart,
    /// A kill -9 of the postmaster in the middle of the load, then a start (crash recovery).
    Kill9,
    /// The network between client and server drops everything for a while (5 s at full
    /// size), then heals.
    Blackhole,
    /// 200 ms added each way with a 100 ms op timeout: every attempt is abandoned by its
    /// client; how long does the server keep running it?
    Latency,
    /// 2000 callers at once over a 30-connection pool, 5 ms queries.
    Storm,
    /// Leaked connections hold part of the pool, then all of it, then are returned.
    Exhaust,
    /// Point-select throughput of the op API against raw sqlx and pgbench.
    Overhead,
    /// The same request mix through the op API and plain sqlx, side by side, while the
    /// server is stopped or the network blackholed for 0.5 s to 60 s: one line per case.
    Outage,
    /// Workers checking one book in and out through serializable transactions, on the
    /// toolkit's default retry policy and on plain sqlx, side by side.
    Contention,
    /// The mixed load under a seeded random schedule of faults ([`Options::seed`],
    /// [`Options::secs`]).
    Nemesis,
    /// Rows a second through COPY, batched inserts and one insert a row.
    Copy,
    /// Many instances behind PgBouncer in transaction mode, against the same load straight
    /// to the server ([`PgBouncerReport`]).
    PgBouncer,
    /// The load through a multi-host pool on a Patroni cluster: a switchover, then a kill -9
    /// of the leader's postgres.
    Failover,
    /// Reads through a pool with two streaming replicas and `max_lag = "1s"` while replay is
    /// paused on both for a while: stale reads, and the replicas' share of reads before,
    /// during and after.
    ReplicaLag,
}

impl Scenario {
    /// Every scenario, in the order of the docs.
    pub const ALL: [Scenario; 14] = [
        Scenario::Restart,
        Scenario::Kill9,
        Scenario::Blackhole,
        Scenario::Latency,
        Scenario::Storm,
        Scenario::Exhaust,
        Scenario::Overhead,
        Scenario::Outage,
        Scenario::Contention,
        Scenario::Nemesis,
        Scenario::Copy,
        Scenario::PgBouncer,
        Scenario::Failover,
        Scenario::ReplicaLag,
    ];

    /// The name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Restart => "restart",
            Scenario::Kill9 => "kill9",
            Scenario::Blackhole => "blackhole",
            Scenario::Latency => "latency",
            Scenario::Storm => "storm",
            Scenario::Exhaust => "exhaust",
            Scenario::Overhead => "overhead",
            Scenario::Outage => "outage",
            Scenario::Contention => "contention",
            Scenario::Nemesis => "nemesis",
            Scenario::Copy => "copy",
            Scenario::PgBouncer => "pgbouncer",
            Scenario::Failover => "failover",
            Scenario::ReplicaLag => "replica-lag",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Scenario::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Scenario::ALL.iter().map(|c| c.name()).collect();
                format!(
                    "unknown scenario `{s}`: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Runs one drill on a throwaway server of its own and returns its figures. Progress goes to
/// `tracing` at info level (target `sqlx_resilience_testkit::drill`).
pub async fn run(scenario: Scenario, size: Size) -> Result<Report> {
    run_with(scenario, size, Options::default()).await
}

/// [`run`] with callers that behave as `options` say.
pub async fn run_with(scenario: Scenario, size: Size, options: Options) -> Result<Report> {
    tracing::info!(
        scenario = scenario.name(),
        ?size,
        ?options,
        "drill starting"
    );
    let o = options;
    let report = match scenario {
        Scenario::Restart => Report::Load(restart::run(size, o).await?),
        Scenario::Kill9 => Report::Load(kill9::run(size, o).await?),
        Scenario::Blackhole => Report::Load(blackhole::run(size, o).await?),
        Scenario::Latency => Report::Load(latency::run(size, o).await?),
        Scenario::Storm => Report::Load(storm::run(size, o).await?),
        Scenario::Exhaust => Report::Load(exhaust::run(size, o).await?),
        Scenario::Overhead => Report::Overhead(overhead::run(size).await?),
        Scenario::Outage => Report::Outage(outage::run(size).await?),
        Scenario::Contention => Report::Contention(contention::run(size).await?),
        Scenario::Nemesis => Report::Load(nemesis::run(size, o).await?),
        Scenario::Copy => Report::Copy(copy::run(size).await?),
        Scenario::PgBouncer => Report::PgBouncer(pgbouncer::run(size).await?),
        Scenario::Failover => Report::Load(failover::run(size, o).await?),
        Scenario::ReplicaLag => Report::ReplicaLag(replica_lag::run(size).await?),
    };
    tracing::info!(scenario = scenario.name(), "drill finished");
    Ok(report)
}

/// Runs only the named cases of the `outage` drill (`stop-2s-c4`, `blackhole-10s-c64`, ...;
/// the cases of `size` are the ones to choose from).
pub async fn run_outage(size: Size, cases: &[String]) -> Result<Report> {
    Ok(Report::Outage(outage::run_cases(size, cases).await?))
}
