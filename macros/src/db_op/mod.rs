//! `#[db_op]`: parse -> validate -> expand.

mod expand;
mod parse;
mod validate;

use proc_macro2::{Span, TokenStream};

use crate::kv::Errors;

pub(crate) use self::expand::private_path;

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
