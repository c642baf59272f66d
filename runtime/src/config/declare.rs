use std::collections::BTreeMap;

use super::Value;
use crate::error::PolicyKind;
use crate::location::Location;

/// A literal setting as `policies!` writes it: what a `static` can hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Literal {
    /// `true` or `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// Text: durations (`"5s"`), names, URLs.
    Str(&'static str),
}

impl Literal {
    /// The runtime's value of this literal.
    pub fn value(&self) -> Value {
        match *self {
            Literal::Bool(b) => Value::Bool(b),
            Literal::Int(i) => Value::Int(i),
            Literal::Float(x) => Value::Float(x),
            Literal::Str(s) => Value::Str(s.to_owned()),
        }
    }
}

/// A pool or policy declared with `policies!`: its kind, name, default settings and where it
/// was declared. `policies!` generates one `static` per name (`policies::pool::http`); ops
/// refer to it instead of a string (the reference is what checks the name when the code
/// compiles), and the runtime's builder finds every one without being told.
#[derive(Debug)]
pub struct Policy {
    kind: PolicyKind,
    name: &'static str,
    settings: &'static [(&'static str, Literal)],
    location: Location,
}

impl Policy {
    /// A declaration (what `policies!` writes).
    pub const fn new(
        kind: PolicyKind,
        name: &'static str,
        settings: &'static [(&'static str, Literal)],
        location: Location,
    ) -> Policy {
        Policy {
            kind,
            name,
            settings,
            location,
        }
    }

    /// Its kind.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its default settings, as written.
    pub fn settings(&self) -> &'static [(&'static str, Literal)] {
        self.settings
    }

    /// Where it was declared.
    pub fn location(&self) -> Location {
        self.location
    }
}

/// Registers a declaration when the program links (what `policies!` submits). Not public API.
#[doc(hidden)]
#[derive(Debug)]
pub struct PolicyRegistration(pub &'static Policy);

inventory::collect!(PolicyRegistration);

impl PolicySet {
    /// Every pool and policy declared with `policies!` anywhere in the program.
    pub fn registered() -> PolicySet {
        let mut set = PolicySet::new();
        for r in inventory::iter::<PolicyRegistration>() {
            set.add(r.0);
        }
        set
    }

    /// Adds one declaration of `policies!`.
    pub fn add(&mut self, policy: &Policy) -> &mut Self {
        let settings: Vec<(&str, Value)> = policy
            .settings
            .iter()
            .map(|(k, v)| (*k, v.value()))
            .collect();
        self.declare(policy.kind, policy.name, &settings, Some(policy.location))
    }
}

/// One declared name with its default settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Declaration {
    /// The kind.
    pub kind: PolicyKind,
    /// The name.
    pub name: String,
    /// Default settings as `(key, value)`.
    pub settings: Vec<(String, Value)>,
    /// Where it was declared.
    pub location: Option<Location>,
}

/// Every pool and policy name code declares, with default settings: what `policies!`
/// generates, and what the runtime builder starts from. Configuration files and environment
/// variables may change these settings but never add names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicySet {
    decls: BTreeMap<(PolicyKind, String), Declaration>,
}

impl PolicySet {
    /// An empty set.
    pub fn new() -> Self {
        PolicySet::default()
    }

    /// Declares a name of a kind with default settings. Declaring a name twice merges the
    /// settings (later ones win).
    pub fn declare(
        &mut self,
        kind: PolicyKind,
        name: &str,
        settings: &[(&str, Value)],
        location: Option<Location>,
    ) -> &mut Self {
        let entry = self
            .decls
            .entry((kind, name.to_owned()))
            .or_insert_with(|| Declaration {
                kind,
                name: name.to_owned(),
                settings: Vec::new(),
                location,
            });
        entry
            .settings
            .extend(settings.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        self
    }

    /// Adds every declaration of `other`.
    pub fn merge(&mut self, other: &PolicySet) -> &mut Self {
        for d in other.decls.values() {
            let settings: Vec<(&str, Value)> = d
                .settings
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            self.declare(d.kind, &d.name, &settings, d.location);
        }
        self
    }

    /// Whether `name` is declared as `kind`.
    pub fn contains(&self, kind: PolicyKind, name: &str) -> bool {
        self.decls.contains_key(&(kind, name.to_owned()))
    }

    /// The declared names of a kind, sorted.
    pub fn names(&self, kind: PolicyKind) -> Vec<&str> {
        self.decls
            .values()
            .filter(|d| d.kind == kind)
            .map(|d| d.name.as_str())
            .collect()
    }

    /// Every declaration.
    pub fn iter(&self) -> impl Iterator<Item = &Declaration> {
        self.decls.values()
    }

    /// Whether nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.decls.is_empty()
    }
}
