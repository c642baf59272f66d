//! Outage recovery driven by the server, not by a timer.
//!
//! A breaker in front of a database is not a breaker in front of an unknown remote service: the
//! runtime can ask the server directly whether it is back. Every database server the pools
//! point at (host, port and database) has one `Server` watch, shared by every pool and
//! breaker that uses it:
//!
//! - When an op finds the server unreachable (a lost connection, a refused connect, class 08,
//!   57P0x, a database closed to connections, an acquire timeout judged "unreachable"), the
//!   runner reports it, naming the op's breaker. The watch starts **one
//!   prober** for the server, however many ops, pools and breakers report it: a connection
//!   attempt and `select 1`, at once, then on a short schedule with jitter and backoff
//!   (`probe::FIRST` growing to `probe::MAX`).
//! - A failed probe confirms the outage: the server is **down** since the first report. New
//!   acquires on its pools then wait for it to come back instead of each hammering it with
//!   connection attempts, bounded by their deadline, their pool's `acquire_timeout`, the
//!   pool's `outage_wait` (how old an outage callers still wait for) and `outage_waiters`
//!   (how many may wait); past those they fail at once with `Error::Unavailable`, which says
//!   since when.
//! - The moment a probe succeeds the server is **up**: waiting callers wake, and every breaker
//!   that was opened because this server was unreachable moves to half-open
//!   ([`CircuitBreaker::server_answered`](crate::breaker::CircuitBreaker::server_answered)), whatever is left of its `open_for`.
//!
//! Breakers opened by the ops' own failures (timeouts, statement timeouts, server errors, slow
//! calls) recover by their timer: a probe cannot tell whether those are over.

mod probe;
mod server;

pub use self::server::ServerStatus;
pub(crate) use self::server::{Server, Servers, Waited};
pub use crate::error::WaitEnd;
