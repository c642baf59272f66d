use std::collections::BTreeMap;

use super::Value;
use crate::error::PolicyKind;
use crate::op::Location;

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
