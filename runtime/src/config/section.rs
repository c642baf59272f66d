use std::fmt;

use super::Value;
use crate::error::PolicyKind;

/// One accepted key of a settings section, for error messages and documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    /// The key as written in `policies!`, TOML and environment variables.
    pub key: &'static str,
    /// What a value must look like, phrased for "expected ...".
    pub expected: &'static str,
    /// One line of documentation.
    pub doc: &'static str,
}

/// A setting that does not fit with the others, found by [`Section::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The key at fault.
    pub key: &'static str,
    /// Its value as written.
    pub value: String,
    /// What would have been accepted.
    pub expected: String,
}

impl Invalid {
    /// A new finding.
    pub fn new(key: &'static str, value: impl fmt::Display, expected: impl Into<String>) -> Self {
        Invalid {
            key,
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}

/// The settings of one named policy (a pool, a breaker, a retry policy, a limiter, a bulkhead).
///
/// Code defaults (`policies!`), configuration files and environment variables all go through
/// [`Section::set`], so every source gets the same checks and the same messages.
pub trait Section: Default + Clone + fmt::Debug + Send + Sync + 'static {
    /// Which kind of policy this configures.
    const KIND: PolicyKind;

    /// Every key [`Section::set`] accepts.
    const KEYS: &'static [KeySpec];

    /// Applies one setting. `key` is one of [`Section::KEYS`]; on a value that does not fit,
    /// returns what was expected (the caller adds the key, value and origin).
    fn set(&mut self, key: &str, value: &Value) -> Result<(), String>;

    /// Checks settings that only make sense together (after every source was applied).
    fn validate(&self) -> Result<(), Invalid>;
}

/// Helpers for [`Section::set`] implementations.
pub mod parse {
    use std::time::Duration;

    use super::Value;

    /// A duration from 1 ms up to `max`.
    pub fn duration(value: &Value, max: Duration) -> Result<Duration, String> {
        let expected = || {
            format!(
                "a duration such as \"250ms\" or \"5s\", from 1ms to {}",
                humantime::format_duration(max)
            )
        };
        match value.as_duration() {
            Some(d) if d >= Duration::from_millis(1) && d <= max => Ok(d),
            _ => Err(expected()),
        }
    }

    /// A whole number in `min..=max`.
    pub fn count(value: &Value, min: u32, max: u32) -> Result<u32, String> {
        match value.as_u32() {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(format!("a whole number from {min} to {max}")),
        }
    }

    /// A number in `min..=max`.
    pub fn number(value: &Value, min: f64, max: f64) -> Result<f64, String> {
        match value.as_f64() {
            Some(x) if x >= min && x <= max => Ok(x),
            _ => Err(format!("a number from {min} to {max}")),
        }
    }

    /// A percentage in `(0, 100]`.
    pub fn percent(value: &Value) -> Result<f64, String> {
        match value.as_f64() {
            Some(x) if x > 0.0 && x <= 100.0 => Ok(x),
            _ => Err("a percentage above 0 and at most 100, such as 50".to_owned()),
        }
    }

    /// `true` or `false`.
    pub fn flag(value: &Value) -> Result<bool, String> {
        value.as_bool().ok_or_else(|| "true or false".to_owned())
    }

    /// One of `choices`.
    pub fn choice<'a>(value: &Value, choices: &[&'a str]) -> Result<&'a str, String> {
        value
            .as_str()
            .and_then(|s| choices.iter().copied().find(|c| *c == s.trim()))
            .ok_or_else(|| {
                let quoted: Vec<String> = choices.iter().map(|c| format!("\"{c}\"")).collect();
                format!("one of {}", quoted.join(", "))
            })
    }
}
