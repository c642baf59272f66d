use crate::closest::closest;
use crate::constraint::Constraint;
use crate::key::Key;

/// Every key of one kind of settings (a pool, a breaker, the `monitor.*` keys), and the rules
/// between them.
#[derive(Debug)]
pub struct Schema {
    /// The kind's word in `policies!` and messages (`pool`, `breaker`, `monitor`).
    pub kind: &'static str,
    /// One of the kind, for messages: `a connection pool`.
    pub one: &'static str,
    /// The keys, in the order they are documented.
    pub keys: &'static [Key],
    /// Rules between keys.
    pub constraints: &'static [Constraint],
    /// Nested tables: `on.<kind>.*` in a retry policy, `budget.*` at the top level.
    pub groups: &'static [Group],
}

/// A nested table of keys: `[budget]`, or one table per member (`on.connection_lost`).
#[derive(Debug)]
pub struct Group {
    /// The first part of the key (`on`, `budget`).
    pub name: &'static str,
    /// For a table per member: the members it may name; `None` for a single table.
    pub each: Option<Each>,
    /// Where an unset key takes its value: the enclosing section's key of the same name
    /// (`Some("the policy")`), or nowhere (`None`).
    pub inherits: Option<&'static str>,
    /// The keys inside.
    pub schema: &'static Schema,
}

/// The members of a [`Group`] with one table each.
#[derive(Debug, Clone, Copy)]
pub struct Each {
    /// How keys write the member in documentation: `<kind>`.
    pub placeholder: &'static str,
    /// What a member is, for messages: `failure kind`.
    pub what: &'static str,
    /// Every member.
    pub names: &'static [&'static str],
}

/// A full key found in a [`Schema`]: `max`, `budget.instances`, `on.contention.base`.
#[derive(Debug, Clone, Copy)]
pub struct Found<'s, 'k> {
    /// The key.
    pub key: &'s Key,
    /// The group it is in, and for a group with members, the member named.
    pub group: Option<(&'s Group, Option<&'k str>)>,
}

impl Schema {
    /// A key of this schema itself (not of its groups).
    pub fn key(&self, name: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.name == name)
    }

    /// The key a full key names, or what was expected instead, phrased to follow "expected":
    /// `one of the pool keys: url, max, ...; did you mean `max`?`.
    pub fn find<'s, 'k>(&'s self, full: &'k str) -> Result<Found<'s, 'k>, String> {
        if let Some(key) = self.key(full) {
            return Ok(Found { key, group: None });
        }
        let mut parts = full.splitn(2, '.');
        let (head, rest) = (parts.next().unwrap_or_default(), parts.next());
        let Some((group, rest)) = self.groups.iter().find(|g| g.name == head).zip(rest) else {
            return Err(self.unknown(full));
        };
        let Some(each) = group.each else {
            return match group.schema.key(rest) {
                Some(key) => Ok(Found {
                    key,
                    group: Some((group, None)),
                }),
                None => Err(self.unknown(full)),
            };
        };
        let (member, key) = rest.split_once('.').unwrap_or((rest, ""));
        if !each.names.contains(&member) {
            return Err(format!(
                "a key `{}.{}.<setting>` where {} is one of {}, not `{member}`{}",
                group.name,
                each.placeholder,
                each.placeholder,
                each.names.join(", "),
                hint(member, each.names)
            ));
        }
        match group.schema.key(key) {
            Some(found) => Ok(Found {
                key: found,
                group: Some((group, Some(member))),
            }),
            None => {
                let names: Vec<&str> = group.schema.keys.iter().map(|k| k.name).collect();
                Err(format!(
                    "a key `{}.{member}.<setting>` where <setting> is one of {}, not `{key}`{}",
                    group.name,
                    names.join(", "),
                    hint(key, &names)
                ))
            }
        }
    }

    /// Every key with its full name as documented (`budget.instances`, `on.<kind>.base`).
    pub fn all_keys(&self) -> Vec<(String, &Key)> {
        let mut out: Vec<(String, &Key)> =
            self.keys.iter().map(|k| (k.name.to_owned(), k)).collect();
        for g in self.groups {
            let prefix = match g.each {
                Some(each) => format!("{}.{}.", g.name, each.placeholder),
                None => format!("{}.", g.name),
            };
            out.extend(
                g.schema
                    .all_keys()
                    .into_iter()
                    .map(|(name, k)| (format!("{prefix}{name}"), k)),
            );
        }
        out
    }

    fn unknown(&self, full: &str) -> String {
        let names: Vec<String> = self.all_keys().into_iter().map(|(n, _)| n).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        format!(
            "one of the {} keys: {}{}",
            self.kind,
            names.join(", "),
            hint(full, &refs)
        )
    }
}

fn hint(name: &str, accepted: &[&str]) -> String {
    match closest(name, accepted) {
        Some(close) => format!("; did you mean `{close}`?"),
        None => String::new(),
    }
}
