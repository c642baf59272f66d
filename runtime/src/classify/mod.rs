//! What a failure is, and what may be done about it.
//!
//! Every sqlx error gets a [`FailureKind`] and a [`Classification`]: could the statement have
//! reached the server, is the kind worth another attempt, should the connection be thrown away,
//! and does it say anything about the database's health (and so count against a breaker).
//! Whether a particular op may run again also depends on the op (idempotent, read-only, in a
//! transaction); that decision is made by the op runner from this verdict. The full table is
//! in `docs/CLASSIFICATION.md`.

mod kind;
mod pooler;
mod sqlstate;

pub use self::kind::FailureKind;
pub use self::sqlstate::{classify, classify_sqlstate};

/// Could the failing statement have reached the server?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// No: the failure happened while connecting or acquiring, before anything was sent.
    NotSent,
    /// The server received the statement and rejected it; the statement itself had no effect.
    Rejected,
    /// Unknown: the connection broke while the statement may have been in flight.
    Unknown,
}

/// The verdict on one failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// What kind of failure it is.
    pub kind: FailureKind,
    /// The SQLSTATE, when the server sent one.
    pub sqlstate: Option<String>,
    /// Could the statement have reached the server.
    pub reach: Reach,
    /// Is another attempt worth making (subject to the op being safe to run again).
    pub transient: bool,
    /// Should the connection be discarded instead of going back to the pool.
    pub evict: bool,
    /// Does the failure say the database is unhealthy (and so count against a breaker).
    pub counts_for_breaker: bool,
}

impl Classification {
    /// Whether a retry policy may consider this failure: transient kinds, and the kinds a
    /// policy can opt into (`on.statement_timeout`, `on.canceled`). The policy has the last
    /// word on which kinds it retries.
    pub fn transient_for_retry(&self) -> bool {
        self.transient
            || matches!(
                self.kind,
                FailureKind::StatementTimeout | FailureKind::Canceled
            )
    }

    /// The verdict for a kind with the defaults of that kind.
    pub fn of_kind(kind: FailureKind, sqlstate: Option<String>, reach: Reach) -> Self {
        Classification {
            kind,
            sqlstate,
            reach,
            transient: kind.is_transient(),
            evict: kind.evicts_connection(),
            counts_for_breaker: kind.counts_for_breaker(),
        }
    }

    /// Whether the failure never reached a live server: the connection broke or could not be
    /// made (refused, reset, TLS, EOF), with no SQLSTATE. A server that answered with an error
    /// (a wrong password, too many connections, starting up) is alive, and this is `false`.
    pub(crate) fn unreached(&self) -> bool {
        self.kind == FailureKind::ConnectionLost && self.sqlstate.is_none()
    }
}
