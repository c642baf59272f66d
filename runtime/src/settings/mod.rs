//! What every configuration struct is made of: a setting's [`Value`], the [`Section`] trait a
//! policy's settings implement, the [`Invalid`] finding, and the `settings!` macro that writes
//! a struct from its schema. The policies' settings and `config`, which assembles them, both
//! build on it; it uses nothing of theirs.

pub(crate) mod fields;
mod section;
mod value;

pub use self::section::{Invalid, Section};
pub use self::value::Value;
