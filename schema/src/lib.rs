//! The settings schema of sqlx-resilience, written once.
//!
//! Every setting of a pool, circuit breaker, retry policy, rate limiter and bulkhead, and of
//! the runtime itself (the top level, `budget.*`, `monitor.*`), is one [`Key`] here: its name,
//! its [`Rule`] (type and range), its default ([`DefaultIs`]), its unit and a line of
//! documentation. The rules between keys of one kind are [`Constraint`]s of its [`Schema`].
//! Three readers derive everything from these tables:
//!
//! - the `policies!` macro checks literals against them when the code compiles;
//! - the runtime parses code, TOML and environment settings with them, takes its defaults
//!   from them, and checks the constraints at start-up;
//! - the key tables in `docs/*.md` are rendered from them ([`docs`]), and a test fails when a
//!   committed table differs.
//!
//! Adding a setting is one [`Key`] in [`kinds`], plus the code that uses it.
//!
//! This crate depends on humantime only, so the proc-macro crate can build on it without the
//! runtime's dependencies.

#![forbid(unsafe_code)]

mod check;
mod closest;
mod constraint;
pub mod docs;
mod key;
pub mod kinds;
mod rule;
mod table;
mod value;

pub use self::check::{Inherit, Seen, Source, View, Violation, WithDefaults};
pub use self::closest::closest;
pub use self::constraint::{Constraint, Side};
pub use self::key::{DefaultIs, Key};
pub use self::kinds::{
    BREAKER, BUDGET, BULKHEAD, CONTENTION_ATTEMPTS, FAULTS, KINDS, LIMITER, MONITOR, POOL, RETRY,
    RETRY_ON, RUNTIME,
};
pub use self::rule::{DURATION_EXAMPLE, HOSTS, Problem, Rule, url_list};
pub use self::table::{Each, Found, Group, Schema};
pub use self::value::{Raw, Typed, show_duration};

#[cfg(test)]
mod tests;
