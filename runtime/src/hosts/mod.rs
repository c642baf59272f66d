//! Multi-host pools: several servers in one connection string, the one to use chosen by asking
//! them, and failover when it stops being that.
//!
//! - A pool whose URL names several hosts (libpq's forms, see `parse`), or sets
//!   `target_session_attrs`, asks each host `pg_is_in_recovery()` and `transaction_read_only`
//!   (in the order written, or shuffled with `load_balance_hosts=random`) and points its sqlx
//!   pool at the first that suits the target (`PgPool::set_connect_options`).
//! - Each host has its own health watch (`crate::recovery`): a host found unreachable is probed
//!   until it answers, and shows in `Runtime::servers`.
//! - Each host has its own circuit breaker, opened by failures in a row: failed checks, and the
//!   pool's own connects to the host that fail at the connection level (refused, reset, no
//!   answer in time), so a host that dies between checks is not waited for by the next round.
//!   Discovery does not wait for a host whose breaker is open (unless no other host suits),
//!   and the host's watch half-opens it as soon as it reaches the server (at the latest after
//!   the pool's `host_breaker_open_max`).
//! - A 25006 (a write on a server that turned read-only), a lost connection or a shutdown on a
//!   connection to the current host starts a re-discovery, once however many ops report it.
//!   Until a host suits the target again, acquires wait for one within the caller's deadline,
//!   and fail with `Error::Failover` past it.
//! - Connections opened before the switch are never used again: idle ones are closed when an
//!   acquire meets them, ones in use are closed when they come back, and a new connection that
//!   lands on a host of the wrong role is closed at once (sqlx then connects again, to the
//!   host the pool now points at).

mod discover;
mod parse;

pub(crate) use self::discover::{HostBreaker, Hosts, STALL_CHECK};
pub use self::discover::{HostRole, HostStatus};
pub use self::parse::HostAddr;
pub(crate) use self::parse::{HostList, parse};
pub use crate::host_target::{LoadBalance, TargetSessionAttrs};
