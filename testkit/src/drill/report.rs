//! What a drill measured, and its one-line JSON form.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value as Json;

/// The figures of a drill: [`LoadReport`] for the fault scenarios, [`OverheadReport`] for
/// `overhead`. [`Report::to_json`] is the line the drill prints last.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Report {
    /// A load drill (every scenario but `overhead`).
    Load(LoadReport),
    /// The `overhead` drill.
    Overhead(OverheadReport),
    /// The `outage` drill: one entry per case.
    Outage(Vec<super::OutageCase>),
    /// The `contention` drill.
    Contention(super::ContentionReport),
    /// The `copy` drill.
    Copy(super::CopyBench),
    /// The `pgbouncer` drill.
    PgBouncer(super::PgBouncerReport),
    /// The `replica-lag` drill.
    ReplicaLag(super::ReplicaLagReport),
}

impl Report {
    /// The scenario's name.
    pub fn scenario(&self) -> &'static str {
        match self {
            Report::Load(r) => r.scenario,
            Report::Overhead(r) => r.scenario,
            Report::Outage(_) => "outage",
            Report::Contention(_) => "contention",
            Report::Copy(_) => "copy",
            Report::PgBouncer(_) => "pgbouncer",
            Report::ReplicaLag(_) => "replica-lag",
        }
    }

    /// One line of JSON: the shared fields first, in the documented order, then the
    /// scenario's extras. The `outage` drill gives one line per case.
    pub fn to_json(&self) -> String {
        match self {
            Report::Outage(cases) => cases
                .iter()
                .map(|c| serde_json::to_string(c).expect("a report always serialises"))
                .collect::<Vec<_>>()
                .join("\n"),
            other => serde_json::to_string(other).expect("a report always serialises"),
        }
    }

    /// The cases of the `outage` drill, if this is its report.
    pub fn outage(&self) -> Option<&[super::OutageCase]> {
        match self {
            Report::Outage(cases) => Some(cases),
            _ => None,
        }
    }

    /// The load report, if this is one.
    pub fn load(&self) -> Option<&LoadReport> {
        match self {
            Report::Load(r) => Some(r),
            _ => None,
        }
    }

    /// The copy drill's figures, if this is its report.
    pub fn copy(&self) -> Option<&super::CopyBench> {
        match self {
            Report::Copy(r) => Some(r),
            _ => None,
        }
    }

    /// The contention report, if this is one.
    pub fn contention(&self) -> Option<&super::ContentionReport> {
        match self {
            Report::Contention(r) => Some(r),
            _ => None,
        }
    }

    /// The overhead report, if this is one.
    pub fn overhead(&self) -> Option<&OverheadReport> {
        match self {
            Report::Overhead(r) => Some(r),
            _ => None,
        }
    }
}

/// What a load drill measured. Latency figures cover every op, failed ones included, from
/// the call to its return.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The scenario's name.
    pub scenario: &'static str,
    /// Ops run.
    pub ops: u64,
    /// Ops that returned `Ok`.
    pub ok: u64,
    /// Ops that returned an error.
    pub failed: u64,
    /// Failed ops by [`FailureKind`](sqlx_resilience_runtime::FailureKind) name.
    pub errors: BTreeMap<&'static str, u64>,
    /// Writes acknowledged to the client but absent from the table at the end.
    pub lost_writes: u64,
    /// Inserts applied more than once and transactions applied more than once, counted in
    /// the table at the end.
    pub duplicate_writes: u64,
    /// Median op latency.
    pub p50_ms: f64,
    /// 99th percentile op latency.
    pub p99_ms: f64,
    /// Slowest op.
    pub max_ms: f64,
    /// From the server being ready again (restart returned, fault healed, connections
    /// returned) to the end of the first op that succeeded after it; `null` when the scenario
    /// has no such moment, or no op succeeded after it.
    pub recovery_ms: Option<f64>,
    /// Reads run (declared read-only).
    pub reads: u64,
    /// Reads that succeeded.
    pub reads_ok: u64,
    /// Writes run, each with a unique key: inserts, upserts and transactions in turn.
    pub writes: u64,
    /// Writes acknowledged.
    pub writes_ok: u64,
    /// Writes the client saw fail whose row is in the table anyway (any kind of failure).
    pub unacked_writes_present: u64,
    /// Writes that are not idempotent: plain inserts and transactions.
    pub non_idempotent_writes: u64,
    /// Writes that ended as `UnknownOutcome`.
    pub unknown_outcome: u64,
    /// Inserts and transactions reported failed with any kind but `unknown_outcome` whose
    /// rows are in the table: the caller was told a write that happened did not.
    pub applied_but_reported_failed: u64,
    /// Transactions with one insert in the table and not the other.
    pub torn_transactions: u64,
    /// How many times the drill's circuit breaker opened.
    pub breaker_opens: u64,
    /// Each op's deadline.
    pub deadline_ms: f64,
    /// How much later than its deadline the latest op returned (0 when every op returned
    /// within its deadline).
    pub worst_lateness_ms: f64,
    /// Wall time of the load, from the first op to the last return.
    pub duration_ms: f64,
    /// The scenario's own figures (see each scenario in [`Scenario`](super::Scenario)).
    #[serde(flatten)]
    pub extra: BTreeMap<&'static str, Json>,
}

impl LoadReport {
    /// An extra figure as a number.
    pub fn extra_f64(&self, key: &str) -> Option<f64> {
        self.extra.get(key).and_then(Json::as_f64)
    }

    /// An extra figure as a flag.
    pub fn extra_bool(&self, key: &str) -> Option<bool> {
        self.extra.get(key).and_then(Json::as_bool)
    }

    /// The share of reads that succeeded, in percent (100 when there were none).
    pub fn reads_ok_pct(&self) -> f64 {
        if self.reads == 0 {
            100.0
        } else {
            self.reads_ok as f64 * 100.0 / self.reads as f64
        }
    }
}

/// What the `overhead` drill measured: point-select throughput through the op API and
/// through raw sqlx, median of its rounds.
#[derive(Debug, Clone, Serialize)]
pub struct OverheadReport {
    /// `overhead`.
    pub scenario: &'static str,
    /// Raw sqlx on the runtime's pool, at the high concurrency.
    pub raw_ops_s: f64,
    /// The op API (a prebuilt `Op`) on the same pool, at the high concurrency.
    pub wrapped_ops_s: f64,
    /// `wrapped_ops_s / raw_ops_s`.
    pub ratio: f64,
    /// The op API on the runtime's default pool settings over raw sqlx on sqlx's default
    /// `PgPoolOptions` (ping before every acquire), same pool size, high concurrency.
    pub defaults_vs_sqlx_defaults: f64,
    /// The op API over `pgbench -S -M prepared` at the same concurrency on the same server;
    /// `null` when pgbench is not installed.
    pub vs_pgbench: Option<f64>,
    /// Raw sqlx on the runtime's pool, one caller.
    pub raw_ops_s_c1: f64,
    /// The op API, one caller.
    pub wrapped_ops_s_c1: f64,
    /// `wrapped_ops_s_c1 / raw_ops_s_c1`.
    pub ratio_c1: f64,
    /// Raw sqlx on sqlx's default pool options, high concurrency.
    pub sqlx_defaults_ops_s: f64,
    /// pgbench's tps (without connection time), high concurrency.
    pub pgbench_tps: Option<f64>,
    /// `sqlx_defaults_ops_s / pgbench_tps`.
    pub sqlx_defaults_vs_pgbench: Option<f64>,
    /// `raw_ops_s / pgbench_tps`.
    pub raw_vs_pgbench: Option<f64>,
    /// The high concurrency (callers, pgbench clients).
    pub concurrency: u32,
    /// Pool size of every pool measured.
    pub pool_max: u32,
    /// Length of one slice at the high concurrency.
    pub slice_ms: f64,
    /// Length of one slice at one caller.
    pub slice_c1_ms: f64,
    /// Slices per client-side path; each figure is the median of its slices.
    pub slices: u32,
    /// Length of each pgbench run (one per round; its figure is the median of its runs).
    pub pgbench_seconds: u32,
    /// Every slice's (and pgbench run's) figure, in ops/s, by path.
    pub samples: BTreeMap<&'static str, Vec<f64>>,
}

/// Milliseconds, rounded to a tenth.
pub(crate) fn ms(d: Duration) -> f64 {
    round1(d.as_secs_f64() * 1000.0)
}

/// Rounded to one decimal.
pub(crate) fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Rounded to three decimals.
pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The nearest-rank percentile `q` (0..=1) of sorted durations.
pub(crate) fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of some figures (the mean of the middle two for an even count).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&d, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&d, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&d, 1.0), Duration::from_millis(100));
        assert_eq!(percentile(&d[..1], 0.99), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn the_shared_fields_come_first_in_the_documented_order() {
        let report = Report::Load(LoadReport {
            scenario: "restart",
            ops: 10,
            ok: 9,
            failed: 1,
            errors: BTreeMap::from([("server_shutdown", 1)]),
            lost_writes: 0,
            duplicate_writes: 0,
            p50_ms: 1.5,
            p99_ms: 20.0,
            max_ms: 30.0,
            recovery_ms: Some(12.5),
            reads: 8,
            reads_ok: 7,
            writes: 2,
            writes_ok: 2,
            unacked_writes_present: 0,
            non_idempotent_writes: 1,
            unknown_outcome: 0,
            applied_but_reported_failed: 0,
            torn_transactions: 0,
            breaker_opens: 0,
            deadline_ms: 5000.0,
            worst_lateness_ms: 0.0,
            duration_ms: 1000.0,
            extra: BTreeMap::from([("server_active_after_ms", Json::from(250.0))]),
        });
        let json = report.to_json();
        assert!(
            json.starts_with(
                r#"{"scenario":"restart","ops":10,"ok":9,"failed":1,"errors":{"server_shutdown":1},"lost_writes":0,"duplicate_writes":0,"p50_ms":1.5,"p99_ms":20.0,"max_ms":30.0,"recovery_ms":12.5,"#
            ),
            "{json}"
        );
        assert!(
            json.ends_with(r#""server_active_after_ms":250.0}"#),
            "{json}"
        );
        assert!(!json.contains('\n'));
    }
}
