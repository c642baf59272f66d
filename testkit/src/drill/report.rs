//! What a drill measured, and its one-line JSON form.

use std::collections::BTreeMap;

use serde::Serialize;

use super::load_report::LoadReport;

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

#[cfg(test)]
mod tests {
    use serde_json::Value as Json;

    use super::*;

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
