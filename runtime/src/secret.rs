//! Connection URLs that never show their password.

use std::fmt;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx_resilience_schema::Typed;

use crate::error::{Error, Result};
use crate::redact::redact;
use crate::settings::fields::{Field, misfit};

/// Where a pool connects: a PostgreSQL URL, or sqlx's [`PgConnectOptions`] as the application
/// already builds them. `Debug` and `Display` replace the password with `***` (and leave out
/// everything but the user, host, port, database and `sslmode` of connect options, whose own
/// `Debug` prints the password and any inline client key), so it can go into logs, errors and
/// reports; [`DatabaseUrl::connect_options`] gives the driver the real settings.
#[derive(Clone)]
pub struct DatabaseUrl(Target);

#[derive(Clone)]
enum Target {
    Url(String),
    Options(Box<PgConnectOptions>),
}

impl DatabaseUrl {
    /// Wraps a URL. It is checked when the pool is built, not here.
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(Target::Url(url.into()))
    }

    /// Wraps connect options the application built (host, credentials, TLS, `.pgpass`, ...),
    /// used as they are.
    pub fn from_options(options: PgConnectOptions) -> Self {
        DatabaseUrl(Target::Options(Box::new(options)))
    }

    /// The URL with its password, for the driver only; `None` when connect options were
    /// given instead of a URL.
    pub fn expose(&self) -> Option<&str> {
        match &self.0 {
            Target::Url(url) => Some(url),
            Target::Options(_) => None,
        }
    }

    /// The URL with the password replaced by `***`; for connect options, a URL of their user,
    /// host, port, database and `sslmode`.
    pub fn redacted(&self) -> String {
        match &self.0 {
            Target::Url(url) => redact(url),
            Target::Options(options) => describe(options),
        }
    }

    /// sqlx connect options for this URL, or the connect options given.
    pub fn connect_options(&self, origin: &str) -> Result<PgConnectOptions> {
        match &self.0 {
            Target::Url(url) => PgConnectOptions::from_str(url)
                .map_err(|e| Error::config("url", self.redacted(), self.refused(&e), origin)),
            Target::Options(options) => Ok((**options).clone()),
        }
    }

    /// The connect options of each host of a multi-host URL, in the order written (without
    /// the pool's session settings); the one host's options otherwise.
    pub(crate) fn each_host_options(&self, origin: &str) -> Result<Vec<PgConnectOptions>> {
        Ok(match self.host_list(origin)? {
            Some(list) => list
                .hosts
                .iter()
                .map(|h| list.base.clone().host(&h.host).port(h.port))
                .collect(),
            None => vec![self.connect_options(origin)?],
        })
    }

    /// Whether the driver accepts this URL; otherwise what was expected, and why not. The
    /// configuration checks it when the URL is set, so `resolve()` refuses what `build()`
    /// would.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        match &self.0 {
            Target::Url(url) => match crate::hosts::parse(url) {
                Ok(Some(_)) => Ok(()),
                Ok(None) => PgConnectOptions::from_str(url)
                    .map(drop)
                    .map_err(|e| self.refused(&e)),
                Err(what) => Err(multi_host_refused(&what)),
            },
            Target::Options(_) => Ok(()),
        }
    }

    /// The hosts of a multi-host URL (libpq's `h1:p1,h2:p2` and `host=a,b port=..` forms, or
    /// one host with `target_session_attrs`); `None` for a one-server URL or connect options.
    pub(crate) fn host_list(&self, origin: &str) -> Result<Option<crate::hosts::HostList>> {
        match &self.0 {
            Target::Url(url) => crate::hosts::parse(url).map_err(|what| {
                Error::config("url", self.redacted(), multi_host_refused(&what), origin)
            }),
            Target::Options(_) => Ok(None),
        }
    }

    fn refused(&self, e: &sqlx::Error) -> String {
        // sqlx wraps its configuration errors in another one ("error with configuration:
        // error with configuration: unknown value ..."): the innermost says what is wrong.
        let mut inner: &dyn std::error::Error = e;
        while let Some(next) = inner.source() {
            inner = next;
        }
        // The message may quote parts of the URL; keep only the redacted form.
        let text = inner.to_string();
        let text = match self.expose() {
            Some(url) => text.replace(url, &self.redacted()),
            None => text,
        };
        format!("a PostgreSQL URL the driver accepts ({})", redact(&text))
    }
}

fn multi_host_refused(what: &str) -> String {
    format!(
        "a connection string in libpq's forms, `postgres://u@h1:5432,h2:5433/db?target_session_attrs=read-write` \
         or `host=h1,h2 port=5432,5433 dbname=db` ({})",
        redact(what)
    )
}

/// Connect options as a URL without secrets: user, `***` for a password, host (or socket
/// directory), port, database and `sslmode`. sqlx's own rendering (`to_url_lossy`) carries the
/// password and the TLS files or inline keys, so only these parts are taken from it.
fn describe(options: &PgConnectOptions) -> String {
    use sqlx::ConnectOptions;
    let url = options.to_url_lossy();
    let password = if url.password().is_some() { ":***" } else { "" };
    let host = match options.get_socket() {
        Some(dir) => dir.display().to_string(),
        None => options.get_host().to_owned(),
    };
    let database = options.get_database().unwrap_or_default();
    let sslmode = url
        .query_pairs()
        .find(|(k, _)| k == "sslmode")
        .map(|(_, v)| format!("?sslmode={v}"))
        .unwrap_or_default();
    format!(
        "postgres://{}{password}@{host}:{}/{database}{sslmode}",
        options.get_username(),
        options.get_port()
    )
}

impl PartialEq for DatabaseUrl {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Target::Url(a), Target::Url(b)) => a == b,
            // sqlx's options have no `PartialEq`; their `Debug` lists every field.
            (Target::Options(a), Target::Options(b)) => format!("{a:?}") == format!("{b:?}"),
            _ => false,
        }
    }
}

impl Eq for DatabaseUrl {}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&self.redacted())
            .finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl From<PgConnectOptions> for DatabaseUrl {
    fn from(options: PgConnectOptions) -> Self {
        DatabaseUrl::from_options(options)
    }
}

impl From<&str> for DatabaseUrl {
    fn from(s: &str) -> Self {
        DatabaseUrl::new(s)
    }
}

impl From<String> for DatabaseUrl {
    fn from(s: String) -> Self {
        DatabaseUrl::new(s)
    }
}

impl Field for DatabaseUrl {
    /// A URL the driver accepts: `resolve()` refuses what `build()` would (a bad `sslmode`).
    fn from_typed(value: Typed<'_>) -> Result<Self, String> {
        let Typed::Text(text) = value else {
            return Err(misfit(value, "DatabaseUrl"));
        };
        let url = DatabaseUrl::new(text);
        url.check()?;
        Ok(url)
    }
    fn to_typed(&self) -> Option<Typed<'_>> {
        self.expose().map(Typed::Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_never_shows() {
        let url = DatabaseUrl::new("postgres://app:s3cr3t-pw@127.0.0.1:5432/db?sslmode=disable");
        for text in [format!("{url}"), format!("{url:?}"), url.redacted()] {
            assert!(!text.contains("s3cr3t-pw"), "{text}");
            assert!(text.contains("app:***@127.0.0.1:5432/db"), "{text}");
        }
        assert!(url.expose().unwrap().contains("s3cr3t-pw"));
    }

    #[test]
    fn connect_options_never_show_their_password() {
        let options = PgConnectOptions::new_without_pgpass()
            .host("db.internal")
            .port(6432)
            .username("app")
            .password("s3cr3t-pw")
            .database("harvest")
            .ssl_mode(sqlx::postgres::PgSslMode::Require)
            .ssl_client_key_from_pem("-----BEGIN PRIVATE KEY-----inline-key");
        assert!(
            format!("{options:?}").contains("s3cr3t-pw"),
            "sqlx's own Debug shows it"
        );
        let url = DatabaseUrl::from(options);
        for text in [format!("{url}"), format!("{url:?}"), url.redacted()] {
            assert!(!text.contains("s3cr3t-pw"), "{text}");
            assert!(!text.contains("inline-key"), "{text}");
            assert!(
                text.contains("postgres://app:***@db.internal:6432/harvest?sslmode=require"),
                "{text}"
            );
        }
        assert_eq!(url.expose(), None);
        let back = url.connect_options("test").unwrap();
        assert_eq!(back.get_host(), "db.internal");
        assert_eq!(url, url.clone());
        assert_ne!(
            url,
            DatabaseUrl::new("postgres://app@db.internal:6432/harvest")
        );
    }

    #[test]
    fn multi_host_strings_are_checked_and_never_show_their_password() {
        for text in [
            "postgres://app:s3cret@h1:5432,h2:5433/db?target_session_attrs=read-write",
            "host=h1,h2 port=5432,5433 dbname=db user=app password=s3cret",
        ] {
            let url = DatabaseUrl::new(text);
            assert_eq!(url.check(), Ok(()));
            assert_eq!(url.each_host_options("test").unwrap().len(), 2);
            assert!(!format!("{url} {url:?}").contains("s3cret"), "{url}");
        }
        let bad = DatabaseUrl::new("postgres://app:s3cret@h1,h2:99999/db");
        let err = bad.host_list("pools.main.url").unwrap_err().to_string();
        assert!(
            err.contains("host 2 of 2") && err.contains("99999"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
        assert_eq!(
            bad.check().map_err(|e| e.contains("host 2 of 2")),
            Err(true)
        );
    }

    #[test]
    fn bad_url_error_does_not_leak() {
        let url = DatabaseUrl::new("postgres://app:hunter2@[bad/db");
        let err = url.connect_options("test").unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
