use std::time::Duration;

use crate::config::{Invalid, KeySpec, Section, Value, parse};
use crate::error::PolicyKind;

const HOUR: Duration = Duration::from_secs(3600);

/// The settings of one bulkhead (`bulkhead NAME { ... }`, `[bulkheads.NAME]`).
///
/// Defaults: `max_concurrent = 10`, `max_queue = 0`, `max_wait = "1s"`. Ten concurrent calls
/// is below the pool sizes this toolkit sees in practice (20 to 150), so one class of ops
/// behind a bulkhead cannot take every connection; set it from the pool's size and the
/// share that class may use. No queue by default: a full bulkhead sheds at once and the
/// caller's retry policy decides (HikariCP's advice too: a small pool, queue elsewhere).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BulkheadConfig {
    /// Calls running at once.
    pub max_concurrent: u32,
    /// Calls waiting for a slot; beyond this, calls are shed at once.
    pub max_queue: u32,
    /// The longest a call waits in the queue.
    pub max_wait: Duration,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        BulkheadConfig {
            max_concurrent: 10,
            max_queue: 0,
            max_wait: Duration::from_secs(1),
        }
    }
}

impl Section for BulkheadConfig {
    const KIND: PolicyKind = PolicyKind::Bulkhead;

    const KEYS: &'static [KeySpec] = &[
        KeySpec {
            key: "max_concurrent",
            expected: "a whole number from 1 to 100000",
            doc: "Calls running at once (default 10).",
        },
        KeySpec {
            key: "max_queue",
            expected: "a whole number from 0 to 1000000",
            doc: "Calls waiting for a slot; beyond this, calls are shed at once (default 0).",
        },
        KeySpec {
            key: "max_wait",
            expected: "a duration such as \"500ms\", up to 1h",
            doc: "The longest a call waits in the queue (default 1s).",
        },
    ];

    fn set(&mut self, key: &str, value: &Value) -> Result<(), String> {
        match key {
            "max_concurrent" => self.max_concurrent = parse::count(value, 1, 100_000)?,
            "max_queue" => self.max_queue = parse::count(value, 0, 1_000_000)?,
            "max_wait" => self.max_wait = parse::duration(value, HOUR)?,
            _ => return Err(crate::breaker::unknown_key(Self::KEYS)),
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), Invalid> {
        // Each key is checked on its own by `set`; no two keys constrain each other.
        Ok(())
    }
}
