//! What the background queues report: writes that were not made, and their figures.

use std::time::Duration;

use serde::Serialize;

/// Why a background write was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DropReason {
    /// The queue was full under `background_when_full = "reject"`: the caller got
    /// [`Error::BackgroundFull`](crate::Error::BackgroundFull) and the write was never queued.
    Rejected,
    /// The queue was full under `background_when_full = "drop_oldest"`: this, the oldest
    /// queued write, made room for a newer one.
    DroppedOldest,
    /// It ran and failed with an error that waiting for the server would not cure (or whose
    /// outcome is unknown): the error is in [`DroppedWrite::error`].
    Failed,
    /// Shutdown's deadline passed before it was written: still queued, or running with an
    /// unknown outcome.
    ShutdownDeadline,
}

impl DropReason {
    /// `rejected`, `dropped_oldest`, `failed` or `shutdown_deadline`.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Rejected => "rejected",
            DropReason::DroppedOldest => "dropped_oldest",
            DropReason::Failed => "failed",
            DropReason::ShutdownDeadline => "shutdown_deadline",
        }
    }
}

/// A background write that was not made, as handed to the hook
/// ([`BackgroundWrites::on_dropped`](super::BackgroundWrites::on_dropped)).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DroppedWrite {
    /// The number [`Op::submit`](crate::Op::submit) returned for it.
    pub id: u64,
    /// The op.
    pub op: &'static str,
    /// Its pool (its queue).
    pub pool: String,
    /// Why it was not made.
    pub reason: DropReason,
    /// How long it had waited since it was submitted.
    pub queued_for: Duration,
    /// The last failure, for [`DropReason::Failed`] (and a write abandoned while failing).
    pub error: Option<String>,
}

/// One pool's background queue, since the runtime started.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct BackgroundStats {
    /// The pool.
    pub pool: String,
    /// `background_capacity`: writes queued or running at most.
    pub capacity: u32,
    /// `background_when_full`: `wait`, `drop_oldest` or `reject`.
    pub when_full: &'static str,
    /// Writes queued now (not yet running).
    pub depth: u32,
    /// Writes running now.
    pub running: u32,
    /// How long the oldest write queued or running has waited since it was submitted, in
    /// milliseconds (0 when there is none).
    pub oldest_age_ms: u64,
    /// Writes accepted.
    pub accepted: u64,
    /// Writes made.
    pub written: u64,
    /// Refused at submission (`reject`).
    pub rejected: u64,
    /// Dropped to make room (`drop_oldest`).
    pub dropped_oldest: u64,
    /// Ran and failed.
    pub failed: u64,
    /// Not written by shutdown's deadline.
    pub unwritten_at_shutdown: u64,
    /// Times a write was put back to wait for the database (down, breaker open, no
    /// connection) instead of being dropped.
    pub held: u64,
}

impl BackgroundStats {
    /// Writes not made, for any reason.
    pub fn dropped(&self) -> u64 {
        self.rejected + self.dropped_oldest + self.failed + self.unwritten_at_shutdown
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
