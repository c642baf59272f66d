//! The settings each kind accepts, checked against the schema the runtime reads too
//! (`sqlx-resilience-schema`): type, range, duration syntax, and the rules between keys, with
//! the schema's defaults standing in for keys not written.

use std::collections::HashMap;

use proc_macro2::Span;
use sqlx_resilience_schema::{
    self as schema, Group, Inherit, Raw, Rule, Schema, Seen, Source, View, Violation, WithDefaults,
};
use syn::{Attribute, Ident, Lit};

use super::parse::{Decl, Setting};
use crate::kv::{self, Entry, Errors, Value};

/// The kinds of names, in the order the generated modules list them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Pool,
    Breaker,
    Retry,
    Limiter,
    Bulkhead,
}

impl Kind {
    pub(crate) const ALL: [Kind; 5] = [
        Kind::Pool,
        Kind::Breaker,
        Kind::Retry,
        Kind::Limiter,
        Kind::Bulkhead,
    ];

    pub(crate) fn word(self) -> &'static str {
        self.schema().kind
    }

    /// The runtime's `PolicyKind` variant.
    pub(crate) fn variant(self) -> &'static str {
        match self {
            Kind::Pool => "Pool",
            Kind::Breaker => "Breaker",
            Kind::Retry => "Retry",
            Kind::Limiter => "Limiter",
            Kind::Bulkhead => "Bulkhead",
        }
    }

    pub(crate) fn described(self) -> &'static str {
        match self {
            Kind::Pool => "connection pools",
            Kind::Breaker => "circuit breakers",
            Kind::Retry => "retry policies",
            Kind::Limiter => "rate limiters",
            Kind::Bulkhead => "bulkheads",
        }
    }

    /// Every key of the kind, with its rule and default, and the rules between keys.
    fn schema(self) -> &'static Schema {
        match self {
            Kind::Pool => &schema::POOL,
            Kind::Breaker => &schema::BREAKER,
            Kind::Retry => &schema::RETRY,
            Kind::Limiter => &schema::LIMITER,
            Kind::Bulkhead => &schema::BULKHEAD,
        }
    }
}

/// A checked value, ready to become the runtime's `config::Value`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Out {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// One checked setting: the flattened key (`on.connection_lost.attempts`) and its value.
#[derive(Clone, Debug)]
pub(crate) struct Checked {
    pub(crate) key: String,
    pub(crate) value: Out,
    pub(crate) span: Span,
}

/// One checked declaration.
pub(crate) struct Declared {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) kind: Kind,
    pub(crate) name: Ident,
    pub(crate) settings: Vec<Checked>,
}

/// Checks every declaration. Rejected settings (and declarations of an unknown kind, and
/// duplicates) are left out and reported; the rest is kept so the module is still generated.
pub(crate) fn check(decls: Vec<Decl>, errors: &mut Errors) -> Vec<Declared> {
    let mut seen: HashMap<(Kind, String), Span> = HashMap::new();
    let mut out = Vec::new();
    for decl in decls {
        let kind_text = decl.kind.unraw_string();
        let Some(kind) = Kind::ALL.iter().copied().find(|k| k.word() == kind_text) else {
            let words: Vec<&str> = Kind::ALL.iter().map(|k| k.word()).collect();
            let hint = match kv::closest(kind_text.trim_end_matches('s'), &words) {
                Some(close) => format!("; did you mean `{close}`?"),
                None => String::new(),
            };
            errors.at(
                decl.kind.span(),
                format!(
                    "unknown kind `{kind_text}`{hint} expected one of `pool`, `breaker`, `retry`, \
                     `limiter`, `bulkhead`, followed by a name: `pool http {{ max = 20 }}`"
                ),
            );
            continue;
        };
        let name = decl.name.unraw_string();
        if kind == Kind::Retry && name == "none" {
            errors.at(
                decl.name.span(),
                "`none` cannot name a retry policy: `retry = none` in #[db_op] means \"never \
                 run again\"; choose another name",
            );
            continue;
        }
        if seen
            .insert((kind, name.clone()), decl.name.span())
            .is_some()
        {
            errors.at(
                decl.name.span(),
                format!(
                    "{} `{name}` is declared twice; declare each name once (settings that differ \
                     between environments belong in configuration)",
                    kind.word()
                ),
            );
            continue;
        }
        let settings = check_settings(kind, &decl.name, decl.settings, errors);
        out.push(Declared {
            attrs: decl.attrs,
            kind,
            name: decl.name,
            settings,
        });
    }
    out
}

trait UnrawString {
    fn unraw_string(&self) -> String;
}

impl UnrawString for Ident {
    fn unraw_string(&self) -> String {
        syn::ext::IdentExt::unraw(self).to_string()
    }
}

fn keys_of(schema: &Schema) -> Vec<&'static str> {
    schema.keys.iter().map(|k| k.name).collect()
}

/// The group `on <member> { .. }` blocks belong to, when the kind has one.
fn on_group(schema: &Schema) -> Option<&Group> {
    schema
        .groups
        .iter()
        .find(|g| g.name == "on" && g.each.is_some())
}

fn check_settings(
    kind: Kind,
    name: &Ident,
    settings: Vec<Setting>,
    errors: &mut Errors,
) -> Vec<Checked> {
    let schema = kind.schema();
    let group = on_group(schema);
    let mut keys = keys_of(schema);
    if let Some(g) = group {
        keys.push(g.name);
    }
    let what = format!("{} `{name}`", kind.word());
    let mut plain = Vec::new();
    let mut on_blocks = Vec::new();
    for setting in settings {
        match setting {
            Setting::Entry(entry) => plain.push(*entry),
            Setting::On {
                on,
                kind: member,
                entries,
            } => match group {
                Some(g) => on_blocks.push((g, member, entries)),
                None => errors.at(
                    on,
                    format!(
                        "`on <failure kind> {{ .. }}` blocks belong to retry policies; {} \
                         accepts the keys {}",
                        schema.one,
                        quoted(&keys_of(schema))
                    ),
                ),
            },
        }
    }
    let list = kv::check_keys(plain, &keys, &what, errors);
    let mut out = Vec::new();
    let mut rejected = Vec::new();
    for entry in &list.entries {
        let Some(spec) = schema.key(&entry.name()) else {
            errors.at(
                entry.key.span(),
                "`on` takes a failure kind and a block: `on connection_lost { attempts = 5 }`",
            );
            continue;
        };
        match check_value(&entry.name(), entry, &spec.rule) {
            Ok(value) => out.push(Checked {
                key: entry.name(),
                value,
                span: entry.value_span(),
            }),
            Err(e) => {
                rejected.push(entry.name());
                errors.push(e);
            }
        }
    }
    let written = Written {
        schema,
        settings: &out,
        rejected: &rejected,
        prefix: String::new(),
    };
    let policy = WithDefaults {
        schema,
        given: &written,
    };
    report(
        schema.check_together(&policy),
        &out,
        &what,
        name.span(),
        errors,
    );

    let mut seen_members: HashMap<String, Span> = HashMap::new();
    let mut blocks = Vec::new();
    for (group, member, entries) in on_blocks {
        let each = group.each.expect("on_group has members");
        let member_name = member.unraw_string();
        if !each.names.contains(&member_name.as_str()) {
            let hint = kv::closest(&member_name, each.names)
                .map(|c| format!("did you mean `{c}`? "))
                .unwrap_or_default();
            errors.at(
                member.span(),
                format!(
                    "unknown {} `{member_name}`; {hint}{} tune these kinds separately: {}",
                    each.what,
                    kind.described(),
                    quoted(each.names)
                ),
            );
            continue;
        }
        if seen_members
            .insert(member_name.clone(), member.span())
            .is_some()
        {
            errors.at(
                member.span(),
                format!("`on {member_name}` is given twice in {what}; merge the two blocks"),
            );
            continue;
        }
        let inner = group.schema;
        let block_what = format!("`on {member_name}` of {what}");
        let prefix = format!("{}.{member_name}.", group.name);
        let list = kv::check_keys(entries, &keys_of(inner), &block_what, errors);
        let mut block = Vec::new();
        let mut rejected = Vec::new();
        for entry in &list.entries {
            let spec = inner
                .key(&entry.name())
                .expect("check_keys kept only accepted keys");
            let key = format!("{prefix}{}", entry.name());
            match check_value(&entry.name(), entry, &spec.rule) {
                Ok(value) => block.push(Checked {
                    key,
                    value,
                    span: entry.value_span(),
                }),
                Err(e) => {
                    rejected.push(key);
                    errors.push(e);
                }
            }
        }
        let own = Written {
            schema: inner,
            settings: &block,
            rejected: &rejected,
            prefix,
        };
        let view = Inherit {
            own: &own,
            parent: &policy,
        };
        report(
            group.check_member(&member_name, &view),
            &block,
            &block_what,
            member.span(),
            errors,
        );
        blocks.extend(block);
    }
    out.extend(blocks);
    out
}

/// The settings as written, for the schema's rules between keys.
struct Written<'a> {
    schema: &'a Schema,
    settings: &'a [Checked],
    /// Keys written with a value already reported as wrong.
    rejected: &'a [String],
    /// `on.connection_lost.` inside a block, empty outside.
    prefix: String,
}

impl View for Written<'_> {
    fn seen(&self, key: &str) -> Option<Seen<'_>> {
        let full = format!("{}{key}", self.prefix);
        if self.rejected.contains(&full) {
            return Some(Seen {
                value: None,
                source: Source::Given,
            });
        }
        let checked = self.settings.iter().find(|c| c.key == full)?;
        let rule = self.schema.key(key)?.rule;
        let raw = match &checked.value {
            Out::Bool(b) => Raw::Flag(*b),
            Out::Int(n) => Raw::Whole(*n),
            Out::Float(x) => Raw::Number(*x),
            Out::Str(s) => Raw::Text(s),
        };
        Some(Seen {
            value: rule.parse(raw).ok(),
            source: Source::Given,
        })
    }
}

/// Reports each finding on the value at fault, or on `here` (the name) for a key not written.
fn report(found: Vec<Violation>, written: &[Checked], what: &str, here: Span, errors: &mut Errors) {
    for v in found {
        match written.iter().find(|c| c.key == v.key) {
            Some(c) if !v.missing => errors.at(c.span, v.message),
            _ => errors.at(here, format!("{what}: {}", v.message)),
        }
    }
}

fn quoted(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks one literal: first that it is the kind of literal the rule takes (with a message
/// for each likely mix-up), then the schema's rule itself.
fn check_value(key: &str, entry: &Entry, rule: &Rule) -> syn::Result<Out> {
    let expected = rule.expected();
    let Some(value) = &entry.value else {
        return Err(syn::Error::new(
            entry.key.span(),
            format!("`{key}` needs a value: `{key} = ...`, expected {expected}"),
        ));
    };
    let wrong = || match value {
        Value::Str(s) if s.value().trim().parse::<f64>().is_ok() => syn::Error::new(
            s.span(),
            format!("`{key}` expects {expected}: write the number without quotes"),
        ),
        _ => kv::not_a_literal(key, value, &expected),
    };
    let (raw_text, out) = match (rule, value) {
        (Rule::Duration { max, .. }, _) => {
            // The literal's shape, syntax, zero and upper bound, in the words `#[db_op]` uses
            // too; the schema's rule below has the last word (its lower bound included).
            let d = kv::duration(key, value, *max)?;
            (Some(d.text.clone()), Out::Str(d.text))
        }
        (
            Rule::Whole { .. },
            Value::Number {
                lit: Lit::Int(i),
                negative,
                ..
            },
        ) => {
            let n = i
                .base10_parse::<i64>()
                .map(|n| if *negative { -n } else { n })
                .map_err(|_| out_of_range(key, value, &expected))?;
            (None, Out::Int(n))
        }
        (Rule::Number { .. } | Rule::Percent { .. }, Value::Number { .. }) => {
            (None, number(value).ok_or_else(wrong)?)
        }
        (Rule::Flag, Value::Bool(b)) => (None, Out::Bool(b.value)),
        (Rule::Choice(_), Value::Ident(i)) => (Some(i.to_string()), Out::Str(i.to_string())),
        (
            Rule::Choice(_)
            | Rule::Url
            | Rule::UrlList
            | Rule::Ascii { .. }
            | Rule::SchemaList
            | Rule::Name(_),
            Value::Str(s),
        ) => (Some(s.value()), Out::Str(s.value())),
        _ => return Err(wrong()),
    };
    let raw = match (&raw_text, &out) {
        (Some(text), _) => Raw::Text(text),
        (None, Out::Int(n)) => Raw::Whole(*n),
        (None, Out::Float(x)) => Raw::Number(*x),
        (None, Out::Bool(b)) => Raw::Flag(*b),
        (None, Out::Str(s)) => Raw::Text(s),
    };
    match rule.parse(raw) {
        Ok(_) => Ok(out),
        Err(_) => Err(out_of_range(key, value, &expected)),
    }
}

/// "`max` expects a whole number from 1 to 10000, found 0"
fn out_of_range(key: &str, value: &Value, expected: &str) -> syn::Error {
    let found = match value {
        Value::Ident(i) => format!("{:?}", i.to_string()),
        other => other.text(),
    };
    syn::Error::new(
        value.span(),
        format!("`{key}` expects {expected}, found {found}"),
    )
}

fn number(value: &Value) -> Option<Out> {
    let Value::Number { lit, negative, .. } = value else {
        return None;
    };
    let sign = if *negative { -1.0 } else { 1.0 };
    match lit {
        Lit::Int(i) => {
            let n = i.base10_parse::<i64>().ok()?;
            Some(Out::Int(if *negative { -n } else { n }))
        }
        Lit::Float(f) => {
            let x = f.base10_parse::<f64>().ok()? * sign;
            x.is_finite().then_some(Out::Float(x))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx_resilience_schema::show_duration;

    use super::*;

    fn entry(key: &str, literal: &str) -> Entry {
        syn::parse_str(&format!("{key} = {literal}")).expect("an entry")
    }

    /// Literals the rule accepts, and literals just outside it.
    fn literals(rule: &Rule) -> (Vec<String>, Vec<String>) {
        let quoted = |text: String| format!("{text:?}");
        match *rule {
            Rule::Duration { min, max } => (
                vec![quoted(show_duration(min)), quoted(show_duration(max))],
                vec![
                    quoted(show_duration(min.saturating_sub(Duration::from_millis(1)))),
                    quoted(show_duration(max + Duration::from_millis(1))),
                ],
            ),
            Rule::Whole { min, max } => (
                vec![min.to_string(), max.to_string()],
                vec![(min - 1).to_string(), (max + 1).to_string(), "1.5".into()],
            ),
            Rule::Number {
                min,
                max,
                above_min,
            } => (
                vec![
                    format!("{:?}", if above_min { min + 0.5 } else { min }),
                    format!("{max:?}"),
                ],
                vec![
                    format!("{:?}", if above_min { min } else { min - 0.5 }),
                    format!("{:?}", max + 0.5),
                ],
            ),
            Rule::Percent { min, above_min } => (
                vec![
                    format!("{:?}", if above_min { min + 0.5 } else { min }),
                    "100".into(),
                ],
                vec![
                    format!("{:?}", if above_min { min } else { min - 0.5 }),
                    "100.5".into(),
                ],
            ),
            Rule::Flag => (vec!["true".into(), "false".into()], vec!["\"yes\"".into()]),
            Rule::Choice(words) => (
                words
                    .iter()
                    .flat_map(|w| [quoted((*w).to_owned()), (*w).to_owned()])
                    .collect(),
                vec!["\"none_of_these\"".into()],
            ),
            Rule::Url => (
                vec!["\"postgres://app@db/app\"".into()],
                vec!["\"mysql://app@db/app\"".into(), "5".into()],
            ),
            Rule::Ascii { max_len } => (
                vec![quoted("a".repeat(max_len))],
                vec![quoted("a".repeat(max_len + 1))],
            ),
            Rule::SchemaList => (vec!["\"app, public\"".into()], vec!["\"a; b\"".into()]),
            Rule::Name(_) => (vec!["\"http\"".into()], vec!["\" \"".into()]),
            Rule::UrlList => (
                vec![
                    "\"postgres://app@r1/app, postgres://app@r2/app\"".into(),
                    "\"hosts\"".into(),
                ],
                vec!["\"mysql://app@db/app\"".into(), "5".into()],
            ),
        }
    }

    /// Every key of every kind, whatever key is added next: the bounds its rule gives are
    /// accepted, and what is just outside is an error.
    #[test]
    fn every_schema_key_is_checked_at_its_bounds() {
        let mut schemas: Vec<&Schema> = Kind::ALL.iter().map(|k| k.schema()).collect();
        schemas.push(&schema::RETRY_ON);
        for schema in schemas {
            for key in schema.keys {
                let (good, bad) = literals(&key.rule);
                for literal in good {
                    let result = check_value(key.name, &entry(key.name, &literal), &key.rule);
                    assert!(
                        result.is_ok(),
                        "{} {} = {literal}: {:?}",
                        schema.kind,
                        key.name,
                        result.err().map(|e| e.to_string())
                    );
                }
                for literal in bad {
                    let result = check_value(key.name, &entry(key.name, &literal), &key.rule);
                    assert!(
                        result.is_err(),
                        "{} {} = {literal} was accepted",
                        schema.kind,
                        key.name
                    );
                }
            }
        }
    }
}
