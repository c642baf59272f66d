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

        // 2. files, then the selected profile of each file.
        let mut file_tables = Vec::new();
        for f in &self.files {
            if let Some(parsed) = read_file(f)? {
                file_tables.push(parsed);
            }
        }
        let env_profile = self.env_prefix.as_ref().and_then(|p| {
            let name = format!("{p}__PROFILE");
            env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
        });
        let file_profile = file_tables
            .iter()
            .rev()
            .find_map(|(_, t)| t.get("profile").and_then(|v| v.as_str()).map(str::to_owned));
        let profile = env_profile.or(self.profile.clone()).or(file_profile);

        let mut defined_profiles: Vec<String> = Vec::new();
        let mut profile_assignments = Vec::new();
        for (origin, table) in &file_tables {
            for (key, value) in table {
                match key.as_str() {
                    "profile" => {}
                    "profiles" => {
                        let profiles = value.as_table().ok_or_else(|| {
                            Error::config(
                                "profiles",
                                value,
                                "a table of profiles such as [profiles.production]",
                                origin.clone(),
                            )
                        })?;
                        for (pname, ptable) in profiles {
                            defined_profiles.push(pname.clone());
                            if Some(pname) != profile.as_ref() {
                                continue;
                            }
                            let porigin = format!("{origin} [profiles.{pname}]");
                            flatten(
                                &mut profile_assignments,
                                vec![],
                                ptable,
                                &porigin,
                                &format!("profiles.{pname}"),
                            )?;
                        }
                    }
                    _ => flatten(&mut assignments, vec![key.clone()], value, origin, "")?,
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
            return Err(Error::config(
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
                    return Err(Error::config(
                        k.clone(),
                        format!("{v:?}"),
                        format!(
                            "a variable named {prefix}__SECTION__NAME__KEY, such as {prefix}__POOLS__HTTP__MAX"
                        ),
                        "environment",
                    ));
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
        for a in &assignments[..from_code] {
            apply(&mut config, a)?;
            origins.insert(a.path.join("."), a.origin.clone());
        }
        self.apply_connect(&mut config, &mut origins)?;
        for a in &assignments[from_code..] {
            apply(&mut config, a)?;
            origins.insert(a.path.join("."), a.origin.clone());
        }
        check(&mut config, &origins, &env)?;
        Ok(config)
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
    Error::UndeclaredName {
        kind: PolicyKind::Pool,
        name: name.to_owned(),
        origin: origin.to_owned(),
        declared: if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        },
    }
}

fn read_file(f: &FileSource) -> Result<Option<(String, toml::Table)>> {
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
            message: crate::secret::redact(e.to_string().trim()),
        })?;
    Ok(Some((origin, table)))
}

fn flatten(
    out: &mut Vec<Assignment>,
    path: Vec<String>,
    value: &toml::Value,
    origin: &str,
    prefix: &str,
) -> Result<()> {
    let show = |p: &[String]| {
        if prefix.is_empty() {
            p.join(".")
        } else {
            format!("{prefix}.{}", p.join("."))
        }
    };
    let leaf = match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let mut p = path.clone();
                p.push(k.clone());
                flatten(out, p, v, origin, prefix)?;
            }
            return Ok(());
        }
        toml::Value::String(s) => Value::Str(s.clone()),
        toml::Value::Integer(i) => Value::Int(*i),
        toml::Value::Float(x) => Value::Float(*x),
        toml::Value::Boolean(b) => Value::Bool(*b),
        other => {
            return Err(Error::config(
                show(&path),
                other,
                "a single value (text, number or true/false)",
                origin,
            ));
        }
    };
    out.push(Assignment {
        path,
        value: leaf,
        origin: origin.to_owned(),
    });
    Ok(())
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
            return Err(Error::UndeclaredName {
                kind,
                name: name.clone(),
                origin: a.origin.clone(),
                declared: if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                },
            });
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
) -> Result<()> {
    for (name, section) in map {
        if let Err(invalid) = section.validate() {
            let key = format!("{}.{name}.{}", S::KIND.section(), invalid.key);
            let origin = origins
                .get(&key)
                .cloned()
                .unwrap_or_else(|| "the combined settings".to_owned());
            return Err(Error::Config {
                key,
                value: crate::secret::redact(&invalid.value),
                expected: invalid.expected,
                origin,
            });
        }
    }
    Ok(())
}

fn check(
    config: &mut RuntimeConfig,
    origins: &BTreeMap<String, String>,
    env: &[(String, String)],
) -> Result<()> {
    validate_all(&config.pools, origins)?;
    validate_all(&config.breakers, origins)?;
    validate_all(&config.retries, origins)?;
    validate_all(&config.limiters, origins)?;
    validate_all(&config.bulkheads, origins)?;
    if config.settings.url.is_none()
        && let Some((_, url)) = env.iter().find(|(k, _)| k == "DATABASE_URL")
    {
        config
            .settings
            .set("url", &Value::Str(url.clone()))
            .map_err(|expected| {
                Error::config("url", crate::secret::redact(url), expected, "DATABASE_URL")
            })?;
    }
    match &config.settings.default_pool {
        Some(name) if !config.pools.contains_key(name) => {
            let names = config.declared.names(PolicyKind::Pool);
            return Err(Error::UndeclaredName {
                kind: PolicyKind::Pool,
                name: name.clone(),
                origin: origins
                    .get("default_pool")
                    .cloned()
                    .unwrap_or_else(|| "default_pool".into()),
                declared: if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                },
            });
        }
        None if config.pools.len() == 1 => {
            config.settings.default_pool = config.pools.keys().next().cloned();
        }
        _ => {}
    }
    Ok(())
}
