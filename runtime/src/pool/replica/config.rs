//! The replica settings' types: the list of replica URLs and the read-your-writes choice.

use std::fmt;

use super::patroni::ApiUrl;
use crate::secret::DatabaseUrl;
use crate::settings::fields::{Field, choices};
use sqlx_resilience_schema::{HOSTS, Typed, url_list};

/// The `replicas` of a pool: streaming replicas of its server, as written (comma-separated
/// URLs; `"hosts"`: the hosts of the pool's own multi-host URL; or the `http://` URLs of a
/// Patroni cluster's REST API, whose members are the candidates). Debug shows them with
/// passwords redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplicaUrls {
    text: String,
    urls: Vec<DatabaseUrl>,
    patroni: Vec<ApiUrl>,
}

impl ReplicaUrls {
    /// Reads comma- or space-separated `postgres://` URLs, `"hosts"`, or `http://` URLs of
    /// Patroni's REST API; `Err` says what was expected.
    pub fn parse(text: &str) -> Result<ReplicaUrls, String> {
        let mut parsed = ReplicaUrls {
            text: text.trim().to_owned(),
            urls: Vec::new(),
            patroni: Vec::new(),
        };
        if parsed.text == HOSTS {
            return Ok(parsed);
        }
        let listed: Vec<&str> = url_list(text).collect();
        let Some(first) = listed.first() else {
            return Err("at least one postgres:// URL".to_owned());
        };
        if first.starts_with("http://") || first.starts_with("https://") {
            for url in listed {
                parsed.patroni.push(ApiUrl::parse(url).map_err(|e| {
                    format!(
                        "{e} (each URL of the list: Patroni's REST API, or each a postgres:// URL)"
                    )
                })?);
            }
            return Ok(parsed);
        }
        for url in listed {
            let url = DatabaseUrl::new(url);
            url.check()?;
            parsed.urls.push(url);
        }
        Ok(parsed)
    }

    /// The URLs, in order (none for `"hosts"` and Patroni).
    pub fn urls(&self) -> &[DatabaseUrl] {
        &self.urls
    }

    /// Whether the replicas are the hosts of the pool's own multi-host URL (`"hosts"`).
    pub fn from_hosts(&self) -> bool {
        self.text == HOSTS
    }

    /// Whether the replicas are the members a Patroni cluster's REST API lists.
    pub fn from_patroni(&self) -> bool {
        !self.patroni.is_empty()
    }

    /// The Patroni REST API URLs, in order (none unless [`from_patroni`](Self::from_patroni)).
    pub(crate) fn patroni(&self) -> &[ApiUrl] {
        &self.patroni
    }
}

impl fmt::Debug for ReplicaUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from_hosts() {
            return f.write_str(HOSTS);
        }
        if self.from_patroni() {
            return f.debug_tuple("Patroni").field(&self.patroni).finish();
        }
        f.debug_list().entries(&self.urls).finish()
    }
}

impl Field for ReplicaUrls {
    fn from_typed(value: Typed<'_>) -> Result<Self, String> {
        match value {
            Typed::Text(text) => ReplicaUrls::parse(text),
            other => Err(format!("{other} as replica URLs (a bug)")),
        }
    }
    fn to_typed(&self) -> Option<Typed<'_>> {
        Some(Typed::Text(&self.text))
    }
}

/// What reads in a [`ReadSession`](crate::pool::replica::ReadSession) do after a write there
/// (`read_your_writes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadYourWrites {
    /// Go to the primary for `read_your_writes_window` after the write (Rails' role switch).
    Primary,
    /// Go to a replica that has replayed the write's WAL position, waiting for one up to
    /// `read_your_writes_window` (and the call's deadline), else to the primary.
    Wait,
    /// No difference: reads follow `max_lag` alone.
    Off,
}

choices!(
    /// The name used in configuration (`primary`, `wait`, `off`).
    pub fn as_str for ReadYourWrites { Primary = "primary", Wait = "wait", Off = "off" }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_urls_keep_their_order_and_hide_passwords() {
        let r = ReplicaUrls::parse("postgres://app:pw1@r1/app, postgres://app:pw2@r2:5433/app")
            .unwrap();
        assert_eq!(r.urls().len(), 2);
        assert_eq!(r.urls()[1].redacted(), "postgres://app:***@r2:5433/app");
        let shown = format!("{r:?}");
        assert!(!shown.contains("pw1") && !shown.contains("pw2"), "{shown}");
        assert!(ReplicaUrls::parse(" ").is_err());
        let hosts = ReplicaUrls::parse(" hosts ").unwrap();
        assert!(hosts.from_hosts() && hosts.urls().is_empty());
        assert_eq!(format!("{hosts:?}"), "hosts");
        assert!(!r.from_hosts());
        assert!(ReplicaUrls::parse("postgres://r1/app?sslmode=bogus").is_err());
        let patroni = ReplicaUrls::parse("http://10.0.0.1:8008, http://10.0.0.2").unwrap();
        assert!(patroni.from_patroni() && !patroni.from_hosts() && patroni.urls().is_empty());
        assert_eq!(
            format!("{patroni:?}"),
            "Patroni([http://10.0.0.1:8008, http://10.0.0.2:8008])"
        );
        assert!(ReplicaUrls::parse("http://a:8008, postgres://r1/app").is_err());
    }
}
