//! `policies! { ... }` into declarations.
//!
//! ```text
//! policies! {
//!     pub(crate) mod db_policies;          // optional: the module's name and visibility
//!     crate = ::my_facade;                 // optional: where sqlx-resilience is
//!     pool http { max = 150, min = 10 }
//!     pool ws;                             // a name with the runtime's defaults
//!     retry transient {
//!         attempts = 4, base = "50ms",
//!         on connection_lost { attempts = 5, base = "500ms", factor = 1.5 },
//!     }
//! }
//! ```

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, Path, Token, Visibility, braced};

use crate::kv::Entry;

/// The whole input.
pub(crate) struct Input {
    pub(crate) module: Option<Module>,
    pub(crate) krate: Option<Path>,
    pub(crate) decls: Vec<Decl>,
}

/// `pub(crate) mod db_policies;`
pub(crate) struct Module {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) name: Ident,
}

/// `pool http { max = 150 }`
pub(crate) struct Decl {
    pub(crate) attrs: Vec<Attribute>,
    /// As written; checked against the known kinds in validation.
    pub(crate) kind: Ident,
    pub(crate) name: Ident,
    pub(crate) settings: Vec<Setting>,
}

/// One setting inside a declaration's braces.
pub(crate) enum Setting {
    /// `key = value`
    Entry(Box<Entry>),
    /// `on connection_lost { attempts = 5 }` (retry policies only)
    On {
        on: Span,
        kind: Ident,
        entries: Vec<Entry>,
    },
}

impl Parse for Input {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut module: Option<Module> = None;
        let mut krate = None;
        let mut decls = Vec::new();
        while !input.is_empty() {
            let attrs = input.call(Attribute::parse_outer)?;
            if input.peek(Token![crate]) && input.peek2(Token![=]) {
                let token: Token![crate] = input.parse()?;
                input.parse::<Token![=]>()?;
                if krate.is_some() {
                    return Err(syn::Error::new(token.span, "`crate = ...` is given twice"));
                }
                krate = Some(input.parse()?);
                input.parse::<Token![;]>()?;
                continue;
            }
            let fork = input.fork();
            let _: Visibility = fork.parse()?;
            if fork.peek(Token![mod]) {
                let vis: Visibility = input.parse()?;
                let token: Token![mod] = input.parse()?;
                let name: Ident = input.parse()?;
                input.parse::<Token![;]>()?;
                if module.is_some() {
                    return Err(syn::Error::new(
                        token.span,
                        "the module is named twice: keep one `mod name;`",
                    ));
                }
                if !decls.is_empty() {
                    return Err(syn::Error::new(
                        token.span,
                        "`mod name;` comes first, before the declarations",
                    ));
                }
                module = Some(Module { attrs, vis, name });
                continue;
            }
            let kind = input.call(Ident::parse_any)?;
            let name: Ident = input.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    format!("expected a name after `{kind}`: an identifier such as `{kind} http`"),
                )
            })?;
            let mut settings = Vec::new();
            if input.peek(syn::token::Brace) {
                let content;
                braced!(content in input);
                settings = parse_settings(&content)?;
            }
            // Optional separator, so `pool ws;` and `pool ws { .. },` both read well.
            if input.peek(Token![;]) {
                input.parse::<Token![;]>()?;
            } else if input.peek(Token![,]) {
                input.parse::<Token![,]>()?;
            }
            decls.push(Decl {
                attrs,
                kind,
                name,
                settings,
            });
        }
        Ok(Input {
            module,
            krate,
            decls,
        })
    }
}

fn parse_settings(input: ParseStream<'_>) -> syn::Result<Vec<Setting>> {
    let mut settings = Vec::new();
    while !input.is_empty() {
        if input.peek(Ident) && input.peek2(Ident) && input.peek3(syn::token::Brace) {
            let on = input.call(Ident::parse_any)?;
            let kind: Ident = input.parse()?;
            if on != "on" {
                return Err(syn::Error::new(
                    on.span(),
                    format!(
                        "expected `key = value` or `on <failure kind> {{ ... }}`, found `{on} {kind} {{`"
                    ),
                ));
            }
            let content;
            braced!(content in input);
            let entries = Punctuated::<Entry, Token![,]>::parse_terminated(&content)?
                .into_iter()
                .collect();
            settings.push(Setting::On {
                on: on.span(),
                kind,
                entries,
            });
        } else {
            settings.push(Setting::Entry(Box::new(input.parse()?)));
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(settings)
}
