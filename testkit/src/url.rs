//! Rewriting the parts of a `postgres://` URL the test kit changes: database, host and port;
//! libpq-style multi-host URLs; the user and password of a URL.

use std::net::SocketAddr;

/// The pieces of `scheme://userinfo@host:port/database?query`, borrowed from the URL text.
struct Parts<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    host_port: &'a str,
    query: &'a str,
}

fn split(url: &str) -> Option<Parts<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let (userinfo, host_port) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let query = rest[authority_end..]
        .find('?')
        .map_or("", |q| &rest[authority_end + q..]);
    Some(Parts {
        scheme,
        userinfo,
        host_port,
        query,
    })
}

/// `url` with its database replaced by `database` and, when given, its `host:port` by
/// `host_port`. Userinfo and query parameters are kept as written. `None` for text that is not
/// a URL.
pub(crate) fn rewrite(url: &str, database: &str, host_port: Option<&str>) -> Option<String> {
    let parts = split(url)?;
    let userinfo = parts.userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    Some(format!(
        "{}://{userinfo}{}/{database}{}",
        parts.scheme,
        host_port.unwrap_or(parts.host_port),
        parts.query
    ))
}

/// `url` with its single `host:port` replaced by every address of `hosts`, in order:
/// `postgres://u:p@127.0.0.1:5432,127.0.0.1:5433/db?sslmode=disable`, the multi-host form
/// libpq and pgjdbc accept (add `target_session_attrs` to the query to choose among them).
/// Userinfo, database and query are kept as written; text that is not a URL comes back
/// unchanged.
///
/// ```
/// use std::net::SocketAddr;
/// use sqlx_resilience_testkit::multi_host_url;
///
/// let hosts: [SocketAddr; 2] = ["127.0.0.1:5432".parse().unwrap(), "127.0.0.1:5433".parse().unwrap()];
/// assert_eq!(
///     multi_host_url("postgres://app:pw@127.0.0.1:5432/t_1?sslmode=disable", &hosts),
///     "postgres://app:pw@127.0.0.1:5432,127.0.0.1:5433/t_1?sslmode=disable"
/// );
/// ```
pub fn multi_host_url(url: &str, hosts: &[SocketAddr]) -> String {
    let Some(parts) = split(url) else {
        return url.to_owned();
    };
    let userinfo = parts.userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    let hosts = hosts
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let rest = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let path_and_query = rest.find(['/', '?']).map_or("", |i| &rest[i..]);
    format!("{}://{userinfo}{hosts}{path_and_query}", parts.scheme)
}

/// The user and password of `url`, percent-decoded. `None` for text that is not a URL or has
/// no user.
pub(crate) fn credentials(url: &str) -> Option<(String, Option<String>)> {
    let userinfo = split(url)?.userinfo?;
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(percent_decode(password))),
        None => (userinfo, None),
    };
    Some((percent_decode(user), password))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_database_and_keeps_the_rest() {
        assert_eq!(
            rewrite(
                "postgres://u:p%40w@db.example:5433/main?sslmode=require",
                "t_1",
                None
            )
            .unwrap(),
            "postgres://u:p%40w@db.example:5433/t_1?sslmode=require"
        );
        assert_eq!(
            rewrite("postgresql://localhost", "t_2", None).unwrap(),
            "postgresql://localhost/t_2"
        );
    }

    #[test]
    fn replaces_host_and_port() {
        assert_eq!(
            rewrite(
                "postgres://app:pw@127.0.0.1:5432/x?sslmode=disable",
                "x",
                Some("127.0.0.1:40000")
            )
            .unwrap(),
            "postgres://app:pw@127.0.0.1:40000/x?sslmode=disable"
        );
        assert_eq!(
            rewrite("postgres://app@[::1]:5432", "y", Some("[::1]:1")).unwrap(),
            "postgres://app@[::1]:1/y"
        );
    }

    #[test]
    fn lists_every_host_and_keeps_the_rest() {
        let hosts: Vec<SocketAddr> = vec![
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
            "[::1]:3".parse().unwrap(),
        ];
        assert_eq!(
            multi_host_url("postgres://u:p@h:5432/db?sslmode=disable", &hosts),
            "postgres://u:p@127.0.0.1:1,127.0.0.1:2,[::1]:3/db?sslmode=disable"
        );
        assert_eq!(
            multi_host_url("postgres://h:5432", &hosts[..1]),
            "postgres://127.0.0.1:1"
        );
        assert_eq!(multi_host_url("host=a", &hosts), "host=a");
    }

    #[test]
    fn reads_user_and_password() {
        assert_eq!(
            credentials("postgres://app:p%40w@h/db"),
            Some(("app".to_owned(), Some("p@w".to_owned())))
        );
        assert_eq!(
            credentials("postgres://app@h/db"),
            Some(("app".to_owned(), None))
        );
        assert_eq!(credentials("postgres://h/db"), None);
        assert_eq!(
            credentials("postgres://a:%4@h"),
            Some(("a".to_owned(), Some("%4".to_owned())))
        );
    }

    #[test]
    fn rejects_text_that_is_not_a_url() {
        assert!(rewrite("host=localhost", "x", None).is_none());
    }
}
