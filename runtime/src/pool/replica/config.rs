//! The replica settings' types: the list of replica URLs and the read-your-writes choice.

use std::fmt;

use crate::secret::DatabaseUrl;
use crate::settings::fields::{Field, choices};
use sqlx_resilience_schema::{HOSTS, Typed, url_list};

/// The `replicas` of a pool: streaming replicas of its server, as written (comma-separated
/// URLs, or `"hosts"`: the hosts of the pool's own multi-host URL). Debug shows them with
/// passwords redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplicaUrls {
    text: String,
    urls: Vec<DatabaseUrl>,
}

impl ReplicaUrls {
    /// Reads comma- or space-separated `postgres://` URLs, or `"hosts"`; `Err` says what was
    /// expected.
    pub fn parse(text: &str) -> Result<ReplicaUrls, String> {
        if text.trim() == HOSTS {
            return Ok(ReplicaUrls {
                text: HOSTS.to_owned(),
                urls: Vec::new(),
            });
        }
        let urls: Vec<DatabaseUrl> = url_list(text).map(DatabaseUrl::new).collect();
        if urls.is_empty() {
            return Err("at least one postgres:// URL".to_owned());
        }
        for url in &urls {
            url.check()?;
        }
        Ok(ReplicaUrls {
            text: text.to_owned(),
            urls,
        })
    }

    /// The URLs, in order (none for `"hosts"`).
    pub fn urls(&self) -> &[DatabaseUrl] {
        &self.urls
    }

    /// Whether the replicas are the hosts of the pool's own multi-host URL (`"hosts"`).
    pub fn from_hosts(&self) -> bool {
        self.text == HOSTS
    }
}

impl fmt::Debug for ReplicaUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from_hosts() {
            return f.write_str(HOSTS);
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
    }
}
