//! `#[derive(HasRuntime)]`: a repository finds its runtime in one of its fields, so
//! `#[db_op]` methods on `&self` need no hand-written `impl HasRuntime`.

use proc_macro2::TokenStream;
use quote::quote_spanned;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Member, Type};

/// Expands the derive, or says which field to mark.
pub(crate) fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(input)?;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(HasRuntime)] goes on a struct with a field that holds the runtime",
        ));
    };
    let fields: Vec<(Member, &syn::Field)> = match &data.fields {
        Fields::Named(named) => named
            .named
            .iter()
            .map(|f| (Member::Named(f.ident.clone().expect("named field")), f))
            .collect(),
        Fields::Unnamed(unnamed) => unnamed
            .unnamed
            .iter()
            .enumerate()
            .map(|(i, f)| (Member::Unnamed(i.into()), f))
            .collect(),
        Fields::Unit => Vec::new(),
    };
    let marked: Vec<&(Member, &syn::Field)> = fields
        .iter()
        .filter(|(_, f)| f.attrs.iter().any(|a| a.path().is_ident("runtime")))
        .collect();
    let chosen: &(Member, &syn::Field) = match marked.as_slice() {
        [one] => one,
        [_, second, ..] => {
            return Err(syn::Error::new(
                second.1.span(),
                "only one field can be `#[runtime]`: the one the ops run on",
            ));
        }
        [] => {
            let mut typed = fields.iter().filter(|(_, f)| is_runtime(&f.ty));
            match (typed.next(), typed.next()) {
                (Some(one), None) => one,
                (None, _) => {
                    return Err(syn::Error::new(
                        input.ident.span(),
                        format!(
                            "#[derive(HasRuntime)] finds no field of type `Runtime` in `{}`: add \
                             one (`rt: Runtime`), or mark the field that gives the runtime with \
                             `#[runtime]` (its type must implement `HasRuntime`, as `Runtime`, \
                             `Arc<Runtime>` and `&Runtime` do)",
                            input.ident
                        ),
                    ));
                }
                (Some(_), Some(second)) => {
                    return Err(syn::Error::new(
                        second.1.span(),
                        "two fields of type `Runtime`: mark the one the ops run on with \
                         `#[runtime]`",
                    ));
                }
            }
        }
    };
    let member = &chosen.0;
    let span = chosen.1.span();
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote_spanned! {span=>
        impl #impl_generics ::sqlx_resilience::HasRuntime for #name #ty_generics #where_clause {
            fn runtime(&self) -> &::sqlx_resilience::Runtime {
                ::sqlx_resilience::HasRuntime::runtime(&self.#member)
            }
        }
    })
}

/// `Runtime`, `sqlx_resilience::Runtime`, `Arc<Runtime>`, `&Runtime`: a type whose last path
/// segment (or that of its only generic argument) is `Runtime`.
fn is_runtime(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => is_runtime(&r.elem),
        Type::Path(p) => p.path.segments.last().is_some_and(|last| {
            last.ident == "Runtime"
                || matches!(&last.arguments, syn::PathArguments::AngleBracketed(args)
                    if args.args.len() == 1
                        && matches!(args.args.first(), Some(syn::GenericArgument::Type(inner)) if is_runtime(inner)))
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn out(input: TokenStream) -> String {
        expand(input)
            .map(|t| t.to_string())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn the_runtime_field_is_found_by_its_type() {
        let text = out(quote!(
            struct Repo {
                name: String,
                rt: Runtime,
            }
        ));
        assert!(
            text.contains("HasRuntime :: runtime (& self . rt)"),
            "{text}"
        );
        let text = out(quote!(
            struct Shared(u32, std::sync::Arc<sqlx_resilience::Runtime>);
        ));
        assert!(text.contains("(& self . 1)"), "{text}");
    }

    #[test]
    fn a_marked_field_wins_and_ambiguity_is_an_error() {
        let text = out(quote!(
            struct Repo {
                #[runtime]
                app: AppState,
                other: Runtime,
            }
        ));
        assert!(text.contains("(& self . app)"), "{text}");
        let text = out(quote!(
            struct Repo {
                a: Runtime,
                b: Runtime,
            }
        ));
        assert!(text.contains("mark the one the ops run on"), "{text}");
        let text = out(quote!(
            struct Repo {
                pool: PgPool,
            }
        ));
        assert!(text.contains("finds no field of type `Runtime`"), "{text}");
    }
}
