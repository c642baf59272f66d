use crate::rule::Rule;
use crate::value::Typed;

/// One setting: its name, what its value must be, its default, and what it does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Key {
    /// The key as written in `policies!`, TOML and environment variables (`max`), without
    /// the name of its section.
    pub name: &'static str,
    /// Type and range.
    pub rule: Rule,
    /// The value in force when no source gives one.
    pub default: DefaultIs,
    /// What the number counts, where the rule does not say it (`connections`).
    pub unit: Option<&'static str>,
    /// One line of documentation.
    pub doc: &'static str,
}

impl Key {
    /// A key without a unit.
    pub const fn new(name: &'static str, rule: Rule, default: DefaultIs, doc: &'static str) -> Key {
        Key {
            name,
            rule,
            default,
            unit: None,
            doc,
        }
    }

    /// The same key, counting `unit`.
    pub const fn unit(self, unit: &'static str) -> Key {
        Key {
            unit: Some(unit),
            ..self
        }
    }
}

/// A key's default.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DefaultIs {
    /// This value.
    Value(Typed<'static>),
    /// No value: the words say what that means (`off`, `the server's`).
    Absent(&'static str),
    /// No value of its own: the runtime computes one from other settings, as the words say
    /// (`ceil(per_second)`).
    Derived(&'static str),
    /// Every declaration must give one; the words say why and how.
    Required(&'static str),
}

impl DefaultIs {
    /// The typed default, when there is one.
    pub const fn value(&self) -> Option<Typed<'static>> {
        match self {
            DefaultIs::Value(v) => Some(*v),
            _ => None,
        }
    }

    /// The default for a table: the value as written, or the words.
    pub fn shown(&self) -> String {
        match self {
            DefaultIs::Value(Typed::Text(t)) => format!("`\"{t}\"`"),
            DefaultIs::Value(Typed::Flag(b)) => format!("`{b}`"),
            DefaultIs::Value(v) => v.to_string(),
            DefaultIs::Absent(words) | DefaultIs::Derived(words) => (*words).to_owned(),
            DefaultIs::Required(_) => "required".to_owned(),
        }
    }
}
