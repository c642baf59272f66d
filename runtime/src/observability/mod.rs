//! Observability, on top of the core: what the runtime reports through its observer
//! (`crate::observer`) and what it keeps in its own counters, turned into traces, metrics,
//! samples, alerts, health reports and HTTP endpoints. The core imports nothing from here.
//!
//! | module | what |
//! | --- | --- |
//! | [`telemetry`] | the runtime's observer: op spans, metrics, op figures, pool samples |
//! | [`monitor`] | the background loop that raises alerts |
//! | [`health`] | the health report, readiness, liveness, the status report |
//! | [`pgstats`] | PostgreSQL's own statistics |
//! | `http` | the axum endpoints (feature `axum`) |
//! | `alerts`, `clock` | what an alert is and the alert history; wall-clock time for reports |

mod alerts;
mod clock;
pub mod health;
#[cfg(feature = "axum")]
pub mod http;
pub mod monitor;
pub mod pgstats;
pub mod telemetry;

use self::telemetry::Telemetry;
use crate::runtime::{Runtime, RuntimeBuilder};

impl Runtime {
    /// Starts building a runtime whose ops and pools report to its [`telemetry`].
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::new().observed_by(Telemetry::observer)
    }
}

impl Default for RuntimeBuilder {
    /// The same as [`Runtime::builder`].
    fn default() -> Self {
        Runtime::builder()
    }
}
