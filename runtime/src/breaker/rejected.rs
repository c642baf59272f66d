use std::fmt;
use std::time::Duration;

use super::outcome::Recovery;
use super::state::BreakerState;

/// A breaker refused a call; the op runner turns this into `Error::BreakerOpen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerRejected {
    /// The state that rejected the call: open, forced open, or half-open with every probe
    /// slot taken.
    pub state: BreakerState,
    /// When the breaker will let a probe through at the latest, when known (open state only).
    /// With [`Recovery::ServerProbe`] it may be much sooner: as soon as the server answers.
    pub retry_after: Option<Duration>,
    /// How the breaker recovers, while it is open or half-open on its way back.
    pub recovery: Option<Recovery>,
}

impl fmt::Display for BreakerRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "circuit breaker {}", self.state)?;
        if let Some(d) = self.retry_after {
            write!(f, " (retry after {:?})", crate::error::rounded(d))?;
        }
        Ok(())
    }
}
