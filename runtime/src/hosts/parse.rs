//! libpq's multi-host connection strings, in both forms:
//! `postgres://u:pw@h1:5432,h2:5433/db?target_session_attrs=read-write&load_balance_hosts=random`
//! and `host=h1,h2 port=5432,5433 dbname=db user=u target_session_attrs=read-write`.
//!
//! sqlx parses one host only (and no key=value form), so the host list and the two libpq keys
//! are taken out here, and sqlx parses the rest as a one-host URL; each host's options are that
//! base with its host and port.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::host_target::{LoadBalance, TargetSessionAttrs};

/// One host of a multi-host connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddr {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl std::fmt::Display for HostAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A parsed multi-host connection string.
#[derive(Debug, Clone)]
pub(crate) struct HostList {
    pub(crate) hosts: Vec<HostAddr>,
    pub(crate) target: TargetSessionAttrs,
    pub(crate) balance: LoadBalance,
    /// Everything but the host and port (credentials, database, TLS, ...).
    pub(crate) base: PgConnectOptions,
}

const DEFAULT_PORT: u16 = 5432;

/// The host list of `text` when it names several hosts, or sets `target_session_attrs` or
/// `load_balance_hosts`, or is in the key=value form; `Ok(None)` for a plain one-host URL
/// (which sqlx parses as before). `Err` says what is wrong, naming the host; it never quotes a
/// password.
pub(crate) fn parse(text: &str) -> Result<Option<HostList>, String> {
    let text = text.trim();
    if let Some(rest) = text
        .strip_prefix("postgres://")
        .or_else(|| text.strip_prefix("postgresql://"))
    {
        parse_url(rest)
    } else if text.contains('=') && !text.contains("://") {
        parse_key_value(text).map(Some)
    } else {
        Ok(None)
    }
}

fn parse_url(rest: &str) -> Result<Option<HostList>, String> {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hostlist) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let mut target = None;
    let mut balance = None;
    let mut kept = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "target_session_attrs" => target = Some(target_of(value)?),
            "load_balance_hosts" => balance = Some(balance_of(value)?),
            _ => kept.push(pair),
        }
    }
    if !hostlist.contains(',') && target.is_none() && balance.is_none() {
        return Ok(None);
    }
    let count = hostlist.split(',').count();
    let hosts = hostlist
        .split(',')
        .enumerate()
        .map(|(i, entry)| host_of(entry, i, count))
        .collect::<Result<Vec<_>, _>>()?;
    let query = if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    };
    // sqlx parses the rest with the first host in place of the list.
    let one = format!("postgres://{userinfo}{}{path}{query}", hosts[0]);
    let base = PgConnectOptions::from_str(&one)
        .map_err(|e| format!("the URL's other parts are not accepted: {}", innermost(&e)))?;
    Ok(Some(HostList {
        hosts,
        target: target.unwrap_or_default(),
        balance: balance.unwrap_or_default(),
        base,
    }))
}

fn host_of(entry: &str, i: usize, count: usize) -> Result<HostAddr, String> {
    let which = || format!("host {} of {count} (`{entry}`)", i + 1);
    let (host, port) = if let Some(v6) = entry.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{}: an IPv6 address without its closing `]`", which()))?;
        (host, after.strip_prefix(':'))
    } else {
        match entry.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (entry, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{}: the host name is empty", which()));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => port_of(p)
            .ok_or_else(|| format!("{}: port `{p}` is not a number from 1 to 65535", which()))?,
    };
    Ok(HostAddr {
        host: host.to_owned(),
        port,
    })
}

fn port_of(p: &str) -> Option<u16> {
    p.parse::<u16>().ok().filter(|p| *p != 0)
}

fn target_of(value: &str) -> Result<TargetSessionAttrs, String> {
    TargetSessionAttrs::parse(value).ok_or_else(|| {
        format!(
            "target_session_attrs `{value}` is not one of {}",
            TargetSessionAttrs::ACCEPTED
        )
    })
}

fn balance_of(value: &str) -> Result<LoadBalance, String> {
    LoadBalance::parse(value)
        .ok_or_else(|| format!("load_balance_hosts `{value}` is not `disable` or `random`"))
}

/// The key=value form: `host=a,b port=5432,5433 dbname=db user=u password='p w'`.
fn parse_key_value(text: &str) -> Result<HostList, String> {
    let mut base = PgConnectOptions::new_without_pgpass();
    let mut hosts: Vec<&str> = Vec::new();
    let mut ports: Vec<String> = Vec::new();
    let mut target = TargetSessionAttrs::default();
    let mut balance = LoadBalance::default();
    let pairs = pairs_of(text)?;
    for (key, value) in &pairs {
        let value = value.as_str();
        match key.as_str() {
            "host" => hosts = value.split(',').collect(),
            "port" => ports = value.split(',').map(str::to_owned).collect(),
            "dbname" => base = base.database(value),
            "user" => base = base.username(value),
            "password" => base = base.password(value),
            "application_name" => base = base.application_name(value),
            "sslmode" => {
                let mode = PgSslMode::from_str(value)
                    .map_err(|_| format!("sslmode `{value}` is not a mode libpq knows"))?;
                base = base.ssl_mode(mode);
            }
            "target_session_attrs" => target = target_of(value)?,
            "load_balance_hosts" => balance = balance_of(value)?,
            other => {
                return Err(format!(
                    "key `{other}` is not one this toolkit reads (host, port, dbname, user, \
                     password, application_name, sslmode, target_session_attrs, \
                     load_balance_hosts)"
                ));
            }
        }
    }
    if hosts.is_empty() {
        return Err("no `host=` key: name one host or several, comma-separated".to_owned());
    }
    if ports.len() > 1 && ports.len() != hosts.len() {
        return Err(format!(
            "{} hosts but {} ports: give one port for all, or one per host",
            hosts.len(),
            ports.len()
        ));
    }
    let count = hosts.len();
    let hosts = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let which = || format!("host {} of {count} (`{host}`)", i + 1);
            if host.is_empty() {
                return Err(format!("{}: the host name is empty", which()));
            }
            let port = match ports.get(i).or(ports.first()) {
                None => DEFAULT_PORT,
                Some(p) => port_of(p).ok_or_else(|| {
                    format!("{}: port `{p}` is not a number from 1 to 65535", which())
                })?,
            };
            Ok(HostAddr {
                host: (*host).to_owned(),
                port,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(HostList {
        base: base.host(&hosts[0].host).port(hosts[0].port),
        hosts,
        target,
        balance,
    })
}

/// Splits `key=value key='quoted \' value'` as libpq does.
fn pairs_of(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("key `{key}` has no `=value`"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("the value of `{key}` has no closing quote")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '\\' {
                    chars.next();
                    value.extend(chars.next());
                    continue;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

fn innermost(e: &sqlx::Error) -> String {
    let mut inner: &dyn std::error::Error = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    crate::redact::redact(&inner.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_form_with_hosts_ports_and_libpq_keys() {
        let list = parse(
            "postgres://app:s3cret@h1:5432,h2:5433,[::1]:6000,h4/db?sslmode=disable\
             &target_session_attrs=read-write&load_balance_hosts=random",
        )
        .unwrap()
        .unwrap();
        let hosts: Vec<String> = list.hosts.iter().map(ToString::to_string).collect();
        assert_eq!(hosts, ["h1:5432", "h2:5433", "[::1]:6000", "h4:5432"]);
        assert_eq!(list.target, TargetSessionAttrs::ReadWrite);
        assert_eq!(list.balance, LoadBalance::Random);
        assert_eq!(list.base.get_database(), Some("db"));
        assert_eq!(list.base.get_username(), "app");
    }

    #[test]
    fn one_host_url_is_left_to_sqlx() {
        assert!(parse("postgres://app:pw@h1:5432/db").unwrap().is_none());
        let one = parse("postgres://h1/db?target_session_attrs=primary")
            .unwrap()
            .unwrap();
        assert_eq!(one.hosts.len(), 1);
    }

    #[test]
    fn key_value_form() {
        let list = parse(
            "host=a,b port=5432,5433 dbname=db user=app password='p w\\'x' \
             target_session_attrs=primary",
        )
        .unwrap()
        .unwrap();
        assert_eq!(list.hosts[1].to_string(), "b:5433");
        assert_eq!(list.target, TargetSessionAttrs::Primary);
        let one_port = parse("host=a,b port=6000").unwrap().unwrap();
        assert_eq!(one_port.hosts[1].port, 6000);
    }

    #[test]
    fn malformed_strings_say_which_host_and_what() {
        let cases = [
            (
                "postgres://app:s3cret@h1:5432,h2:x/db",
                "host 2 of 2 (`h2:x`): port `x`",
            ),
            (
                "postgres://app:s3cret@h1,,h3/db",
                "host 2 of 3 (``): the host name is empty",
            ),
            ("postgres://app:s3cret@h1,[::1/db", "closing `]`"),
            (
                "postgres://app:s3cret@h1,h2/db?target_session_attrs=master",
                "target_session_attrs `master`",
            ),
            ("host=a,b,c port=1,2 password=s3cret", "3 hosts but 2 ports"),
            ("host=a port=0 password=s3cret", "port `0`"),
            ("host=a hostaddr=1.2.3.4 password=s3cret", "key `hostaddr`"),
            ("host=a password='s3cret", "no closing quote"),
        ];
        for (text, want) in cases {
            let err = parse(text).err().unwrap_or_default();
            assert!(err.contains(want), "{text}: {err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }
}
