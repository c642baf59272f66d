//! Semantic checks of `#[db_op]`: keys that contradict each other, and the function's shape
//! (async, one connection parameter, a runtime, a `Result`).

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident};
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, GenericArgument, GenericParam, Ident, Lifetime, Pat, PatIdent, PathArguments,
    PathSegment, ReturnType, Signature, Token, Type, TypeParamBound, Visibility, WherePredicate,
    visit_mut::VisitMut,
};

use super::parse::{Args, Item, Retry, Setting};
use crate::kv::Errors;

/// A validated op, ready to expand.
pub(crate) struct Op {
    pub(crate) args: Args,
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    /// The public signature: the connection parameter removed, parameters named.
    pub(crate) sig: Signature,
    pub(crate) form: Form,
    pub(crate) conn: ConnParam,
    pub(crate) runtime: RuntimeSource,
    pub(crate) params: Vec<Param>,
    /// The `Result` type one attempt produces.
    pub(crate) ret: Type,
    /// What one attempt runs: the body's statements, as written.
    pub(crate) stmts: TokenStream,
    /// `nested = name`: the signature as written, renamed, its connection parameter named
    /// `__sqlx_resilience_conn`.
    pub(crate) nested: Option<Signature>,
}

/// How the function was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    /// `async fn`.
    Async,
    /// A method `#[async_trait]` already rewrote into `fn .. -> Pin<Box<dyn Future ..>>`.
    AsyncTrait,
}

/// The connection (or transaction) parameter, which the runtime supplies on each attempt.
pub(crate) struct ConnParam {
    pub(crate) pat: Pat,
    /// `tx: &mut Tx<'_>` (rather than the connection itself).
    pub(crate) is_tx_type: bool,
    /// Its type with every lifetime elided, for the rebinding inside the attempt.
    pub(crate) ty: Type,
    pub(crate) span: Span,
}

/// Where the runtime comes from.
pub(crate) enum RuntimeSource {
    /// `&self`: through `HasRuntime` on `Self`.
    Receiver(Token![self]),
    /// A parameter: `rt: &Runtime`, `rt: Runtime`, or the one named by `runtime = ..`.
    Param { ident: Ident },
}

/// A parameter other than the receiver and the connection.
pub(crate) struct Param {
    /// Its name in the public signature.
    pub(crate) ident: Ident,
    /// The pattern as the user wrote it, bound again on each attempt.
    pub(crate) pat: Pat,
    pub(crate) capture: Capture,
    /// `#[cfg]` attributes, forwarded to every rebinding.
    pub(crate) cfgs: Vec<Attribute>,
    pub(crate) span: Span,
    /// Its type, for the per-attempt copy; `None` when it cannot be named in the body (it is
    /// `impl Trait`) or names the function's type parameters, whose fix is a `Clone` bound.
    pub(crate) concrete: Option<Type>,
    /// Passed by reference (`&T` or `&mut T`).
    pub(crate) by_ref: bool,
}

/// How one attempt gets a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Capture {
    /// A shared reference bound by a plain name: captured as it is.
    Keep,
    /// A shared reference with a pattern (`mut r`, `&x`): copied into the pattern.
    Copy,
    /// A value: cloned for each attempt (an error names the type when it is not `Clone`).
    Clone,
    /// A value in a `retry = none` op: moved into the one attempt.
    Once,
    /// The runtime parameter taken by value: every attempt borrows it.
    Borrow,
}

/// Checks the keys against each other. A contradiction is an error; the op still expands.
pub(crate) fn check_args(args: &mut Args, errors: &mut Errors) {
    if let (Some(timeout), Some(deadline)) = (&args.timeout, &args.deadline)
        && timeout.value > deadline.value
    {
        errors.at(
                timeout.span,
                format!(
                    "`timeout` (per attempt) of \"{}\" is longer than `deadline` (whole call) of \
                     \"{}\": no attempt could use its full timeout; lower `timeout` or raise `deadline`",
                    timeout.text, deadline.text
                ),
            );
    }
    if let (Some(slow), Some(deadline)) = (&args.slow, &args.deadline)
        && slow.value > deadline.value
    {
        errors.at(
            slow.span,
            format!(
                "`slow` of \"{}\" is longer than `deadline` of \"{}\": no call runs that long, \
                     so none would ever be reported slow; lower `slow`",
                slow.text, deadline.text
            ),
        );
    }
    if let Some(isolation) = &args.isolation
        && !args.is_tx()
    {
        errors.at(
            isolation.key,
            "`isolation` sets the isolation level of the op's transaction, and this op has \
                 none: add `tx` and take `tx: &mut Tx<'_>` instead of the \
                 connection",
        );
        args.isolation = None;
    }
    check_retry_scope(args, errors);
    if let Some(cache) = &args.cache
        && !args.read_only.as_ref().is_some_and(|r| r.value)
    {
        errors.at(
            cache.key,
            "`cache` on an op that may write: a result served from the cache skips the op, \
                 and with it any write; add `read_only` if the op only reads, or remove `cache`",
        );
        args.cache = None;
    }
    if let Some(max_lag) = &args.max_lag
        && !args.read_only.as_ref().is_some_and(|r| r.value)
    {
        errors.at(
            max_lag.key,
            "`max_lag` on an op that may write: only `read_only` ops go to a replica, so the \
                 limit would never apply; add `read_only` if the op only reads, or remove `max_lag`",
        );
        args.max_lag = None;
    }
    if let (Some(idempotent), Some(read_only)) = (&args.idempotent, &args.read_only)
        && !idempotent.value
        && read_only.value
    {
        errors.at(
            idempotent.span,
            "`idempotent = false` contradicts `read_only`: a read-only op changes nothing, so \
                 running it again is always safe; remove `idempotent = false`",
        );
    }
}

/// A retry policy on an op that may write and cannot run again safely retries only failures
/// before anything reached the server; the attribute must say it knows, or say why running
/// again is safe.
fn check_retry_scope(args: &mut Args, errors: &mut Errors) {
    let flag = |s: &Option<Setting<bool>>| s.as_ref().is_some_and(|s| s.value);
    let safe = flag(&args.idempotent) || flag(&args.read_only) || args.is_tx();
    match (&args.retry, &args.before_send) {
        (Some(Retry::Named(name)), None) if !safe => errors.at(
            name.span,
            format!(
                "`retry = {}` on an op that may write and is not declared safe to run again: a \
                 write cut off after it was sent may have been applied, so the policy could \
                 only retry failures before anything was sent. Say which you mean: \
                 `idempotent` (running it twice has the effect of once: it runs again after any \
                 failure the policy retries), `tx` (its transaction is rolled back and runs \
                 again whole), or `retry_scope = \"before_send\"` (only connect and acquire \
                 failures run again); `read_only` ops are always safe",
                name.name
            ),
        ),
        (_, Some(scope)) if safe || !matches!(args.retry, Some(Retry::Named(_))) => {
            errors.at(
                scope.key,
                if safe {
                    "`retry_scope = \"before_send\"` narrows the retries of an op that may \
                     write and cannot run again; this op is idempotent, read-only or \
                     transactional, so its retry policy covers more: remove `retry_scope`"
                } else {
                    "`retry_scope` says what a retry policy covers, and this op has none: add \
                     `retry = name` or remove `retry_scope`"
                },
            );
            args.before_send = None;
        }
        _ => {}
    }
}

/// Checks the function's shape. Returns `None` when it cannot be expanded (the caller then
/// emits the function as written next to the errors).
pub(crate) fn check_item(args: &Args, item: Item, errors: &mut Errors) -> Option<Op> {
    let mut errs = Vec::new();
    let Item {
        attrs,
        vis,
        mut sig,
        body,
    } = item;

    if let Some(constness) = &sig.constness {
        errs.push(syn::Error::new(
            constness.span,
            "#[db_op] cannot be `const`: an op awaits a pooled connection at run time",
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        errs.push(syn::Error::new(
            unsafety.span,
            "#[db_op] functions cannot be `unsafe`: the op runs inside the runtime's policies, \
             which cannot uphold a caller's safety contract; make the function safe and keep \
             `unsafe` blocks inside it",
        ));
    }
    if let Some(abi) = &sig.abi {
        errs.push(syn::Error::new(
            abi.span(),
            "#[db_op] functions cannot be `extern`: an op is an `async fn` called from Rust",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errs.push(syn::Error::new(
            variadic.span(),
            "#[db_op] functions cannot be variadic",
        ));
    }
    let Some(body) = body else {
        errs.push(syn::Error::new(
            sig.ident.span(),
            "#[db_op] goes on a function with a body: put it on the implementation, not on the \
             trait's declaration (the declaration has no connection parameter)",
        ));
        return fail(errors, errs);
    };

    let (form, ret, stmts) = match detect_async_trait(&sig, &body) {
        Some((output, stmts)) => (Form::AsyncTrait, Some(output), stmts),
        None => {
            if sig.asyncness.is_none() && sig.constness.is_none() {
                errs.push(syn::Error::new(
                    sig.fn_token.span,
                    "#[db_op] needs an `async fn`: the op awaits a pooled connection and the \
                     runtime's policies; write `async fn`",
                ));
            }
            let ret = match &sig.output {
                ReturnType::Type(_, ty) => Some((**ty).clone()),
                ReturnType::Default => None,
            };
            (Form::Async, ret, body)
        }
    };

    let ret = match ret {
        Some(ty) if is_result(&ty) => {
            if let Some(error) = sqlx_error_in(&ty) {
                errs.push(syn::Error::new_spanned(
                    error,
                    "#[db_op] functions return `Result<T, DbError>`, not `sqlx::Error`: the op's \
                     own failures (a timeout, an open breaker, an unreachable database) are \
                     `DbError`s, and sqlx errors convert into `DbError` with `?`; write \
                     `-> Result<T, DbError>` (`use sqlx_resilience::DbError;`)",
                ));
            }
            Some(ty)
        }
        Some(ty) => {
            errs.push(syn::Error::new_spanned(
                &ty,
                "#[db_op] functions return `Result<T, E>` with `E: From<DbError>`: pool, \
                 timeout, breaker and limiter failures are reported through `E`",
            ));
            None
        }
        None => {
            errs.push(syn::Error::new(
                sig.paren_token.span.close(),
                "#[db_op] functions return `Result<T, E>` with `E: From<DbError>`: add a return \
                 type such as `-> Result<(), DbError>`",
            ));
            None
        }
    };

    // The receiver: `&self` only.
    let mut receiver = None;
    let mut rejected_receiver = false;
    if let Some(FnArg::Receiver(r)) = sig.inputs.first() {
        let shared_ref = match (&r.reference, &r.colon_token) {
            (Some(_), _) => r.mutability.is_none(),
            (None, Some(_)) => {
                matches!(strip(&r.ty), Type::Reference(t) if t.mutability.is_none())
            }
            (None, None) => false,
        };
        let mutable = r.mutability.is_some()
            || matches!(strip(&r.ty), Type::Reference(t) if t.mutability.is_some());
        if shared_ref {
            receiver = Some(r.self_token);
        } else if mutable && r.reference.is_some() {
            rejected_receiver = true;
            errs.push(syn::Error::new_spanned(
                r,
                "#[db_op] methods take `&self`, not `&mut self`: the body runs once per attempt \
                 and a unique borrow of `self` cannot be handed to every attempt; use `&self` \
                 with interior mutability (a Mutex, atomics) for state the op changes",
            ));
        } else {
            rejected_receiver = true;
            errs.push(syn::Error::new_spanned(
                r,
                "#[db_op] methods take `&self`: `self` by value is consumed by the first \
                 attempt and cannot be used again on retry",
            ));
        }
    }

    // The signature as written, for the nested form.
    let written = sig.clone();
    let type_params: Vec<Ident> = sig
        .generics
        .type_params()
        .map(|t| t.ident.clone())
        .collect();

    // The other parameters: exactly one connection, the runtime, and the rest.
    let is_tx = args.is_tx();
    let mut conn: Option<(usize, ConnParam)> = None;
    let mut runtime_params: Vec<(Ident, bool, Span)> = Vec::new();
    let mut pool_like: Option<Type> = None;
    let mut misused_conn = false;
    let mut params = Vec::new();
    let mut removed_lifetimes = Vec::new();
    for (index, arg) in sig.inputs.iter_mut().enumerate() {
        let FnArg::Typed(arg) = arg else { continue };
        let span = arg.span();
        match classify_type(&arg.ty) {
            TypeClass::Connection(class) => {
                // A `tx` op takes `tx: &mut Tx<'_>` or the connection inside its transaction
                // (`conn: &mut PgConnection`, so sqlx's usual `&mut *conn` works); a plain op
                // cannot take a transaction.
                let wanted_tx = class == ConnClass::Transaction;
                if wanted_tx && !is_tx {
                    errs.push(syn::Error::new_spanned(
                        &arg.ty,
                        "a transaction parameter needs `tx` in the attribute: \
                         `#[db_op(tx, ...)]`; without it the op takes \
                         `conn: &mut PgConnection`",
                    ));
                }
                if conn.is_some() {
                    errs.push(syn::Error::new_spanned(
                        &*arg,
                        "a second connection parameter: #[db_op] supplies one connection (or \
                         transaction) per attempt; remove this parameter",
                    ));
                    continue;
                }
                removed_lifetimes = lifetimes_in(arg.ty.to_token_stream());
                let mut ty = (*arg.ty).clone();
                ElideLifetimes.visit_type_mut(&mut ty);
                conn = Some((
                    index,
                    ConnParam {
                        pat: (*arg.pat).clone(),
                        is_tx_type: wanted_tx,
                        ty,
                        span,
                    },
                ));
                continue;
            }
            TypeClass::SqlxTransaction => {
                misused_conn = true;
                errs.push(syn::Error::new_spanned(
                    &arg.ty,
                    "an op's transaction is the runtime's: write `tx: &mut Tx<'_>` \
                     (`sqlx_resilience::Tx`, which dereferences to the connection inside the \
                     transaction) with `tx` in the attribute; sqlx's `Transaction` would let the \
                     body commit or roll back what the runtime manages",
                ));
                continue;
            }
            TypeClass::ConnectionNotBorrowed(found) => {
                misused_conn = true;
                errs.push(syn::Error::new_spanned(
                    &arg.ty,
                    format!(
                        "the connection parameter must be a mutable borrow: `&mut {found}`; the \
                         runtime keeps the connection and lends it to each attempt"
                    ),
                ));
                continue;
            }
            TypeClass::PoolLike => pool_like = Some((*arg.ty).clone()),
            TypeClass::Runtime { by_value } => {
                if let Some(ident) = plain_ident(&arg.pat) {
                    runtime_params.push((ident.clone(), by_value, span));
                }
            }
            TypeClass::Other => {}
        }

        // An ordinary parameter: how does each attempt get it?
        let is_ref = matches!(strip(&arg.ty), Type::Reference(_));
        let is_mut_ref = matches!(strip(&arg.ty), Type::Reference(t) if t.mutability.is_some());
        let user_pat = (*arg.pat).clone();
        let ident = match &mut *arg.pat {
            Pat::Ident(PatIdent {
                by_ref: None,
                subpat: None,
                mutability,
                ident,
                ..
            }) => {
                *mutability = None;
                ident.clone()
            }
            other => {
                let ident =
                    format_ident!("__sqlx_resilience_arg{}", index, span = Span::mixed_site());
                *other = Pat::Ident(PatIdent {
                    attrs: Vec::new(),
                    by_ref: None,
                    mutability: None,
                    ident: ident.clone(),
                    subpat: None,
                });
                ident
            }
        };
        let plain = matches!(&user_pat, Pat::Ident(p) if p.by_ref.is_none() && p.mutability.is_none() && p.subpat.is_none());
        let capture = if is_mut_ref {
            if !args.never_retries() {
                errs.push(syn::Error::new_spanned(
                    &arg.ty,
                    format!(
                        "`&mut` argument `{}`: the body of a #[db_op] runs again on retry, and a \
                         unique borrow cannot be handed to every attempt; pass it by shared \
                         reference or by value (cloned for each attempt), or use `retry = none`",
                        ident_text(&user_pat, &ident)
                    ),
                ));
            }
            Capture::Once
        } else if is_ref {
            if plain { Capture::Keep } else { Capture::Copy }
        } else if args.never_retries() {
            Capture::Once
        } else {
            Capture::Clone
        };
        let concrete =
            (!names_any(arg.ty.to_token_stream(), &type_params)).then(|| (*arg.ty).clone());
        params.push(Param {
            concrete,
            by_ref: is_ref || is_mut_ref,
            ident,
            pat: user_pat,
            capture,
            cfgs: arg
                .attrs
                .iter()
                .filter(|a| a.path().is_ident("cfg"))
                .cloned()
                .collect(),
            span,
        });
    }

    let Some((conn_index, conn)) = conn else {
        if misused_conn {
            return fail(errors, errs);
        }
        let mut message = if is_tx {
            "#[db_op(tx)] needs a transaction parameter: add `tx: &mut Tx<'_>`; \
             the runtime begins the transaction on each attempt and removes the parameter from \
             the public signature"
                .to_owned()
        } else {
            "#[db_op] needs a connection parameter: add `conn: &mut PgConnection`; the runtime \
             supplies a pooled connection on each attempt and removes the parameter from the \
             public signature"
                .to_owned()
        };
        errs.push(match pool_like {
            Some(ty) => {
                message.push_str(
                    " (a pool or pooled connection parameter is not used for this: the runtime's \
                     named pools are, chosen with `pool = name`)",
                );
                syn::Error::new_spanned(ty, message)
            }
            None => syn::Error::new(sig.paren_token.span.join(), message),
        });
        return fail(errors, errs);
    };

    // The runtime: `runtime = name`, else a `Runtime` parameter, else `&self`.
    let runtime = if let Some(name) = &args.runtime {
        if name == "self" {
            match receiver {
                Some(token) => Some(RuntimeSource::Receiver(token)),
                None => {
                    errs.push(syn::Error::new(
                        name.span(),
                        "`runtime = self` needs a `&self` receiver",
                    ));
                    None
                }
            }
        } else if let Some(p) = params.iter_mut().find(|p| p.ident == *name) {
            let by_value = !matches!(p.capture, Capture::Keep | Capture::Copy);
            if by_value {
                p.capture = Capture::Borrow;
            }
            Some(RuntimeSource::Param {
                ident: p.ident.clone(),
            })
        } else {
            errs.push(syn::Error::new(
                name.span(),
                format!(
                    "`runtime = {name}` names no parameter of this function (its parameters: \
                     {}); it names the parameter that gives the runtime, whose type implements \
                     `HasRuntime`",
                    params
                        .iter()
                        .map(|p| format!("`{}`", ident_text(&p.pat, &p.ident)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
            None
        }
    } else if let Some((ident, by_value, _)) = runtime_params.first().cloned() {
        if let Some((second, _, span)) = runtime_params.get(1) {
            errs.push(syn::Error::new(
                *span,
                format!(
                    "two runtime parameters, `{ident}` and `{second}`: choose the one this op runs \
                     on with `runtime = {ident}`"
                ),
            ));
        }
        if by_value {
            for p in params.iter_mut().filter(|p| p.ident == ident) {
                p.capture = Capture::Borrow;
            }
        }
        Some(RuntimeSource::Param { ident })
    } else if let Some(token) = receiver {
        Some(RuntimeSource::Receiver(token))
    } else if rejected_receiver {
        None
    } else {
        errs.push(syn::Error::new(
            sig.ident.span(),
            format!(
                "#[db_op] cannot find the runtime for `{}`: take `&self` (and implement \
                 `HasRuntime` for the type), add a parameter `rt: &Runtime`, or name the \
                 parameter that gives it with `runtime = param`",
                sig.ident
            ),
        ));
        None
    };

    if !errs.is_empty() {
        return fail(errors, errs);
    }
    let (Some(ret), Some(runtime)) = (ret, runtime) else {
        return fail(errors, errs);
    };

    let nested = args
        .nested
        .as_ref()
        .and_then(|name| nested_signature(name, written, conn_index, &conn, form, errors));

    // The public signature: without the connection, nor lifetimes only it used.
    sig.inputs = sig
        .inputs
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != conn_index)
        .map(|(_, arg)| arg)
        .collect();
    remove_unused_lifetimes(&mut sig, &removed_lifetimes);

    Some(Op {
        args: args.clone(),
        attrs,
        vis,
        sig,
        form,
        conn,
        runtime,
        params,
        ret,
        stmts,
        nested,
    })
}

/// The signature of the nested form (`nested = name`): the function as written, renamed, with
/// its connection parameter named for the generated code. `None`, with an error, where there
/// can be none.
fn nested_signature(
    name: &Ident,
    mut sig: Signature,
    conn_index: usize,
    conn: &ConnParam,
    form: Form,
    errors: &mut Errors,
) -> Option<Signature> {
    if form == Form::AsyncTrait {
        errors.at(
            name.span(),
            "`nested` generates a second function next to this one, and a trait impl holds only \
             the trait's methods: declare the nested form in an inherent impl or as a free \
             function that calls a shared helper",
        );
        return None;
    }
    if conn.is_tx_type {
        errors.at(
            name.span(),
            "`nested` runs the body on the caller's connection, already inside the caller's \
             transaction, and that is not a `Tx`: take the connection inside the transaction, \
             `conn: &mut PgConnection` (queries take `&mut *conn`)",
        );
        return None;
    }
    sig.ident = name.clone();
    if let Some(FnArg::Typed(arg)) = sig.inputs.iter_mut().nth(conn_index) {
        *arg.pat = Pat::Ident(PatIdent {
            attrs: Vec::new(),
            by_ref: None,
            mutability: None,
            ident: Ident::new("__sqlx_resilience_conn", Span::mixed_site()),
            subpat: None,
        });
    }
    Some(sig)
}

fn fail(errors: &mut Errors, errs: Vec<syn::Error>) -> Option<Op> {
    for e in errs {
        errors.push(e);
    }
    None
}

fn ident_text(pat: &Pat, ident: &Ident) -> String {
    match pat {
        Pat::Ident(p) => p.ident.to_string(),
        _ => ident.to_string(),
    }
}

fn plain_ident(pat: &Pat) -> Option<&Ident> {
    match pat {
        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => Some(&p.ident),
        _ => None,
    }
}

/// Looks through invisible groups and parentheses.
fn strip(ty: &Type) -> &Type {
    match ty {
        Type::Group(g) => strip(&g.elem),
        Type::Paren(p) => strip(&p.elem),
        other => other,
    }
}

fn last_segment(ty: &Type) -> Option<&PathSegment> {
    match strip(ty) {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        _ => None,
    }
}

/// `Result<T, E>`, or an alias whose name ends in `Result` (`DbResult<T>`, `anyhow::Result<T>`).
fn is_result(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|s| s.ident.to_string().ends_with("Result"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ConnClass {
    Connection,
    Transaction,
}

enum TypeClass {
    Connection(ConnClass),
    /// sqlx's `Transaction` / `PgTransaction`, which an op does not take.
    SqlxTransaction,
    ConnectionNotBorrowed(String),
    PoolLike,
    Runtime {
        by_value: bool,
    },
    Other,
}

fn conn_class(ty: &Type) -> Option<ConnClass> {
    let name = last_segment(ty)?.ident.to_string();
    match name.as_str() {
        "PgConnection" => Some(ConnClass::Connection),
        "Tx" => Some(ConnClass::Transaction),
        _ => None,
    }
}

fn classify_type(ty: &Type) -> TypeClass {
    match strip(ty) {
        Type::Reference(r) => {
            if last_segment(&r.elem).is_some_and(|s| {
                matches!(
                    s.ident.to_string().as_str(),
                    "Transaction" | "PgTransaction"
                )
            }) {
                return TypeClass::SqlxTransaction;
            }
            if let Some(class) = conn_class(&r.elem) {
                return if r.mutability.is_some() {
                    TypeClass::Connection(class)
                } else {
                    TypeClass::ConnectionNotBorrowed(
                        r.elem.to_token_stream().to_string().replace(' ', ""),
                    )
                };
            }
            if is_pool_like(&r.elem) {
                return TypeClass::PoolLike;
            }
            if last_segment(&r.elem).is_some_and(is_runtime_segment) {
                return TypeClass::Runtime { by_value: false };
            }
            TypeClass::Other
        }
        other => {
            if conn_class(other).is_some() {
                return TypeClass::ConnectionNotBorrowed(
                    other.to_token_stream().to_string().replace(' ', ""),
                );
            }
            if is_pool_like(other) {
                return TypeClass::PoolLike;
            }
            if last_segment(other).is_some_and(is_runtime_segment) {
                return TypeClass::Runtime { by_value: true };
            }
            TypeClass::Other
        }
    }
}

/// The error type of `Result<T, sqlx::Error>` or `sqlx::Result<T>`, when the op returns one:
/// it cannot carry the runtime's failures (rustc would only say that `DbError` is not a
/// `sqlx::error::DatabaseError`).
fn sqlx_error_in(ret: &Type) -> Option<&dyn quote::ToTokens> {
    let Type::Path(path) = ret else { return None };
    let segments: Vec<&PathSegment> = path.path.segments.iter().collect();
    let last = segments.last()?;
    let from_sqlx = |segs: &[&PathSegment]| segs.len() >= 2 && segs[0].ident == "sqlx";
    if last.ident == "Result" && from_sqlx(&segments) {
        // `sqlx::Result<T>`: its error is sqlx's.
        return Some(*last);
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let Some(syn::GenericArgument::Type(Type::Path(error))) = args.args.iter().nth(1) else {
        return None;
    };
    let error_segments: Vec<&PathSegment> = error.path.segments.iter().collect();
    (error_segments.len() == 2
        && error_segments[0].ident == "sqlx"
        && error_segments[1].ident == "Error")
        .then_some(error as &dyn quote::ToTokens)
}

fn is_runtime_segment(segment: &PathSegment) -> bool {
    segment.ident == "Runtime" && segment.arguments.is_none()
}

fn is_pool_like(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|s| {
        matches!(
            s.ident.to_string().as_str(),
            "PgPool" | "Pool" | "PoolConnection" | "PgPoolConnection"
        )
    })
}

/// Recognises a method `#[async_trait]` already expanded: a plain `fn` with the lifetime
/// `'async_trait`, returning `Pin<Box<dyn Future<Output = R> + ..>>`, whose body is
/// `Box::pin(async move { .. })`. Returns `R` and the tokens inside the async block.
fn detect_async_trait(sig: &Signature, body: &TokenStream) -> Option<(Type, TokenStream)> {
    if sig.asyncness.is_some()
        || !sig
            .generics
            .params
            .iter()
            .any(|p| matches!(p, GenericParam::Lifetime(l) if l.lifetime.ident == "async_trait"))
    {
        return None;
    }
    let ReturnType::Type(_, ty) = &sig.output else {
        return None;
    };
    let output = future_output(ty)?;
    // `Box :: pin ( async move { .. } )`, compared token by token.
    let trees: Vec<TokenTree> = body.clone().into_iter().collect();
    let (call, path) = trees.split_last()?;
    let path: Vec<String> = path.iter().map(ToString::to_string).collect();
    if !path.ends_with(&["Box".into(), ":".into(), ":".into(), "pin".into()]) {
        return None;
    }
    let TokenTree::Group(args) = call else {
        return None;
    };
    let inner: Vec<TokenTree> = args.stream().into_iter().collect();
    match inner.as_slice() {
        [
            TokenTree::Ident(a),
            TokenTree::Ident(m),
            TokenTree::Group(block),
        ] if a == "async" && m == "move" && block.delimiter() == Delimiter::Brace => {
            Some((output, block.stream()))
        }
        _ => None,
    }
}

/// `R` in `Pin<Box<dyn Future<Output = R> + Send + 'a>>`.
fn future_output(ty: &Type) -> Option<Type> {
    let pin = last_segment(ty)?;
    let boxed = single_type_arg(pin)?;
    let dyn_future = single_type_arg(last_segment(boxed)?)?;
    let Type::TraitObject(object) = strip(dyn_future) else {
        return None;
    };
    object.bounds.iter().find_map(|bound| {
        let TypeParamBound::Trait(t) = bound else {
            return None;
        };
        let future = t.path.segments.last()?;
        if future.ident != "Future" {
            return None;
        }
        let PathArguments::AngleBracketed(args) = &future.arguments else {
            return None;
        };
        args.args.iter().find_map(|a| match a {
            GenericArgument::AssocType(assoc) if assoc.ident == "Output" => Some(assoc.ty.clone()),
            _ => None,
        })
    })
}

fn single_type_arg(segment: &PathSegment) -> Option<&Type> {
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    args.args.iter().find_map(|a| match a {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

/// Every lifetime named in some tokens.
fn lifetimes_in(tokens: TokenStream) -> Vec<Ident> {
    let mut found = Vec::new();
    let mut after_quote = false;
    for tree in tokens {
        match tree {
            TokenTree::Punct(p) if p.as_char() == '\'' => {
                after_quote = true;
                continue;
            }
            TokenTree::Ident(i) if after_quote && i != "_" && i != "static" => {
                found.push(i);
            }
            TokenTree::Group(g) => found.extend(lifetimes_in(g.stream())),
            _ => {}
        }
        after_quote = false;
    }
    found
}

/// Whether a type is `impl Trait` or names one of `params` (somewhere inside).
fn names_any(tokens: TokenStream, params: &[Ident]) -> bool {
    tokens.into_iter().any(|tree| match tree {
        TokenTree::Ident(i) => i == "impl" || params.contains(&i),
        TokenTree::Group(g) => names_any(g.stream(), params),
        _ => false,
    })
}

fn mentions(tokens: TokenStream, lifetime: &Ident) -> bool {
    lifetimes_in(tokens).iter().any(|l| l == lifetime)
}

/// Removes generic lifetimes (and their `'a: 'b` predicates) that only the removed connection
/// parameter used, so a trait impl's method keeps the trait's generics.
fn remove_unused_lifetimes(sig: &mut Signature, candidates: &[Ident]) {
    for lifetime in candidates {
        let used_by_inputs = sig
            .inputs
            .iter()
            .any(|arg| mentions(arg.to_token_stream(), lifetime));
        let used_by_output = mentions(sig.output.to_token_stream(), lifetime);
        let is_self = |l: &Lifetime| l.ident == *lifetime;
        let used_by_generics = sig.generics.params.iter().any(|p| match p {
            GenericParam::Lifetime(l) if is_self(&l.lifetime) => false,
            other => mentions(other.to_token_stream(), lifetime),
        });
        let used_by_where = sig.generics.where_clause.as_ref().is_some_and(|w| {
            w.predicates.iter().any(|p| match p {
                WherePredicate::Lifetime(l) if is_self(&l.lifetime) => false,
                other => mentions(other.to_token_stream(), lifetime),
            })
        });
        if used_by_inputs || used_by_output || used_by_generics || used_by_where {
            continue;
        }
        sig.generics.params = std::mem::take(&mut sig.generics.params)
            .into_iter()
            .filter(|p| !matches!(p, GenericParam::Lifetime(l) if is_self(&l.lifetime)))
            .collect();
        if let Some(w) = &mut sig.generics.where_clause {
            w.predicates = std::mem::take(&mut w.predicates)
                .into_iter()
                .filter(|p| !matches!(p, WherePredicate::Lifetime(l) if is_self(&l.lifetime)))
                .collect();
        }
    }
    if sig.generics.params.is_empty() {
        sig.generics.lt_token = None;
        sig.generics.gt_token = None;
    }
    if sig
        .generics
        .where_clause
        .as_ref()
        .is_some_and(|w| w.predicates.is_empty())
    {
        sig.generics.where_clause = None;
    }
}

/// Replaces every lifetime with `'_` (and drops reference lifetimes): the connection's type as
/// a `let` annotation inside the attempt, where the runtime's lifetimes are inferred.
struct ElideLifetimes;

impl VisitMut for ElideLifetimes {
    fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
        r.lifetime = None;
        syn::visit_mut::visit_type_reference_mut(self, r);
    }

    fn visit_lifetime_mut(&mut self, l: &mut Lifetime) {
        *l = Lifetime::new("'_", l.span());
    }
}
