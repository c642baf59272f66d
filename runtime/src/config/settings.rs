use std::time::Duration;

use super::{KeySpec, Value, parse};
use crate::pool::BudgetMode;
use crate::secret::DatabaseUrl;

/// Runtime-wide settings: the server URL, the default pool, the connection budget.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeSettings {
    /// The server URL every pool uses unless it has its own.
    pub url: Option<DatabaseUrl>,
    /// The pool for ops that name none (defaults to the only pool when there is one).
    pub default_pool: Option<String>,
    /// Application instances sharing the server's connections.
    pub instances: u32,
    /// What to do when the pools do not fit the server's budget.
    pub budget_mode: BudgetMode,
    /// Connections to leave free for other clients (migrations, consoles, monitoring).
    pub headroom: u32,
    /// Database server cores, for sizing advice (detected for a server on this machine).
    pub server_cores: Option<u32>,
    /// Effective spindles, for sizing advice.
    pub effective_spindles: u32,
    /// How long `shutdown` waits for ops in flight by default.
    pub shutdown_timeout: Duration,
    /// What start-up does about declared ops that do not fit this configuration.
    pub ops_check: crate::op::OpsCheck,
    // --- observability (issue 5): the `monitor.*` keys ---
    /// The monitor, the utilization samples and the health check (`monitor.*` keys).
    pub monitor: crate::monitor::MonitorConfig,
    // --- end observability ---
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            url: None,
            default_pool: None,
            instances: 1,
            budget_mode: BudgetMode::Error,
            headroom: 0,
            server_cores: None,
            effective_spindles: 1,
            shutdown_timeout: Duration::from_secs(30),
            ops_check: crate::op::OpsCheck::Warn,
            monitor: Default::default(),
        }
    }
}

impl RuntimeSettings {
    /// Accepted keys (top level and the `budget` table).
    pub const KEYS: &'static [KeySpec] = &[
        KeySpec {
            key: "url",
            expected: "a postgres:// URL",
            doc: "server URL (falls back to DATABASE_URL)",
        },
        KeySpec {
            key: "default_pool",
            expected: "a declared pool name",
            doc: "pool for ops that name none",
        },
        KeySpec {
            key: "profile",
            expected: "a profile name",
            doc: "which [profiles.NAME] section applies",
        },
        KeySpec {
            key: "shutdown_timeout",
            expected: "a duration",
            doc: "how long shutdown waits for work in flight",
        },
        KeySpec {
            key: "ops_check",
            expected: "\"warn\", \"error\" or \"off\"",
            doc: "what start-up does about declared ops that do not fit the configuration",
        },
        KeySpec {
            key: "budget.instances",
            expected: "a whole number from 1 to 10000",
            doc: "application instances sharing the server",
        },
        KeySpec {
            key: "budget.mode",
            expected: "\"error\", \"warn\" or \"scale\"",
            doc: "what to do when pools exceed the server's connections",
        },
        KeySpec {
            key: "budget.headroom",
            expected: "a whole number from 0 to 10000",
            doc: "connections left free for other clients",
        },
        KeySpec {
            key: "budget.server_cores",
            expected: "a whole number from 1 to 4096",
            doc: "database server cores, for sizing advice",
        },
        KeySpec {
            key: "budget.effective_spindles",
            expected: "a whole number from 0 to 1000",
            doc: "effective spindles, for sizing advice",
        },
        // --- observability (issue 5): `monitor.*`, one per `MonitorConfig::KEYS` entry ---
        KeySpec {
            key: "monitor.enabled",
            expected: "true or false",
            doc: "whether start_monitor runs the loop",
        },
        KeySpec {
            key: "monitor.pool_interval",
            expected: "a duration",
            doc: "how often pools and ops are checked",
        },
        KeySpec {
            key: "monitor.breaker_interval",
            expected: "a duration",
            doc: "how often breakers are checked",
        },
        KeySpec {
            key: "monitor.health_interval",
            expected: "a duration",
            doc: "how often the health report is made",
        },
        KeySpec {
            key: "monitor.sample_interval",
            expected: "a duration",
            doc: "how often pools are sampled for the chart",
        },
        KeySpec {
            key: "monitor.samples",
            expected: "a whole number from 2 to 100000",
            doc: "samples kept per pool",
        },
        KeySpec {
            key: "monitor.utilization",
            expected: "a percentage from 1 to 100",
            doc: "pool utilization that raises an alert",
        },
        KeySpec {
            key: "monitor.acquire_wait",
            expected: "a duration",
            doc: "acquire wait that raises an alert",
        },
        KeySpec {
            key: "monitor.slow_op",
            expected: "a duration",
            doc: "op duration that raises an alert",
        },
        KeySpec {
            key: "monitor.connection_storm",
            expected: "a whole number from 1 to 1000000",
            doc: "new connections a minute per pool that raise an alert",
        },
        KeySpec {
            key: "monitor.cooldown",
            expected: "a duration",
            doc: "the same alert is sent at most once per cooldown",
        },
        KeySpec {
            key: "monitor.history",
            expected: "a whole number from 1 to 100000",
            doc: "alerts kept in the history",
        },
        KeySpec {
            key: "monitor.health_timeout",
            expected: "a duration",
            doc: "time allowed for the health check's round trip",
        },
        // --- end observability ---
    ];

    /// Applies one setting (`profile` is handled by the loader).
    pub fn set(&mut self, key: &str, value: &Value) -> Result<(), String> {
        match key {
            "url" => {
                let url = value.as_str().ok_or("a postgres:// URL")?;
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err("a URL starting with postgres:// or postgresql://".into());
                }
                self.url = Some(DatabaseUrl::new(url));
            }
            "default_pool" => {
                self.default_pool = Some(value.as_str().ok_or("a pool name")?.to_owned())
            }
            "shutdown_timeout" => {
                self.shutdown_timeout = parse::duration(value, Duration::from_secs(3600))?
            }
            "ops_check" => {
                self.ops_check = match parse::choice(value, &["warn", "error", "off"])? {
                    "warn" => crate::op::OpsCheck::Warn,
                    "error" => crate::op::OpsCheck::Error,
                    _ => crate::op::OpsCheck::Off,
                }
            }
            "budget.instances" => self.instances = parse::count(value, 1, 10_000)?,
            "budget.mode" => {
                self.budget_mode = match parse::choice(value, &["error", "warn", "scale"])? {
                    "error" => BudgetMode::Error,
                    "warn" => BudgetMode::Warn,
                    _ => BudgetMode::Scale,
                }
            }
            "budget.headroom" => self.headroom = parse::count(value, 0, 10_000)?,
            "budget.server_cores" => self.server_cores = Some(parse::count(value, 1, 4096)?),
            "budget.effective_spindles" => self.effective_spindles = parse::count(value, 0, 1000)?,
            // --- observability (issue 5) ---
            monitor if monitor.starts_with("monitor.") => {
                self.monitor.set(&monitor["monitor.".len()..], value)?
            }
            // --- end observability ---
            other => return Err(format!("a runtime key (not `{other}`)")),
        }
        Ok(())
    }
}
