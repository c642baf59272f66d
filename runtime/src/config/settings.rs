use std::time::Duration;

use super::Value;
use super::schema;
use super::{FaultsConfig, MonitorConfig};
use crate::pool::BudgetMode;
use crate::secret::DatabaseUrl;
use crate::settings::fields::{self, Fields};

crate::settings::fields::settings! {
    /// Runtime-wide settings: the server URL, the default pool, the connection budget
    /// (`budget.*`), the monitor (`monitor.*`); every key, its range and default are in the
    /// schema ([`schema::RUNTIME`](crate::config::schema::RUNTIME)).
    #[derive(Debug, Clone, PartialEq)]
    pub struct RuntimeSettings: schema::RUNTIME {
        /// The server URL every pool uses unless it has its own.
        pub url: Option<DatabaseUrl> = "url",
        /// The pool for ops that name none (defaults to the only pool when there is one).
        pub default_pool: Option<String> = "default_pool",
        /// Application instances sharing the server's connections.
        pub instances: u32 = "budget.instances",
        /// What to do when the pools do not fit the server's budget.
        pub budget_mode: BudgetMode = "budget.mode",
        /// Connections to leave free for other clients (migrations, consoles, monitoring).
        pub headroom: u32 = "budget.headroom",
        /// Database server cores, for sizing advice (detected for a server on this machine).
        pub server_cores: Option<u32> = "budget.server_cores",
        /// Effective spindles, for sizing advice.
        pub effective_spindles: u32 = "budget.effective_spindles",
        /// How long `shutdown` waits for ops in flight by default.
        pub shutdown_timeout: Duration = "shutdown_timeout",
        /// The most results the result cache holds ([`crate::cache`]).
        pub cache_max_entries: u32 = "cache_max_entries",
        /// What start-up does about declared ops that do not fit this configuration.
        pub ops_check: OpsCheck = "ops_check",
    }
    others {
        /// The monitor, the utilization samples and the health check (`monitor.*` keys).
        pub monitor: MonitorConfig,
        /// Fault injection (`faults.*` keys).
        pub faults: FaultsConfig,
    }
}

/// What to do at start-up when a declared op does not fit the runtime's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpsCheck {
    /// Log a warning for each problem (the default: a program may hold ops for several
    /// runtimes).
    Warn,
    /// Refuse to start.
    Error,
    /// Do not check.
    Off,
}

crate::settings::fields::choices!(OpsCheck {
    Warn = "warn",
    Error = "error",
    Off = "off",
});

impl RuntimeSettings {
    /// Applies one setting (`profile` is read by the loader).
    pub fn set(&mut self, key: &str, value: &Value) -> Result<(), String> {
        if let Some(monitor) = key.strip_prefix("monitor.") {
            return self.monitor.set(monitor, value);
        }
        if let Some(faults) = key.strip_prefix("faults.") {
            return self.faults.set(faults, value);
        }
        fields::set(self, key, value)
    }

    /// Whether `key` is a runtime-wide key [`RuntimeSettings::set`] applies: every key of the
    /// schema but `profile`, which selects a profile.
    pub(crate) fn accepts(key: &str) -> bool {
        key.strip_prefix("monitor.")
            .is_some_and(|k| MonitorConfig::SCHEMA.key(k).is_some())
            || key
                .strip_prefix("faults.")
                .is_some_and(|k| FaultsConfig::SCHEMA.key(k).is_some())
            || Self::KEYS.contains(&key)
    }
}
