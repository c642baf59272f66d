use std::time::Duration;

use crate::config::Value;
use crate::config::schema;
use crate::settings::fields;

crate::settings::fields::settings! {
    /// Settings of the monitor, the sampling ring and the health check: the `monitor.*` keys of
    /// the configuration (`DB__MONITOR__POOL_INTERVAL=5s`). Defaults follow the seed systems:
    /// pools every 15 s, breakers every 10 s, health every 30 s; alerts above 80 % utilization,
    /// 5 s acquire waits, 1 s ops, 100 new connections a minute.
    #[derive(Debug, Clone, PartialEq)]
    #[non_exhaustive]
    pub struct MonitorConfig: schema::MONITOR {
        /// Whether [`Runtime::start_monitor`](crate::Runtime::start_monitor) starts the loop.
        pub enabled: bool = "enabled",
        /// How often pool statistics and op durations are checked (and metrics published).
        pub pool_interval: Duration = "pool_interval",
        /// How often breaker states are checked.
        pub breaker_interval: Duration = "breaker_interval",
        /// How often the health report (with a database round trip) is made.
        pub health_interval: Duration = "health_interval",
        /// How often each pool is sampled for the utilization chart.
        pub sample_interval: Duration = "sample_interval",
        /// Samples kept per pool.
        pub samples: u32 = "samples",
        /// Pool utilization (percent) above which the monitor alerts and health recommends.
        pub utilization_pct: f64 = "utilization",
        /// Acquire waits longer than this raise an alert.
        pub acquire_wait: Duration = "acquire_wait",
        /// Ops slower than this raise an alert.
        pub slow_op: Duration = "slow_op",
        /// Connections opened per minute per pool to replace closed ones (beyond the pool's
        /// growth) above which the monitor reports a connection storm.
        pub connection_storm: u32 = "connection_storm",
        /// The same alert (kind and subject) is sent at most once per cooldown.
        pub cooldown: Duration = "cooldown",
        /// Alerts kept in the history.
        pub history: u32 = "history",
        /// Time allowed for the health check's database round trip.
        pub health_timeout: Duration = "health_timeout",
    }
}

impl MonitorConfig {
    /// Applies one key (without the `monitor.` prefix).
    pub fn set(&mut self, key: &str, value: &Value) -> Result<(), String> {
        fields::set(self, key, value)
    }
}
