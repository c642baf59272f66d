//! `#[db_op(...)]` arguments into a typed model, and the annotated function as written.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::{Attribute, Ident, LitStr, Path, Signature, Token, Visibility, braced};

use crate::kv::{self, DurationLit, Entry, Errors, Value};

/// Every key `#[db_op]` accepts, in the order the documentation lists them.
pub(crate) const KEYS: &[&str] = &[
    "pool",
    "timeout",
    "deadline",
    "retry",
    "retry_scope",
    "breaker",
    "limiter",
    "bulkhead",
    "name",
    "idempotent",
    "read_only",
    "tx",
    "isolation",
    "nested",
    "slow",
    "cache",
    "max_lag",
    "runtime",
    "policies",
    "crate",
];

/// The longest `timeout`, `deadline` or `slow` accepted: anything longer is a typo.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest `max_lag` accepted: the pool key's bound, from the settings schema.
fn max_lag_limit() -> Duration {
    match sqlx_resilience_schema::POOL.key("max_lag").map(|k| k.rule) {
        Some(sqlx_resilience_schema::Rule::Duration { max, .. }) => max,
        _ => MAX_DURATION,
    }
}

/// A value together with where it was written.
#[derive(Clone, Debug)]
pub(crate) struct Setting<T> {
    pub(crate) value: T,
    /// The key (`read_only`).
    pub(crate) key: Span,
    /// The value, or the key for a bare flag.
    pub(crate) span: Span,
}

/// A pool or policy name (`pool = "http"` or `pool = http`).
#[derive(Clone, Debug)]
pub(crate) struct PolicyName {
    pub(crate) name: String,
    pub(crate) span: Span,
}

/// The kinds of names `#[db_op]` refers to, as the modules `policies!` generates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Pool,
    Retry,
    Breaker,
    Limiter,
    Bulkhead,
}

impl Kind {
    pub(crate) fn module(self) -> &'static str {
        match self {
            Kind::Pool => "pool",
            Kind::Retry => "retry",
            Kind::Breaker => "breaker",
            Kind::Limiter => "limiter",
            Kind::Bulkhead => "bulkhead",
        }
    }
}

/// `retry = "name"`, or `retry = none`.
#[derive(Clone, Debug)]
pub(crate) enum Retry {
    Named(PolicyName),
    Never,
}

/// The isolation levels, as the runtime's `Isolation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isolation {
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

impl Isolation {
    const NAMES: [(&'static str, Isolation); 3] = [
        ("read_committed", Isolation::ReadCommitted),
        ("repeatable_read", Isolation::RepeatableRead),
        ("serializable", Isolation::Serializable),
    ];

    pub(crate) fn variant(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "ReadCommitted",
            Isolation::RepeatableRead => "RepeatableRead",
            Isolation::Serializable => "Serializable",
        }
    }
}

/// The arguments of one `#[db_op(...)]`. A key whose value was rejected is left out (and its
/// error reported), so the function still expands and the rest of the crate type-checks.
#[derive(Clone, Debug, Default)]
pub(crate) struct Args {
    pub(crate) pool: Option<PolicyName>,
    pub(crate) retry: Option<Retry>,
    /// `retry_scope = "before_send"`: the op may write and is not idempotent, and its retry
    /// policy covers only failures before anything was sent.
    pub(crate) before_send: Option<Setting<bool>>,
    pub(crate) breaker: Option<PolicyName>,
    pub(crate) limiter: Option<PolicyName>,
    pub(crate) bulkhead: Option<PolicyName>,
    pub(crate) timeout: Option<DurationLit>,
    pub(crate) deadline: Option<DurationLit>,
    pub(crate) slow: Option<DurationLit>,
    /// `cache = "5m"`: how long results are kept in the result cache.
    pub(crate) cache: Option<Setting<DurationLit>>,
    /// `max_lag = "500ms"`: the most replica lag this read-only op accepts.
    pub(crate) max_lag: Option<Setting<DurationLit>>,
    pub(crate) name: Option<LitStr>,
    pub(crate) idempotent: Option<Setting<bool>>,
    pub(crate) read_only: Option<Setting<bool>>,
    pub(crate) tx: Option<Setting<bool>>,
    pub(crate) isolation: Option<Setting<Isolation>>,
    /// `nested = name`: also generate `name`, the op's body on the caller's connection (in
    /// the caller's transaction), with no policies of its own.
    pub(crate) nested: Option<Ident>,
    pub(crate) runtime: Option<Ident>,
    pub(crate) policies: Option<Path>,
    pub(crate) krate: Option<Path>,
}

impl Args {
    pub(crate) fn is_tx(&self) -> bool {
        self.tx.as_ref().is_some_and(|t| t.value)
    }

    pub(crate) fn never_retries(&self) -> bool {
        matches!(self.retry, Some(Retry::Never))
    }
}

/// Parses the attribute's arguments. A syntax error ends parsing; a bad key or value is
/// recorded in `errors` and left out.
pub(crate) fn parse_args(tokens: TokenStream, errors: &mut Errors) -> syn::Result<Args> {
    let entries = kv::parse_entries.parse2(tokens)?;
    let list = kv::check_keys(entries, KEYS, "#[db_op]", errors);
    let mut args = Args::default();
    for entry in &list.entries {
        if let Err(error) = apply(&mut args, entry) {
            errors.push(error);
        }
    }
    Ok(args)
}

fn apply(args: &mut Args, entry: &Entry) -> syn::Result<()> {
    let key = entry.name();
    match key.as_str() {
        "pool" => args.pool = Some(policy_name(entry, "pool")?),
        "breaker" => args.breaker = Some(policy_name(entry, "circuit breaker")?),
        "limiter" => args.limiter = Some(policy_name(entry, "rate limiter")?),
        "bulkhead" => args.bulkhead = Some(policy_name(entry, "bulkhead")?),
        "retry" => {
            args.retry = Some(match &entry.value {
                Some(Value::Ident(i)) if i == "none" => Retry::Never,
                Some(Value::Str(s)) if s.value() == "none" => Retry::Never,
                _ => Retry::Named(policy_name(entry, "retry policy")?),
            })
        }
        "retry_scope" => {
            let expected = "\"before_send\": only failures before anything reached the server \
                            (connect, acquire) run again";
            let value = required(entry, expected)?;
            let (text, span) = match value {
                Value::Str(s) => (s.value(), s.span()),
                Value::Ident(i) => (i.unraw().to_string(), i.span()),
                other => return Err(kv::not_a_literal("retry_scope", other, expected)),
            };
            if text.trim() != "before_send" {
                return Err(syn::Error::new(
                    span,
                    format!("unknown retry scope `{text}`; expected {expected}"),
                ));
            }
            args.before_send = Some(Setting {
                value: true,
                key: entry.key.span(),
                span,
            });
        }
        "timeout" | "deadline" | "slow" => {
            let value = required(entry, kv::DURATION_EXPECTED)?;
            let duration = kv::duration(&key, value, MAX_DURATION)?;
            match key.as_str() {
                "timeout" => args.timeout = Some(duration),
                "deadline" => args.deadline = Some(duration),
                _ => args.slow = Some(duration),
            }
        }
        "cache" => {
            let value = required(entry, kv::DURATION_EXPECTED)?;
            args.cache = Some(Setting {
                value: kv::duration(&key, value, MAX_DURATION)?,
                key: entry.key.span(),
                span: entry.value_span(),
            });
        }
        "max_lag" => {
            let value = required(entry, kv::DURATION_EXPECTED)?;
            args.max_lag = Some(Setting {
                value: kv::duration(&key, value, max_lag_limit())?,
                key: entry.key.span(),
                span: entry.value_span(),
            });
        }
        "name" => {
            let expected = "the op's name as a string, such as \"harvest::statistics\"";
            match required(entry, expected)? {
                Value::Str(s) if !s.value().trim().is_empty() => args.name = Some(s.clone()),
                Value::Str(s) => {
                    return Err(syn::Error::new(
                        s.span(),
                        format!("`name` must not be empty; expected {expected}"),
                    ));
                }
                other => return Err(kv::not_a_literal("name", other, expected)),
            }
        }
        "idempotent" | "read_only" | "tx" => {
            let setting = Setting {
                value: kv::flag(entry)?,
                key: entry.key.span(),
                span: entry.value_span(),
            };
            match key.as_str() {
                "idempotent" => args.idempotent = Some(setting),
                "read_only" => args.read_only = Some(setting),
                _ => args.tx = Some(setting),
            }
        }
        "isolation" => {
            let expected = "one of \"read_committed\", \"repeatable_read\", \"serializable\"";
            let value = required(entry, expected)?;
            let (text, span) = match value {
                Value::Str(s) => (s.value(), s.span()),
                Value::Ident(i) => (i.unraw().to_string(), i.span()),
                other => return Err(kv::not_a_literal("isolation", other, expected)),
            };
            let level = Isolation::NAMES
                .iter()
                .find(|(name, _)| *name == text.trim())
                .map(|(_, level)| *level)
                .ok_or_else(|| {
                    syn::Error::new(
                        span,
                        format!("unknown isolation level `{text}`; expected {expected}"),
                    )
                })?;
            args.isolation = Some(Setting {
                value: level,
                key: entry.key.span(),
                span,
            });
        }
        "nested" => {
            let expected = "the name of the function to generate, such as `nested = add_line_in`";
            args.nested = Some(match required(entry, expected)? {
                Value::Ident(i) => i.clone(),
                Value::Str(s) => syn::parse_str::<Ident>(&s.value())
                    .map(|i| Ident::new(&i.to_string(), s.span()))
                    .map_err(|_| {
                        syn::Error::new(
                            s.span(),
                            format!(
                                "`{}` cannot name a function; expected {expected}",
                                s.value()
                            ),
                        )
                    })?,
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        format!("`nested` expects {expected}"),
                    ));
                }
            });
        }
        "runtime" => match required(entry, "the name of a parameter, such as `runtime = state`")? {
            Value::Ident(i) => args.runtime = Some(i.clone()),
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "`runtime` expects the name of one of this function's parameters, such as \
                     `runtime = state`; that parameter's type must implement `HasRuntime`",
                ));
            }
        },
        "policies" | "crate" => {
            let expected = if key == "crate" {
                "a path to the sqlx-resilience facade, such as `crate = ::my_app::db`"
            } else {
                "a path to the module `policies!` generated, such as `policies = crate::db::policies`"
            };
            let path = match required(entry, expected)? {
                Value::Ident(i) => Path::from(i.clone()),
                Value::Path(p) => p.clone(),
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        format!("`{key}` expects {expected}"),
                    ));
                }
            };
            if key == "crate" {
                args.krate = Some(path);
            } else {
                args.policies = Some(path);
            }
        }
        _ => unreachable!("check_keys only keeps accepted keys"),
    }
    Ok(())
}

fn required<'a>(entry: &'a Entry, expected: &str) -> syn::Result<&'a Value> {
    entry.value.as_ref().ok_or_else(|| {
        syn::Error::new(
            entry.key.span(),
            format!(
                "`{}` needs a value: `{} = ...`, expected {expected}",
                entry.name(),
                entry.name()
            ),
        )
    })
}

fn policy_name(entry: &Entry, what: &str) -> syn::Result<PolicyName> {
    let key = entry.name();
    let expected = format!(
        "the name of a {what} declared in `policies!`, such as `{key} = \"http\"` or `{key} = http`"
    );
    match required(entry, &expected)? {
        Value::Ident(i) => Ok(PolicyName {
            name: i.unraw().to_string(),
            span: i.span(),
        }),
        Value::Str(s) => {
            let name = s.value();
            match syn::parse_str::<Ident>(&name) {
                Ok(_) => Ok(PolicyName {
                    name,
                    span: s.span(),
                }),
                Err(_) => Err(syn::Error::new(
                    s.span(),
                    format!(
                        "`{name}` cannot be a {what} name: names declared in `policies!` are \
                         identifiers (letters, digits and `_`, not a Rust keyword); expected {expected}"
                    ),
                )),
            }
        }
        other => Err(kv::not_a_literal(&key, other, &expected)),
    }
}

/// The annotated function as written: a free function, a method, or a trait method with a body.
#[derive(Clone)]
pub(crate) struct Item {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    /// What is inside the body's braces, left unparsed: the macro moves it as it is, and
    /// parsing every body would be most of the macro's cost. `None` for a declaration without
    /// a body (`fn f(&self);` in a trait).
    pub(crate) body: Option<TokenStream>,
}

impl Parse for Item {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let sig: Signature = input.parse()?;
        let body = if input.peek(Token![;]) {
            input.parse::<Token![;]>()?;
            None
        } else {
            let content;
            braced!(content in input);
            Some(content.parse()?)
        };
        Ok(Item {
            attrs,
            vis,
            sig,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn args(tokens: TokenStream) -> (Args, Option<syn::Error>) {
        let mut errors = Errors::default();
        let args = parse_args(tokens, &mut errors).expect("no syntax error");
        (args, errors.take())
    }

    #[test]
    fn every_key_parses() {
        let (a, e) = args(quote!(
            pool = "http",
            timeout = "5s",
            deadline = "20s",
            retry = transient,
            breaker = "stats",
            limiter = api,
            bulkhead = "reports",
            name = "harvest::statistics",
            idempotent,
            read_only = false,
            tx,
            isolation = "serializable",
            slow = "1s",
            cache = "5m",
            runtime = state,
            policies = crate::db::policies,
            crate = ::my_facade
        ));
        assert!(e.is_none(), "{e:?}");
        assert_eq!(a.pool.unwrap().name, "http");
        assert_eq!(a.timeout.unwrap().value, Duration::from_secs(5));
        assert_eq!(a.cache.unwrap().value.value, Duration::from_secs(300));
        assert!(matches!(a.retry, Some(Retry::Named(ref n)) if n.name == "transient"));
        assert!(a.idempotent.unwrap().value);
        assert!(!a.read_only.unwrap().value);
        assert_eq!(a.isolation.unwrap().value, Isolation::Serializable);
        assert_eq!(a.runtime.unwrap(), "state");
        assert_eq!(a.name.unwrap().value(), "harvest::statistics");
    }

    #[test]
    fn retry_none_is_not_a_name() {
        let (a, _) = args(quote!(retry = none));
        assert!(a.never_retries());
        let (a, _) = args(quote!(retry = "none"));
        assert!(a.never_retries());
    }

    #[test]
    fn bad_values_are_left_out_and_reported() {
        let (a, e) = args(quote!(
            pool = "my-pool",
            isolation = "snapshot",
            timeout = "5 parsecs",
            tx
        ));
        assert!(a.pool.is_none() && a.isolation.is_none() && a.timeout.is_none());
        assert!(a.is_tx());
        let text = e
            .unwrap()
            .into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(
            text[0].contains("names declared in `policies!` are identifiers"),
            "{}",
            text[0]
        );
        assert!(text[1].contains("unknown isolation level `snapshot`; expected one of \"read_committed\", \"repeatable_read\", \"serializable\""), "{}", text[1]);
        assert!(
            text[2].contains("expects a duration such as \"250ms\" or \"5s\""),
            "{}",
            text[2]
        );
    }

    #[test]
    fn flags_take_bools_not_strings() {
        let (_, e) = args(quote!(idempotent = "true"));
        assert!(e.unwrap().to_string().contains("without quotes"));
        let (_, e) = args(quote!(read_only = 1));
        assert!(e.unwrap().to_string().contains("expects `true` or `false`"));
    }

    #[test]
    fn a_key_without_its_value_says_so() {
        let (_, e) = args(quote!(pool));
        assert!(e.unwrap().to_string().contains("`pool` needs a value"));
    }
}
