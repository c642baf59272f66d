//! Configuration: code defaults, then a TOML file, then environment variables, with profiles.

mod section;
mod value;

pub use self::section::{Invalid, KeySpec, Section, parse};
pub use self::value::Value;
