//! Why a call stopped waiting for a server that is down.

use std::fmt;

/// Why a caller stopped waiting for a server that is down (in `Error::Unavailable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitEnd {
    /// It waited as long as its deadline, its pool's `acquire_timeout` and `outage_wait` let
    /// it, and the server did not answer in that time.
    WaitedOut,
    /// `outage_waiters` callers were already waiting: it failed at once.
    TooManyWaiting,
    /// The outage is older than the pool's `outage_wait`: callers fail at once until the
    /// server answers again (a long outage is better met by failing fast).
    OutageTooOld,
    /// Its deadline left no time to wait.
    NoTimeLeft,
}

impl fmt::Display for WaitEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WaitEnd::WaitedOut => "waited as long as the op's limits allow",
            WaitEnd::TooManyWaiting => {
                "did not wait: outage_waiters callers are already waiting (raise it to let more wait)"
            }
            WaitEnd::OutageTooOld => {
                "did not wait: the outage is older than the pool's outage_wait, so calls fail fast until the server answers"
            }
            WaitEnd::NoTimeLeft => "did not wait: the op's deadline left no time",
        })
    }
}
