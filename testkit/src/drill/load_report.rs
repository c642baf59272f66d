//! What a load drill measured.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value as Json;

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
