//! The settings each kind accepts (the runtime's configuration sections, key for key), and
//! their checks: type, range, duration syntax, and keys that contradict each other.

use std::collections::HashMap;
use std::time::Duration;

use proc_macro2::Span;
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
        match self {
            Kind::Pool => "pool",
            Kind::Breaker => "breaker",
            Kind::Retry => "retry",
            Kind::Limiter => "limiter",
            Kind::Bulkhead => "bulkhead",
        }
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

    /// "a circuit breaker"
    fn one(self) -> &'static str {
        match self {
            Kind::Pool => "a connection pool",
            Kind::Breaker => "a circuit breaker",
            Kind::Retry => "a retry policy",
            Kind::Limiter => "a rate limiter",
            Kind::Bulkhead => "a bulkhead",
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

    fn rules(self) -> &'static [(&'static str, Rule)] {
        match self {
            Kind::Pool => POOL,
            Kind::Breaker => BREAKER,
            Kind::Retry => RETRY,
            Kind::Limiter => LIMITER,
            Kind::Bulkhead => BULKHEAD,
        }
    }
}

/// What a key's value must be.
#[derive(Clone, Copy, Debug)]
enum Rule {
    /// ASCII text of at most 63 bytes (PostgreSQL's `application_name`).
    AppName,
    /// Comma-separated schema names, without quotes, semicolons or backslashes.
    SearchPath,
    /// A PostgreSQL URL.
    Url,
    /// A duration from 1ms up to the bound.
    Duration(Duration),
    /// A whole number in the range.
    Count(i64, i64),
    /// A number in the range (whole numbers accepted); the lower bound is excluded when the
    /// flag is set.
    Number(f64, f64, bool),
    /// A percentage above 0, at most 100.
    Percent,
    Flag,
    Choice(&'static [&'static str]),
}

const HOUR: Duration = Duration::from_secs(60 * 60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);
const MONTH: Duration = Duration::from_secs(30 * 24 * 60 * 60);

const POOL: &[(&str, Rule)] = &[
    ("url", Rule::Url),
    ("max", Rule::Count(1, 10_000)),
    ("min", Rule::Count(0, 10_000)),
    ("acquire_timeout", Rule::Duration(DAY)),
    ("idle_timeout", Rule::Duration(DAY)),
    ("max_lifetime", Rule::Duration(MONTH)),
    ("connect_timeout", Rule::Duration(DAY)),
    ("startup", Rule::Choice(&["eager", "lazy"])),
    ("startup_timeout", Rule::Duration(DAY)),
    ("validation", Rule::Choice(&["idle", "always", "never"])),
    ("validation_window", Rule::Duration(DAY)),
    ("leak_threshold", Rule::Duration(DAY)),
    ("statement_timeout", Rule::Duration(DAY)),
    ("lock_timeout", Rule::Duration(DAY)),
    ("idle_in_transaction_session_timeout", Rule::Duration(DAY)),
    ("application_name", Rule::AppName),
    ("search_path", Rule::SearchPath),
    ("client_connection_check_interval", Rule::Duration(DAY)),
    ("outage_wait", Rule::Duration(DAY)),
    ("outage_waiters", Rule::Count(0, 1_000_000)),
];

const BREAKER: &[(&str, Rule)] = &[
    ("failures", Rule::Count(1, 1_000_000)),
    ("within", Rule::Duration(HOUR)),
    ("consecutive_failures", Rule::Count(1, 1_000_000)),
    ("failure_rate", Rule::Percent),
    ("slow_rate", Rule::Percent),
    ("slow_call", Rule::Duration(HOUR)),
    ("window", Rule::Duration(HOUR)),
    ("window_calls", Rule::Count(2, 100_000)),
    ("minimum_calls", Rule::Count(1, 100_000)),
    ("open_for", Rule::Duration(HOUR)),
    ("open_for_max", Rule::Duration(DAY)),
    ("open_backoff", Rule::Number(1.0, 10.0, false)),
    ("half_open", Rule::Count(1, 1000)),
    (
        "mode",
        Rule::Choice(&["normal", "disabled", "metrics_only", "forced_open"]),
    ),
];

const RETRY: &[(&str, Rule)] = &[
    ("attempts", Rule::Count(1, 100)),
    ("base", Rule::Duration(HOUR)),
    ("factor", Rule::Number(1.0, 10.0, false)),
    ("max_delay", Rule::Duration(HOUR)),
    ("max_elapsed", Rule::Duration(DAY)),
    ("jitter", Rule::Choice(&["full", "equal", "none"])),
    ("budget_percent", Rule::Number(0.0, 1000.0, false)),
    ("budget_min_per_second", Rule::Count(0, 1_000_000)),
    ("budget_window", Rule::Duration(HOUR)),
];

/// The keys of an `on <kind> { .. }` block inside a retry policy.
const RETRY_ON: &[(&str, Rule)] = &[
    ("attempts", Rule::Count(1, 100)),
    ("base", Rule::Duration(HOUR)),
    ("factor", Rule::Number(1.0, 10.0, false)),
    ("max_delay", Rule::Duration(HOUR)),
];

/// The failure kinds a retry policy can tune separately.
pub(crate) const RETRY_ON_KINDS: &[&str] = &[
    "connection_lost",
    "contention",
    "backpressure",
    "server_shutdown",
    "failover",
    "deadline",
    "statement_timeout",
    "canceled",
];

const LIMITER: &[(&str, Rule)] = &[
    ("per_second", Rule::Number(0.0, 1_000_000.0, true)),
    ("burst", Rule::Count(1, 1_000_000)),
    ("wait", Rule::Flag),
    ("max_wait", Rule::Duration(HOUR)),
    ("per_key", Rule::Flag),
    ("max_keys", Rule::Count(1, 10_000_000)),
];

const BULKHEAD: &[(&str, Rule)] = &[
    ("max_concurrent", Rule::Count(1, 100_000)),
    ("max_queue", Rule::Count(0, 1_000_000)),
    ("max_wait", Rule::Duration(HOUR)),
];

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

fn keys_of(rules: &[(&'static str, Rule)]) -> Vec<&'static str> {
    rules.iter().map(|(k, _)| *k).collect()
}

fn check_settings(
    kind: Kind,
    name: &Ident,
    settings: Vec<Setting>,
    errors: &mut Errors,
) -> Vec<Checked> {
    let rules = kind.rules();
    let mut keys = keys_of(rules);
    if kind == Kind::Retry {
        keys.push("on");
    }
    let what = format!("{} `{name}`", kind.word());
    let mut plain = Vec::new();
    let mut on_blocks = Vec::new();
    for setting in settings {
        match setting {
            Setting::Entry(entry) => plain.push(*entry),
            Setting::On {
                on,
                kind: failure,
                entries,
            } => {
                if kind == Kind::Retry {
                    on_blocks.push((failure, entries));
                } else {
                    errors.at(
                        on,
                        format!(
                            "`on <failure kind> {{ .. }}` blocks belong to retry policies; {} \
                             accepts the keys {}",
                            kind.one(),
                            quoted(&keys_of(rules))
                        ),
                    );
                }
            }
        }
    }
    if kind == Kind::Limiter && !plain.iter().any(|e| e.name() == "per_second") {
        errors.at(
            name.span(),
            format!(
                "limiter `{name}` needs a rate: add `per_second`, such as `limiter {name} {{ per_second = 100 }}` (configuration may change it; the runtime has no default rate)"
            ),
        );
    }
    let list = kv::check_keys(plain, &keys, &what, errors);
    let mut out = Vec::new();
    for entry in &list.entries {
        if entry.name() == "on" {
            errors.at(
                entry.key.span(),
                "`on` takes a failure kind and a block: `on connection_lost { attempts = 5 }`",
            );
            continue;
        }
        let rule = rule_of(rules, &entry.name());
        match check_value(&entry.name(), entry, rule) {
            Ok(value) => out.push(Checked {
                key: entry.name(),
                value,
                span: entry.value_span(),
            }),
            Err(e) => errors.push(e),
        }
    }
    check_together(kind, &out, "", errors);

    let mut seen_kinds: HashMap<String, Span> = HashMap::new();
    for (failure, entries) in on_blocks {
        let failure_name = failure.unraw_string();
        if !RETRY_ON_KINDS.contains(&failure_name.as_str()) {
            let hint = kv::closest(&failure_name, RETRY_ON_KINDS)
                .map(|c| format!("did you mean `{c}`? "))
                .unwrap_or_default();
            errors.at(
                failure.span(),
                format!(
                    "unknown failure kind `{failure_name}`; {hint}retry policies tune these kinds \
                     separately: {}",
                    quoted(RETRY_ON_KINDS)
                ),
            );
            continue;
        }
        if seen_kinds
            .insert(failure_name.clone(), failure.span())
            .is_some()
        {
            errors.at(
                failure.span(),
                format!("`on {failure_name}` is given twice in {what}; merge the two blocks"),
            );
            continue;
        }
        let block_what = format!("`on {failure_name}` of {what}");
        let list = kv::check_keys(entries, &keys_of(RETRY_ON), &block_what, errors);
        let mut block = Vec::new();
        for entry in &list.entries {
            let rule = rule_of(RETRY_ON, &entry.name());
            match check_value(&entry.name(), entry, rule) {
                Ok(value) => block.push(Checked {
                    key: format!("on.{failure_name}.{}", entry.name()),
                    value,
                    span: entry.value_span(),
                }),
                Err(e) => errors.push(e),
            }
        }
        check_together(kind, &block, &format!("on.{failure_name}."), errors);
        out.extend(block);
    }
    out
}

fn rule_of(rules: &[(&'static str, Rule)], key: &str) -> Rule {
    rules
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, r)| *r)
        .expect("check_keys kept only accepted keys")
}

fn quoted(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_value(key: &str, entry: &Entry, rule: Rule) -> syn::Result<Out> {
    let expected = describe(rule);
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
    match rule {
        Rule::AppName => match value {
            Value::Str(s) if s.value().is_ascii() && s.value().len() <= 63 => {
                Ok(Out::Str(s.value()))
            }
            Value::Str(s) => Err(syn::Error::new(
                s.span(),
                format!("`{key}` expects {expected}, found {:?}", s.value()),
            )),
            _ => Err(wrong()),
        },
        Rule::SearchPath => match value {
            Value::Str(s) if !s.value().contains(['\'', ';', '\\']) => Ok(Out::Str(s.value())),
            Value::Str(s) => Err(syn::Error::new(
                s.span(),
                format!("`{key}` expects {expected}, found {:?}", s.value()),
            )),
            _ => Err(wrong()),
        },
        Rule::Url => match value {
            Value::Str(s) => {
                let url = s.value();
                if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                    Ok(Out::Str(url))
                } else {
                    Err(syn::Error::new(
                        s.span(),
                        format!("`{key}` expects {expected}, found {url:?}"),
                    ))
                }
            }
            _ => Err(wrong()),
        },
        Rule::Duration(max) => {
            let d = kv::duration(key, value, max)?;
            Ok(Out::Str(d.text))
        }
        Rule::Count(min, max) => match value {
            Value::Number {
                lit: Lit::Int(i),
                negative,
                span,
            } => {
                let n = i
                    .base10_parse::<i64>()
                    .map(|n| if *negative { -n } else { n })
                    .ok()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| {
                        syn::Error::new(
                            *span,
                            format!("`{key}` expects {expected}, found {}", value.text()),
                        )
                    })?;
                Ok(Out::Int(n))
            }
            _ => Err(wrong()),
        },
        Rule::Number(min, max, exclusive) => {
            let (x, out) = number(value).ok_or_else(wrong)?;
            let low_ok = if exclusive { x > min } else { x >= min };
            if low_ok && x <= max {
                Ok(out)
            } else {
                Err(syn::Error::new(
                    value.span(),
                    format!("`{key}` expects {expected}, found {}", value.text()),
                ))
            }
        }
        Rule::Percent => {
            let (x, out) = number(value).ok_or_else(wrong)?;
            if x > 0.0 && x <= 100.0 {
                Ok(out)
            } else {
                Err(syn::Error::new(
                    value.span(),
                    format!("`{key}` expects {expected}, found {}", value.text()),
                ))
            }
        }
        Rule::Flag => match value {
            Value::Bool(b) => Ok(Out::Bool(b.value)),
            _ => Err(wrong()),
        },
        Rule::Choice(choices) => {
            let (text, span) = match value {
                Value::Str(s) => (s.value(), s.span()),
                Value::Ident(i) => (i.to_string(), i.span()),
                _ => return Err(wrong()),
            };
            if choices.contains(&text.as_str()) {
                Ok(Out::Str(text))
            } else {
                Err(syn::Error::new(
                    span,
                    format!("`{key}` expects {expected}, found {text:?}"),
                ))
            }
        }
    }
}

fn number(value: &Value) -> Option<(f64, Out)> {
    let Value::Number { lit, negative, .. } = value else {
        return None;
    };
    let sign = if *negative { -1.0 } else { 1.0 };
    match lit {
        Lit::Int(i) => {
            let n = i.base10_parse::<i64>().ok()?;
            let n = if *negative { -n } else { n };
            Some((n as f64, Out::Int(n)))
        }
        Lit::Float(f) => {
            let x = f.base10_parse::<f64>().ok()? * sign;
            x.is_finite().then_some((x, Out::Float(x)))
        }
        _ => None,
    }
}

fn describe(rule: Rule) -> String {
    match rule {
        Rule::AppName => "ASCII text of at most 63 bytes".to_owned(),
        Rule::SearchPath => {
            "a comma-separated list of schema names, such as \"app, public\"".to_owned()
        }
        Rule::Url => "a PostgreSQL URL such as \"postgres://app@db.internal/app\"".to_owned(),
        Rule::Duration(max) => format!("{}, at most {}", kv::DURATION_EXPECTED, kv::human(max)),
        Rule::Count(min, max) => format!("a whole number from {min} to {max}"),
        Rule::Number(min, max, true) => format!("a number above {min} and at most {max}"),
        Rule::Number(min, max, false) => format!("a number from {min:.1} to {max:.1}"),
        Rule::Percent => "a percentage above 0 and at most 100, such as 50".to_owned(),
        Rule::Flag => "`true` or `false`".to_owned(),
        Rule::Choice(choices) => {
            let quoted: Vec<String> = choices.iter().map(|c| format!("\"{c}\"")).collect();
            format!("one of {}", quoted.join(", "))
        }
    }
}

/// Keys that only make sense together: the runtime's own checks (`Section::validate`) where
/// they depend on the keys written here, so a contradiction is a compile error, not a start-up
/// error.
fn check_together(kind: Kind, settings: &[Checked], prefix: &str, errors: &mut Errors) {
    let get = |key: &str| {
        let full = format!("{prefix}{key}");
        settings.iter().find(|s| s.key == full)
    };
    let int = |c: &Checked| match c.value {
        Out::Int(n) => Some(n),
        _ => None,
    };
    let duration = |c: &Checked| match &c.value {
        Out::Str(s) => humantime::parse_duration(s).ok(),
        _ => None,
    };
    let at_most = |small: &str, large: &str, why: &str| -> Option<(Span, String)> {
        let (a, b) = (get(small)?, get(large)?);
        (duration(a)? > duration(b)?)
            .then(|| (a.span, format!("`{small}` is longer than `{large}`: {why}")))
    };
    match kind {
        Kind::Pool => {
            if let (Some(min), Some(max)) = (get("min"), get("max"))
                && let (Some(lo), Some(hi)) = (int(min), int(max))
                && lo > hi
            {
                errors.at(
                            min.span,
                            format!("`min` of {lo} is above `max` of {hi}: a pool keeps at most `max` connections; lower `min`"),
                        );
            }
            if let Some((span, message)) = at_most(
                "lock_timeout",
                "statement_timeout",
                "the lock wait is part of the statement, so it could never fire; lower `lock_timeout`",
            ) {
                errors.at(span, message);
            }
            if let Some((span, message)) = at_most(
                "idle_timeout",
                "max_lifetime",
                "a connection is closed at `max_lifetime` before it could idle that long; lower `idle_timeout`",
            ) {
                errors.at(span, message);
            }
        }
        Kind::Retry => {
            if let Some((span, message)) = at_most(
                "base",
                "max_delay",
                "the first delay is above the longest delay; lower `base` or raise `max_delay`",
            ) {
                errors.at(span, message);
            }
            if prefix.is_empty()
                && let (Some(base), Some(total)) = (get("base"), get("max_elapsed"))
                && let (Some(b), Some(t)) = (duration(base), duration(total))
                && t < b
            {
                errors.at(
                                total.span,
                                "`max_elapsed` is shorter than `base`: no retry could start; raise `max_elapsed`",
                            );
            }
        }
        Kind::Breaker => {
            let mut errs = Vec::new();
            if let Some((span, message)) = at_most(
                "open_for",
                "open_for_max",
                "the open time starts at `open_for` and grows up to `open_for_max`; raise `open_for_max`",
            ) {
                errors.at(span, message);
            }
            match (get("failures"), get("within")) {
                (Some(f), None) => errs.push((f.span, "`failures` counts failures within a time window: add `within`, such as `failures = 5, within = \"60s\"` (or use `consecutive_failures = 5`)")),
                (None, Some(w)) => errs.push((w.span, "`within` is the window of `failures`: add `failures`, such as `failures = 5, within = \"60s\"`")),
                _ => {}
            }
            if let (Some(_), Some(n)) = (get("window"), get("window_calls")) {
                errs.push((n.span, "give either `window` (a time window) or `window_calls` (the last N calls), not both"));
            }
            let has_rate = get("failure_rate").is_some() || get("slow_rate").is_some();
            if !has_rate {
                for key in ["window", "window_calls"] {
                    if let Some(w) = get(key) {
                        errs.push((w.span, "a rate window needs `failure_rate` or `slow_rate`: the window only applies to rates"));
                    }
                }
            }
            if let (Some(rate), None) = (get("slow_rate"), get("slow_call")) {
                errs.push((
                    rate.span,
                    "`slow_rate` needs `slow_call`: the duration from which a call counts as slow",
                ));
            }
            if let (Some(min), Some(window)) = (get("minimum_calls"), get("window_calls"))
                && let (Some(m), Some(w)) = (int(min), int(window))
                && m > w
            {
                errs.push((min.span, "`minimum_calls` is above `window_calls`: the window never holds enough calls to trip; lower `minimum_calls`"));
            }
            for (span, message) in errs {
                errors.at(span, message);
            }
        }
        Kind::Limiter => {
            if let (Some(wait), Some(max_wait)) = (get("wait"), get("max_wait"))
                && wait.value == Out::Bool(false)
            {
                errors.at(
                    max_wait.span,
                    "`max_wait` bounds how long a call waits for a permit, but `wait = false` \
                         rejects calls at once; remove one of them",
                );
            }
        }
        Kind::Bulkhead => {}
    }
}
