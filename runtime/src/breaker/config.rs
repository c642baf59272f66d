use std::fmt;
use std::time::Duration;

use crate::config::{Invalid, KeySpec, Section, Value, parse};
use crate::error::PolicyKind;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// The rate window used when `failure_rate` or `slow_rate` is set without `window` or
/// `window_calls`.
pub const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(60);

/// The failure rate (percent) used when no trip condition is configured at all.
pub const DEFAULT_FAILURE_RATE: f64 = 50.0;

/// The cap on the open duration when `open_backoff` grows it and `open_for_max` is not set
/// (or `open_for`, when that is longer).
pub const DEFAULT_OPEN_FOR_MAX: Duration = Duration::from_secs(300);

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

impl BreakerMode {
    /// The name used in configuration (`normal`, `disabled`, `metrics_only`, `forced_open`).
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerMode::Normal => "normal",
            BreakerMode::Disabled => "disabled",
            BreakerMode::MetricsOnly => "metrics_only",
            BreakerMode::ForcedOpen => "forced_open",
        }
    }

    const NAMES: [&'static str; 4] = ["normal", "disabled", "metrics_only", "forced_open"];

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "normal" => Some(BreakerMode::Normal),
            "disabled" => Some(BreakerMode::Disabled),
            "metrics_only" => Some(BreakerMode::MetricsOnly),
            "forced_open" => Some(BreakerMode::ForcedOpen),
            _ => None,
        }
    }
}

impl fmt::Display for BreakerMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
pub struct BreakerConfig {
    /// Trip after this many failures within [`BreakerConfig::within`].
    pub failures: Option<u32>,
    /// The sliding time window for [`BreakerConfig::failures`].
    pub within: Option<Duration>,
    /// Trip after this many failures in a row.
    pub consecutive_failures: Option<u32>,
    /// Trip when at least this percentage of the calls in the window failed.
    pub failure_rate: Option<f64>,
    /// Trip when at least this percentage of the calls in the window were slow.
    pub slow_rate: Option<f64>,
    /// A call that takes at least this long is slow (even when it succeeds).
    pub slow_call: Option<Duration>,
    /// A time-based window for the rates.
    pub window: Option<Duration>,
    /// A count-based window for the rates: the last N calls.
    pub window_calls: Option<u32>,
    /// Rates are judged only once the window holds at least this many calls (capped at
    /// `window_calls` for a count window).
    pub minimum_calls: u32,
    /// How long the breaker stays open before it lets probes through, when the ops' own
    /// failures opened it; the longest wait when an unreachable server did.
    pub open_for: Duration,
    /// The cap on the open duration when `open_backoff` grows it.
    pub open_for_max: Option<Duration>,
    /// The open duration is multiplied by this each time a probe fails (1.0: no growth).
    pub open_backoff: f64,
    /// How many probes run in the half-open state; all must succeed to close.
    pub half_open: u32,
    /// Normal, disabled, metrics only or forced open.
    pub mode: BreakerMode,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: None,
            within: None,
            consecutive_failures: None,
            failure_rate: None,
            slow_rate: None,
            slow_call: None,
            window: None,
            window_calls: None,
            minimum_calls: 10,
            open_for: Duration::from_secs(10),
            open_for_max: None,
            open_backoff: 1.0,
            half_open: 1,
            mode: BreakerMode::Normal,
        }
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

/// The message for a key that is not one of `keys` (callers normally check keys first).
pub(crate) fn unknown_key(keys: &[KeySpec]) -> String {
    let names: Vec<&str> = keys.iter().map(|k| k.key).collect();
    format!("one of the keys {}", names.join(", "))
}

fn dur(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl Section for BreakerConfig {
    const KIND: PolicyKind = PolicyKind::Breaker;

    const KEYS: &'static [KeySpec] = &[
        KeySpec {
            key: "failures",
            expected: "a whole number from 1 to 1000000",
            doc: "Trip after this many failures within `within`.",
        },
        KeySpec {
            key: "within",
            expected: "a duration such as \"60s\", up to 1h",
            doc: "The sliding time window for `failures`.",
        },
        KeySpec {
            key: "consecutive_failures",
            expected: "a whole number from 1 to 1000000",
            doc: "Trip after this many failures in a row.",
        },
        KeySpec {
            key: "failure_rate",
            expected: "a percentage above 0 and at most 100, such as 50",
            doc: "Trip when at least this percentage of the calls in the window failed.",
        },
        KeySpec {
            key: "slow_rate",
            expected: "a percentage above 0 and at most 100, such as 50",
            doc: "Trip when at least this percentage of the calls in the window were slow.",
        },
        KeySpec {
            key: "slow_call",
            expected: "a duration such as \"2s\", up to 1h",
            doc: "A call that takes at least this long counts as slow, even when it succeeds.",
        },
        KeySpec {
            key: "window",
            expected: "a duration such as \"60s\", up to 1h",
            doc: "A time-based window for the rates (default 60s when a rate is set).",
        },
        KeySpec {
            key: "window_calls",
            expected: "a whole number from 2 to 100000",
            doc: "A count-based window for the rates: the last N calls.",
        },
        KeySpec {
            key: "minimum_calls",
            expected: "a whole number from 1 to 100000",
            doc: "Rates are judged once the window holds this many calls (default 10).",
        },
        KeySpec {
            key: "open_for",
            expected: "a duration such as \"30s\", up to 1h",
            doc: "How long a breaker opened by the ops' own failures stays open before probing; for an unreachable server, the longest wait (default 10s).",
        },
        KeySpec {
            key: "open_for_max",
            expected: "a duration such as \"5m\", up to 24h",
            doc: "The cap on the open duration when `open_backoff` grows it (default 5m).",
        },
        KeySpec {
            key: "open_backoff",
            expected: "a number from 1 to 10",
            doc: "Multiply the open duration by this each time a probe fails (default 1: no growth).",
        },
        KeySpec {
            key: "half_open",
            expected: "a whole number from 1 to 1000",
            doc: "Probes let through when half-open; all must succeed to close (default 1).",
        },
        KeySpec {
            key: "mode",
            expected: "one of \"normal\", \"disabled\", \"metrics_only\", \"forced_open\"",
            doc: "Normal, disabled, metrics only (never rejects) or forced open (default normal).",
        },
    ];

    fn set(&mut self, key: &str, value: &Value) -> Result<(), String> {
        match key {
            "failures" => self.failures = Some(parse::count(value, 1, 1_000_000)?),
            "within" => self.within = Some(parse::duration(value, HOUR)?),
            "consecutive_failures" => {
                self.consecutive_failures = Some(parse::count(value, 1, 1_000_000)?)
            }
            "failure_rate" => self.failure_rate = Some(parse::percent(value)?),
            "slow_rate" => self.slow_rate = Some(parse::percent(value)?),
            "slow_call" => self.slow_call = Some(parse::duration(value, HOUR)?),
            "window" => self.window = Some(parse::duration(value, HOUR)?),
            "window_calls" => self.window_calls = Some(parse::count(value, 2, 100_000)?),
            "minimum_calls" => self.minimum_calls = parse::count(value, 1, 100_000)?,
            "open_for" => self.open_for = parse::duration(value, HOUR)?,
            "open_for_max" => self.open_for_max = Some(parse::duration(value, DAY)?),
            "open_backoff" => self.open_backoff = parse::number(value, 1.0, 10.0)?,
            "half_open" => self.half_open = parse::count(value, 1, 1000)?,
            "mode" => {
                let name = parse::choice(value, &BreakerMode::NAMES)?;
                self.mode = BreakerMode::from_name(name).unwrap_or_default();
            }
            _ => return Err(unknown_key(Self::KEYS)),
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), Invalid> {
        match (self.failures, self.within) {
            (Some(n), None) => {
                return Err(Invalid::new(
                    "failures",
                    n,
                    "`within` as well: failures count within a time window, such as \
                     failures = 5, within = \"60s\"",
                ));
            }
            (None, Some(w)) => {
                return Err(Invalid::new(
                    "within",
                    dur(w),
                    "`failures` as well: how many failures within this window trip the breaker",
                ));
            }
            _ => {}
        }
        if let (Some(_), Some(n)) = (self.window, self.window_calls) {
            return Err(Invalid::new(
                "window_calls",
                n,
                "either `window` (a time window) or `window_calls` (the last N calls), not both",
            ));
        }
        let has_rate = self.failure_rate.is_some() || self.slow_rate.is_some();
        if !has_rate {
            if let Some(w) = self.window {
                return Err(Invalid::new(
                    "window",
                    dur(w),
                    "`failure_rate` or `slow_rate` as well: the window only applies to rates",
                ));
            }
            if let Some(n) = self.window_calls {
                return Err(Invalid::new(
                    "window_calls",
                    n,
                    "`failure_rate` or `slow_rate` as well: the window only applies to rates",
                ));
            }
        }
        if let (Some(rate), None) = (self.slow_rate, self.slow_call) {
            return Err(Invalid::new(
                "slow_rate",
                rate,
                "`slow_call` as well: the duration from which a call counts as slow",
            ));
        }
        if let Some(max) = self.open_for_max
            && max < self.open_for
        {
            return Err(Invalid::new(
                "open_for_max",
                dur(max),
                format!("a duration at least `open_for` ({})", dur(self.open_for)),
            ));
        }
        Ok(())
    }
}
