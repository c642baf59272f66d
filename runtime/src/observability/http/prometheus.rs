pub use metrics_exporter_prometheus::PrometheusHandle;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

use crate::observability::telemetry::names;

/// Installs metrics-exporter-prometheus as the global `metrics` recorder, with histogram
/// buckets suited to database calls for this crate's histograms
/// ([`names::BUCKETS_SECONDS`]), and returns the handle `/metrics` renders from.
///
/// Call it before building the runtime: the op and pool histograms are registered when the
/// runtime is built. It fails when another global recorder is installed already.
pub fn install_prometheus() -> Result<PrometheusHandle, BuildError> {
    let mut builder = PrometheusBuilder::new();
    for name in names::HISTOGRAMS {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), &names::BUCKETS_SECONDS)?;
    }
    builder.install_recorder()
}
