//! What a permit records: how it was issued, what became of the call, and how a breaker
//! that opens recovers.

use std::fmt;
use std::time::Duration;

use super::state::Word;

/// How an open breaker finds its way back to half-open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Recovery {
    /// It opened because the database could not be reached or was shutting down (lost
    /// connections, refused connects, class 08, 57P0x, a database closed to connections). The
    /// runtime probes the server and half-opens the breaker the moment the server answers;
    /// `open_for` is only the longest wait. Callers whose deadline leaves room wait for it.
    ServerProbe,
    /// It opened because of the ops' own failures (timeouts, statement timeouts, server
    /// errors, slow calls): a probe of the server cannot tell whether those are over, so the
    /// breaker half-opens after `open_for`.
    Timer,
}

impl Recovery {
    /// The stable name used in telemetry and the health report (`server_probe`, `timer`).
    pub fn as_str(self) -> &'static str {
        match self {
            Recovery::ServerProbe => "server_probe",
            Recovery::Timer => "timer",
        }
    }
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a permit's outcome is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Closed (or metrics-only closed): into the windows, if the state word is unchanged.
    Record(Word),
    /// A half-open probe issued under this word.
    Probe(Word),
    /// Nothing to record (disabled, or a call metrics-only mode let through while it would
    /// have rejected it).
    Unrecorded,
}

/// What became of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Success(Duration),
    /// A failure, and how the breaker recovers if this failure opens it.
    Failure(Duration, Recovery),
    Ignore,
}
