//! Configuration: code defaults, then a TOML file (and its selected profile), then
//! environment variables.
//!
//! Every source goes through the same per-key checks, so a bad value is reported the same way
//! wherever it was written: the full key, the value, what was expected and where it came from.
//! Sources may change the settings of names code declares (`policies!` or the builder) but
//! never add names. The file format and the environment scheme are described in
//! `docs/CONFIGURATION.md`.

mod declare;
mod load;
mod section;
mod settings;
mod value;

pub use self::declare::{Declaration, Literal, Policy, PolicyRegistration, PolicySet};
pub use self::load::RuntimeConfig;
pub(crate) use self::load::{FileSource, Sources};
pub use self::section::{Invalid, KeySpec, Section, parse};
pub use self::settings::RuntimeSettings;
pub use self::value::Value;

#[cfg(test)]
mod docs_test;
#[cfg(test)]
mod tests;
