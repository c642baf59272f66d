//! Code generation for `#[db_op]`: the public function calls the runtime's op API.
//!
//! ```text
//! async fn statistics(&self, estate: i64) -> Result<Stats, DbError> {
//!     static __SQLX_RESILIENCE_OP: StaticOp = StaticOp::new(OpSpec {  // the op's settings,
//!         pool: Some(Name::Declared(&crate::policies::pool::http)),  // a reference: the
//!         ..                                                         // name check
//!     });
//!     inventory::submit! { OpRegistration(&__SQLX_RESILIENCE_OP) } // the registry
//!     let classify = ..;                                   // &mut E -> Option<&mut DbError>
//!     let rt = runtime_of(self);
//!     run(rt, &__SQLX_RESILIENCE_OP, classify, move |conn| {
//!         let estate = CloneForEachAttempt::clone_for_attempt(&estate); // each attempt
//!         attempt::<Result<Stats, DbError>, _>(async move {
//!             let conn: &mut PgConnection = &mut **conn;
//!             /* the body as written */
//!         })
//!     }).await
//! }
//! ```

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::Ident;

use super::parse::{Args, Kind, PolicyName, Retry};
use super::validate::{Capture, Form, Op, RuntimeSource};
use crate::private::private_path;

pub(crate) fn expand_op(op: &Op) -> TokenStream {
    let p = private_path(op.args.krate.as_ref());
    let spec_ident = Ident::new("__SQLX_RESILIENCE_OP", Span::call_site());
    let spec = spec(op, &p);
    let ret = &op.ret;

    let rt = Ident::new("__sqlx_resilience_rt", Span::mixed_site());
    let classify = Ident::new("__sqlx_resilience_classify", Span::mixed_site());
    let error = Ident::new("__sqlx_resilience_error", Span::mixed_site());
    let conn = Ident::new("__sqlx_resilience_conn", Span::mixed_site());
    let value = Ident::new("__sqlx_resilience_value", Span::mixed_site());

    let runtime_of = match &op.runtime {
        RuntimeSource::Receiver(token) => quote_spanned!(token.span=> #p::runtime_of(#token)),
        RuntimeSource::Param { ident, .. } => {
            quote_spanned!(ident.span()=> #p::runtime_of(&#ident))
        }
    };

    // Before the closure: parameters every attempt borrows, and those moved into one attempt.
    let mut before = TokenStream::new();
    // Inside the closure, before each attempt's future: each attempt's own copies.
    let mut rebind = TokenStream::new();
    for param in &op.params {
        let ident = &param.ident;
        let pat = &param.pat;
        let cfgs = &param.cfgs;
        match param.capture {
            Capture::Keep => {}
            Capture::Copy => rebind.extend(quote! { #(#cfgs)* let #pat = #ident; }),
            // Spanned on the parameter, so a type that is not `Clone` is reported there, with
            // the message of `CloneForEachAttempt` (a type the function's generics name gets
            // rustc's own, which proposes the `Clone` bound).
            Capture::Clone => rebind.extend(match &param.concrete {
                Some(_) => quote_spanned! {param.span=>
                    #(#cfgs)*
                    let #pat = #p::CloneForEachAttempt::clone_for_attempt(&#ident);
                },
                None => quote_spanned! {param.span=>
                    #(#cfgs)* let #pat = ::core::clone::Clone::clone(&#ident);
                },
            }),
            Capture::Once => {
                before.extend(quote! {
                    #(#cfgs)* let mut #ident = ::core::option::Option::Some(#ident);
                });
                rebind.extend(quote_spanned! {param.span=>
                    #(#cfgs)*
                    let #pat = match ::core::option::Option::take(&mut #ident) {
                        ::core::option::Option::Some(#value) => #value,
                        ::core::option::Option::None => return #p::ran_again::<#ret>(),
                    };
                });
            }
            Capture::Borrow => before.extend(quote! {
                #(#cfgs)*
                #[allow(unused_variables)]
                let #ident = &#ident;
            }),
        }
    }

    let conn_pat = &op.conn.pat;
    let conn_ty = &op.conn.ty;
    // A plain op's `Conn` dereferences to the connection; a `tx` op takes the `Tx` itself,
    // or the connection inside the transaction (`Tx` dereferences to it).
    let bind_conn = if op.conn.is_tx_type {
        quote_spanned! {op.conn.span=> let #conn_pat: #conn_ty = &mut *#conn; }
    } else {
        quote_spanned! {op.conn.span=> let #conn_pat: #conn_ty = &mut **#conn; }
    };
    let stmts = &op.stmts;
    let run = if op.args.is_tx() {
        quote!(run_tx)
    } else {
        quote!(run)
    };
    let ret_span = span_of(ret);
    // The attempt's future, spanned on `async` so "not `Send`" points at the function.
    let async_span = op.sig.asyncness.map_or(op.sig.fn_token.span, |a| a.span);
    let attempt = quote_spanned!(async_span=> #p::attempt::<#ret, _>);
    let async_move = quote_spanned!(async_span=> async move);
    // `E: From<DbError>` checked on the return type, with a message that says what to do.
    let error_check = quote_spanned! {ret_span=>
        #p::op_error::<<#ret as #p::ResultParts>::Err>();
    };
    // A retry policy or a breaker must tell the database's failures from the application's:
    // the error type must show the `DbError` inside (`OpError`).
    let classifies = matches!(op.args.retry, Some(Retry::Named(_))) || op.args.breaker.is_some();
    let error_check = if classifies {
        quote_spanned! {ret_span=>
            #error_check
            #p::classified::<<#ret as #p::ResultParts>::Err>();
        }
    } else {
        error_check
    };
    let uncached = quote! {
        #p::#run(#rt, &#spec_ident, #classify, move |#conn| {
            #rebind
            #attempt(#async_move {
                #bind_conn
                #stmts
            })
        })
    };
    // A cached op: its arguments (the runtime's aside) make the key, taken before the
    // attempts take them; the uncached call runs on a miss.
    let (key, run) = match &op.args.cache {
        Some(_) => {
            let key = Ident::new("__sqlx_resilience_key", Span::mixed_site());
            let runtime_param = match &op.runtime {
                RuntimeSource::Param { ident } => Some(ident),
                RuntimeSource::Receiver(_) => None,
            };
            let parts = op
                .params
                .iter()
                .filter(|param| Some(&param.ident) != runtime_param)
                .map(|param| {
                    let ident = &param.ident;
                    let arg = if param.by_ref {
                        quote_spanned!(param.span=> &*#ident)
                    } else {
                        quote_spanned!(param.span=> &#ident)
                    };
                    // The whole call on the parameter, so a type that cannot be a key is
                    // reported there.
                    let p: TokenStream = p
                        .clone()
                        .into_iter()
                        .map(|mut token| {
                            token.set_span(param.span);
                            token
                        })
                        .collect();
                    quote_spanned!(param.span=> #p::cache_key_part(#arg),)
                });
            let cacheable = quote_spanned! {ret_span=>
                #p::cacheable::<<#ret as #p::ResultParts>::Ok>();
            };
            (
                quote! { #cacheable let #key = (#(#parts)*); },
                quote!(#p::run_cached(#rt, &#spec_ident, #key, move || #uncached)),
            )
        }
        None => (TokenStream::new(), uncached),
    };
    let call = quote! {
        #error_check
        let #classify: for<'__e> fn(&'__e mut <#ret as #p::ResultParts>::Err)
            -> ::core::option::Option<&'__e mut #p::Error> =
            |#error| {
                #[allow(unused_imports)]
                use #p::{ByNothing as _, ByOpError as _};
                #p::Classify(#error).db_error()
            };
        let #rt = #runtime_of;
        #key
        #before
        #run.await
    };

    let items = quote! {
        static #spec_ident: #p::StaticOp = #p::StaticOp::new(#spec);
        #p::inventory::submit! { #p::OpRegistration(&#spec_ident) }
    };
    let body = match op.form {
        Form::Async => quote! { #items #call },
        Form::AsyncTrait => quote! {
            #items
            ::std::boxed::Box::pin(async move { #call })
        },
    };

    let attrs = &op.attrs;
    let vis = &op.vis;
    let sig = &op.sig;
    let nested = nested(op, &p);
    quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
        #nested
    }
}

/// The nested form (`nested = name`): the body on the caller's connection, joining the
/// transaction it is in (or, for a `tx` op, beginning one when there is none), with no pool
/// and no policies of its own.
///
/// ```text
/// async fn add_line_in(&self, __sqlx_resilience_conn: &mut PgConnection, order: i64) -> R {
///     let mut nested = Nested::enter(__sqlx_resilience_conn, Some(TxSpec { .. })).await?;
///     let result = nested_body::<R, _>(async {
///         let conn: &mut PgConnection = nested.conn();
///         /* the body as written */
///     })
///     .await;
///     nested.leave(result).await
/// }
/// ```
fn nested(op: &Op, p: &TokenStream) -> TokenStream {
    let Some(sig) = &op.nested else {
        return TokenStream::new();
    };
    let conn = Ident::new("__sqlx_resilience_conn", Span::mixed_site());
    let guard = Ident::new("__sqlx_resilience_nested", Span::mixed_site());
    let result = Ident::new("__sqlx_resilience_result", Span::mixed_site());
    let ret = &op.ret;
    let tx = tx_spec(op, p);
    let conn_pat = &op.conn.pat;
    let conn_ty = &op.conn.ty;
    let stmts = &op.stmts;
    let vis = &op.vis;
    // The op's own attributes but its documentation, which is about the op run on its own.
    let attrs = op.attrs.iter().filter(|a| !a.path().is_ident("doc"));
    let of = op.sig.ident.to_string();
    let doc = format!(
        " [`{of}`](Self::{of}) inside the caller's transaction: the same body, run on the \
         connection given (the transaction it is in is joined{}), with no pool, retry, \
         breaker, limiter, bulkhead or timeout of its own: the calling op's apply, once, to \
         the whole.",
        if op.args.is_tx() {
            "; outside one, a transaction is begun and ended here"
        } else {
            ""
        }
    );
    let doc = if op.sig.receiver().is_some() {
        doc
    } else {
        doc.replace("(Self::", "(")
    };
    quote! {
        #[doc = #doc]
        #(#attrs)*
        #[allow(unused_variables)]
        #vis #sig {
            let mut #guard = #p::Nested::enter(#conn, #tx).await?;
            let #result = #p::nested_body::<#ret, _>(async {
                let #conn_pat: #conn_ty = #guard.conn();
                #stmts
            })
            .await;
            #guard.leave(#result).await
        }
    }
}

/// `Some(TxSpec { .. })` for a `tx` op, else `None`.
fn tx_spec(op: &Op, p: &TokenStream) -> TokenStream {
    let args = &op.args;
    if !args.is_tx() {
        return quote!(::core::option::Option::None);
    }
    let read_only = args.read_only.as_ref().is_some_and(|s| s.value);
    let isolation = match &args.isolation {
        Some(level) => {
            let variant = Ident::new(level.value.variant(), level.span);
            quote!(::core::option::Option::Some(#p::Isolation::#variant))
        }
        None => quote!(::core::option::Option::None),
    };
    quote!(::core::option::Option::Some(#p::TxSpec { isolation: #isolation, read_only: #read_only }))
}

fn span_of(tokens: &impl ToTokens) -> Span {
    tokens
        .to_token_stream()
        .into_iter()
        .next()
        .map_or(Span::call_site(), |t| t.span())
}

/// `Some(Name::Declared(&crate::policies::pool::http))`: a reference to the `static`
/// `policies!` generated, spanned on the name, so rustc reports an unknown one there with its
/// "a static with a similar name exists" hint. The root is `policies = path` or, by default,
/// `crate::policies`: no `use` needed in any module.
fn name_ref(args: &Args, kind: Kind, name: Option<&PolicyName>, p: &TokenStream) -> TokenStream {
    let Some(name) = name else {
        return quote!(::core::option::Option::None);
    };
    // The root and the kind's module point at the name too, but with the macro's hygiene, so
    // a missing root is reported there without rustc proposing to rewrite the literal.
    let at = Span::mixed_site().located_at(name.span);
    let root = match &args.policies {
        Some(path) => quote!(#path),
        None => quote_spanned!(at=> crate::policies),
    };
    let module = Ident::new(kind.module(), at);
    let ident = Ident::new(&name.name, name.span);
    quote_spanned! {name.span=>
        ::core::option::Option::Some(#p::Name::Declared(&#root::#module::#ident))
    }
}

fn spec(op: &Op, p: &TokenStream) -> TokenStream {
    let args = &op.args;
    let fn_name = op.sig.ident.to_string();
    let fn_span = op.sig.ident.span();
    let name = match &args.name {
        Some(lit) => lit.to_token_stream(),
        None => quote_spanned!(fn_span=> ::core::concat!(::core::module_path!(), "::", #fn_name)),
    };
    let some_duration = |d: Option<Duration>| match d {
        Some(d) => {
            let secs = d.as_secs();
            let nanos = d.subsec_nanos();
            quote!(::core::option::Option::Some(::core::time::Duration::new(#secs, #nanos)))
        }
        None => quote!(::core::option::Option::None),
    };
    let pool = name_ref(args, Kind::Pool, args.pool.as_ref(), p);
    let retry = name_ref(
        args,
        Kind::Retry,
        match &args.retry {
            Some(Retry::Named(n)) => Some(n),
            _ => None,
        },
        p,
    );
    let retry_scope = if args.before_send.is_some() {
        quote!(#p::RetryScope::BeforeSend)
    } else {
        quote!(#p::RetryScope::Declared)
    };
    let breaker = name_ref(args, Kind::Breaker, args.breaker.as_ref(), p);
    let limiter = name_ref(args, Kind::Limiter, args.limiter.as_ref(), p);
    let bulkhead = name_ref(args, Kind::Bulkhead, args.bulkhead.as_ref(), p);
    let timeout = some_duration(args.timeout.as_ref().map(|d| d.value));
    let deadline = some_duration(args.deadline.as_ref().map(|d| d.value));
    let slow = some_duration(args.slow.as_ref().map(|d| d.value));
    let cache = some_duration(args.cache.as_ref().map(|d| d.value.value));
    let max_lag = some_duration(args.max_lag.as_ref().map(|d| d.value.value));
    let idempotent = args.idempotent.as_ref().is_some_and(|s| s.value);
    let read_only = args.read_only.as_ref().is_some_and(|s| s.value);
    let tx = tx_spec(op, p);
    let location = quote_spanned! {fn_span=>
        #p::Location { file: ::core::file!(), line: ::core::line!(), column: ::core::column!() }
    };
    quote! {
        #p::OpSpec {
            name: #name,
            pool: #pool,
            timeout: #timeout,
            deadline: #deadline,
            retry: #retry,
            retry_scope: #retry_scope,
            breaker: #breaker,
            limiter: #limiter,
            bulkhead: #bulkhead,
            idempotent: #idempotent,
            read_only: #read_only,
            tx: #tx,
            slow: #slow,
            max_lag: #max_lag,
            cache: #cache,
            location: #location,
        }
    }
}
