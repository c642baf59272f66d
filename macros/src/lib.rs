//! The macros of sqlx-resilience: `#[db_op]` and `policies!`.
//!
//! Use them through the `sqlx-resilience` facade, which re-exports both and provides the
//! runtime the generated code calls.

use proc_macro::TokenStream;

mod db_op;
mod has_runtime;
mod kv;
mod policies;
mod private;

/// Wraps an async repository function in the runtime's policies.
///
/// Keys: `pool`, `timeout`, `deadline`, `retry` (a name or `none`), `breaker`, `limiter`,
/// `bulkhead`, `name`, `idempotent`, `read_only`, `tx`, `isolation`, `slow`, `cache`,
/// `max_lag`, `runtime`, `policies`, `crate`. The full reference, with an example of every key, is on the re-export
/// `sqlx_resilience::db_op`, whose examples compile against the runtime.
#[proc_macro_attribute]
pub fn db_op(args: TokenStream, item: TokenStream) -> TokenStream {
    let (args, item) = (args.into(), item.into());
    match db_op::expand(Clone::clone(&args), Clone::clone(&item)) {
        Ok(tokens) => tokens.into(),
        Err(errors) => {
            let mut out = errors.to_compile_error();
            out.extend(db_op::recover(args, item));
            out.into()
        }
    }
}

/// Lets `#[db_op]` methods on `&self` find the runtime in a field: the one of type `Runtime`
/// (or `Arc<Runtime>`, `&Runtime`), or the one marked `#[runtime]`.
///
/// The full reference is on the re-export `sqlx_resilience::HasRuntime`.
#[proc_macro_derive(HasRuntime, attributes(runtime))]
pub fn derive_has_runtime(input: TokenStream) -> TokenStream {
    match has_runtime::expand(input.into()) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// Declares every pool and policy name code may use, with default settings.
///
/// `kind name { key = value, .. }` for `pool`, `breaker`, `retry`, `limiter` and `bulkhead`;
/// the full reference, with every key, is on the re-export `sqlx_resilience::policies`.
#[proc_macro]
pub fn policies(input: TokenStream) -> TokenStream {
    let input: proc_macro2::TokenStream = input.into();
    match policies::expand(input.clone()) {
        Ok(tokens) => tokens.into(),
        Err(errors) => {
            let mut out = errors.to_compile_error();
            out.extend(policies::recover(input));
            out.into()
        }
    }
}
