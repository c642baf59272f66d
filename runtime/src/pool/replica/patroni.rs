//! Replicas named by a Patroni cluster's REST API.
//!
//! `GET /cluster` on any member's REST API lists every member of the cluster (from Patroni's
//! distributed configuration store, so each member's API gives the same list): its name,
//! role, and the `host` and `port` its PostgreSQL listens on. Every listed member becomes a
//! candidate replica, and the lag monitor decides, by asking each one, which are in recovery
//! and fresh enough, as it does for `replicas = "hosts"`; so a switchover needs no new answer
//! from Patroni to stop reads on the new leader. A member tagged `noloadbalance` is left out,
//! as Patroni's own `/replica` health check leaves it out of load balancing.
//!
//! The question is plain HTTP/1.1 through hyper, one request per connection: `GET /cluster`
//! needs no authentication (Patroni's `restapi.authentication` guards only the endpoints
//! that change the cluster).

use std::time::Duration;

use serde::Deserialize;

/// One REST API endpoint of a Patroni cluster: `http://host:port`, optionally with a path
/// prefix (a proxy in front).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ApiUrl {
    host: String,
    port: u16,
    /// The path prefix, without a trailing `/` (empty for none).
    prefix: String,
}

impl std::fmt::Display for ApiUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "http://{}:{}{}",
            self.authority_host(),
            self.port,
            self.prefix
        )
    }
}

impl std::fmt::Debug for ApiUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl ApiUrl {
    /// Reads `http://host[:port][/prefix]` (port 8008, Patroni's default, when absent); `Err`
    /// says what is wrong and what to write.
    pub(crate) fn parse(text: &str) -> Result<ApiUrl, String> {
        let text = text.trim();
        if text.starts_with("https://") {
            return Err(format!(
                "`{text}`: Patroni's REST API over https is not supported; reach it over plain \
                 http on a private network, or list the replicas' postgres:// URLs"
            ));
        }
        let rest = text.strip_prefix("http://").ok_or_else(|| {
            format!("`{text}` is not a Patroni REST API URL such as http://10.0.0.1:8008")
        })?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(
                "a Patroni REST API URL with a user or password: `GET /cluster` needs no \
                 authentication; remove `user:password@`"
                    .to_owned(),
            );
        }
        if prefix.contains(['?', '#']) {
            return Err(format!(
                "`{text}`: a Patroni REST API URL takes no query or fragment"
            ));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| {
            format!("`{text}`: expected http://host:port, such as http://10.0.0.1:8008")
        })?;
        Ok(ApiUrl {
            host,
            port,
            prefix: prefix.to_owned(),
        })
    }

    /// The host as it goes in a URL or a `Host` header (IPv6 in brackets).
    fn authority_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; port 8008 when absent.
fn split_host_port(authority: &str) -> Option<(String, u16)> {
    const DEFAULT_PORT: u16 = 8008;
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok().filter(|p| *p != 0)?,
        None => DEFAULT_PORT,
    };
    Some((host.to_owned(), port))
}

/// A member of the cluster whose PostgreSQL may serve reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    /// Its name in the cluster.
    pub(crate) name: String,
    /// Where its PostgreSQL listens.
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// `/cluster`'s answer, the parts read here.
#[derive(Deserialize)]
struct Cluster {
    members: Vec<RawMember>,
}

#[derive(Deserialize)]
struct RawMember {
    name: String,
    host: Option<String>,
    port: Option<u16>,
    #[serde(default)]
    tags: serde_json::Map<String, serde_json::Value>,
}

/// Whether a tag's value is true in the forms Patroni accepts (`true`, `on`, `yes`, `1`).
fn truthy(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Number(n) => n.as_i64() == Some(1),
        serde_json::Value::String(s) => {
            matches!(s.to_ascii_lowercase().as_str(), "true" | "on" | "yes" | "1")
        }
        _ => false,
    }
}

/// The members in a `/cluster` answer that may serve reads: those with a host and port and
/// without the `noloadbalance` tag.
pub(crate) fn members_of(body: &[u8]) -> Result<Vec<Member>, String> {
    let cluster: Cluster = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the answer to GET /cluster is not Patroni's cluster JSON ({e}): {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )
    })?;
    Ok(cluster
        .members
        .into_iter()
        .filter(|m| !m.tags.get("noloadbalance").is_some_and(truthy))
        .filter_map(|m| {
            Some(Member {
                host: m.host.filter(|h| !h.is_empty())?,
                port: m.port?,
                name: m.name,
            })
        })
        .collect())
}

/// The members the first of the Patroni REST `apis` to answer lists, as (host, port), each
/// API asked within `limit`; `Err` joins why each failed.
pub(crate) async fn members(
    apis: &[ApiUrl],
    limit: Duration,
) -> Result<Vec<(String, u16)>, String> {
    let mut errors = Vec::new();
    for api in apis {
        match ask(api, limit).await {
            Ok(members) => return Ok(members.into_iter().map(|m| (m.host, m.port)).collect()),
            Err(e) => errors.push(e),
        }
    }
    Err(errors.join("; "))
}

/// Asks `api` for the cluster's members, within `limit`.
pub(crate) async fn ask(api: &ApiUrl, limit: Duration) -> Result<Vec<Member>, String> {
    let body = match tokio::time::timeout(limit, get(api, "/cluster")).await {
        Ok(body) => body?,
        Err(_) => return Err(format!("{api}/cluster gave no answer within {limit:?}")),
    };
    members_of(&body).map_err(|e| format!("{api}: {e}"))
}

/// `GET path` on `api`: the body of a 200 answer.
#[cfg(feature = "patroni")]
async fn get(api: &ApiUrl, path: &str) -> Result<Vec<u8>, String> {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;

    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{api}{path}: {what}: {e}");
    let stream = tokio::net::TcpStream::connect((api.host.as_str(), api.port))
        .await
        .map_err(|e| fail("cannot connect", &e))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| fail("HTTP handshake failed", &e))?;
    let request = hyper::Request::get(format!("{}{path}", api.prefix))
        .header(
            hyper::header::HOST,
            format!("{}:{}", api.authority_host(), api.port),
        )
        .header(hyper::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| fail("cannot build the request", &e))?;
    let exchange = async move {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| fail("the request failed", &e))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| fail("the answer broke off", &e))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "{api}{path} answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ));
        }
        Ok(body.to_vec())
    };
    // The connection is driven beside the exchange; it ends once the sender is dropped.
    let (answer, _) = tokio::join!(exchange, connection);
    answer
}

#[cfg(not(feature = "patroni"))]
async fn get(api: &ApiUrl, _path: &str) -> Result<Vec<u8>, String> {
    Err(format!("{api}: {}", FEATURE_NEEDED))
}

/// Why a runtime built without the `patroni` feature cannot ask Patroni.
pub(crate) const FEATURE_NEEDED: &str = "replicas from Patroni's REST API need sqlx-resilience's `patroni` feature; enable it \
     in Cargo.toml, or list the replicas' postgres:// URLs";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls_read_host_port_and_prefix_and_refuse_what_cannot_work() {
        let a = ApiUrl::parse("http://10.0.0.1:8009").unwrap();
        assert_eq!(
            (a.host.as_str(), a.port, a.prefix.as_str()),
            ("10.0.0.1", 8009, "")
        );
        let b = ApiUrl::parse("http://db1/patroni/").unwrap();
        assert_eq!((b.port, b.prefix.as_str()), (8008, "/patroni"));
        assert_eq!(b.to_string(), "http://db1:8008/patroni");
        let v6 = ApiUrl::parse("http://[::1]:8010").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8010));
        assert_eq!(v6.to_string(), "http://[::1]:8010");
        assert!(
            ApiUrl::parse("https://db1:8008")
                .unwrap_err()
                .contains("https")
        );
        let secret = ApiUrl::parse("http://admin:s3cret@db1:8008").unwrap_err();
        assert!(!secret.contains("s3cret"), "{secret}");
        assert!(ApiUrl::parse("http://db1:0").is_err());
        assert!(ApiUrl::parse("http://:8008").is_err());
        assert!(ApiUrl::parse("http://db1:8008/x?y=1").is_err());
    }

    #[test]
    fn members_come_with_host_and_port_and_noloadbalance_ones_are_left_out() {
        let body = br#"{"members": [
            {"name": "n1", "role": "leader", "state": "running", "host": "127.0.0.1",
             "port": 5432, "api_url": "http://127.0.0.1:8008/patroni", "timeline": 2},
            {"name": "n2", "role": "replica", "state": "streaming", "host": "127.0.0.1",
             "port": 5433, "lag": 0},
            {"name": "n3", "role": "replica", "state": "streaming", "host": "10.0.0.3",
             "port": 5432, "tags": {"noloadbalance": true}},
            {"name": "n4", "role": "replica", "state": "streaming", "host": "10.0.0.4",
             "port": 5432, "tags": {"noloadbalance": "off", "nofailover": true}},
            {"name": "n5", "role": "replica", "state": "stopped"}
        ], "scope": "demo"}"#;
        let members = members_of(body).unwrap();
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["n1", "n2", "n4"]);
        assert_eq!(
            (members[1].host.as_str(), members[1].port),
            ("127.0.0.1", 5433)
        );
        assert!(
            members_of(b"<html>")
                .unwrap_err()
                .contains("not Patroni's cluster JSON")
        );
    }
}
