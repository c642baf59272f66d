//! Where generated code finds the facade's `#[doc(hidden)]` module: both macros expand into
//! calls through it.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Path;

/// `::sqlx_resilience::__private`, or `<crate = path>::__private`.
pub(crate) fn private_path(krate: Option<&Path>) -> TokenStream {
    match krate {
        Some(path) => quote!(#path::__private),
        None => quote!(::sqlx_resilience::__private),
    }
}
