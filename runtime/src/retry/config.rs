use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::classify::FailureKind;
use crate::config::{Invalid, KeySpec, Section, Value, parse};
use crate::error::PolicyKind;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// How a computed backoff delay is randomised, so that callers who failed together do not
/// retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Jitter {
    /// Uniform in `[0, delay]` (AWS's "full jitter"): the best spread, the default.
    #[default]
    Full,
    /// `delay / 2` plus uniform in `[0, delay / 2]`: never shorter than half the delay.
    Equal,
    /// The computed delay exactly.
    None,
}

impl Jitter {
    /// The name used in configuration (`full`, `equal`, `none`).
    pub fn as_str(self) -> &'static str {
        match self {
            Jitter::Full => "full",
            Jitter::Equal => "equal",
            Jitter::None => "none",
        }
    }
}

impl fmt::Display for Jitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds an `on.<kind>.*` key may name: those that running again can fix.
pub const RETRYABLE_KINDS: [FailureKind; 8] = [
    FailureKind::ConnectionLost,
    FailureKind::Contention,
    FailureKind::Backpressure,
    FailureKind::ServerShutdown,
    FailureKind::Failover,
    FailureKind::Deadline,
    FailureKind::StatementTimeout,
    FailureKind::Canceled,
];

const FIELDS: [&str; 4] = ["attempts", "base", "factor", "max_delay"];

macro_rules! on_keys {
    ($($kind:literal),*) => {
        [$([
            concat!("on.", $kind, ".attempts"),
            concat!("on.", $kind, ".base"),
            concat!("on.", $kind, ".factor"),
            concat!("on.", $kind, ".max_delay"),
        ]),*]
    };
}

/// Every `on.<kind>.<field>` key, in the order of [`RETRYABLE_KINDS`] and `FIELDS`, so that
/// validation findings can name the key with a `&'static str`.
const ON_KEYS: [[&str; 4]; 8] = on_keys!(
    "connection_lost",
    "contention",
    "backpressure",
    "server_shutdown",
    "failover",
    "deadline",
    "statement_timeout",
    "canceled"
);

fn on_key(kind: FailureKind, field: usize) -> &'static str {
    let k = RETRYABLE_KINDS.iter().position(|r| *r == kind).unwrap_or(0);
    ON_KEYS[k][field]
}

/// The schedule of one failure kind, overriding the policy's (`on.<kind>.*` keys); unset
/// fields take the policy's value.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct KindOverride {
    /// Attempts in all (the first included); 1 means this kind is never retried.
    pub attempts: Option<u32>,
    /// The first delay.
    pub base: Option<Duration>,
    /// Each delay is the previous one times this.
    pub factor: Option<f64>,
    /// The cap on one delay.
    pub max_delay: Option<Duration>,
}

/// The settings of one retry policy (`retry NAME { ... }`, `[retries.NAME]`).
///
/// Defaults: 3 attempts, exponential from 50 ms × 2 capped at 2 s, full jitter, no total
/// time cap (the caller's deadline still applies), and a retry budget of 20 % of the calls of
/// the last 10 s plus 10 retries a second. Short first delays suit a database: most transient
/// failures (a dropped connection, a deadlock victim) clear within milliseconds, and the
/// budget, not the attempt count, is what keeps a dead database from seeing a multiple of
/// normal traffic.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The first delay.
    pub base: Duration,
    /// Each delay is the previous one times this.
    pub factor: f64,
    /// The cap on one delay (before jitter).
    pub max_delay: Duration,
    /// The cap on the time across all attempts and delays.
    pub max_elapsed: Option<Duration>,
    /// How delays are randomised.
    pub jitter: Jitter,
    /// Per-kind schedules. A kind listed here is retried even if it is not transient by
    /// default.
    pub on: BTreeMap<FailureKind, KindOverride>,
    /// Retries may add at most this percentage of the calls in the budget window.
    pub budget_percent: f64,
    /// ...plus this many retries per second regardless of traffic.
    pub budget_min_per_second: u32,
    /// The window over which the budget counts calls and retries.
    pub budget_window: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: 3,
            base: Duration::from_millis(50),
            factor: 2.0,
            max_delay: Duration::from_secs(2),
            max_elapsed: None,
            jitter: Jitter::Full,
            on: BTreeMap::new(),
            budget_percent: 20.0,
            budget_min_per_second: 10,
            budget_window: Duration::from_secs(10),
        }
    }
}

fn dur(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn kinds_list() -> String {
    let names: Vec<&str> = RETRYABLE_KINDS.iter().map(|k| k.as_str()).collect();
    names.join(", ")
}

impl RetryConfig {
    fn set_on(&mut self, key: &str, value: &Value) -> Result<(), String> {
        let mut parts = key.splitn(3, '.');
        let (_, kind, field) = (parts.next(), parts.next(), parts.next());
        let kind = kind.unwrap_or_default();
        let Some(kind) = FailureKind::from_name(kind).filter(|k| RETRYABLE_KINDS.contains(k))
        else {
            return Err(format!(
                "a key `on.<kind>.<setting>` where <kind> is one of {}, not `{kind}`",
                kinds_list()
            ));
        };
        let mut o = self.on.get(&kind).copied().unwrap_or_default();
        match field.unwrap_or_default() {
            "attempts" => o.attempts = Some(parse::count(value, 1, 100)?),
            "base" => o.base = Some(parse::duration(value, HOUR)?),
            "factor" => o.factor = Some(parse::number(value, 1.0, 10.0)?),
            "max_delay" => o.max_delay = Some(parse::duration(value, HOUR)?),
            other => {
                return Err(format!(
                    "a key `on.{}.<setting>` where <setting> is one of {}, not `{other}`",
                    kind.as_str(),
                    FIELDS.join(", ")
                ));
            }
        }
        self.on.insert(kind, o);
        Ok(())
    }
}

impl Section for RetryConfig {
    const KIND: PolicyKind = PolicyKind::Retry;

    const KEYS: &'static [KeySpec] = &[
        KeySpec {
            key: "attempts",
            expected: "a whole number from 1 to 100",
            doc: "Attempts in all, the first included (default 3).",
        },
        KeySpec {
            key: "base",
            expected: "a duration such as \"50ms\", up to 1h",
            doc: "The first delay (default 50ms).",
        },
        KeySpec {
            key: "factor",
            expected: "a number from 1 to 10",
            doc: "Each delay is the previous one times this (default 2).",
        },
        KeySpec {
            key: "max_delay",
            expected: "a duration such as \"2s\", up to 1h",
            doc: "The cap on one delay, before jitter (default 2s).",
        },
        KeySpec {
            key: "max_elapsed",
            expected: "a duration such as \"10s\", up to 1day",
            doc: "The cap on the time across all attempts and delays (default none).",
        },
        KeySpec {
            key: "jitter",
            expected: "one of \"full\", \"equal\", \"none\"",
            doc: "How delays are randomised (default full: uniform in [0, delay]).",
        },
        KeySpec {
            key: "on.<kind>.attempts",
            expected: "a whole number from 1 to 100",
            doc: "Attempts for one failure kind; 1 means never retried.",
        },
        KeySpec {
            key: "on.<kind>.base",
            expected: "a duration such as \"500ms\", up to 1h",
            doc: "The first delay for one failure kind.",
        },
        KeySpec {
            key: "on.<kind>.factor",
            expected: "a number from 1 to 10",
            doc: "The growth factor for one failure kind.",
        },
        KeySpec {
            key: "on.<kind>.max_delay",
            expected: "a duration such as \"30s\", up to 1h",
            doc: "The cap on one delay for one failure kind.",
        },
        KeySpec {
            key: "budget_percent",
            expected: "a number from 0 to 1000",
            doc: "Retries may add at most this percentage of recent calls (default 20).",
        },
        KeySpec {
            key: "budget_min_per_second",
            expected: "a whole number from 0 to 1000000",
            doc: "Retries always allowed per second, on top of the percentage (default 10).",
        },
        KeySpec {
            key: "budget_window",
            expected: "a duration such as \"10s\", up to 1h",
            doc: "The window the retry budget counts over (default 10s).",
        },
    ];

    fn set(&mut self, key: &str, value: &Value) -> Result<(), String> {
        match key {
            "attempts" => self.attempts = parse::count(value, 1, 100)?,
            "base" => self.base = parse::duration(value, HOUR)?,
            "factor" => self.factor = parse::number(value, 1.0, 10.0)?,
            "max_delay" => self.max_delay = parse::duration(value, HOUR)?,
            "max_elapsed" => self.max_elapsed = Some(parse::duration(value, DAY)?),
            "jitter" => {
                self.jitter = match parse::choice(value, &["full", "equal", "none"])? {
                    "equal" => Jitter::Equal,
                    "none" => Jitter::None,
                    _ => Jitter::Full,
                }
            }
            "budget_percent" => self.budget_percent = parse::number(value, 0.0, 1000.0)?,
            "budget_min_per_second" => {
                self.budget_min_per_second = parse::count(value, 0, 1_000_000)?
            }
            "budget_window" => self.budget_window = parse::duration(value, HOUR)?,
            _ if key.starts_with("on.") => return self.set_on(key, value),
            _ => return Err(crate::breaker::unknown_key(Self::KEYS)),
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), Invalid> {
        if self.base > self.max_delay {
            return Err(Invalid::new(
                "base",
                dur(self.base),
                format!("a duration at most `max_delay` ({})", dur(self.max_delay)),
            ));
        }
        for (&kind, o) in &self.on {
            let base = o.base.unwrap_or(self.base);
            let max = o.max_delay.unwrap_or(self.max_delay);
            if base > max {
                let (key, value) = match o.base {
                    Some(_) => (on_key(kind, 1), base),
                    None => (on_key(kind, 3), max),
                };
                return Err(Invalid::new(
                    key,
                    dur(value),
                    format!(
                        "`on.{k}.base` ({}) at most `on.{k}.max_delay` ({}); set \
                         `on.{k}.max_delay` when the base is above the policy's max_delay",
                        dur(base),
                        dur(max),
                        k = kind.as_str()
                    ),
                ));
            }
        }
        if let Some(total) = self.max_elapsed
            && total < self.base
        {
            return Err(Invalid::new(
                "max_elapsed",
                dur(total),
                format!("a duration at least `base` ({})", dur(self.base)),
            ));
        }
        Ok(())
    }
}
