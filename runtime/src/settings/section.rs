use std::fmt;

use sqlx_resilience_schema::Schema;

use super::Value;
use crate::error::PolicyKind;

/// A setting that does not fit with the others, found by [`Section::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The key at fault (`min`, `on.contention.base`).
    pub key: String,
    /// Its value as a user would write it.
    pub value: String,
    /// What would have been accepted.
    pub expected: String,
}

impl Invalid {
    /// A new finding.
    pub fn new(
        key: impl Into<String>,
        value: impl fmt::Display,
        expected: impl Into<String>,
    ) -> Self {
        Invalid {
            key: key.into(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}

/// The settings of one named policy (a pool, a breaker, a retry policy, a limiter, a bulkhead).
///
/// Code defaults (`policies!`), configuration files and environment variables all go through
/// [`Section::set`], so every source gets the same checks and the same messages; the checks
/// are the [`Section::SCHEMA`]'s, the same `policies!` applies when the code compiles.
pub trait Section: Default + Clone + fmt::Debug + Send + Sync + 'static {
    /// Which kind of policy this configures.
    const KIND: PolicyKind;

    /// Every key [`Section::set`] accepts, with its rule, default and doc, and the rules
    /// between keys that [`Section::validate`] checks.
    const SCHEMA: &'static Schema;

    /// Applies one setting. On a key the schema does not have, or a value that does not fit,
    /// returns what was expected (the caller adds the key, value and origin) and changes
    /// nothing.
    fn set(&mut self, key: &str, value: &Value) -> Result<(), String>;

    /// Checks settings that only make sense together (after every source was applied).
    fn validate(&self) -> Result<(), Invalid>;
}
