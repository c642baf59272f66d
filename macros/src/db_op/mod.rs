//! `#[db_op]`: parse -> validate -> expand.

mod expand;
mod parse;
mod validate;

use proc_macro2::{Span, TokenStream};

use crate::kv::Errors;

/// Expands `#[db_op(args)] item`, or returns every error found.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let (tokens, errors) = expand_lenient(args, item);
    match errors {
        Some(errors) => Err(errors),
        None => Ok(tokens),
    }
}

/// What to emit next to the errors of [`expand`]: with bad keys but a well-formed function, the
/// function expanded without the rejected keys, so callers and the body still type-check; with a
/// function the macro cannot use, the function as written.
pub(crate) fn recover(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_lenient(args, item).0
}

fn expand_lenient(args: TokenStream, item: TokenStream) -> (TokenStream, Option<syn::Error>) {
    let mut errors = Errors::default();
    let mut args = match parse::parse_args(args, &mut errors) {
        Ok(args) => args,
        Err(error) => {
            errors.push(error);
            return (unchanged(item), errors.take());
        }
    };
    let parsed: parse::Item = match syn::parse2(item.clone()) {
        Ok(parsed) => parsed,
        Err(_) => {
            errors.at(
                Span::call_site(),
                "#[db_op] goes on an `async fn` that takes `conn: &mut PgConnection`: a free \
                 function, a method, or a method of a trait impl",
            );
            return (unchanged(item), errors.take());
        }
    };
    validate::check_args(&mut args, &mut errors);
    match validate::check_item(&args, parsed, &mut errors) {
        Some(op) => (expand::expand_op(&op), errors.take()),
        None => (unchanged(item), errors.take()),
    }
}

/// The function as written, for when it cannot be expanded. Its parameters were meant for the
/// macro (the runtime, the connection), so "unused variable" warnings would only add noise to
/// the error.
fn unchanged(item: TokenStream) -> TokenStream {
    quote::quote! {
        #[allow(unused_variables)]
        #item
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;

    use super::*;

    fn ok(args: TokenStream, item: TokenStream) -> String {
        expand(args, item)
            .unwrap_or_else(|e| panic!("unexpected error: {e}"))
            .to_string()
    }

    fn errors(args: TokenStream, item: TokenStream) -> Vec<String> {
        expand(args, item)
            .expect_err("an error")
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    fn method() -> TokenStream {
        quote! {
            pub async fn statistics(&self, conn: &mut PgConnection, estate: i64) -> Result<i64, DbError> {
                Ok(estate)
            }
        }
    }

    fn free() -> TokenStream {
        quote! {
            async fn op(rt: &Runtime, conn: &mut PgConnection) -> Result<(), DbError> { Ok(()) }
        }
    }

    /// Token text without spaces, so fragments read like source.
    fn squash(text: &str) -> String {
        text.chars().filter(|c| !c.is_whitespace()).collect()
    }

    #[test]
    fn the_connection_leaves_the_public_signature() {
        let out = squash(&ok(quote!(pool = "http"), method()));
        assert!(
            out.contains("pubasyncfnstatistics(&self,estate:i64)->Result<i64,DbError>{"),
            "{out}"
        );
        assert!(
            out.contains("letconn:&mutPgConnection=&mut**__sqlx_resilience_conn;"),
            "{out}"
        );
    }

    #[test]
    fn a_cached_op_keys_on_its_arguments_but_the_runtime() {
        let out = squash(&ok(
            quote!(read_only, cache = "5m"),
            quote! {
                async fn op(rt: &Runtime, conn: &mut PgConnection, id: i64, name: &str) -> Result<i64, DbError> { Ok(id) }
            },
        ));
        assert!(
            out.contains(
                "cache:::core::option::Option::Some(::core::time::Duration::new(300u64,0u32))"
            ),
            "{out}"
        );
        assert!(
            out.contains("let__sqlx_resilience_key=(::sqlx_resilience::__private::cache_key_part(&id),::sqlx_resilience::__private::cache_key_part(&*name),);"),
            "{out}"
        );
        assert!(
            out.contains("::sqlx_resilience::__private::run_cached(__sqlx_resilience_rt,"),
            "{out}"
        );
    }

    #[test]
    fn the_spec_carries_every_key() {
        let out = squash(&ok(
            quote!(
                pool = "http",
                timeout = "1500ms",
                deadline = "5s",
                retry = transient,
                breaker = "stats",
                limiter = api,
                bulkhead = "reports",
                idempotent,
                slow = "1s",
                name = "harvest.statistics"
            ),
            method(),
        ));
        for fragment in [
            "name:\"harvest.statistics\"",
            "pool:::core::option::Option::Some(::sqlx_resilience::__private::Name::Declared(&crate::policies::pool::http))",
            "timeout:::core::option::Option::Some(::core::time::Duration::new(1u64,500000000u32))",
            "deadline:::core::option::Option::Some(::core::time::Duration::new(5u64,0u32))",
            "retry:::core::option::Option::Some(::sqlx_resilience::__private::Name::Declared(&crate::policies::retry::transient))",
            "breaker:::core::option::Option::Some(::sqlx_resilience::__private::Name::Declared(&crate::policies::breaker::stats))",
            "limiter:::core::option::Option::Some(::sqlx_resilience::__private::Name::Declared(&crate::policies::limiter::api))",
            "bulkhead:::core::option::Option::Some(::sqlx_resilience::__private::Name::Declared(&crate::policies::bulkhead::reports))",
            "idempotent:true",
            "read_only:false",
            "tx:::core::option::Option::None",
            "retry_scope:::sqlx_resilience::__private::RetryScope::Declared",
            "slow:::core::option::Option::Some(::core::time::Duration::new(1u64,0u32))",
            "location:::sqlx_resilience::__private::Location{file:::core::file!()",
        ] {
            assert!(out.contains(fragment), "missing {fragment} in {out}");
        }
    }

    #[test]
    fn the_default_name_is_the_module_path_and_function() {
        let out = squash(&ok(quote!(), method()));
        assert!(
            out.contains("name:::core::concat!(::core::module_path!(),\"::\",\"statistics\")"),
            "{out}"
        );
    }

    #[test]
    fn names_are_references_to_the_policies_statics() {
        // The crate-level module by default: no `use` in the op's module.
        let out = squash(&ok(
            quote!(pool = "http", retry = "transient", read_only),
            method(),
        ));
        assert!(
            out.contains("pool:::core::option::Option::Some(::sqlx_resilience::__private::Name::Declared(&crate::policies::pool::http))"),
            "{out}"
        );
        assert!(
            out.contains("retry:::core::option::Option::Some(::sqlx_resilience::__private::Name::Declared(&crate::policies::retry::transient))"),
            "{out}"
        );
        let out = squash(&ok(
            quote!(pool = http, policies = crate::db::db_policies),
            method(),
        ));
        assert!(out.contains("&crate::db::db_policies::pool::http"), "{out}");
        // No names, no reference: the op does not need a policies module.
        assert!(!squash(&ok(quote!(timeout = "1s"), method())).contains("policies"));
    }

    #[test]
    fn the_op_is_registered_and_run_through_private_paths() {
        let out = squash(&ok(quote!(), method()));
        assert!(
            out.contains("::sqlx_resilience::__private::inventory::submit!{::sqlx_resilience::__private::OpRegistration(&__SQLX_RESILIENCE_OP)}"),
            "{out}"
        );
        assert!(
            out.contains("::sqlx_resilience::__private::runtime_of(self)"),
            "{out}"
        );
        assert!(
            out.contains(
                "::sqlx_resilience::__private::run(__sqlx_resilience_rt,&__SQLX_RESILIENCE_OP,"
            ),
            "{out}"
        );
        let out = squash(&ok(quote!(crate = ::my_facade::db), method()));
        assert!(out.contains("::my_facade::db::__private::run("), "{out}");
        assert!(!out.contains("::sqlx_resilience::"), "{out}");
    }

    #[test]
    fn by_value_arguments_are_cloned_for_each_attempt() {
        let out = squash(&ok(
            quote!(),
            quote! {
                async fn op(rt: &Runtime, conn: &mut PgConnection, mut name: String, key: &str, (a, b): (i64, i64)) -> Result<(), DbError> { Ok(()) }
            },
        ));
        assert!(
            out.contains("letmutname=::sqlx_resilience::__private::CloneForEachAttempt::clone_for_attempt(&name);"),
            "{out}"
        );
        assert!(
            out.contains("let(a,b)=::sqlx_resilience::__private::CloneForEachAttempt::clone_for_attempt(&__sqlx_resilience_arg4);"),
            "{out}"
        );
        // The signature keeps plain names (no `mut`, patterns named).
        assert!(
            out.contains("name:String,key:&str,__sqlx_resilience_arg4:(i64,i64)"),
            "{out}"
        );
        // A shared reference is captured as it is.
        assert!(!out.contains("clone_for_attempt(&key)"), "{out}");
        // A type the function's generics name, or `impl Trait`, cannot be named in the body:
        // `Clone` itself, whose error proposes the bound.
        let out = squash(&ok(
            quote!(),
            quote! {
                async fn op<T: Send>(rt: &Runtime, conn: &mut PgConnection, v: Vec<T>, w: impl Send) -> Result<(), DbError> { Ok(()) }
            },
        ));
        assert!(
            out.contains("letv=::core::clone::Clone::clone(&v);"),
            "{out}"
        );
        assert!(
            out.contains("letw=::core::clone::Clone::clone(&w);"),
            "{out}"
        );
    }

    #[test]
    fn retry_none_moves_arguments_into_the_one_attempt() {
        let out = squash(&ok(
            quote!(retry = none),
            quote! {
                async fn op(rt: &Runtime, conn: &mut PgConnection, batch: Batch, seen: &mut Vec<i64>) -> Result<(), DbError> { Ok(()) }
            },
        ));
        assert!(
            out.contains("letmutbatch=::core::option::Option::Some(batch);"),
            "{out}"
        );
        assert!(
            out.contains("letbatch=match::core::option::Option::take(&mutbatch)"),
            "{out}"
        );
        assert!(out.contains("ran_again::<Result<(),DbError>>()"), "{out}");
        assert!(out.contains("retry:::core::option::Option::None"), "{out}");
    }

    #[test]
    fn a_transaction_op_runs_in_a_transaction() {
        let out = squash(&ok(
            quote!(tx, isolation = "serializable", read_only),
            quote! {
                async fn op(rt: &Runtime, tx: &'a mut Tx<'a>) -> Result<(), DbError> { Ok(()) }
            },
        ));
        assert!(
            out.contains("::sqlx_resilience::__private::run_tx("),
            "{out}"
        );
        assert!(
            out.contains("tx:::core::option::Option::Some(::sqlx_resilience::__private::TxSpec{isolation:::core::option::Option::Some(::sqlx_resilience::__private::Isolation::Serializable),read_only:true})"),
            "{out}"
        );
        // Lifetimes are inferred in the rebinding.
        assert!(
            out.contains("lettx:&mutTx<'_>=&mut*__sqlx_resilience_conn;"),
            "{out}"
        );
    }

    #[test]
    fn the_nested_form_runs_the_body_on_the_callers_connection() {
        let out = squash(&ok(
            quote!(
                tx,
                isolation = "serializable",
                retry = contention,
                nested = add_in
            ),
            quote! {
                pub async fn add(&self, conn: &mut PgConnection, id: i64) -> Result<(), DbError> { Ok(()) }
            },
        ));
        // The op itself, as always.
        assert!(out.contains("pubasyncfnadd(&self,id:i64)"), "{out}");
        // Its nested form: the signature as written, no spec, no policies.
        let nested = &out[out.find("pubasyncfnadd_in").expect("the nested form")..];
        assert!(
            nested.starts_with("pubasyncfnadd_in(&self,__sqlx_resilience_conn:&mutPgConnection,id:i64)->Result<(),DbError>{"),
            "{nested}"
        );
        assert!(
            nested.contains("::sqlx_resilience::__private::Nested::enter(__sqlx_resilience_conn,::core::option::Option::Some(::sqlx_resilience::__private::TxSpec{isolation:::core::option::Option::Some(::sqlx_resilience::__private::Isolation::Serializable),read_only:false})).await?;"),
            "{nested}"
        );
        assert!(
            nested.contains("letconn:&mutPgConnection=__sqlx_resilience_nested.conn();"),
            "{nested}"
        );
        assert!(
            !nested.contains("run_tx") && !nested.contains("OpSpec"),
            "{nested}"
        );
    }

    #[test]
    fn a_runtime_parameter_wins_over_self_and_the_key_wins_over_both() {
        let item = quote! {
            async fn op(&self, rt: &Runtime, state: &AppState, conn: &mut PgConnection) -> Result<(), DbError> { Ok(()) }
        };
        let out = squash(&ok(quote!(), item.clone()));
        assert!(out.contains("runtime_of(&rt)"), "{out}");
        let out = squash(&ok(quote!(runtime = state), item.clone()));
        assert!(out.contains("runtime_of(&state)"), "{out}");
        let out = squash(&ok(quote!(runtime = self), item));
        assert!(out.contains("runtime_of(self)"), "{out}");
    }

    #[test]
    fn an_async_trait_method_is_recognised() {
        // What `#[async_trait]` makes of `async fn total(&self, conn: &mut PgConnection, n: i64) -> Result<i64, DbError>`.
        let item = quote! {
            fn total<'life0, 'life1, 'async_trait>(&'life0 self, conn: &'life1 mut PgConnection, n: i64)
                -> ::core::pin::Pin<Box<dyn ::core::future::Future<Output = Result<i64, DbError>> + ::core::marker::Send + 'async_trait>>
            where 'life0: 'async_trait, 'life1: 'async_trait, Self: 'async_trait
            {
                Box::pin(async move {
                    let __self = self;
                    let n = n;
                    let __ret: Result<i64, DbError> = { Ok(n) };
                    #[allow(unreachable_code)]
                    __ret
                })
            }
        };
        let out = squash(&ok(quote!(), item));
        assert!(
            out.contains("fntotal<'life0,'async_trait>(&'life0self,n:i64)"),
            "the connection and its lifetime are gone: {out}"
        );
        assert!(
            out.contains("where'life0:'async_trait,Self:'async_trait"),
            "{out}"
        );
        assert!(out.contains("::std::boxed::Box::pin(asyncmove{"), "{out}");
        assert!(out.contains("attempt::<Result<i64,DbError>,_>"), "{out}");
    }

    #[test]
    fn key_errors_still_expand_the_function() {
        let (tokens, errors) = expand_lenient(quote!(timeout = "soon", pool = "http"), free());
        assert!(errors.is_some());
        let out = squash(&tokens.to_string());
        assert!(
            out.contains("asyncfnop(rt:&Runtime)"),
            "expanded without the bad key: {out}"
        );
        assert!(
            out.contains("timeout:::core::option::Option::None"),
            "{out}"
        );
        assert!(
            out.contains("pool:::core::option::Option::Some(::sqlx_resilience::__private::Name::Declared(&crate::policies::pool::http))"),
            "{out}"
        );
    }

    #[test]
    fn shape_errors_leave_the_function_as_written() {
        let item = quote! { fn op(rt: &Runtime, conn: &mut PgConnection) -> Result<(), DbError> { Ok(()) } };
        let (tokens, errors) = expand_lenient(quote!(), item);
        assert!(errors.is_some());
        let out = squash(&tokens.to_string());
        assert_eq!(
            out,
            "#[allow(unused_variables)]fnop(rt:&Runtime,conn:&mutPgConnection)->Result<(),DbError>{Ok(())}"
        );
    }

    #[test]
    fn every_mistake_says_what_is_expected() {
        let cases: &[(TokenStream, TokenStream, &str)] = &[
            (
                quote!(timeout = "10s", deadline = "5s"),
                free(),
                "is longer than `deadline`",
            ),
            (
                quote!(slow = "10s", deadline = "5s"),
                free(),
                "none would ever be reported slow",
            ),
            (quote!(isolation = "serializable"), free(), "add `tx`"),
            (
                quote!(tx),
                quote!(
                    async fn op(rt: &Runtime) -> Result<(), E> {
                        Ok(())
                    }
                ),
                "needs a transaction parameter",
            ),
            (
                quote!(tx, nested = op_in),
                quote!(
                    async fn op(rt: &Runtime, tx: &mut Tx<'_>) -> Result<(), E> {
                        Ok(())
                    }
                ),
                "take the connection inside the transaction",
            ),
            (
                quote!(nested = "not a name"),
                free(),
                "cannot name a function",
            ),
            (
                quote!(read_only, idempotent = false),
                free(),
                "contradicts `read_only`",
            ),
            (
                quote!(cache = "5m", idempotent),
                free(),
                "`cache` on an op that may write",
            ),
            (
                quote!(read_only, cache = "5 parsecs"),
                free(),
                "expects a duration",
            ),
            (
                quote!(retry = "a-b"),
                free(),
                "names declared in `policies!` are identifiers",
            ),
            (
                quote!(),
                quote!(
                    fn op(rt: &Runtime, conn: &mut PgConnection) -> Result<(), E> {
                        Ok(())
                    }
                ),
                "needs an `async fn`",
            ),
            (
                quote!(),
                quote!(
                    async fn op(rt: &Runtime) -> Result<(), E> {
                        Ok(())
                    }
                ),
                "needs a connection parameter",
            ),
            (
                quote!(),
                quote!(
                    async fn op(
                        rt: &Runtime,
                        a: &mut PgConnection,
                        b: &mut PgConnection,
                    ) -> Result<(), E> {
                        Ok(())
                    }
                ),
                "a second connection parameter",
            ),
            (
                quote!(),
                quote!(
                    async fn op(rt: &Runtime, conn: PgConnection) -> Result<(), E> {
                        Ok(())
                    }
                ),
                "must be a mutable borrow",
            ),
            (
                quote!(),
                quote!(
                    async fn op(rt: &Runtime, conn: &mut PgConnection) -> u64 {
                        1
                    }
                ),
                "return `Result<T, E>`",
            ),
            (
                quote!(),
                quote!(
                    async fn op(rt: &Runtime, conn: &mut PgConnection) {}
                ),
                "add a return type",
            ),
            (
                quote!(),
                quote!(
                    async unsafe fn op(rt: &Runtime, conn: &mut PgConnection) -> Result<(), E> {
                        Ok(())
                    }
                ),
                "cannot be `unsafe`",
            ),
            (
                quote!(),
                quote!(
                    async extern "C" fn op(rt: &Runtime, conn: &mut PgConnection) -> Result<(), E> {
                        Ok(())
                    }
                ),
                "cannot be `extern`",
            ),
            (
                quote!(),
                quote!(
                    const fn op(rt: &Runtime, conn: &mut PgConnection) -> Result<(), E> {
                        Ok(())
                    }
                ),
                "cannot be `const`",
            ),
            (
                quote!(),
                quote!(
                    async fn op(&mut self, conn: &mut PgConnection) -> Result<(), E> {
                        Ok(())
                    }
                ),
                "not `&mut self`",
            ),
            (
                quote!(),
                quote!(
                    async fn op(self, conn: &mut PgConnection) -> Result<(), E> {
                        Ok(())
                    }
                ),
                "`self` by value",
            ),
            (
                quote!(),
                quote!(
                    async fn op(conn: &mut PgConnection) -> Result<(), E> {
                        Ok(())
                    }
                ),
                "cannot find the runtime",
            ),
            (
                quote!(),
                quote!(
                    async fn op(
                        a: &Runtime,
                        b: &Runtime,
                        conn: &mut PgConnection,
                    ) -> Result<(), E> {
                        Ok(())
                    }
                ),
                "two runtime parameters",
            ),
            (
                quote!(runtime = nope),
                free(),
                "names no parameter of this function (its parameters: `rt`)",
            ),
            (
                quote!(),
                quote!(
                    async fn op(
                        rt: &Runtime,
                        conn: &mut PgConnection,
                        v: &mut Vec<u8>,
                    ) -> Result<(), E> {
                        Ok(())
                    }
                ),
                "or use `retry = none`",
            ),
            (
                quote!(),
                quote!(
                    async fn op(&self) -> Result<(), E>;
                ),
                "not on the trait's declaration",
            ),
            (
                quote!(),
                quote!(
                    struct S;
                ),
                "goes on an `async fn`",
            ),
        ];
        for (args, item, expected) in cases {
            let all = errors(args.clone(), item.clone()).join("\n");
            assert!(
                all.contains(expected),
                "{args} on {item}:\n{all}\nshould contain: {expected}"
            );
        }
    }

    #[test]
    fn errors_point_at_the_token_at_fault() {
        use std::str::FromStr;
        let at = |args: &str, item: &str| {
            let error = expand(
                TokenStream::from_str(args).unwrap(),
                TokenStream::from_str(item).unwrap(),
            )
            .unwrap_err();
            let start = error.span().start();
            (start.line, start.column)
        };
        let item = "async fn op(rt: &Runtime, conn: &mut PgConnection) -> Result<(), E> { Ok(()) }";
        // The second `timeout`, at column 16.
        assert_eq!(at(r#"timeout = "5s", timeout = "6s""#, item), (1, 16));
        // The bad value, not the key.
        assert_eq!(at(r#"pool = "a", deadline = "5 parsecs""#, item), (1, 23));
        // `fn` of a function that is not async.
        assert_eq!(
            at(
                "",
                "pub fn op(rt: &Runtime, conn: &mut PgConnection) -> Result<(), E> { Ok(()) }"
            ),
            (1, 4)
        );
        // The second connection parameter.
        assert_eq!(
            at(
                "",
                "async fn op(rt: &Runtime, a: &mut PgConnection, b: &mut PgConnection) -> Result<(), E> { Ok(()) }"
            ),
            (1, 48)
        );
    }

    #[test]
    fn a_retry_policy_on_an_unsafe_write_must_say_its_scope() {
        let errs = errors(quote!(retry = transient), method());
        assert!(
            errs.iter().any(
                |e| e.contains("`retry = transient` on an op that may write")
                    && e.contains("`idempotent`")
                    && e.contains("`tx`")
                    && e.contains("retry_scope = \"before_send\"")
            ),
            "{errs:?}"
        );
        let out = squash(&ok(
            quote!(retry = transient, retry_scope = "before_send"),
            method(),
        ));
        assert!(
            out.contains("retry_scope:::sqlx_resilience::__private::RetryScope::BeforeSend"),
            "{out}"
        );
        for safe in [quote!(idempotent), quote!(read_only)] {
            ok(quote!(retry = transient, #safe), method());
        }
        let errs = errors(
            quote!(retry = transient, idempotent, retry_scope = "before_send"),
            method(),
        );
        assert!(
            errs.iter().any(|e| e.contains("remove `retry_scope`")),
            "{errs:?}"
        );
        let errs = errors(quote!(retry_scope = "before_send"), method());
        assert!(
            errs.iter().any(|e| e.contains("this op has none")),
            "{errs:?}"
        );
    }
}
