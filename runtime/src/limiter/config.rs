use std::time::Duration;

use crate::error::PolicyKind;
use crate::settings::fields;
use crate::settings::{Invalid, Section, Value};
use sqlx_resilience_schema::{self as schema, Schema};

crate::settings::fields::settings! {
    /// The settings of one rate limiter (`limiter NAME { ... }`, `[limiters.NAME]`).
    ///
    /// `per_second` is required: a limiter nobody gave a rate would throttle a database at a
    /// guessed one. Defaults otherwise: `burst = ceil(per_second)` (one second's worth),
    /// `wait = false` (reject at once: the caller's retry policy and deadline decide what
    /// next), `max_wait = "1s"` when waiting, `per_key = false`, `max_keys = 10000`.
    #[derive(Debug, Clone, PartialEq)]
    #[non_exhaustive]
    pub struct LimiterConfig: schema::LIMITER {
        /// Permits per second, fractions allowed (`0.5`: one every two seconds).
        pub per_second: Option<f64> = "per_second",
        /// Permits that may be taken at once after a quiet period.
        pub burst: Option<u32> = "burst",
        /// Wait for a permit (within `max_wait` and the caller's deadline) instead of rejecting.
        pub wait: bool = "wait",
        /// The longest a call waits for a permit.
        pub max_wait: Duration = "max_wait",
        /// One limit per key (tenant) instead of one for all.
        pub per_key: bool = "per_key",
        /// The most keys tracked at once.
        pub max_keys: u32 = "max_keys",
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

impl Section for LimiterConfig {
    const KIND: PolicyKind = PolicyKind::Limiter;
    const SCHEMA: &'static Schema = &schema::LIMITER;

    fn set(&mut self, key: &str, value: &Value) -> Result<(), String> {
        fields::set(self, key, value)
    }

    fn validate(&self) -> Result<(), Invalid> {
        fields::validate(self)
    }
}
