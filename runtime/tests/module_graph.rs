//! The module graph of the runtime crate: which top-level module uses which, read from the
//! `crate::`, `super::` and `self::` paths in `src/**/*.rs`.
//!
//! Fails on a cycle between modules (beyond the core modules listed in
//! [`KNOWN_CYCLE_MODULES`], a list that may only shrink) and on any core module using an observability module. The modules of
//! `src/observability/` count one by one (`observability::telemetry`, ...), every other
//! top-level module as a whole; `src/lib.rs` assembles them and is no node. Items the crate
//! root re-exports (`crate::Runtime`, `crate::telemetry`) count as the module they come from.
//!
//! The same rule holds file by file (in Rust every file is a module), in every crate of the
//! workspace with a `src/` (the facade, `macros`, `runtime`, `schema`, `testkit`): no file
//! may use one that uses it back. `crate::`, `super::` and `self::` paths (groups and renames
//! included) count as the file that defines the item they name, followed through the `use`
//! items that hand it on; a `pub use` whose name its file does not use itself is a module's
//! face, not a use. Paths inside `quote!` are the generated code's, not the macro crate's.
//! Circles that remain are listed in [`KNOWN_FILE_CIRCLES`], a list that may only shrink; a
//! failure prints each new circle with the file and line of every use that ties it.
//!
//! Written here rather than run through a tool such as `cargo-modules` because it runs in
//! `cargo test` without installing anything, and checks the rules this workspace has.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The core modules that take part in cycles today: none. (`error` left once the types its
/// enum names moved into leaves: `error::WaitEnd`, `host_target`, `redact`; the policies,
/// `secret`, `hosts` and `recovery` once the fields every configuration struct is made of
/// moved from `config` to the leaf `settings`; `config` and `faults` once `FaultsConfig` moved
/// to `faults`, `OpsCheck` to `config`, the builder's resolve tests to `runtime`, the pools
/// named `location::Location` and `WhenFull` themselves, and replica routing took a narrow
/// `replica::Call` instead of the runner's resolved op; `replica` and `pool` once the
/// replicas, which a pool owns and which are pools, became `pool::replica`; `op`, `runtime`
/// and `background` once the runner reached the runtime only through the `op::Host` trait the
/// runtime implements.) The test fails when a module joins a cycle; a module listed here
/// would have to take part in one, so the list stays empty.
const KNOWN_CYCLE_MODULES: &[&str] = &[];

/// One use of a module by another, where it was seen first.
#[derive(Debug, Clone)]
struct Use {
    file: String,
    line: usize,
}

type Graph = BTreeMap<String, BTreeMap<String, Use>>;

fn is_observability(node: &str) -> bool {
    node == "observability" || node.starts_with("observability::")
}

/// The node a module path belongs to.
fn node_of(path: &[String]) -> Option<String> {
    match path {
        [] => None,
        [first, second, ..] if first == "observability" => Some(format!("{first}::{second}")),
        [first, ..] => Some(first.clone()),
    }
}

/// The module path of a file: `pool/mod.rs` is `pool`, `pool/stats.rs` is `pool::stats`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The text without comments, string literals and character literals (kept as blanks, so
/// line numbers stay right).
fn code_only(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let keep_newlines = |s: &[char], out: &mut String| {
        for c in s {
            out.push(if *c == '\n' { '\n' } else { ' ' });
        }
    };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            let end = b[i..]
                .iter()
                .position(|c| *c == '\n')
                .map_or(b.len(), |p| i + p);
            keep_newlines(&b[i..end], &mut out);
            i = end;
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            let start = i;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            keep_newlines(&b[start..i.min(b.len())], &mut out);
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&b, i) {
            // A raw string: r"...", r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|h| b.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            keep_newlines(&b[i..j.min(b.len())], &mut out);
            i = j;
        } else if c == '"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != '"' {
                j += if b[j] == '\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(b.len());
            keep_newlines(&b[i..end], &mut out);
            i = end;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}'), or a lifetime ('a), left as it is.
            let end = if next == Some('\\') {
                b[i + 2..]
                    .iter()
                    .position(|c| *c == '\'')
                    .map(|p| i + 2 + p + 1)
            } else if b.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            match end {
                Some(end) => {
                    keep_newlines(&b[i..end], &mut out);
                    i = end;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Sep,
    Open,
    Close,
    Comma,
    Other(char),
}

fn tokens(code: &str) -> Vec<(Tok, usize)> {
    let b: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(b[start..i].iter().collect()), line));
        } else if c == ':' && b.get(i + 1) == Some(&':') {
            out.push((Tok::Sep, line));
            i += 2;
        } else {
            out.push((
                match c {
                    '{' => Tok::Open,
                    '}' => Tok::Close,
                    ',' => Tok::Comma,
                    c => Tok::Other(c),
                },
                line,
            ));
            i += 1;
        }
    }
    out
}

/// Every path starting at `toks[at]` (a path such as `crate::a::{b, c::d}` gives two), as
/// segments; and where the path ends.
fn paths_at(toks: &[(Tok, usize)], at: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    let mut i = at;
    loop {
        match toks.get(i) {
            Some((Tok::Ident(s), _)) => {
                prefix.push(s.clone());
                i += 1;
            }
            Some((Tok::Open, _)) => {
                // A group: each comma-separated member is a path of its own.
                let mut out = Vec::new();
                i += 1;
                loop {
                    match toks.get(i) {
                        Some((Tok::Close, _)) | None => return (out, i + 1),
                        Some((Tok::Comma, _)) => i += 1,
                        Some((Tok::Ident(_), _)) | Some((Tok::Open, _)) => {
                            let (inner, end) = paths_at(toks, i);
                            for p in inner {
                                let mut full = prefix.clone();
                                full.extend(p);
                                out.push(full);
                            }
                            // Skip `as name` and anything else up to the next member.
                            i = end;
                            while let Some((t, _)) = toks.get(i) {
                                if matches!(t, Tok::Comma | Tok::Close) {
                                    break;
                                }
                                i += 1;
                            }
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            _ => return (vec![prefix], i),
        }
        if toks.get(i).map(|t| &t.0) == Some(&Tok::Sep) {
            i += 1;
        } else {
            return (vec![prefix], i);
        }
    }
}

/// The crate's source files: path relative to `src`, and text.
type Sources = Vec<(PathBuf, String)>;

/// The module graph of `sources`.
fn graph(sources: &Sources) -> Graph {
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|(p, _)| module_of(p)).collect();
    // What the crate root re-exports: `pub use self::observability::telemetry` makes
    // `crate::telemetry` the observability module, `pub use self::runtime::Runtime` makes
    // `crate::Runtime` the runtime module.
    let mut root_alias: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (rel, text) in sources {
        if !module_of(rel).is_empty() {
            continue;
        }
        let toks = tokens(&code_only(text));
        for (i, (t, _)) in toks.iter().enumerate() {
            if *t == Tok::Ident("self".into()) && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Sep) {
                for path in paths_at(&toks, i + 2).0 {
                    if let Some(last) = path.last()
                        && modules.contains(&path[..1])
                    {
                        root_alias.insert(last.clone(), path.clone());
                    }
                }
            }
        }
    }
    let mut g = Graph::new();
    for (rel, text) in sources {
        let file_module = module_of(rel);
        let Some(from) = node_of(&file_module) else {
            continue;
        };
        let toks = tokens(&code_only(text));
        // Inline modules (`mod tests { .. }`) shift what `self` and `super` mean.
        let mut inline: Vec<(String, usize)> = Vec::new();
        let mut depth = 0usize;
        let mut i = 0;
        while i < toks.len() {
            let (t, line) = &toks[i];
            match t {
                Tok::Open => depth += 1,
                Tok::Close => {
                    depth = depth.saturating_sub(1);
                    if inline.last().is_some_and(|(_, d)| *d == depth) {
                        inline.pop();
                    }
                }
                Tok::Ident(kw) if kw == "mod" => {
                    if let (Some((Tok::Ident(name), _)), Some((Tok::Open, _))) =
                        (toks.get(i + 1), toks.get(i + 2))
                    {
                        inline.push((name.clone(), depth));
                    }
                }
                _ => {}
            }
            let start = match t {
                Tok::Ident(s) if s == "crate" || s == "super" || s == "self" => s.clone(),
                _ => {
                    i += 1;
                    continue;
                }
            };
            if toks.get(i + 1).map(|t| &t.0) != Some(&Tok::Sep) {
                i += 1;
                continue;
            }
            let mut here = file_module.clone();
            here.extend(inline.iter().map(|(n, _)| n.clone()));
            let (paths, end) = paths_at(&toks, i);
            for path in paths {
                let mut segs: &[String] = &path;
                let mut base: Vec<String> = match start.as_str() {
                    "crate" => {
                        segs = &segs[1..];
                        Vec::new()
                    }
                    _ => here.clone(),
                };
                while let Some(first) = segs.first() {
                    match first.as_str() {
                        "self" => segs = &segs[1..],
                        "super" => {
                            base.pop();
                            segs = &segs[1..];
                        }
                        _ => break,
                    }
                }
                let mut target = base;
                target.extend(segs.iter().cloned());
                if let Some(alias) = target.first().and_then(|f| root_alias.get(f)) {
                    let mut full = alias.clone();
                    full.extend(target[1..].iter().cloned());
                    target = full;
                }
                if !modules.contains(&target[..target.len().min(1)]) {
                    continue; // a macro's `$crate`, an item of the root, or a dependency.
                }
                let Some(to) = node_of(&target) else { continue };
                if to != from {
                    g.entry(from.clone()).or_default().entry(to).or_insert(Use {
                        file: format!("runtime/src/{}", rel.display()),
                        line: *line,
                    });
                }
            }
            // Past the path, whose inner `self` and `super` are not paths of their own.
            i = end.max(i + 1);
        }
    }
    g
}

/// The strongly connected components with more than one node (Tarjan's algorithm).
fn cycles(g: &Graph) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(next) = s.g.get(v) {
            for w in next.keys() {
                if !s.index.contains_key(w.as_str()) {
                    visit(s, w);
                    let lw = s.low[w.as_str()];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if s.on_stack.contains(w.as_str()) {
                    let iw = s.index[w.as_str()];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                scc.insert(w.to_owned());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                s.out.push(scc);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    let nodes: Vec<&str> = g.keys().map(String::as_str).collect();
    for v in nodes {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// What is wrong with `g`: core modules using observability modules, and cycles through
/// modules not `known` to be in one.
fn problems(g: &Graph, known: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for (from, tos) in g {
        for (to, u) in tos {
            if !is_observability(from) && is_observability(to) {
                out.push(format!(
                    "core module `{from}` uses observability module `{to}` ({}:{}); report \
                     through `crate::observer` instead",
                    u.file, u.line
                ));
            }
        }
    }
    let mut in_cycles = BTreeSet::new();
    for scc in cycles(g) {
        in_cycles.extend(scc.iter().cloned());
        let members = scc.iter().cloned().collect::<Vec<_>>().join(", ");
        for from in &scc {
            for (to, u) in &g[from] {
                let new = |m: &String| !known.contains(&m.as_str());
                if scc.contains(to) && (new(from) || new(to)) {
                    out.push(format!(
                        "`{from} -> {to}` ({}:{}) closes a cycle between {members}; no module \
                         may use one that uses it back",
                        u.file, u.line
                    ));
                }
            }
        }
    }
    for m in known {
        if !in_cycles.contains(*m) {
            out.push(format!(
                "`{m}` is no longer part of a cycle: remove it from KNOWN_CYCLE_MODULES"
            ));
        }
    }
    out
}

fn read_sources(dir: &Path, base: &Path, out: &mut Sources) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            read_sources(&p, base, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            out.push((p.strip_prefix(base).unwrap().to_path_buf(), text));
        }
    }
}

#[test]
fn core_does_not_use_observability_and_modules_form_no_new_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = Sources::new();
    read_sources(&src, &src, &mut sources);
    let g = graph(&sources);
    assert!(
        g.get("op").is_some_and(|t| t.contains_key("pool")),
        "the reader finds the runner's use of the pools: {g:#?}"
    );
    let problems = problems(&g, KNOWN_CYCLE_MODULES);
    assert!(
        problems.is_empty(),
        "module graph of runtime/src:\n{}",
        problems.join("\n")
    );
}

fn fake(files: &[(&str, &str)]) -> Sources {
    files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), (*t).to_owned()))
        .collect()
}

#[test]
fn a_core_module_using_an_observability_module_fails() {
    let g = graph(&fake(&[
        (
            "lib.rs",
            "mod op; pub mod observability; pub use self::observability::{telemetry};",
        ),
        ("op/mod.rs", "mod run;"),
        (
            "op/run.rs",
            "// crate::telemetry in a comment\nfn f() {}\nuse crate::telemetry::Telemetry;",
        ),
        ("observability/mod.rs", "pub mod telemetry;"),
        ("observability/telemetry/mod.rs", "use crate::op::Thing;"),
    ]));
    let p = problems(&g, &[]);
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(
        p[0].contains(
            "core module `op` uses observability module `observability::telemetry` \
             (runtime/src/op/run.rs:3)"
        ),
        "{p:?}"
    );
    assert!(
        p.iter().any(|p| p.contains(
            "`op -> observability::telemetry` (runtime/src/op/run.rs:3) closes a cycle between \
             observability::telemetry, op"
        )),
        "{p:?}"
    );
}

#[test]
fn a_cycle_through_super_and_groups_fails_and_known_modules_must_still_be_in_one() {
    let g = graph(&fake(&[
        ("lib.rs", "mod a; mod b; mod c;"),
        (
            "a/mod.rs",
            "mod x; #[cfg(test)] mod tests { use super::x::Y; }",
        ),
        (
            "a/x.rs",
            "use super::super::{b::B, c};\nlet s = \"crate::c::Z\";",
        ),
        ("b.rs", "fn f() -> crate::a::x::Y { todo!() }"),
        ("c.rs", "const C: char = '\"'; fn g() {}"),
    ]));
    assert_eq!(
        g["a"].keys().collect::<Vec<_>>(),
        ["b", "c"],
        "the string is no use, the group is"
    );
    let p = problems(&g, &["a", "c"]);
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(
        p[0].contains("`a -> b` (runtime/src/a/x.rs:1) closes a cycle between a, b"),
        "{p:?}"
    );
    assert!(
        p[1].contains("`b -> a` (runtime/src/b.rs:1) closes a cycle between a, b"),
        "{p:?}"
    );
    assert!(p[2].contains("`c` is no longer part of a cycle"), "{p:?}");
}

// ---- Files: in Rust every file is a module, and no file may use one that uses it back ----

/// What one file defines, imports and names.
#[derive(Debug, Default)]
struct FileFacts {
    /// The items it defines at its top level (functions, types, constants, inline modules,
    /// macros).
    defines: BTreeSet<String>,
    /// Its `use` items, by the module they are in (the file's own, or an inline module's):
    /// the local name and the absolute path it stands for.
    aliases: BTreeMap<Vec<String>, BTreeMap<String, Vec<String>>>,
    /// Its glob imports (`use self::x::*`), by the module they are in.
    globs: BTreeMap<Vec<String>, Vec<Vec<String>>>,
    /// Every path into the crate it names: absolute, with its line, and whether it is only
    /// handed on (a `pub use` whose name the file does not use itself: a module's face).
    paths: Vec<(Vec<String>, usize, bool)>,
    /// The `#[macro_export]` macros it defines, which live at the crate root.
    exported_macros: BTreeSet<String>,
}

/// One crate's files, as modules: the module path of each file, and what each holds.
#[derive(Debug, Default)]
struct CrateFiles {
    /// Module path -> the file's name as the failure message shows it.
    files: BTreeMap<Vec<String>, String>,
    facts: BTreeMap<Vec<String>, FileFacts>,
    /// `#[macro_export]` macro -> the module path of the file defining it.
    macros: BTreeMap<String, Vec<String>>,
}

fn ident(t: Option<&(Tok, usize)>) -> Option<&str> {
    match t {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

/// The index just past the bracketed group that starts at or after `at` (`quote!(..)`,
/// `quote! {..}`).
fn skip_group(toks: &[(Tok, usize)], at: usize) -> usize {
    let opens = |t: &Tok| matches!(t, Tok::Open | Tok::Other('(' | '['));
    let closes = |t: &Tok| matches!(t, Tok::Close | Tok::Other(')' | ']'));
    let mut i = at;
    while i < toks.len() && !opens(&toks[i].0) {
        i += 1;
    }
    let mut depth = 0usize;
    while i < toks.len() {
        if opens(&toks[i].0) {
            depth += 1;
        } else if closes(&toks[i].0) {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
        i += 1;
    }
    i
}

/// A leaf of a use tree: its path (relative, as written) and the name it binds (`None` for a
/// glob).
type UseLeaf = (Vec<String>, Option<String>);

/// The leaves of the use tree at `toks[at]`, and the index of the `;` that ends it.
fn use_tree(toks: &[(Tok, usize)], at: usize) -> (Vec<UseLeaf>, usize) {
    fn tree(
        toks: &[(Tok, usize)],
        mut i: usize,
        prefix: Vec<String>,
        out: &mut Vec<UseLeaf>,
    ) -> usize {
        let mut path = prefix;
        loop {
            match toks.get(i).map(|t| &t.0) {
                Some(Tok::Ident(s)) if s == "as" => {
                    let name = ident(toks.get(i + 1)).map(str::to_owned);
                    let path = strip_self(path);
                    out.push((path, name));
                    return i + 2;
                }
                Some(Tok::Ident(s)) => {
                    path.push(s.clone());
                    i += 1;
                }
                Some(Tok::Sep) => i += 1,
                Some(Tok::Other('*')) => {
                    out.push((path, None));
                    return i + 1;
                }
                Some(Tok::Open) => {
                    i += 1;
                    loop {
                        match toks.get(i).map(|t| &t.0) {
                            Some(Tok::Close) => return i + 1,
                            None | Some(Tok::Other(';')) => return i,
                            Some(Tok::Comma) => i += 1,
                            _ => i = tree(toks, i, path.clone(), out),
                        }
                    }
                }
                _ => {
                    let path = strip_self(path);
                    let name = path.last().cloned();
                    if name.is_some() {
                        out.push((path, name));
                    }
                    return i;
                }
            }
        }
    }
    /// `a::{self}` names `a`.
    fn strip_self(mut path: Vec<String>) -> Vec<String> {
        if path.len() > 1 && path.last().is_some_and(|s| s == "self") {
            path.pop();
        }
        path
    }
    let mut out = Vec::new();
    let mut i = tree(toks, at, Vec::new(), &mut out);
    while i < toks.len() && toks[i].0 != Tok::Other(';') {
        i += 1;
    }
    (out, i)
}

impl CrateFiles {
    fn read(sources: &Sources, label: &str) -> CrateFiles {
        let mut c = CrateFiles::default();
        for (rel, _) in sources {
            c.files
                .insert(module_of(rel), format!("{label}/{}", rel.display()));
        }
        for (rel, text) in sources {
            let module = module_of(rel);
            let facts = c.scan(&module, text);
            for m in &facts.exported_macros {
                c.macros.insert(m.clone(), module.clone());
            }
            c.facts.insert(module, facts);
        }
        c
    }

    /// The absolute module path of `path` as written in module `here`, or `None` for a path
    /// outside the crate.
    fn absolute(&self, here: &[String], path: &[String]) -> Option<Vec<String>> {
        let (first, rest) = path.split_first()?;
        let mut base: Vec<String> = match first.as_str() {
            "crate" => Vec::new(),
            "self" | "super" => here.to_vec(),
            _ => {
                // A child module named without `self::` (edition 2018 paths).
                let mut child = here.to_vec();
                child.push(first.clone());
                if !self.files.contains_key(&child) {
                    return None;
                }
                return Some([child.as_slice(), rest].concat());
            }
        };
        let mut segs = path;
        if first == "crate" {
            segs = rest;
        }
        while let Some(s) = segs.first() {
            match s.as_str() {
                "self" => segs = &segs[1..],
                "super" => {
                    base.pop()?;
                    segs = &segs[1..];
                }
                _ => break,
            }
        }
        base.extend(segs.iter().cloned());
        Some(base)
    }

    fn scan(&self, module: &[String], text: &str) -> FileFacts {
        let toks = tokens(&code_only(text));
        let mut facts = FileFacts::default();
        // Names used outside `use` items: a `pub use` whose name is among them is a use too.
        let mut used = BTreeSet::new();
        let mut uses = Vec::new();
        let mut inline: Vec<(String, usize)> = Vec::new();
        let mut depth = 0usize;
        let mut i = 0;
        while i < toks.len() {
            let (t, line) = &toks[i];
            let here: Vec<String> = module
                .iter()
                .cloned()
                .chain(inline.iter().map(|(n, _)| n.clone()))
                .collect();
            match t {
                Tok::Open => depth += 1,
                Tok::Close => {
                    depth = depth.saturating_sub(1);
                    if inline.last().is_some_and(|(_, d)| *d == depth) {
                        inline.pop();
                    }
                }
                _ => {}
            }
            let Tok::Ident(word) = t else {
                i += 1;
                continue;
            };
            let next = ident(toks.get(i + 1));
            let prev_is_sep = i > 0 && toks[i - 1].0 == Tok::Sep;
            match word.as_str() {
                "quote" | "quote_spanned"
                    if toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Other('!')) =>
                {
                    // Generated code: its paths are the user's crate's, not this one's.
                    i = skip_group(&toks, i + 2);
                    continue;
                }
                "mod" if next.is_some() => {
                    if depth == 0 {
                        facts.defines.insert(next.unwrap().to_owned());
                    }
                    if toks.get(i + 2).map(|t| &t.0) == Some(&Tok::Open) {
                        inline.push((next.unwrap().to_owned(), depth));
                    }
                }
                "fn" | "struct" | "enum" | "trait" | "type" | "const" | "static" | "union"
                    if depth == 0 && inline.is_empty() =>
                {
                    if let Some(name) = next {
                        facts.defines.insert(name.to_owned());
                    }
                }
                "macro_rules" => {
                    if let Some(name) = ident(toks.get(i + 2)) {
                        facts.defines.insert(name.to_owned());
                        let exported = toks[i.saturating_sub(6)..i]
                            .iter()
                            .any(|(t, _)| *t == Tok::Ident("macro_export".into()));
                        if exported {
                            facts.exported_macros.insert(name.to_owned());
                        }
                    }
                }
                "use" if !prev_is_sep => {
                    let public = match toks.get(i.wrapping_sub(1)).map(|t| &t.0) {
                        Some(Tok::Ident(p)) => p == "pub",
                        Some(Tok::Other(')')) => true, // pub(crate), pub(super)
                        _ => false,
                    };
                    let (leaves, end) = use_tree(&toks, i + 1);
                    for (path, name) in leaves {
                        let Some(abs) = self.absolute(&here, &path) else {
                            continue;
                        };
                        match name {
                            Some(name) => {
                                uses.push((abs.clone(), *line, public.then(|| name.clone())));
                                facts
                                    .aliases
                                    .entry(here.clone())
                                    .or_default()
                                    .insert(name, abs);
                            }
                            None => {
                                uses.push((abs.clone(), *line, None));
                                facts.globs.entry(here.clone()).or_default().push(abs);
                            }
                        }
                    }
                    i = end + 1;
                    continue;
                }
                _ => {}
            }
            used.insert(word.clone());
            let starts_path = !prev_is_sep && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Sep);
            if starts_path {
                let (paths, end) = paths_at(&toks, i);
                for path in paths {
                    if let Some(abs) = self.absolute(&here, &path) {
                        uses.push((abs, *line, None));
                    }
                }
                for (t, _) in &toks[i..end.min(toks.len())] {
                    if let Tok::Ident(s) = t {
                        used.insert(s.clone());
                    }
                }
                i = end.max(i + 1);
                continue;
            }
            i += 1;
        }
        for (abs, line, handed_on) in uses {
            let face = handed_on.is_some_and(|name| !used.contains(&name));
            facts.paths.push((abs, line, face));
        }
        facts
    }

    /// Whether module `m`'s file defines or imports `name`.
    fn knows(&self, m: &[String], name: &str) -> bool {
        self.facts.get(m).is_some_and(|f| {
            f.defines.contains(name) || f.aliases.get(m).is_some_and(|a| a.contains_key(name))
        })
    }

    /// The file (its module path) that defines what `path` (absolute) names: through the
    /// modules it walks, then through the `use` items that hand the name on.
    fn resolve(&self, path: &[String], hops: usize) -> Option<Vec<String>> {
        if hops > 16 {
            return None;
        }
        let mut cur: Vec<String> = Vec::new();
        for (k, seg) in path.iter().enumerate() {
            let mut next = cur.clone();
            next.push(seg.clone());
            if self.files.contains_key(&next) {
                cur = next;
                continue;
            }
            let rest = &path[k + 1..];
            let facts = self.facts.get(&cur)?;
            if facts.defines.contains(seg) {
                return Some(cur);
            }
            if let Some(target) = facts.aliases.get(&cur).and_then(|a| a.get(seg)) {
                let full = [target.as_slice(), rest].concat();
                return self.resolve(&full, hops + 1).or(Some(cur));
            }
            if cur.is_empty()
                && let Some(m) = self.macros.get(seg)
            {
                return Some(m.clone());
            }
            for g in facts.globs.get(&cur).into_iter().flatten() {
                if self.files.contains_key(g) && self.knows(g, seg) {
                    let full = [g.as_slice(), std::slice::from_ref(seg), rest].concat();
                    return self.resolve(&full, hops + 1);
                }
            }
            return Some(cur);
        }
        Some(cur)
    }

    /// File -> the files it uses, each where it was first seen.
    fn graph(&self) -> Graph {
        let mut g = Graph::new();
        for (module, facts) in &self.facts {
            let from = &self.files[module];
            for (abs, line, face) in &facts.paths {
                if *face {
                    continue;
                }
                let Some(to) = self.resolve(abs, 0) else {
                    continue;
                };
                let to = &self.files[&to];
                if to != from {
                    g.entry(from.clone())
                        .or_default()
                        .entry(to.clone())
                        .or_insert(Use {
                            file: from.clone(),
                            line: *line,
                        });
                }
            }
        }
        g
    }
}

/// The folders whose files still use each other in a circle, one entry per circle: every
/// file of it lies in the folder. The list may only shrink, and is empty.
const KNOWN_FILE_CIRCLES: &[&str] = &[];

/// Each cycle between files of `g` that no folder of `known` holds whole: one loop through it
/// spelled out, then every use that ties its files together, with file and line. And each
/// folder of `known` that holds no circle any more.
fn file_cycles(g: &Graph, known: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for scc in cycles(g) {
        if let Some(folder) = known
            .iter()
            .find(|f| scc.iter().all(|file| file.starts_with(**f)))
        {
            seen.insert(*folder);
            continue;
        }
        // The shortest loop from the first file back to itself, inside the cycle.
        let start = scc.iter().next().unwrap().clone();
        let mut came_from: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start.clone()]);
        'search: while let Some(v) = queue.pop_front() {
            for w in g.get(&v).into_iter().flat_map(|t| t.keys()) {
                if !scc.contains(w) || came_from.contains_key(w) {
                    continue;
                }
                came_from.insert(w.clone(), v.clone());
                if *w == start {
                    break 'search;
                }
                queue.push_back(w.clone());
            }
        }
        let mut ring = vec![start.clone()];
        let mut at = came_from[&start].clone();
        while at != start {
            ring.push(at.clone());
            at = came_from[&at].clone();
        }
        ring.push(start);
        ring.reverse();
        let mut text = format!("circle: {}", ring.join(" -> "));
        for from in &scc {
            for (to, u) in &g[from] {
                if scc.contains(to) {
                    text.push_str(&format!("\n    {from} -> {to} ({}:{})", u.file, u.line));
                }
            }
        }
        out.push(text);
    }
    for folder in known {
        let in_graph = g.keys().any(|f| f.starts_with(folder));
        if in_graph && !seen.contains(folder) {
            out.push(format!(
                "no circle is left in {folder}: remove it from KNOWN_FILE_CIRCLES"
            ));
        }
    }
    out
}

/// The source directories of the workspace's crates: the facade's `src/`, and each member's.
fn workspace_crates() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("[workspace]"),
        "{} is the workspace root",
        root.display()
    );
    let mut out = vec![(String::from("src"), root.join("src"))];
    let mut members: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").is_file() && p.join("src").is_dir())
        .collect();
    members.sort();
    for m in members {
        let name = m.file_name().unwrap().to_string_lossy().into_owned();
        out.push((format!("{name}/src"), m.join("src")));
    }
    out
}

#[test]
fn no_file_uses_one_that_uses_it_back_in_any_crate() {
    let crates = workspace_crates();
    let names: Vec<&str> = crates.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "src",
        "macros/src",
        "runtime/src",
        "schema/src",
        "testkit/src",
    ] {
        assert!(names.contains(&expected), "{expected} is read: {names:?}");
    }
    let mut found = Vec::new();
    for (label, dir) in &crates {
        let mut sources = Sources::new();
        read_sources(dir, dir, &mut sources);
        let files = CrateFiles::read(&sources, label);
        let g = files.graph();
        if label == "runtime/src" {
            assert!(
                g.get("runtime/src/op/run.rs")
                    .is_some_and(|t| t.contains_key("runtime/src/op/attempt.rs")),
                "the reader finds the runner's use of its attempts: {g:#?}"
            );
        }
        found.extend(file_cycles(&g, KNOWN_FILE_CIRCLES));
    }
    assert!(
        found.is_empty(),
        "files that use each other (no module may use one that uses it back; move what both \
         need into a file below them):\n{}",
        found.join("\n")
    );
}

#[test]
fn a_cycle_between_files_is_found_through_re_exports_and_faces_are_not_uses() {
    let files = CrateFiles::read(
        &fake(&[
            ("lib.rs", "mod a; mod b; pub use self::a::A;"),
            // A face: hands `X` and `Y` on, uses neither.
            (
                "a/mod.rs",
                "mod x; mod y;\npub use self::x::X;\npub(crate) use y::Y;\npub struct A;",
            ),
            ("a/x.rs", "pub struct X;\nfn f(_: super::Y) {}"),
            (
                "a/y.rs",
                "use super::{X as Ex, super::b};\npub struct Y;\nfn g() { quote!(crate::a::x::X); }",
            ),
            ("b.rs", "fn h() -> crate::A { todo!() }"),
        ]),
        "k/src",
    );
    let g = files.graph();
    assert_eq!(
        g["k/src/a/x.rs"].keys().collect::<Vec<_>>(),
        ["k/src/a/y.rs"],
        "`super::Y` is y.rs's, through the face"
    );
    assert_eq!(
        g["k/src/a/y.rs"].keys().collect::<Vec<_>>(),
        ["k/src/a/x.rs", "k/src/b.rs"],
        "the group and the rename are uses; the generated path is not"
    );
    assert_eq!(
        g["k/src/b.rs"].keys().collect::<Vec<_>>(),
        ["k/src/a/mod.rs"],
        "`crate::A` is a/mod.rs's"
    );
    assert!(
        !g.contains_key("k/src/a/mod.rs"),
        "a face uses nothing: {g:?}"
    );
    assert_eq!(
        file_cycles(&g, &["k/src/a/"]),
        Vec::<String>::new(),
        "a known folder holds the circle"
    );
    assert_eq!(
        file_cycles(&g, &["k/src/a/", "k/src/"]),
        ["no circle is left in k/src/: remove it from KNOWN_FILE_CIRCLES"],
        "a known folder must still hold a circle"
    );
    let found = file_cycles(&g, &[]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("circle: k/src/a/x.rs -> k/src/a/y.rs -> k/src/a/x.rs"),
        "{found:?}"
    );
    assert!(
        found[0].contains("k/src/a/x.rs -> k/src/a/y.rs (k/src/a/x.rs:2)")
            && found[0].contains("k/src/a/y.rs -> k/src/a/x.rs (k/src/a/y.rs:1)"),
        "{found:?}"
    );
}
