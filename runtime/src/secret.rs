//! Connection URLs that never show their password.

use std::fmt;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

use crate::error::{Error, Result};

/// A PostgreSQL connection URL. `Debug` and `Display` replace the password with `***`, so the
/// URL can go into logs, errors and reports; [`DatabaseUrl::expose`] gives the real text to the
/// driver.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a URL. It is checked when the pool is built, not here.
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }

    /// The URL with its password, for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with the password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }

    /// sqlx connect options for this URL.
    pub fn connect_options(&self, origin: &str) -> Result<PgConnectOptions> {
        PgConnectOptions::from_str(&self.0)
            .map_err(|e| Error::config("url", self.redacted(), self.refused(&e), origin))
    }

    /// Whether the driver accepts this URL; otherwise what was expected, and why not. The
    /// configuration checks it when the URL is set, so `resolve()` refuses what `build()`
    /// would.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        PgConnectOptions::from_str(&self.0)
            .map(drop)
            .map_err(|e| self.refused(&e))
    }

    fn refused(&self, e: &sqlx::Error) -> String {
        // sqlx wraps its configuration errors in another one ("error with configuration:
        // error with configuration: unknown value ..."): the innermost says what is wrong.
        let mut inner: &dyn std::error::Error = e;
        while let Some(next) = inner.source() {
            inner = next;
        }
        // The message may quote parts of the URL; keep only the redacted form.
        let detail = redact(&inner.to_string().replace(&self.0, &self.redacted()));
        format!("a PostgreSQL URL the driver accepts ({detail})")
    }
}

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

/// Replaces the password of every URL-shaped `scheme://user:password@` in `text`, and the
/// value of any `password=` key/value parameter, with `***`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#' or whitespace.
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    redact_password_params(&out)
}

fn redact_password_params(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.to_ascii_lowercase().find("password=") {
        let start = pos + "password=".len();
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c == '&' || c.is_whitespace())
            .unwrap_or(tail.len());
        out.push_str("***");
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
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
        assert!(url.expose().contains("s3cr3t-pw"));
    }

    #[test]
    fn redacts_inside_free_text_and_query_parameters() {
        let text = "failed: postgres://u:pw1@h/d and postgresql://v:pw2@h2:1/e, password=pw3&x=1";
        let r = redact(text);
        for secret in ["pw1", "pw2", "pw3"] {
            assert!(!r.contains(secret), "{r}");
        }
        assert!(r.contains("postgres://u:***@h/d"), "{r}");
        assert!(r.contains("x=1"), "{r}");
    }

    #[test]
    fn urls_without_password_are_unchanged() {
        assert_eq!(redact("postgres://app@host/db"), "postgres://app@host/db");
        assert_eq!(redact("postgres://host/db"), "postgres://host/db");
    }

    #[test]
    fn bad_url_error_does_not_leak() {
        let url = DatabaseUrl::new("postgres://app:hunter2@[bad/db");
        let err = url.connect_options("test").unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
