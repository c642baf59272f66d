use std::time::Duration;

use crate::config::{KeySpec, Value, parse};

/// Settings of the monitor, the sampling ring and the health check: the `monitor.*` keys of
/// the configuration (`DB__MONITOR__POOL_INTERVAL=5s`). Defaults follow the seed systems:
/// pools every 15 s, breakers every 10 s, health every 30 s; alerts above 80 % utilization,
/// 5 s acquire waits, 1 s ops, 100 new connections a minute.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MonitorConfig {
    /// Whether [`Runtime::start_monitor`](crate::Runtime::start_monitor) starts the loop.
    pub enabled: bool,
    /// How often pool statistics and op durations are checked (and metrics published).
    pub pool_interval: Duration,
    /// How often breaker states are checked.
    pub breaker_interval: Duration,
    /// How often the health report (with a database round trip) is made.
    pub health_interval: Duration,
    /// How often each pool is sampled for the utilization chart.
    pub sample_interval: Duration,
    /// Samples kept per pool.
    pub samples: u32,
    /// Pool utilization (percent) above which the monitor alerts and health recommends.
    pub utilization_pct: f64,
    /// Acquire waits longer than this raise an alert.
    pub acquire_wait: Duration,
    /// Ops slower than this raise an alert.
    pub slow_op: Duration,
    /// Connections opened per minute per pool to replace closed ones (beyond the pool's
    /// growth) above which the monitor reports a connection storm.
    pub connection_storm: u32,
    /// The same alert (kind and subject) is sent at most once per cooldown.
    pub cooldown: Duration,
    /// Alerts kept in the history.
    pub history: u32,
    /// Time allowed for the health check's database round trip.
    pub health_timeout: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            enabled: true,
            pool_interval: Duration::from_secs(15),
            breaker_interval: Duration::from_secs(10),
            health_interval: Duration::from_secs(30),
            sample_interval: Duration::from_secs(2),
            samples: 150,
            utilization_pct: 80.0,
            acquire_wait: Duration::from_secs(5),
            slow_op: Duration::from_secs(1),
            connection_storm: 100,
            cooldown: Duration::from_secs(300),
            history: 100,
            health_timeout: Duration::from_secs(2),
        }
    }
}

const HOUR: Duration = Duration::from_secs(3600);

macro_rules! key {
    ($key:literal, $expected:literal, $doc:literal) => {
        KeySpec {
            key: $key,
            expected: $expected,
            doc: $doc,
        }
    };
}

impl MonitorConfig {
    /// Accepted keys, without the `monitor.` prefix.
    pub const KEYS: &'static [KeySpec] = &[
        key!(
            "enabled",
            "true or false",
            "whether start_monitor runs the loop"
        ),
        key!(
            "pool_interval",
            "a duration",
            "how often pools and ops are checked"
        ),
        key!(
            "breaker_interval",
            "a duration",
            "how often breakers are checked"
        ),
        key!(
            "health_interval",
            "a duration",
            "how often the health report is made"
        ),
        key!(
            "sample_interval",
            "a duration",
            "how often pools are sampled for the chart"
        ),
        key!(
            "samples",
            "a whole number from 2 to 100000",
            "samples kept per pool"
        ),
        key!(
            "utilization",
            "a percentage from 1 to 100",
            "pool utilization that raises an alert"
        ),
        key!(
            "acquire_wait",
            "a duration",
            "acquire wait that raises an alert"
        ),
        key!("slow_op", "a duration", "op duration that raises an alert"),
        key!(
            "connection_storm",
            "a whole number from 1 to 1000000",
            "new connections a minute per pool that raise an alert"
        ),
        key!(
            "cooldown",
            "a duration",
            "the same alert is sent at most once per cooldown"
        ),
        key!(
            "history",
            "a whole number from 1 to 100000",
            "alerts kept in the history"
        ),
        key!(
            "health_timeout",
            "a duration",
            "time allowed for the health check's round trip"
        ),
    ];

    /// Applies one key (without the `monitor.` prefix).
    pub fn set(&mut self, key: &str, value: &Value) -> Result<(), String> {
        let interval = |v: &Value| -> Result<Duration, String> {
            let d = parse::duration(v, HOUR)?;
            if d < Duration::from_millis(10) {
                return Err("a duration of at least 10ms".into());
            }
            Ok(d)
        };
        match key {
            "enabled" => self.enabled = parse::flag(value)?,
            "pool_interval" => self.pool_interval = interval(value)?,
            "breaker_interval" => self.breaker_interval = interval(value)?,
            "health_interval" => self.health_interval = interval(value)?,
            "sample_interval" => self.sample_interval = interval(value)?,
            "samples" => self.samples = parse::count(value, 2, 100_000)?,
            "utilization" => self.utilization_pct = parse::number(value, 1.0, 100.0)?,
            "acquire_wait" => self.acquire_wait = parse::duration(value, HOUR)?,
            "slow_op" => self.slow_op = parse::duration(value, HOUR)?,
            "connection_storm" => self.connection_storm = parse::count(value, 1, 1_000_000)?,
            "cooldown" => self.cooldown = parse::duration(value, 24 * HOUR)?,
            "history" => self.history = parse::count(value, 1, 100_000)?,
            "health_timeout" => self.health_timeout = interval(value)?,
            other => return Err(format!("one of the monitor keys (not `{other}`)")),
        }
        Ok(())
    }
}
