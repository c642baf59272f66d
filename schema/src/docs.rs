//! The key tables of `docs/*.md`, rendered from the schemas.
//!
//! Each table sits between two marker comments in its file:
//!
//! ```text
//! <!-- begin schema:pool (generated: SCHEMA_DOCS=overwrite cargo test -p sqlx-resilience-schema --test docs) -->
//! ...
//! <!-- end schema:pool -->
//! ```
//!
//! The `docs` test fails when a file's block differs from [`render`]; with
//! `SCHEMA_DOCS=overwrite` it rewrites the blocks instead.

use crate::constraint::Constraint;
use crate::key::{DefaultIs, Key};
use crate::kinds::{BREAKER, BULKHEAD, FAULTS, KINDS, LIMITER, MONITOR, POOL, RETRY, RUNTIME};
use crate::table::Schema;

/// One generated block: the file it is in (relative to the workspace) and its name.
#[derive(Debug, Clone, Copy)]
pub struct Block {
    /// `docs/CONFIGURATION.md`.
    pub file: &'static str,
    /// `pool`.
    pub name: &'static str,
}

/// Every generated block.
pub const BLOCKS: &[Block] = &[
    Block {
        file: "docs/CONFIGURATION.md",
        name: "runtime",
    },
    Block {
        file: "docs/CONFIGURATION.md",
        name: "pool",
    },
    Block {
        file: "docs/POLICIES.md",
        name: "breaker",
    },
    Block {
        file: "docs/POLICIES.md",
        name: "retry",
    },
    Block {
        file: "docs/POLICIES.md",
        name: "limiter",
    },
    Block {
        file: "docs/POLICIES.md",
        name: "bulkhead",
    },
    Block {
        file: "docs/OBSERVABILITY.md",
        name: "monitor",
    },
    Block {
        file: "docs/FAULTS.md",
        name: "faults",
    },
    Block {
        file: "docs/MACRO_POLICIES.md",
        name: "policies",
    },
];

/// The text of a block, without its markers.
pub fn render(name: &str) -> Option<String> {
    Some(match name {
        "runtime" => table(&RUNTIME, ""),
        "pool" => table(&POOL, ""),
        "breaker" => table(&BREAKER, ""),
        "retry" => table(&RETRY, ""),
        "limiter" => table(&LIMITER, ""),
        "bulkhead" => table(&BULKHEAD, ""),
        "monitor" => table(&MONITOR, "monitor."),
        "faults" => table(&FAULTS, "faults."),
        "policies" => summary(&KINDS),
        _ => return None,
    })
}

/// The opening marker of a block, with the command that regenerates it.
pub fn begin_marker(name: &str) -> String {
    format!(
        "<!-- begin schema:{name} (generated: SCHEMA_DOCS=overwrite cargo test -p \
         sqlx-resilience-schema --test docs) -->"
    )
}

/// The closing marker of a block.
pub fn end_marker(name: &str) -> String {
    format!("<!-- end schema:{name} -->")
}

/// The block's current text in `doc`, or why it cannot be found.
pub fn current<'d>(doc: &'d str, name: &str) -> Result<&'d str, String> {
    let (start, end) = span(doc, name)?;
    Ok(&doc[start..end])
}

/// `doc` with the block's text replaced by `content`.
pub fn replace(doc: &str, name: &str, content: &str) -> Result<String, String> {
    let (start, end) = span(doc, name)?;
    Ok(format!("{}{content}{}", &doc[..start], &doc[end..]))
}

/// Where the block's text starts (after the begin marker's line) and ends (at the end marker).
fn span(doc: &str, name: &str) -> Result<(usize, usize), String> {
    let open = format!("<!-- begin schema:{name} ");
    let close = end_marker(name);
    let begin = doc
        .find(&open)
        .ok_or_else(|| format!("no `{open}...-->` marker"))?;
    let start = doc[begin..]
        .find("-->\n")
        .map(|i| begin + i + "-->\n".len())
        .ok_or_else(|| format!("the marker `{open}` is not closed by `-->` and a line break"))?;
    let end = doc[start..]
        .find(&close)
        .map(|i| start + i)
        .ok_or_else(|| format!("no `{close}` after `{open}...-->`"))?;
    Ok((start, end))
}

/// A table of every key (`| key | value | default | meaning |`) and the rules between keys.
pub fn table(schema: &Schema, prefix: &str) -> String {
    let mut out = String::from("| key | value | default | meaning |\n|---|---|---|---|\n");
    for (name, key) in schema.all_keys() {
        out.push_str(&format!(
            "| `{prefix}{name}` | {} | {} | {} |\n",
            cell(&value(key)),
            cell(&key.default.shown()),
            cell(key.doc)
        ));
    }
    let mut notes = Vec::new();
    for g in schema.groups {
        if let (Some(each), Some(from)) = (g.each, g.inherits) {
            let names: Vec<String> = each.names.iter().map(|n| format!("`{n}`")).collect();
            notes.push(format!(
                "`{}.{}.*` keys tune one {} (`{}` is one of {}); unset ones take {from}'s.",
                g.name,
                each.placeholder,
                each.what,
                each.placeholder,
                names.join(", ")
            ));
        }
    }
    let rules = rules(schema, prefix);
    if !rules.is_empty() {
        notes.push(format!(
            "Rules between keys, checked by `policies!` when the code compiles and by the \
             runtime at start-up:\n\n{}",
            rules
                .iter()
                .map(|(rule, why)| format!("- {rule}: {why}"))
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    for note in notes {
        out.push('\n');
        out.push_str(&note);
        out.push('\n');
    }
    out
}

/// One paragraph per kind: every key with its value in a few words, and the rules between
/// keys.
pub fn summary(schemas: &[&Schema]) -> String {
    let mut out = String::new();
    for (i, schema) in schemas.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let keys: Vec<String> = schema.all_keys().iter().map(|(n, k)| brief(n, k)).collect();
        out.push_str(&format!("**{}**: {}.", schema.kind, keys.join(", ")));
        let rules: Vec<String> = rules(schema, "")
            .into_iter()
            .map(|(rule, _)| rule)
            .collect();
        if !rules.is_empty() {
            out.push_str(&format!(" Rules between keys: {}.", rules.join("; ")));
        }
        out.push('\n');
    }
    out
}

/// `` `max` (whole number, 1..=10000; default 10) ``
fn brief(name: &str, key: &Key) -> String {
    let default = match key.default {
        DefaultIs::Value(_) => format!("; default {}", key.default.shown()),
        DefaultIs::Required(_) => "; required".to_owned(),
        _ => String::new(),
    };
    format!("`{name}` ({}{default})", value(key))
}

fn value(key: &Key) -> String {
    match key.unit {
        Some(unit) => format!("{} {unit}", key.rule.summary()),
        None => key.rule.summary(),
    }
}

/// Each constraint in words, and why: `` (`min` at most `max`, why) ``.
fn rules(schema: &Schema, prefix: &str) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> =
        schema.constraints.iter().map(|c| rule(c, prefix)).collect();
    for g in schema.groups {
        let inner = match g.each {
            Some(each) => format!("{prefix}{}.{}.", g.name, each.placeholder),
            None => format!("{prefix}{}.", g.name),
        };
        out.extend(g.schema.constraints.iter().map(|c| rule(c, &inner)));
    }
    out
}

fn rule(c: &Constraint, p: &str) -> (String, &'static str) {
    match *c {
        Constraint::Order {
            small,
            large,
            default_capped,
            why,
            ..
        } => {
            let capped = if default_capped {
                format!(" (a default `{p}{small}` is capped at `{p}{large}` instead)")
            } else {
                String::new()
            };
            (format!("`{p}{small}` at most `{p}{large}`{capped}"), why)
        }
        Constraint::Needs { key, needs, why } => {
            let needs: Vec<String> = needs.iter().map(|n| format!("`{p}{n}`")).collect();
            (format!("`{p}{key}` needs {}", needs.join(" or ")), why)
        }
        Constraint::Excludes { key, other, why } => {
            (format!("`{p}{key}` not with `{p}{other}`"), why)
        }
        Constraint::Useless {
            key,
            other,
            value,
            why,
        } => (format!("`{p}{key}` not with `{p}{other} = {value}`"), why),
    }
}

/// A table cell: pipes escaped, so a cell never splits.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}
