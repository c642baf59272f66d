//! Configuration: code defaults, then a TOML file (and its selected profile), then
//! environment variables.
//!
//! Every source goes through the same per-key checks, so a bad value is reported the same way
//! wherever it was written: the full key, the value, what was expected and where it came from.
//! The checks, the defaults and the rules between keys come from one [`schema`] that
//! `policies!` reads too. Sources may change the settings of names code declares
//! (`policies!` or the builder) but never add names. The file format and the environment
//! scheme are described in `docs/CONFIGURATION.md`.
//!
//! What each configuration struct is made of (`Value`, `Section`, `Invalid`, the `settings!`
//! macro) lives in the leaf `crate::settings`, which each policy's settings build on; this
//! module assembles them into a [`RuntimeConfig`] and loads the sources.

mod declare;
mod load;
mod monitor;
mod settings;

pub use sqlx_resilience_schema as schema;

pub use self::declare::{Declaration, Literal, Policy, PolicyRegistration, PolicySet};
pub use self::load::RuntimeConfig;
pub(crate) use self::load::{FileSource, Sources, undeclared};
pub use self::monitor::MonitorConfig;
pub use self::settings::{OpsCheck, RuntimeSettings};
pub use crate::faults::FaultsConfig;
pub use crate::settings::{Invalid, Section, Value};

#[cfg(test)]
mod schema_test;
