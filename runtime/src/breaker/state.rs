use std::fmt;

use super::config::BreakerMode;

/// The state of a circuit breaker, as reported by
/// [`CircuitBreaker::state`](super::CircuitBreaker::state) and in events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls run; outcomes are recorded.
    Closed,
    /// Calls are rejected until the open duration has passed.
    Open,
    /// A few probe calls run; their outcomes decide between closed and open.
    HalfOpen,
    /// Every call runs; nothing is recorded.
    Disabled,
    /// Every call is rejected until the breaker is reset.
    ForcedOpen,
    /// Every call runs; outcomes are recorded and would-be transitions reported, never enforced.
    MetricsOnly,
}

impl BreakerState {
    /// The stable name used in telemetry (`closed`, `open`, `half_open`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Disabled => "disabled",
            BreakerState::ForcedOpen => "forced_open",
            BreakerState::MetricsOnly => "metrics_only",
        }
    }

    /// Does this state reject calls?
    pub fn rejects(self) -> bool {
        matches!(self, BreakerState::Open | BreakerState::ForcedOpen)
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// The whole state lives in one `AtomicU64` word so that the hot path is a single load:
// bits 0..2 the machine state (closed, open, half-open), bits 2..4 the mode, bits 8.. an
// epoch that every transition increments. A permit remembers the word it was issued under and
// records its outcome only if the word is unchanged, so outcomes of calls that started before
// a transition never leak into the windows of the next state.

pub(super) const CLOSED: u8 = 0;
pub(super) const OPEN: u8 = 1;
pub(super) const HALF_OPEN: u8 = 2;

pub(super) const NORMAL: u8 = 0;
pub(super) const DISABLED: u8 = 1;
pub(super) const FORCED_OPEN: u8 = 2;
pub(super) const METRICS_ONLY: u8 = 3;

/// One decoded state word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Word(pub(super) u64);

impl Word {
    pub(super) fn new(epoch: u64, mode: u8, machine: u8) -> Self {
        Word((epoch << 8) | (u64::from(mode) << 2) | u64::from(machine))
    }

    pub(super) fn machine(self) -> u8 {
        (self.0 & 0b11) as u8
    }

    pub(super) fn mode(self) -> u8 {
        ((self.0 >> 2) & 0b11) as u8
    }

    pub(super) fn epoch(self) -> u64 {
        self.0 >> 8
    }

    /// The state users see: the machine state in normal mode, else the mode.
    pub(super) fn public(self) -> BreakerState {
        match self.mode() {
            DISABLED => BreakerState::Disabled,
            FORCED_OPEN => BreakerState::ForcedOpen,
            METRICS_ONLY => BreakerState::MetricsOnly,
            _ => self.machine_state(),
        }
    }

    /// The state of the machine alone (what metrics-only mode would enforce).
    pub(super) fn machine_state(self) -> BreakerState {
        match self.machine() {
            OPEN => BreakerState::Open,
            HALF_OPEN => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }
}

pub(super) fn mode_bits(mode: BreakerMode) -> u8 {
    match mode {
        BreakerMode::Normal => NORMAL,
        BreakerMode::Disabled => DISABLED,
        BreakerMode::ForcedOpen => FORCED_OPEN,
        BreakerMode::MetricsOnly => METRICS_ONLY,
    }
}

pub(super) fn mode_of(bits: u8) -> BreakerMode {
    match bits {
        DISABLED => BreakerMode::Disabled,
        FORCED_OPEN => BreakerMode::ForcedOpen,
        METRICS_ONLY => BreakerMode::MetricsOnly,
        _ => BreakerMode::Normal,
    }
}
