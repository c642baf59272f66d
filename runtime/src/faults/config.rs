use std::time::Duration;

use sqlx_resilience_schema as schema;

use super::sqlstate::check_sqlstate;
use crate::settings::{Value, fields};

crate::settings::fields::settings! {
    /// Settings of fault injection: the `faults.*` keys of the configuration
    /// (`DB__FAULTS__ENABLED=true`). Off unless `enabled`; refused in the profiles
    /// `forbidden_in` names. The other keys arm one fault at start-up (see
    /// [`Faults`](crate::faults::Faults) for arming from code).
    #[derive(Debug, Clone, PartialEq)]
    #[non_exhaustive]
    pub struct FaultsConfig: schema::FAULTS {
        /// Whether faults may be injected at all.
        pub enabled: bool = "enabled",
        /// Comma-separated profiles in which `enabled = true` is refused.
        pub forbidden_in: String = "forbidden_in",
        /// The op the start-up fault hits (every op when unset).
        pub op: Option<String> = "op",
        /// The pool whose ops the start-up fault hits (every pool when unset).
        pub pool: Option<String> = "pool",
        /// The SQLSTATE the server raises in place of the op's body.
        pub sqlstate: Option<String> = "sqlstate",
        /// The server ends the op's session in place of its body.
        pub drop_connection: bool = "drop_connection",
        /// Added before the op's body (or before the injected error).
        pub latency: Option<Duration> = "latency",
        /// The share of matching calls hit, in percent.
        pub probability_pct: f64 = "probability",
        /// Only the next N matching calls are hit.
        pub next: Option<u32> = "next",
    }
}

impl FaultsConfig {
    /// Applies one key (without the `faults.` prefix).
    pub fn set(&mut self, key: &str, value: &Value) -> Result<(), String> {
        fields::set(self, key, value)
    }

    /// Whether the settings arm a fault at start-up (an error, a dropped connection or a
    /// delay is named).
    pub fn arms_a_fault(&self) -> bool {
        self.sqlstate.is_some() || self.drop_connection || self.latency.is_some()
    }

    /// The problems of these settings under `profile`: a key and what it expects.
    pub(crate) fn problems(&self, profile: Option<&str>) -> Vec<(&'static str, String, String)> {
        let mut found = Vec::new();
        if self.enabled
            && let Some(p) = profile
            && self.forbidden_in.split(',').any(|f| f.trim() == p)
        {
            found.push((
                "enabled",
                "true".to_owned(),
                format!(
                    "false in profile `{p}`: fault injection is forbidden there \
                     (faults.forbidden_in = \"{}\")",
                    self.forbidden_in
                ),
            ));
        }
        if let Some(code) = &self.sqlstate
            && let Err(expected) = check_sqlstate(code)
        {
            found.push(("sqlstate", code.clone(), expected));
        }
        if self.sqlstate.is_some() && self.drop_connection {
            found.push((
                "drop_connection",
                "true".to_owned(),
                "false when `sqlstate` is set: one fault raises an error or ends the session, \
                 not both"
                    .to_owned(),
            ));
        }
        if self.arms_a_fault() && !self.enabled {
            found.push((
                "enabled",
                "false".to_owned(),
                "true to arm the fault these settings describe (or remove them)".to_owned(),
            ));
        }
        found
    }
}
