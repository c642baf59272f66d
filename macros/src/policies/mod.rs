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
    let private = crate::db_op::private_path(input.krate.as_ref());
    let tokens = expand::expand(input.module.as_ref(), &private, &declared);
    (tokens, errors.take())
}
