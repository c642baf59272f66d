use std::time::Duration;

use crate::error::PolicyKind;
use crate::settings::fields;
use crate::settings::{Invalid, Section, Value};
use sqlx_resilience_schema::{self as schema, Schema};

crate::settings::fields::settings! {
    /// The settings of one bulkhead (`bulkhead NAME { ... }`, `[bulkheads.NAME]`).
    ///
    /// Defaults: `max_concurrent = 10`, `max_queue = 0`, `max_wait = "1s"`. Ten concurrent calls
    /// is below the pool sizes this toolkit sees in practice (20 to 150), so one class of ops
    /// behind a bulkhead cannot take every connection; set it from the pool's size and the
    /// share that class may use. No queue by default: a full bulkhead sheds at once and the
    /// caller's retry policy decides (HikariCP's advice too: a small pool, queue elsewhere).
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[non_exhaustive]
    pub struct BulkheadConfig: schema::BULKHEAD {
        /// Calls running at once.
        pub max_concurrent: u32 = "max_concurrent",
        /// Calls waiting for a slot; beyond this, calls are shed at once.
        pub max_queue: u32 = "max_queue",
        /// The longest a call waits in the queue.
        pub max_wait: Duration = "max_wait",
    }
}

impl Section for BulkheadConfig {
    const KIND: PolicyKind = PolicyKind::Bulkhead;
    const SCHEMA: &'static Schema = &schema::BULKHEAD;

    fn set(&mut self, key: &str, value: &Value) -> Result<(), String> {
        fields::set(self, key, value)
    }

    fn validate(&self) -> Result<(), Invalid> {
        fields::validate(self)
    }
}
