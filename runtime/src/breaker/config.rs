use std::fmt;
use std::time::Duration;

use crate::error::PolicyKind;
use crate::settings::fields;
use crate::settings::{Invalid, Section, Value};
use sqlx_resilience_schema::{self as schema, Schema};

/// The rate window used when `failure_rate` or `slow_rate` is set without `window` or
/// `window_calls`.
pub const DEFAULT_RATE_WINDOW: Duration = schema::kinds::DEFAULT_RATE_WINDOW;

/// The failure rate (percent) used when no trip condition is configured at all.
pub const DEFAULT_FAILURE_RATE: f64 = schema::kinds::DEFAULT_FAILURE_RATE;

/// The cap on the open duration when `open_backoff` grows it and `open_for_max` is not set
/// (or `open_for`, when that is longer).
pub const DEFAULT_OPEN_FOR_MAX: Duration = schema::kinds::DEFAULT_OPEN_FOR_MAX;

/// How a breaker behaves, set by configuration (`mode`) or at run time
/// ([`CircuitBreaker::set_mode`](super::CircuitBreaker::set_mode)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BreakerMode {
    /// The state machine decides: closed, open, half-open.
    #[default]
    Normal,
    /// Every call is permitted and nothing is recorded.
    Disabled,
    /// Every call is permitted; outcomes are recorded and the transitions the breaker would
    /// make are reported as events (with `enforced = false`), but nothing is rejected.
    MetricsOnly,
    /// Every call is rejected until the breaker is reset.
    ForcedOpen,
}

crate::settings::fields::choices!(
    /// The name used in configuration (`normal`, `disabled`, `metrics_only`, `forced_open`).
    pub fn as_str for BreakerMode {
        Normal = "normal",
        Disabled = "disabled",
        MetricsOnly = "metrics_only",
        ForcedOpen = "forced_open",
    }
);

impl fmt::Display for BreakerMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

crate::settings::fields::settings! {
    /// The settings of one circuit breaker (`breaker NAME { ... }`, `[breakers.NAME]`).
    ///
    /// Trip conditions (any one configured trips the breaker): `failures` within `within`,
    /// `consecutive_failures`, `failure_rate`, `slow_rate`. With none configured, the breaker trips
    /// when at least half of the calls of the last minute failed (`failure_rate = 50`,
    /// `window = "60s"`, with the default `minimum_calls = 10`): Resilience4j's 50 % threshold,
    /// but over a time window and a small minimum, because a database op may see a handful of
    /// calls a minute or thousands a second, and a 100-call count window (Resilience4j's default)
    /// would take minutes to fill for a quiet op and keep stale outcomes for as long.
    ///
    /// How long it stays open depends on why it opened ([`Recovery`](super::Recovery)): opened
    /// because the server was unreachable, it half-opens the moment a probe reaches the server
    /// (`open_for` is only the longest wait); opened by the ops' own failures (timeouts, server
    /// errors, slow calls), it waits `open_for` (default 10 s: long enough to let an overloaded
    /// server breathe, short enough that an overload blip does not become a long outage).
    #[derive(Debug, Clone, PartialEq)]
    #[non_exhaustive]
    pub struct BreakerConfig: schema::BREAKER {
        /// Trip after this many failures within [`BreakerConfig::within`].
        pub failures: Option<u32> = "failures",
        /// The sliding time window for [`BreakerConfig::failures`].
        pub within: Option<Duration> = "within",
        /// Trip after this many failures in a row.
        pub consecutive_failures: Option<u32> = "consecutive_failures",
        /// Trip when at least this percentage of the calls in the window failed.
        pub failure_rate: Option<f64> = "failure_rate",
        /// Trip when at least this percentage of the calls in the window were slow.
        pub slow_rate: Option<f64> = "slow_rate",
        /// A call that takes at least this long is slow (even when it succeeds).
        pub slow_call: Option<Duration> = "slow_call",
        /// A time-based window for the rates.
        pub window: Option<Duration> = "window",
        /// A count-based window for the rates: the last N calls.
        pub window_calls: Option<u32> = "window_calls",
        /// Rates are judged only once the window holds at least this many calls (capped at
        /// `window_calls` for a count window).
        pub minimum_calls: u32 = "minimum_calls",
        /// How long the breaker stays open before it lets probes through, when the ops' own
        /// failures opened it; the longest wait when an unreachable server did.
        pub open_for: Duration = "open_for",
        /// The cap on the open duration when `open_backoff` grows it.
        pub open_for_max: Option<Duration> = "open_for_max",
        /// The open duration is multiplied by this each time a probe fails (1.0: no growth).
        pub open_backoff: f64 = "open_backoff",
        /// How many probes run in the half-open state; all must succeed to close.
        pub half_open: u32 = "half_open",
        /// Normal, disabled, metrics only or forced open.
        pub mode: BreakerMode = "mode",
    }
}

impl BreakerConfig {
    /// Does any trip condition apply?
    pub fn has_trip_condition(&self) -> bool {
        self.failures.is_some()
            || self.consecutive_failures.is_some()
            || self.failure_rate.is_some()
            || self.slow_rate.is_some()
    }

    /// The configuration with the documented defaults filled in: a trip condition
    /// (`failure_rate = 50`) when none is set, a rate window (`window = "60s"`) when a rate is
    /// set without one, and `open_for_max` (5 minutes, or `open_for` when longer).
    pub fn resolved(&self) -> BreakerConfig {
        let mut c = self.clone();
        if !c.has_trip_condition() {
            c.failure_rate = Some(DEFAULT_FAILURE_RATE);
        }
        let has_rate = c.failure_rate.is_some() || c.slow_rate.is_some();
        if has_rate && c.window.is_none() && c.window_calls.is_none() {
            c.window = Some(DEFAULT_RATE_WINDOW);
        }
        if c.open_for_max.is_none() {
            c.open_for_max = Some(DEFAULT_OPEN_FOR_MAX.max(c.open_for));
        }
        c
    }
}

impl Section for BreakerConfig {
    const KIND: PolicyKind = PolicyKind::Breaker;
    const SCHEMA: &'static Schema = &schema::BREAKER;

    fn set(&mut self, key: &str, value: &Value) -> Result<(), String> {
        fields::set(self, key, value)
    }

    fn validate(&self) -> Result<(), Invalid> {
        fields::validate(self)
    }
}
