//! The one `key = value` list parser both macros use.
//!
//! A list is `key`, `key = value`, separated by commas. Duplicates are reported at the second
//! key, unknown keys list every accepted key (with the closest one first when it looks like a
//! typo). Values are kept as written; each macro converts them with the helpers below so that a
//! bad value names what was expected.

use std::collections::HashMap;
use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, LitBool, LitStr, Path, Token, UnOp};

/// Collects errors so one expansion reports every mistake, not only the first.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    pub(crate) fn take(self) -> Option<syn::Error> {
        self.0
    }
}

/// One entry: `key` or `key = value`.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) key: Ident,
    pub(crate) value: Option<Value>,
}

impl Entry {
    pub(crate) fn name(&self) -> String {
        self.key.unraw().to_string()
    }

    /// The span of the value, or of the key when there is none.
    pub(crate) fn value_span(&self) -> Span {
        self.value.as_ref().map_or(self.key.span(), Value::span)
    }
}

impl Parse for Entry {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        // `Ident::parse_any` accepts keywords too: `crate = path` is a key.
        let key = input.call(Ident::parse_any)?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            if input.is_empty() || input.peek(Token![,]) {
                return Err(syn::Error::new(
                    key.span(),
                    format!("`{key} =` needs a value after the `=`"),
                ));
            }
            Some(Value::from_expr(input.parse()?))
        } else {
            None
        };
        Ok(Entry { key, value })
    }
}

/// A value as written.
#[derive(Clone)]
pub(crate) enum Value {
    Str(LitStr),
    /// An integer or float literal, with a leading `-` when there was one.
    Number {
        lit: Lit,
        negative: bool,
        span: Span,
    },
    Bool(LitBool),
    Ident(Ident),
    Path(Path),
    /// Anything else (an expression, a constant, a call): never accepted, but reported well.
    Other(Expr),
}

impl Value {
    fn from_expr(expr: Expr) -> Value {
        match expr {
            Expr::Lit(ExprLit { lit, .. }) => match lit {
                Lit::Str(s) => Value::Str(s),
                Lit::Bool(b) => Value::Bool(b),
                lit @ (Lit::Int(_) | Lit::Float(_)) => Value::Number {
                    span: lit.span(),
                    lit,
                    negative: false,
                },
                other => Value::Other(Expr::Lit(ExprLit {
                    attrs: Vec::new(),
                    lit: other,
                })),
            },
            Expr::Unary(ExprUnary {
                op: UnOp::Neg(minus),
                expr,
                ..
            }) if matches!(
                &*expr,
                Expr::Lit(ExprLit {
                    lit: Lit::Int(_) | Lit::Float(_),
                    ..
                })
            ) =>
            {
                let Expr::Lit(ExprLit { lit, .. }) = *expr else {
                    unreachable!("checked by the guard")
                };
                let span = minus.span.join(lit.span()).unwrap_or(lit.span());
                Value::Number {
                    lit,
                    negative: true,
                    span,
                }
            }
            Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => match p.path.get_ident() {
                Some(ident) => Value::Ident(ident.clone()),
                None => Value::Path(p.path),
            },
            other => Value::Other(other),
        }
    }

    pub(crate) fn span(&self) -> Span {
        match self {
            Value::Str(s) => s.span(),
            Value::Number { span, .. } => *span,
            Value::Bool(b) => b.span,
            Value::Ident(i) => i.span(),
            Value::Path(p) => p.span(),
            Value::Other(e) => e.span(),
        }
    }

    /// The value as written, for messages.
    pub(crate) fn text(&self) -> String {
        match self {
            Value::Str(s) => format!("{:?}", s.value()),
            Value::Number { lit, negative, .. } => {
                format!(
                    "{}{}",
                    if *negative { "-" } else { "" },
                    lit.to_token_stream()
                )
            }
            Value::Bool(b) => b.value.to_string(),
            Value::Ident(i) => i.to_string(),
            Value::Path(p) => p.to_token_stream().to_string().replace(' ', ""),
            Value::Other(e) => e.to_token_stream().to_string(),
        }
    }
}

/// A parsed list in source order, with duplicates and unknown keys already reported.
pub(crate) struct List {
    pub(crate) entries: Vec<Entry>,
}

/// Parses a comma-separated list of entries.
pub(crate) fn parse_entries(input: ParseStream<'_>) -> syn::Result<Vec<Entry>> {
    let list = Punctuated::<Entry, Token![,]>::parse_terminated(input)?;
    Ok(list.into_iter().collect())
}

/// Checks keys against `accepted` and for duplicates; keeps the entries that are usable.
pub(crate) fn check_keys(
    entries: Vec<Entry>,
    accepted: &[&str],
    what: &str,
    errors: &mut Errors,
) -> List {
    let mut seen: HashMap<String, Span> = HashMap::new();
    let mut kept = Vec::new();
    for entry in entries {
        let name = entry.name();
        if !accepted.contains(&name.as_str()) {
            errors.at(entry.key.span(), unknown_key(&name, accepted, what));
            continue;
        }
        if seen.insert(name.clone(), entry.key.span()).is_some() {
            errors.at(
                entry.key.span(),
                format!("duplicate key `{name}`: it is already given earlier in this {what}"),
            );
            continue;
        }
        kept.push(entry);
    }
    List { entries: kept }
}

/// "unknown key `tiemout` in #[db_op]; did you mean `timeout`? accepted keys: ..."
pub(crate) fn unknown_key(name: &str, accepted: &[&str], what: &str) -> String {
    let list = accepted
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match closest(name, accepted) {
        Some(close) => {
            format!("unknown key `{name}` in {what}; did you mean `{close}`? accepted keys: {list}")
        }
        None => format!("unknown key `{name}` in {what}; accepted keys: {list}"),
    }
}

/// The accepted word closest to a typo, when it is close enough to be a likely fix (the
/// schema's rule, so the runtime suggests the same word).
pub(crate) fn closest<'a>(name: &str, accepted: &[&'a str]) -> Option<&'a str> {
    sqlx_resilience_schema::closest(name, accepted)
}

/// What every duration message says is expected.
pub(crate) const DURATION_EXPECTED: &str = sqlx_resilience_schema::DURATION_EXAMPLE;

/// A duration literal: `"250ms"`, `"5s"`, `"1m 30s"`.
#[derive(Clone, Debug)]
pub(crate) struct DurationLit {
    pub(crate) value: Duration,
    /// The text as written, trimmed; handed to the runtime unchanged.
    pub(crate) text: String,
    pub(crate) span: Span,
}

/// Reads a duration; rejects zero, and anything above `max` naming the bound.
pub(crate) fn duration(key: &str, value: &Value, max: Duration) -> syn::Result<DurationLit> {
    let lit = match value {
        Value::Str(s) => s,
        Value::Number { lit, span, .. } => {
            let text = lit.to_token_stream().to_string();
            let hint = if lit.suffix().is_empty() {
                format!(
                    "a bare number has no unit: write it as a string with a unit, such as \"{text}s\" or \"{text}ms\""
                )
            } else {
                format!("write it as a string: \"{text}\"")
            };
            return Err(syn::Error::new(
                *span,
                format!("`{key}` expects {DURATION_EXPECTED}; {hint}"),
            ));
        }
        other => return Err(not_a_literal(key, other, DURATION_EXPECTED)),
    };
    let text = lit.value().trim().to_owned();
    let parsed = humantime::parse_duration(&text).map_err(|e| {
        let why = match e {
            humantime::DurationError::UnknownUnit { unit, .. } => {
                format!("unknown unit \"{unit}\"")
            }
            humantime::DurationError::NumberOverflow => "the number is too large".to_owned(),
            _ => "not a number followed by a unit".to_owned(),
        };
        syn::Error::new(
            lit.span(),
            format!(
                "`{key}` expects {DURATION_EXPECTED} (units: ms, s, m, h; \"1m 30s\" combines \
                 them), found \"{}\": {why}",
                lit.value()
            ),
        )
    })?;
    if parsed.is_zero() {
        return Err(syn::Error::new(
            lit.span(),
            format!("`{key}` must be above zero; expected {DURATION_EXPECTED}"),
        ));
    }
    if parsed < Duration::from_millis(1) {
        return Err(syn::Error::new(
            lit.span(),
            format!("`{key}` must be at least 1ms; expected {DURATION_EXPECTED}"),
        ));
    }
    if parsed > max {
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "`{key}` of \"{text}\" is too long: expected a duration of at most {}, such as \"5s\"",
                human(max),
            ),
        ));
    }
    Ok(DurationLit {
        value: parsed,
        text,
        span: lit.span(),
    })
}

/// A duration in the largest unit that divides it exactly: `24h`, `90s`, `250ms`.
pub(crate) fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A boolean: `true` / `false`, or a bare flag (no value) meaning `true`.
pub(crate) fn flag(entry: &Entry) -> syn::Result<bool> {
    match &entry.value {
        None => Ok(true),
        Some(Value::Bool(b)) => Ok(b.value),
        Some(Value::Str(s)) if s.value() == "true" || s.value() == "false" => Err(syn::Error::new(
            s.span(),
            format!(
                "`{}` expects `true` or `false` without quotes",
                entry.name()
            ),
        )),
        Some(other) => Err(not_a_literal(&entry.name(), other, "`true` or `false`")),
    }
}

/// The error for a value that is not the literal a key needs.
pub(crate) fn not_a_literal(key: &str, value: &Value, expected: &str) -> syn::Error {
    let message = match value {
        Value::Ident(_) | Value::Path(_) | Value::Other(_) => format!(
            "`{key}` expects {expected}, written as a literal: settings are checked when the code \
             compiles, so constants and expressions are not accepted here (change settings at \
             start-up through configuration instead)"
        ),
        _ => format!("`{key}` expects {expected}, found {}", value.text()),
    };
    syn::Error::new(value.span(), message)
}

/// The tokens of an [`Entry`], for tests and messages.
impl ToTokens for Entry {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.key.to_tokens(tokens);
        if let Some(value) = &self.value {
            <Token![=]>::default().to_tokens(tokens);
            match value {
                Value::Str(s) => s.to_tokens(tokens),
                Value::Number { lit, negative, .. } => {
                    if *negative {
                        <Token![-]>::default().to_tokens(tokens);
                    }
                    lit.to_tokens(tokens);
                }
                Value::Bool(b) => b.to_tokens(tokens),
                Value::Ident(i) => i.to_tokens(tokens),
                Value::Path(p) => p.to_tokens(tokens),
                Value::Other(e) => e.to_tokens(tokens),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;
    use syn::parse::Parser;

    fn entries(tokens: TokenStream) -> Vec<Entry> {
        parse_entries.parse2(tokens).expect("parses")
    }

    #[test]
    fn duplicate_is_reported_at_the_second_key() {
        let mut errors = Errors::default();
        let list = check_keys(
            entries(quote!(timeout = "1s", pool = "a", timeout = "2s")),
            &["timeout", "pool"],
            "#[db_op]",
            &mut errors,
        );
        assert_eq!(list.entries.len(), 2);
        let error = errors.take().expect("an error");
        assert!(
            error.to_string().contains("duplicate key `timeout`"),
            "{error}"
        );
    }

    #[test]
    fn unknown_key_lists_every_accepted_key_and_suggests_the_closest() {
        let message = unknown_key("tiemout", &["pool", "timeout", "deadline"], "#[db_op]");
        assert_eq!(
            message,
            "unknown key `tiemout` in #[db_op]; did you mean `timeout`? accepted keys: `pool`, `timeout`, `deadline`"
        );
        let message = unknown_key("colour", &["pool", "timeout"], "#[db_op]");
        assert!(!message.contains("did you mean"), "{message}");
    }

    #[test]
    fn keywords_are_keys() {
        let list = entries(quote!(crate = ::my_facade, tx));
        assert_eq!(list[0].name(), "crate");
        assert!(matches!(list[0].value, Some(Value::Path(_))));
        assert!(list[1].value.is_none());
    }

    #[test]
    fn durations_are_checked() {
        let max = Duration::from_secs(86_400);
        let ok = duration("timeout", &Value::Str(syn::parse_quote!("1m 30s")), max).unwrap();
        assert_eq!(ok.value, Duration::from_secs(90));
        let bad = |v: Value| duration("timeout", &v, max).unwrap_err().to_string();
        assert!(
            bad(Value::Str(syn::parse_quote!("5 parsecs"))).contains("expects a duration such as")
        );
        assert!(bad(Value::Str(syn::parse_quote!("0s"))).contains("must be above zero"));
        assert!(bad(Value::Str(syn::parse_quote!("25h"))).contains("at most 24h"));
        let number = entries(quote!(timeout = 5)).remove(0).value.unwrap();
        assert!(bad(number).contains("a bare number has no unit"));
        let constant = entries(quote!(timeout = TIMEOUT)).remove(0).value.unwrap();
        assert!(bad(constant).contains("constants and expressions are not accepted"));
    }

    #[test]
    fn negative_numbers_are_one_value() {
        let list = entries(quote!(min = -1));
        assert!(matches!(
            list[0].value,
            Some(Value::Number { negative: true, .. })
        ));
        assert_eq!(list[0].value.as_ref().unwrap().text(), "-1");
    }
}
