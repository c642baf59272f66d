//! Checking settings against the constraints of their schema: the values as a [`View`] sees
//! them, and each broken rule as a [`Violation`].

use crate::constraint::{Constraint, Side};
use crate::key::DefaultIs;
use crate::table::{Group, Schema};
use crate::value::Typed;

/// Where the value of a key comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Written by the user.
    Given,
    /// The schema's default.
    Default,
    /// The enclosing section's value (a retry policy's `base` for `on.<kind>.base`).
    Inherited,
}

/// A key's value as a [`View`] sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Seen<'a> {
    /// The value; `None` when it was given but did not pass its rule (already reported).
    pub value: Option<Typed<'a>>,
    /// Where it comes from.
    pub source: Source,
}

/// The settings as the constraints see them: `policies!`'s literals, or the runtime's
/// resolved configuration.
pub trait View {
    /// The key's value, or `None` when it has none (not given and no default).
    fn seen(&self, key: &str) -> Option<Seen<'_>>;
}

/// The given values, and the schema's defaults for the rest.
#[derive(Debug)]
pub struct WithDefaults<'a, V: ?Sized> {
    /// The schema whose defaults fill in.
    pub schema: &'a Schema,
    /// The given values.
    pub given: &'a V,
}

impl<V: View + ?Sized> View for WithDefaults<'_, V> {
    fn seen(&self, key: &str) -> Option<Seen<'_>> {
        self.given.seen(key).or_else(|| {
            let value = self.schema.key(key)?.default.value()?;
            Some(Seen {
                value: Some(value),
                source: Source::Default,
            })
        })
    }
}

/// A group's own values, and the enclosing section's for the rest ([`Group::inherits`]).
#[derive(Debug)]
pub struct Inherit<'a, V: ?Sized, P: ?Sized> {
    /// The group's values.
    pub own: &'a V,
    /// The enclosing section's values.
    pub parent: &'a P,
}

impl<V: View + ?Sized, P: View + ?Sized> View for Inherit<'_, V, P> {
    fn seen(&self, key: &str) -> Option<Seen<'_>> {
        self.own.seen(key).or_else(|| {
            self.parent.seen(key).map(|s| Seen {
                source: Source::Inherited,
                ..s
            })
        })
    }
}

/// A broken constraint (or a required key without a value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The key at fault, in full (`on.contention.base`).
    pub key: String,
    /// Its value as a user would write it, or `(not set)`.
    pub value: String,
    /// Whether the key has no value at all (a required key).
    pub missing: bool,
    /// The whole finding, for `policies!`: `` `min` of 20 is above `max` of 10 (the default):
    /// ...``.
    pub message: String,
    /// What was expected of the key, to follow "expected": ``at most `max` (10, the
    /// default): ...``.
    pub expected: String,
}

impl Schema {
    /// Every broken constraint and missing required key of these settings.
    pub fn check_together(&self, view: &dyn View) -> Vec<Violation> {
        check(self, view, "", "")
    }
}

impl Group {
    /// Every broken constraint of one member's table (`on.contention`), where `view` sees
    /// the member's values and, for a group that [inherits](Group::inherits), the enclosing
    /// section's (see [`Inherit`]).
    pub fn check_member(&self, member: &str, view: &dyn View) -> Vec<Violation> {
        let prefix = format!("{}.{member}.", self.name);
        let from = self
            .inherits
            .map(|p| format!("from {p}"))
            .unwrap_or_default();
        check(self.schema, view, &prefix, &from)
    }
}

fn check(schema: &Schema, view: &dyn View, prefix: &str, inherited: &str) -> Vec<Violation> {
    // How a key and its value read in a message, by where the value came from.
    let name = |key: &str, s: &Seen<'_>| match s.source {
        Source::Inherited => format!("`{key}`"),
        _ => format!("`{prefix}{key}`"),
    };
    let note = |s: &Seen<'_>| match s.source {
        Source::Given => String::new(),
        Source::Default => "the default".to_owned(),
        Source::Inherited => inherited.to_owned(),
    };
    let of = |s: &Seen<'_>, v: &Typed<'_>| match note(s) {
        n if n.is_empty() => format!("of {v}"),
        n => format!("of {v} ({n})"),
    };
    let paren = |s: &Seen<'_>, v: &Typed<'_>| match note(s) {
        n if n.is_empty() => format!("({v})"),
        n => format!("({v}, {n})"),
    };
    let given = |s: &Option<Seen<'_>>| matches!(s, Some(s) if s.source == Source::Given);

    let mut out = Vec::new();
    for key in schema.keys {
        if let DefaultIs::Required(why) = key.default
            && view.seen(key.name).is_none()
        {
            out.push(Violation {
                key: format!("{prefix}{}", key.name),
                value: "(not set)".to_owned(),
                missing: true,
                message: format!("`{prefix}{}` is missing: {why}", key.name),
                expected: format!("a value: {why}"),
            });
        }
    }
    for c in schema.constraints {
        match *c {
            Constraint::Order {
                small,
                large,
                blame,
                default_capped,
                why,
            } => {
                let (s, l) = (view.seen(small), view.seen(large));
                let (Some(s), Some(l)) = (s, l) else { continue };
                let (Some(vs), Some(vl)) = (s.value, l.value) else {
                    continue;
                };
                if default_capped && s.source != Source::Given {
                    continue;
                }
                let above = match (vs, vl) {
                    (Typed::Duration(a), Typed::Duration(b)) => a > b,
                    (a, b) => match (a.as_f64(), b.as_f64()) {
                        (Some(a), Some(b)) => a > b,
                        _ => false,
                    },
                };
                if !above {
                    continue;
                }
                let durations = matches!(vs, Typed::Duration(_));
                let side = match blame {
                    Side::Small if s.source == Source::Given => Side::Small,
                    Side::Large if l.source == Source::Given => Side::Large,
                    _ if s.source == Source::Given => Side::Small,
                    _ if l.source == Source::Given => Side::Large,
                    _ => continue,
                };
                out.push(match side {
                    Side::Small => Violation {
                        key: format!("{prefix}{small}"),
                        value: vs.to_string(),
                        missing: false,
                        message: format!(
                            "{} {} is {} {} {}: {why}",
                            name(small, &s),
                            of(&s, &vs),
                            if durations { "longer than" } else { "above" },
                            name(large, &l),
                            of(&l, &vl),
                        ),
                        expected: format!("at most {} {}: {why}", name(large, &l), paren(&l, &vl)),
                    },
                    Side::Large => Violation {
                        key: format!("{prefix}{large}"),
                        value: vl.to_string(),
                        missing: false,
                        message: format!(
                            "{} {} is {} {} {}: {why}",
                            name(large, &l),
                            of(&l, &vl),
                            if durations { "shorter than" } else { "below" },
                            name(small, &s),
                            of(&s, &vs),
                        ),
                        expected: format!("at least {} {}: {why}", name(small, &s), paren(&s, &vs)),
                    },
                });
            }
            Constraint::Needs { key, needs, why } => {
                let seen = view.seen(key);
                let Some(Seen {
                    value: Some(v),
                    source: Source::Given,
                }) = seen
                else {
                    continue;
                };
                if needs.iter().any(|n| view.seen(n).is_some()) {
                    continue;
                }
                let wanted = needs
                    .iter()
                    .map(|n| format!("`{prefix}{n}`"))
                    .collect::<Vec<_>>()
                    .join(" or ");
                out.push(Violation {
                    key: format!("{prefix}{key}"),
                    value: v.to_string(),
                    missing: false,
                    message: format!("`{prefix}{key}` needs {wanted}: {why}"),
                    expected: format!("{wanted} as well: {why}"),
                });
            }
            Constraint::Excludes { key, other, why } => {
                let (k, o) = (view.seen(key), view.seen(other));
                if k.is_none() || o.is_none() || !(given(&k) || given(&o)) {
                    continue;
                }
                let (blamed, spared, seen) = if given(&k) {
                    (key, other, k)
                } else {
                    (other, key, o)
                };
                let value = seen
                    .and_then(|s| s.value)
                    .map_or_else(|| "(invalid)".to_owned(), |v| v.to_string());
                out.push(Violation {
                    key: format!("{prefix}{blamed}"),
                    value,
                    missing: false,
                    message: format!("`{prefix}{blamed}` cannot go with `{prefix}{spared}`: {why}"),
                    expected: format!("no `{prefix}{spared}` as well: {why}"),
                });
            }
            Constraint::Useless {
                key,
                other,
                value,
                why,
            } => {
                let Some(Seen {
                    value: Some(v),
                    source: Source::Given,
                }) = view.seen(key)
                else {
                    continue;
                };
                let Some(o) = view.seen(other) else { continue };
                if o.value != Some(value) {
                    continue;
                }
                let wanted = match value {
                    Typed::Flag(b) => format!("`{prefix}{other} = {}`", !b),
                    _ => format!("`{prefix}{other}` other than {value}"),
                };
                let state = match note(&o) {
                    n if n.is_empty() => format!("`{prefix}{other} = {value}`"),
                    n => format!("`{prefix}{other} = {value}` ({n})"),
                };
                out.push(Violation {
                    key: format!("{prefix}{key}"),
                    value: v.to_string(),
                    missing: false,
                    message: format!("`{prefix}{key}` has no effect with {state}: {why}"),
                    expected: format!("{wanted} as well: {why}"),
                });
            }
        }
    }
    out
}
