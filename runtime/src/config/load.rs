use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{PolicySet, RuntimeSettings, Section, Value, schema};
use crate::breaker::BreakerConfig;
use crate::bulkhead::BulkheadConfig;
use crate::error::{Error, PolicyKind, Result};
use crate::limiter::LimiterConfig;
use crate::pool::PoolConfig;
use crate::retry::RetryConfig;
use crate::secret::DatabaseUrl;

/// The resolved configuration: every declared name with its final settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// Runtime-wide settings.
    pub settings: RuntimeSettings,
    /// The profile that applied, if any.
    pub profile: Option<String>,
    /// What code declared.
    pub declared: PolicySet,
    /// Pools by name.
    pub pools: BTreeMap<String, PoolConfig>,
    /// Circuit breakers by name.
    pub breakers: BTreeMap<String, BreakerConfig>,
    /// Retry policies by name.
    pub retries: BTreeMap<String, RetryConfig>,
    /// Rate limiters by name.
    pub limiters: BTreeMap<String, LimiterConfig>,
    /// Bulkheads by name.
    pub bulkheads: BTreeMap<String, BulkheadConfig>,
}

/// A configuration file or text.
#[derive(Debug, Clone)]
pub(crate) enum FileSource {
    Path { path: PathBuf, required: bool },
    Text { text: String, origin: String },
}

/// Every source of settings, in the order they apply.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sources {
    pub(crate) declared: PolicySet,
    pub(crate) code: Vec<(String, Value)>,
    /// Connect options from code: runtime-wide (`None`) or for one pool. They apply after
    /// every other setting from code, before the files and the environment.
    pub(crate) connect: Vec<(Option<String>, DatabaseUrl)>,
    pub(crate) files: Vec<FileSource>,
    pub(crate) env_prefix: Option<String>,
    /// Environment variables to read; `None` reads the process environment.
    pub(crate) env_vars: Option<Vec<(String, String)>>,
    pub(crate) profile: Option<String>,
}

struct Assignment {
    path: Vec<String>,
    value: Value,
    origin: String,
}

const SECTIONS: [(&str, PolicyKind); 5] = [
    ("pools", PolicyKind::Pool),
    ("breakers", PolicyKind::Breaker),
    ("retries", PolicyKind::Retry),
    ("limiters", PolicyKind::Limiter),
    ("bulkheads", PolicyKind::Bulkhead),
];

fn kind_of_section(section: &str) -> Option<PolicyKind> {
    SECTIONS
        .iter()
        .find(|(s, _)| *s == section)
        .map(|(_, k)| *k)
}

impl Sources {
    fn env(&self) -> Vec<(String, String)> {
        match &self.env_vars {
            Some(v) => v.clone(),
            None => std::env::vars().collect(),
        }
    }

    /// Resolves every source into a checked configuration.
    pub(crate) fn resolve(&self) -> Result<RuntimeConfig> {
        let env = self.env();
        let mut assignments = Vec::new();

        // 1. code: what `policies!` and the builder declare.
        for d in self.declared.iter() {
            let origin = match d.location {
                Some(l) => format!("policies! at {l}"),
                None => "code".to_owned(),
            };
            let section = d.kind.section();
            for (k, v) in &d.settings {
                let mut path = vec![section.to_owned(), d.name.clone()];
                path.extend(k.split('.').map(str::to_owned));
                assignments.push(Assignment {
                    path,
                    value: v.clone(),
                    origin: origin.clone(),
                });
            }
        }
        for (k, v) in &self.code {
            assignments.push(Assignment {
                path: k.split('.').map(str::to_owned).collect(),
                value: v.clone(),
                origin: "code".to_owned(),
            });
        }

        let from_code = assignments.len();

        // 2. files, then the selected profile of each file. Every problem of every source is
        // collected, so that one start-up reports all of them.
        let mut problems = Vec::new();
        let mut files = Vec::new();
        for f in &self.files {
            match read_file(f) {
                Ok(Some(parsed)) => files.push(parsed),
                Ok(None) => {}
                Err(e) => problems.push(e),
            }
        }
        let env_profile = self.env_prefix.as_ref().and_then(|p| {
            let name = format!("{p}__PROFILE");
            env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
        });
        let file_profile = files.iter().rev().find_map(|f| {
            f.table
                .get("profile")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        });
        let profile = env_profile.or(self.profile.clone()).or(file_profile);

        let mut defined_profiles: Vec<String> = Vec::new();
        let mut profile_assignments = Vec::new();
        for file in &files {
            for (key, value) in &file.table {
                match key.as_str() {
                    "profile" => {}
                    "profiles" => {
                        let Some(profiles) = value.as_table() else {
                            problems.push(Error::config(
                                "profiles",
                                value,
                                "a table of profiles such as [profiles.production]",
                                file.positions
                                    .locate(&file.origin, &["profiles".to_owned()]),
                            ));
                            continue;
                        };
                        for (pname, ptable) in profiles {
                            defined_profiles.push(pname.clone());
                            if Some(pname) != profile.as_ref() {
                                continue;
                            }
                            flatten(
                                &mut profile_assignments,
                                &mut problems,
                                vec![],
                                ptable,
                                file,
                                &["profiles".to_owned(), pname.clone()],
                            );
                        }
                    }
                    _ => flatten(
                        &mut assignments,
                        &mut problems,
                        vec![key.clone()],
                        value,
                        file,
                        &[],
                    ),
                }
            }
        }
        if let Some(p) = &profile
            && !defined_profiles.contains(p)
        {
            defined_profiles.sort();
            defined_profiles.dedup();
            let defined = if defined_profiles.is_empty() {
                "none (add [profiles.NAME] sections to the configuration file)".to_owned()
            } else {
                defined_profiles.join(", ")
            };
            problems.push(Error::config(
                "profile",
                format!("{p:?}"),
                format!("a defined profile; defined: {defined}"),
                "profile selection",
            ));
        }
        assignments.extend(profile_assignments);

        // 3. environment variables: PREFIX__SECTION__NAME__KEY.
        if let Some(prefix) = &self.env_prefix {
            let head = format!("{prefix}__");
            let mut vars: Vec<&(String, String)> =
                env.iter().filter(|(k, _)| k.starts_with(&head)).collect();
            vars.sort();
            for (k, v) in vars {
                let rest = &k[head.len()..];
                if rest == "PROFILE" {
                    continue;
                }
                let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
                if path.iter().any(String::is_empty) {
                    problems.push(Error::config(
                        k.clone(),
                        format!("{v:?}"),
                        format!(
                            "a variable named {prefix}__SECTION__NAME__KEY, such as {prefix}__POOLS__HTTP__MAX"
                        ),
                        "environment",
                    ));
                    continue;
                }
                assignments.push(Assignment {
                    path,
                    value: Value::Str(v.clone()),
                    origin: format!("environment variable {k}"),
                });
            }
        }

        let mut config = RuntimeConfig {
            settings: RuntimeSettings::default(),
            profile,
            declared: self.declared.clone(),
            pools: BTreeMap::new(),
            breakers: BTreeMap::new(),
            retries: BTreeMap::new(),
            limiters: BTreeMap::new(),
            bulkheads: BTreeMap::new(),
        };
        for d in self.declared.iter() {
            let name = d.name.clone();
            match d.kind {
                PolicyKind::Pool => {
                    config.pools.insert(name, PoolConfig::default());
                }
                PolicyKind::Breaker => {
                    config.breakers.insert(name, BreakerConfig::default());
                }
                PolicyKind::Retry => {
                    config.retries.insert(name, RetryConfig::default());
                }
                PolicyKind::Limiter => {
                    config.limiters.insert(name, LimiterConfig::default());
                }
                PolicyKind::Bulkhead => {
                    config.bulkheads.insert(name, BulkheadConfig::default());
                }
            }
        }
        let mut origins: BTreeMap<String, String> = BTreeMap::new();
        let apply_all = |config: &mut RuntimeConfig,
                         origins: &mut BTreeMap<String, String>,
                         problems: &mut Vec<Error>,
                         some: &[Assignment]| {
            for a in some {
                match apply(config, a) {
                    Ok(()) => {
                        origins.insert(a.path.join("."), a.origin.clone());
                    }
                    Err(e) => problems.push(e),
                }
            }
        };
        apply_all(
            &mut config,
            &mut origins,
            &mut problems,
            &assignments[..from_code],
        );
        if let Err(e) = self.apply_connect(&mut config, &mut origins) {
            problems.push(e);
        }
        apply_all(
            &mut config,
            &mut origins,
            &mut problems,
            &assignments[from_code..],
        );
        check(&mut config, &origins, &env, &mut problems);
        match Error::config_problems(problems) {
            Some(e) => Err(e),
            None => Ok(config),
        }
    }
}

impl Sources {
    /// Connect options given in code, as the `url` of the runtime or of one declared pool.
    fn apply_connect(
        &self,
        config: &mut RuntimeConfig,
        origins: &mut BTreeMap<String, String>,
    ) -> Result<()> {
        const ORIGIN: &str = "code (connect options)";
        for (pool, url) in &self.connect {
            let key = match pool {
                None => {
                    config.settings.url = Some(url.clone());
                    "url".to_owned()
                }
                Some(name) => {
                    let Some(pool) = config.pools.get_mut(name) else {
                        return Err(undeclared(config, name, ORIGIN));
                    };
                    pool.url = Some(url.clone());
                    format!("pools.{name}.url")
                }
            };
            origins.insert(key, ORIGIN.to_owned());
        }
        Ok(())
    }
}

/// A pool that code gives settings or a pool for, and does not declare.
pub(crate) fn undeclared(config: &RuntimeConfig, name: &str, origin: &str) -> Error {
    let names = config.declared.names(PolicyKind::Pool);
    Error::undeclared(PolicyKind::Pool, name, origin, &names)
}

/// A file's settings: where it came from, its table, and where each value sits in its text.
struct FileTable {
    origin: String,
    table: toml::Table,
    positions: Positions,
}

/// The line and column (both from 1) of each value in a TOML text, by dotted key path.
#[derive(Default)]
struct Positions(BTreeMap<String, (usize, usize)>);

impl Positions {
    fn of(text: &str) -> Self {
        let mut positions = Positions::default();
        // Parsed a second time, into toml's spanned document, because `toml::Table` keeps no
        // positions; the text already parsed once, so this cannot fail in practice.
        if let Ok(doc) = toml::de::DeTable::parse(text) {
            positions.walk(text, "", doc.get_ref());
        }
        positions
    }

    fn walk(&mut self, text: &str, prefix: &str, table: &toml::de::DeTable<'_>) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{prefix}.{}", key.get_ref())
            };
            if let toml::de::DeValue::Table(inner) = value.get_ref() {
                self.walk(text, &path, inner);
            }
            self.0
                .insert(path, line_and_column(text, value.span().start));
        }
    }

    /// `origin:line:column` for the value at `path`, or `origin` when it is not known.
    fn locate(&self, origin: &str, path: &[String]) -> String {
        match self.0.get(&path.join(".")) {
            Some((line, column)) => format!("{origin}:{line}:{column}"),
            None => origin.to_owned(),
        }
    }
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn read_file(f: &FileSource) -> Result<Option<FileTable>> {
    let (text, origin) = match f {
        FileSource::Text { text, origin } => (text.clone(), origin.clone()),
        FileSource::Path { path, required } => {
            let origin = path.display().to_string();
            match std::fs::read_to_string(path) {
                Ok(t) => (t, origin),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
                Err(e) => {
                    return Err(Error::ConfigSource {
                        origin,
                        message: format!("{e}"),
                    });
                }
            }
        }
    };
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| Error::ConfigSource {
            origin: origin.clone(),
            message: crate::redact::redact(e.to_string().trim()),
        })?;
    let positions = Positions::of(&text);
    Ok(Some(FileTable {
        origin,
        table,
        positions,
    }))
}

/// Turns a file's (nested) table into one assignment per value. `at` is the table's path in
/// the file (empty at the top, `profiles.NAME` inside a profile); each assignment's origin is
/// the file with the value's line and column.
fn flatten(
    out: &mut Vec<Assignment>,
    problems: &mut Vec<Error>,
    path: Vec<String>,
    value: &toml::Value,
    file: &FileTable,
    at: &[String],
) {
    let in_file: Vec<String> = at.iter().chain(&path).cloned().collect();
    let leaf = match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let mut p = path.clone();
                p.push(k.clone());
                flatten(out, problems, p, v, file, at);
            }
            return;
        }
        toml::Value::String(s) => Value::Str(s.clone()),
        toml::Value::Integer(i) => Value::Int(*i),
        toml::Value::Float(x) => Value::Float(*x),
        toml::Value::Boolean(b) => Value::Bool(*b),
        other => {
            problems.push(Error::config(
                in_file.join("."),
                other,
                "a single value (text, number or true/false)",
                file.positions.locate(&file.origin, &in_file),
            ));
            return;
        }
    };
    out.push(Assignment {
        origin: file.positions.locate(&file.origin, &in_file),
        path,
        value: leaf,
    });
}

fn apply(config: &mut RuntimeConfig, a: &Assignment) -> Result<()> {
    let full = a.path.join(".");
    let first = a.path[0].as_str();
    if let Some(kind) = kind_of_section(first) {
        if a.path.len() < 3 {
            return Err(Error::config(
                full,
                &a.value,
                format!("settings inside a named {kind}, such as {first}.NAME.KEY"),
                a.origin.clone(),
            ));
        }
        let name = &a.path[1];
        if !config.declared.contains(kind, name) {
            let names = config.declared.names(kind);
            return Err(Error::undeclared(kind, name, a.origin.clone(), &names));
        }
        let key = a.path[2..].join(".");
        return match kind {
            PolicyKind::Pool => set_in(&mut config.pools, name, &key, a),
            PolicyKind::Breaker => set_in(&mut config.breakers, name, &key, a),
            PolicyKind::Retry => set_in(&mut config.retries, name, &key, a),
            PolicyKind::Limiter => set_in(&mut config.limiters, name, &key, a),
            PolicyKind::Bulkhead => set_in(&mut config.bulkheads, name, &key, a),
        };
    }
    let key = full.clone();
    if key == "profile" {
        return Ok(());
    }
    if !RuntimeSettings::accepts(&key) {
        let mut names: Vec<String> = schema::RUNTIME
            .all_keys()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let closest = {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            schema::closest(&key, &refs).map(str::to_owned)
        };
        names.extend(SECTIONS.iter().map(|(s, _)| format!("{s}.NAME.KEY")));
        let hint = closest
            .map(|c| format!("; did you mean `{c}`?"))
            .unwrap_or_default();
        return Err(Error::config(
            full,
            &a.value,
            format!("one of {}{hint}", names.join(", ")),
            a.origin.clone(),
        ));
    }
    config
        .settings
        .set(&key, &a.value)
        .map_err(|expected| Error::config(full, &a.value, expected, a.origin.clone()))
}

fn set_in<S: Section>(
    map: &mut BTreeMap<String, S>,
    name: &str,
    key: &str,
    a: &Assignment,
) -> Result<()> {
    let full = a.path.join(".");
    let section = map.entry(name.to_owned()).or_default();
    section
        .set(key, &a.value)
        .map_err(|expected| Error::config(full, &a.value, expected, a.origin.clone()))
}

fn validate_all<S: Section>(
    map: &BTreeMap<String, S>,
    origins: &BTreeMap<String, String>,
    problems: &mut Vec<Error>,
) {
    for (name, section) in map {
        if let Err(invalid) = section.validate() {
            let key = format!("{}.{name}.{}", S::KIND.section(), invalid.key);
            let origin = origins
                .get(&key)
                .cloned()
                .unwrap_or_else(|| "the combined settings".to_owned());
            problems.push(Error::Config {
                key,
                value: crate::redact::redact(&invalid.value),
                expected: invalid.expected,
                origin,
            });
        }
    }
}

fn check(
    config: &mut RuntimeConfig,
    origins: &BTreeMap<String, String>,
    env: &[(String, String)],
    problems: &mut Vec<Error>,
) {
    validate_all(&config.pools, origins, problems);
    validate_all(&config.breakers, origins, problems);
    validate_all(&config.retries, origins, problems);
    validate_all(&config.limiters, origins, problems);
    validate_all(&config.bulkheads, origins, problems);
    for (key, value, expected) in config.settings.faults.problems(config.profile.as_deref()) {
        let key = format!("faults.{key}");
        let origin = origins
            .get(&key)
            .cloned()
            .unwrap_or_else(|| "the combined settings".to_owned());
        problems.push(Error::Config {
            key,
            value,
            expected,
            origin,
        });
    }
    if config.settings.url.is_none()
        && let Some((_, url)) = env.iter().find(|(k, _)| k == "DATABASE_URL")
        && let Err(expected) = config.settings.set("url", &Value::Str(url.clone()))
    {
        problems.push(Error::config(
            "url",
            crate::redact::redact(url),
            expected,
            "DATABASE_URL",
        ));
    }
    match &config.settings.default_pool {
        Some(name) if !config.pools.contains_key(name) => {
            let names = config.declared.names(PolicyKind::Pool);
            let origin = origins
                .get("default_pool")
                .cloned()
                .unwrap_or_else(|| "default_pool".into());
            problems.push(Error::undeclared(PolicyKind::Pool, name, origin, &names));
        }
        None if config.pools.len() == 1 => {
            config.settings.default_pool = config.pools.keys().next().cloned();
        }
        _ => {}
    }
}
