//! `policies!`: parse -> validate -> expand.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;

use crate::kv::Errors;

/// Expands `policies! { .. }`, or returns every error found.
pub(crate) fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let (tokens, errors) = expand_lenient(input);
    match errors {
        Some(errors) => Err(errors),
        None => Ok(tokens),
    }
}

/// What to emit next to the errors of [`expand`]: the module generated from every declaration
/// that was accepted, so `#[db_op]` name checks elsewhere do not fail in a cascade.
pub(crate) fn recover(input: TokenStream) -> TokenStream {
    expand_lenient(input).0
}

fn expand_lenient(input: TokenStream) -> (TokenStream, Option<syn::Error>) {
    let input: parse::Input = match syn::parse2(input) {
        Ok(input) => input,
        Err(error) => return (TokenStream::new(), Some(error)),
    };
    let mut errors = Errors::default();
    let declared = validate::check(input.decls, &mut errors);
    let private = crate::private::private_path(input.krate.as_ref());
    let tokens = expand::expand(input.module.as_ref(), &private, &declared);
    (tokens, errors.take())
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;

    use super::*;

    fn squash(tokens: &TokenStream) -> String {
        tokens
            .to_string()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect()
    }

    fn errors(input: TokenStream) -> Vec<String> {
        expand(input)
            .expect_err("an error")
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn every_kind_gets_a_module_of_registered_statics() {
        let out = squash(
            &expand(quote! {
                pool http { max = 150 }
                pool ws;
                breaker stats { consecutive_failures = 10, open_for = "60s" }
                retry transient { attempts = 3 }
                limiter api { per_second = 100 }
                bulkhead reports { max_concurrent = 4 }
            })
            .unwrap(),
        );
        assert!(out.contains("pubmodpolicies{"), "{out}");
        for (module, name) in [
            ("pool", "http"),
            ("pool", "ws"),
            ("breaker", "stats"),
            ("retry", "transient"),
            ("limiter", "api"),
            ("bulkhead", "reports"),
        ] {
            assert!(
                out.contains(&format!("pubmod{module}{{")),
                "{module}: {out}"
            );
            assert!(
                out.contains(&format!(
                    "pubstatic{name}:::sqlx_resilience::__private::Policy="
                )),
                "{name}: {out}"
            );
            assert!(
                out.contains(&format!(
                    "inventory::submit!{{::sqlx_resilience::__private::PolicyRegistration(&{name})}}"
                )),
                "{name} is registered: {out}"
            );
        }
        assert!(out.contains("#[allow(non_upper_case_globals)]"), "{out}");
        assert!(
            out.contains("pubfndeclared()->::sqlx_resilience::__private::PolicySet"),
            "{out}"
        );
    }

    #[test]
    fn declared_passes_every_setting_as_a_literal() {
        let out = squash(
            &expand(quote! {
                pool http { max = 150, acquire_timeout = "2s", application_name = "app" }
                limiter api { per_second = 0.5, wait = true }
                retry r { on connection_lost { attempts = 5, base = "500ms", factor = 1.5 } }
            })
            .unwrap(),
        );
        for fragment in [
            "::sqlx_resilience::__private::PolicyKind::Pool,\"http\",&[(\"max\",::sqlx_resilience::__private::Literal::Int(150i64)),(\"acquire_timeout\",::sqlx_resilience::__private::Literal::Str(\"2s\")),",
            "(\"per_second\",::sqlx_resilience::__private::Literal::Float(0.5f64))",
            "(\"wait\",::sqlx_resilience::__private::Literal::Bool(true))",
            "(\"on.connection_lost.attempts\",::sqlx_resilience::__private::Literal::Int(5i64))",
            "(\"on.connection_lost.base\",::sqlx_resilience::__private::Literal::Str(\"500ms\"))",
            "(\"on.connection_lost.factor\",::sqlx_resilience::__private::Literal::Float(1.5f64))",
            "::sqlx_resilience::__private::Location{file:::core::file!()",
        ] {
            assert!(out.contains(fragment), "missing {fragment} in {out}");
        }
    }

    #[test]
    fn the_module_name_visibility_and_crate_path_can_be_chosen() {
        let out = squash(
            &expand(quote! {
                /// Ours.
                pub(crate) mod db_policies;
                crate = ::my_facade;
                pool http;
            })
            .unwrap(),
        );
        assert!(out.contains("Ours.\"]"), "{out}");
        assert!(out.contains("pub(crate)moddb_policies{"), "{out}");
        assert!(out.contains("::my_facade::__private::PolicySet"), "{out}");
        assert!(!out.contains("::sqlx_resilience::"), "{out}");
    }

    #[test]
    fn every_mistake_says_what_is_expected() {
        let cases: &[(TokenStream, &str)] = &[
            (
                quote!(pools http {}),
                "unknown kind `pools`; did you mean `pool`?",
            ),
            (
                quote!(pool http {} pool http {}),
                "pool `http` is declared twice",
            ),
            (
                quote!(pool http { maximum = 1 }),
                "unknown key `maximum` in pool `http`; did you mean `max`?",
            ),
            (
                quote!(pool http { max = 1, max = 2 }),
                "duplicate key `max`",
            ),
            (
                quote!(pool http { max = 0 }),
                "`max` expects a whole number from 1 to 10000, found 0",
            ),
            (
                quote!(pool http { min = -1 }),
                "`min` expects a whole number from 0 to 10000, found -1",
            ),
            (
                quote!(pool http { max = 5, min = 10 }),
                "`min` of 10 is above `max` of 5",
            ),
            (quote!(pool http { url = "mysql://x" }), "a PostgreSQL URL"),
            (
                quote!(pool http { application_name = "ünïcode" }),
                "ASCII text of at most 63 bytes",
            ),
            (
                quote!(pool http { search_path = "a; drop" }),
                "a comma-separated list of schema names",
            ),
            (
                quote!(pool http { acquire_timeout = "2 secs please" }),
                "expects a duration such as \"250ms\" or \"5s\"",
            ),
            (
                quote!(pool http { acquire_timeout = 2 }),
                "a bare number has no unit",
            ),
            (
                quote!(breaker b { within = "2h", failures = 1 }),
                "expected a duration of at most 1h",
            ),
            (quote!(breaker b { open_for = "0s" }), "must be above zero"),
            (
                quote!(breaker b { failure_rate = 0 }),
                "a percentage above 0 and at most 100",
            ),
            (
                quote!(breaker b { mode = "closed" }),
                "one of \"normal\", \"disabled\", \"metrics_only\", \"forced_open\"",
            ),
            (
                quote!(breaker b { failures = 5 }),
                "`failures` needs `within`",
            ),
            (
                quote!(breaker b { on connection_lost { attempts = 1 } }),
                "blocks belong to retry policies",
            ),
            (quote!(retry none {}), "`none` cannot name a retry policy"),
            (
                quote!(retry r { on lost { attempts = 1 } }),
                "unknown failure kind `lost`",
            ),
            (
                quote!(retry r { on deadline { attempts = 1 }, on deadline { base = "1s" } }),
                "`on deadline` is given twice",
            ),
            (
                quote!(retry r { on deadline { tries = 1 } }),
                "unknown key `tries` in `on deadline` of retry `r`",
            ),
            (quote!(retry r { factor = 11 }), "a number from 1 to 10"),
            (
                quote!(retry r { jitter = "some" }),
                "one of \"full\", \"equal\", \"none\"",
            ),
            (
                quote!(retry r { base = "5s", max_delay = "1s" }),
                "`base` of 5s is longer than `max_delay` of 1s",
            ),
            (
                quote!(limiter l { burst = 1 }),
                "limiter `l`: `per_second` is missing: every limiter needs a rate",
            ),
            (
                quote!(limiter l { per_second = 0 }),
                "a number above 0 and at most 1000000",
            ),
            (
                quote!(limiter l { per_second = 1, wait = "yes" }),
                "`true` or `false`",
            ),
            (
                quote!(limiter l { per_second = 1, wait = false, max_wait = "1s" }),
                "`wait = false` rejects calls at once",
            ),
            (
                quote!(pool http { min = 20 }),
                "`min` of 20 is above `max` of 10 (the default): a pool keeps at most `max` \
                 connections; lower `min` or raise `max`",
            ),
            (
                quote!(pool http { max_lifetime = "1m" }),
                "`max_lifetime` of 1m is shorter than `idle_timeout` of 10m (the default)",
            ),
            (
                quote!(retry r { on backpressure { base = "5s" } }),
                "`on.backpressure.base` of 5s is longer than `max_delay` of 2s (from the policy)",
            ),
            (
                quote!(limiter l { per_second = 1, max_wait = "1s" }),
                "`max_wait` has no effect with `wait = false` (the default)",
            ),
            (
                quote!(bulkhead b { max_concurrent = "4" }),
                "write the number without quotes",
            ),
            (
                quote!(bulkhead b { max_queue = QUEUE }),
                "constants and expressions are not accepted",
            ),
        ];
        for (input, expected) in cases {
            let all = errors(input.clone()).join("\n");
            assert!(
                all.contains(expected),
                "{input}:\n{all}\nshould contain: {expected}"
            );
        }
    }

    #[test]
    fn a_default_that_the_runtime_caps_is_no_contradiction() {
        expand(quote! {
            breaker b { failure_rate = 50, window_calls = 5 }
            retry r { max_delay = "30s", on backpressure { base = "5s" } }
        })
        .expect("minimum_calls' default is capped at window_calls; the kind inherits max_delay");
    }

    #[test]
    fn errors_keep_the_accepted_declarations() {
        let input = quote! {
            pool http { max = 20 }
            pool ws { max = 0 }
            pools typo {}
        };
        let out = squash(&recover(input));
        assert!(out.contains("pubstatichttp:"), "{out}");
        assert!(
            out.contains("pubstaticws:"),
            "a bad setting keeps its name: {out}"
        );
        assert!(!out.contains("typo"), "{out}");
        assert!(
            !out.contains("(\"max\",::sqlx_resilience::__private::Literal::Int(0i64))"),
            "{out}"
        );
    }
}
