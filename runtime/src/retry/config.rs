use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::classify::FailureKind;
use crate::error::PolicyKind;
use crate::settings::fields::{self, Resolved};
use crate::settings::{Invalid, Section, Value};
use sqlx_resilience_schema::{self as schema, Inherit, Schema};

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

crate::settings::fields::choices!(
    /// The name used in configuration (`full`, `equal`, `none`).
    pub fn as_str for Jitter { Full = "full", Equal = "equal", None = "none" }
);

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

crate::settings::fields::settings! {
    /// The schedule of one failure kind, overriding the policy's (`on.<kind>.*` keys); unset
    /// fields take the policy's value.
    #[derive(Debug, Clone, Copy, PartialEq)]
    #[non_exhaustive]
    pub struct KindOverride: schema::RETRY_ON {
        /// Attempts in all (the first included); 1 means this kind is never retried.
        pub attempts: Option<u32> = "attempts",
        /// The first delay.
        pub base: Option<Duration> = "base",
        /// Each delay is the previous one times this.
        pub factor: Option<f64> = "factor",
        /// The cap on one delay.
        pub max_delay: Option<Duration> = "max_delay",
    }
}

crate::settings::fields::settings! {
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
    pub struct RetryConfig: schema::RETRY {
        /// Attempts in all, the first included.
        pub attempts: u32 = "attempts",
        /// The first delay.
        pub base: Duration = "base",
        /// Each delay is the previous one times this.
        pub factor: f64 = "factor",
        /// The cap on one delay (before jitter).
        pub max_delay: Duration = "max_delay",
        /// The cap on the time across all attempts and delays.
        pub max_elapsed: Option<Duration> = "max_elapsed",
        /// How delays are randomised.
        pub jitter: Jitter = "jitter",
        /// Retries may add at most this percentage of the calls in the budget window.
        pub budget_percent: f64 = "budget_percent",
        /// ...plus this many retries per second regardless of traffic.
        pub budget_min_per_second: u32 = "budget_min_per_second",
        /// The window over which the budget counts calls and retries.
        pub budget_window: Duration = "budget_window",
    }
    others {
        /// Per-kind schedules (`on.<kind>.*` keys). A kind listed here is retried even if it
        /// is not transient by default.
        pub on: BTreeMap<FailureKind, KindOverride>,
    }
}

impl Section for RetryConfig {
    const KIND: PolicyKind = PolicyKind::Retry;
    const SCHEMA: &'static Schema = &schema::RETRY;

    fn set(&mut self, key: &str, value: &Value) -> Result<(), String> {
        let found = schema::RETRY.find(key)?;
        let Some((_, Some(member))) = found.group else {
            return fields::set(self, key, value);
        };
        let kind = FailureKind::from_name(member)
            .filter(|k| RETRYABLE_KINDS.contains(k))
            .ok_or_else(|| format!("a failure kind the runtime retries, not `{member}`"))?;
        let mut o = self.on.get(&kind).copied().unwrap_or_default();
        fields::set_key(&mut o, found.key.name, found.key, value)?;
        self.on.insert(kind, o);
        Ok(())
    }

    fn validate(&self) -> Result<(), Invalid> {
        let policy = Resolved(self);
        let mut found = schema::RETRY.check_together(&policy);
        let on = &schema::RETRY.groups[0];
        for (kind, o) in &self.on {
            let own = Resolved(o);
            found.extend(on.check_member(
                kind.as_str(),
                &Inherit {
                    own: &own,
                    parent: &policy,
                },
            ));
        }
        fields::first(found)
    }
}
