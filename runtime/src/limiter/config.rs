use std::time::Duration;

use crate::config::{Invalid, KeySpec, Section, Value, parse};
use crate::error::PolicyKind;

const HOUR: Duration = Duration::from_secs(3600);

/// The settings of one rate limiter (`limiter NAME { ... }`, `[limiters.NAME]`).
///
/// `per_second` is required: a limiter nobody gave a rate would throttle a database at a
/// guessed one. Defaults otherwise: `burst = ceil(per_second)` (one second's worth),
/// `wait = false` (reject at once: the caller's retry policy and deadline decide what
/// next), `max_wait = "1s"` when waiting, `per_key = false`, `max_keys = 10000`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LimiterConfig {
    /// Permits per second, fractions allowed (`0.5`: one every two seconds).
    pub per_second: Option<f64>,
    /// Permits that may be taken at once after a quiet period.
    pub burst: Option<u32>,
    /// Wait for a permit (within `max_wait` and the caller's deadline) instead of rejecting.
    pub wait: bool,
    /// The longest a call waits for a permit.
    pub max_wait: Duration,
    /// One limit per key (tenant) instead of one for all.
    pub per_key: bool,
    /// The most keys tracked at once.
    pub max_keys: u32,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig {
            per_second: None,
            burst: None,
            wait: false,
            max_wait: Duration::from_secs(1),
            per_key: false,
            max_keys: 10_000,
        }
    }
}

impl LimiterConfig {
    /// The burst in force: `burst`, or one second's worth of permits (at least 1).
    pub fn effective_burst(&self) -> u32 {
        self.burst.unwrap_or_else(|| {
            let per_second = self.per_second.unwrap_or(1.0);
            (per_second.ceil() as u32).max(1)
        })
    }
}

const PER_SECOND: &str = "a number above 0 and at most 1000000, such as 100 or 0.5";

impl Section for LimiterConfig {
    const KIND: PolicyKind = PolicyKind::Limiter;

    const KEYS: &'static [KeySpec] = &[
        KeySpec {
            key: "per_second",
            expected: PER_SECOND,
            doc: "Permits per second, fractions allowed (required).",
        },
        KeySpec {
            key: "burst",
            expected: "a whole number from 1 to 1000000",
            doc: "Permits that may be taken at once (default: ceil(per_second)).",
        },
        KeySpec {
            key: "wait",
            expected: "true or false",
            doc: "Wait for a permit instead of rejecting at once (default false).",
        },
        KeySpec {
            key: "max_wait",
            expected: "a duration such as \"250ms\", up to 1h",
            doc: "The longest a call waits for a permit when `wait` is on (default 1s).",
        },
        KeySpec {
            key: "per_key",
            expected: "true or false",
            doc: "One limit per key (tenant) instead of one for all (default false).",
        },
        KeySpec {
            key: "max_keys",
            expected: "a whole number from 1 to 10000000",
            doc: "The most keys tracked at once; new keys are rejected beyond (default 10000).",
        },
    ];

    fn set(&mut self, key: &str, value: &Value) -> Result<(), String> {
        match key {
            "per_second" => {
                self.per_second = Some(
                    value
                        .as_f64()
                        .filter(|x| *x > 0.0 && *x <= 1_000_000.0)
                        .ok_or_else(|| PER_SECOND.to_owned())?,
                )
            }
            "burst" => self.burst = Some(parse::count(value, 1, 1_000_000)?),
            "wait" => self.wait = parse::flag(value)?,
            "max_wait" => self.max_wait = parse::duration(value, HOUR)?,
            "per_key" => self.per_key = parse::flag(value)?,
            "max_keys" => self.max_keys = parse::count(value, 1, 10_000_000)?,
            _ => return Err(crate::breaker::unknown_key(Self::KEYS)),
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), Invalid> {
        if self.per_second.is_none() {
            return Err(Invalid::new(
                "per_second",
                "(not set)",
                "a rate for every limiter, such as per_second = 100",
            ));
        }
        Ok(())
    }
}
