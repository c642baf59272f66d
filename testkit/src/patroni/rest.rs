//! Patroni's REST API: `GET /cluster` parsed into a [`ClusterStatus`], `GET /leader`, and
//! `POST /switchover`.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use crate::http;

/// How long one REST call may take (a switchover answers once it is done, up to about 20 s).
pub(crate) const CALL_LIMIT: Duration = Duration::from_secs(10);

/// How long `POST /switchover` may take.
pub(crate) const SWITCHOVER_LIMIT: Duration = Duration::from_secs(90);

/// A member's role in `GET /cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemberRole {
    /// Holds the leader lock: the primary.
    Leader,
    /// A replica.
    Replica,
    /// The synchronous standby (with `synchronous_mode`).
    SyncStandby,
    /// The leader of a standby cluster.
    StandbyLeader,
    /// A role this version of the kit does not know, as Patroni spelled it.
    Other(String),
}

impl MemberRole {
    fn parse(text: &str) -> MemberRole {
        match text {
            "leader" | "master" | "primary" => MemberRole::Leader,
            "replica" => MemberRole::Replica,
            "sync_standby" => MemberRole::SyncStandby,
            "standby_leader" => MemberRole::StandbyLeader,
            other => MemberRole::Other(other.to_owned()),
        }
    }
}

/// One member of `GET /cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberStatus {
    /// The member (node) name.
    pub name: String,
    /// Its role.
    pub role: MemberRole,
    /// Its PostgreSQL's state as Patroni reports it (`running`, `starting`, `stopped`,
    /// `crashed`, `creating replica`, `streaming` in newer versions, ...).
    pub state: String,
    /// The PostgreSQL host clients connect to.
    pub host: Option<String>,
    /// The PostgreSQL port.
    pub port: Option<u16>,
    /// The member's REST API URL (`.../patroni`).
    pub api_url: Option<String>,
    /// Its timeline.
    pub timeline: Option<u64>,
    /// Bytes behind the leader as Patroni last saw it (`None` for the leader or when
    /// unknown).
    pub lag: Option<u64>,
}

impl MemberStatus {
    /// Whether this member leads and its PostgreSQL runs.
    pub fn is_running_leader(&self) -> bool {
        self.role == MemberRole::Leader && self.state == "running"
    }
}

/// `GET /cluster`: every member Patroni knows, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStatus {
    /// The members.
    pub members: Vec<MemberStatus>,
    /// Whether the cluster is in maintenance mode (`patronictl pause`).
    pub paused: bool,
}

impl ClusterStatus {
    /// The member holding the leader lock, if any.
    pub fn leader(&self) -> Option<&MemberStatus> {
        self.members.iter().find(|m| m.role == MemberRole::Leader)
    }

    /// The member named `name`.
    pub fn member(&self, name: &str) -> Option<&MemberStatus> {
        self.members.iter().find(|m| m.name == name)
    }

    pub(crate) fn parse(value: &Value) -> Result<ClusterStatus, String> {
        let members = value["members"]
            .as_array()
            .ok_or_else(|| format!("no `members` list in {value}"))?
            .iter()
            .map(|m| MemberStatus {
                name: m["name"].as_str().unwrap_or_default().to_owned(),
                role: MemberRole::parse(m["role"].as_str().unwrap_or_default()),
                state: m["state"].as_str().unwrap_or_default().to_owned(),
                host: m["host"].as_str().map(str::to_owned),
                port: m["port"].as_u64().and_then(|p| u16::try_from(p).ok()),
                api_url: m["api_url"].as_str().map(str::to_owned),
                timeline: m["timeline"].as_u64(),
                lag: m["lag"].as_u64(),
            })
            .collect();
        Ok(ClusterStatus {
            members,
            paused: value["pause"].as_bool().unwrap_or(false),
        })
    }
}

/// `GET /cluster` from the node whose API listens on `api`.
pub(crate) async fn cluster(api: SocketAddr) -> Result<ClusterStatus, String> {
    let response = http::request(api, "GET", "/cluster", None, CALL_LIMIT).await?;
    if response.status != 200 {
        return Err(format!(
            "GET /cluster on {api} answered {}: {}",
            response.status,
            response.body.trim()
        ));
    }
    ClusterStatus::parse(&response.json()?)
}

/// `GET /leader`: whether the node at `api` holds the leader lock (200) or not (503).
pub(crate) async fn is_leader(api: SocketAddr) -> Result<bool, String> {
    let response = http::request(api, "GET", "/leader", None, CALL_LIMIT).await?;
    match response.status {
        200 => Ok(true),
        503 => Ok(false),
        other => Err(format!("GET /leader on {api} answered {other}")),
    }
}

/// `GET /patroni` answers: the node's Patroni runs its REST API.
pub(crate) async fn answers(api: SocketAddr) -> bool {
    http::request(api, "GET", "/patroni", None, CALL_LIMIT)
        .await
        .is_ok_and(|r| r.status == 200)
}

/// `POST /switchover` from `leader` to `candidate` (any healthy replica when `None`), on the
/// node at `api`. Patroni answers once the switchover is done: 200 and the text
/// `Successfully switched over to "<name>"`. Returns that text.
pub(crate) async fn switchover(
    api: SocketAddr,
    leader: &str,
    candidate: Option<&str>,
) -> Result<String, String> {
    let mut body = serde_json::json!({ "leader": leader });
    if let Some(candidate) = candidate {
        body["candidate"] = Value::from(candidate);
    }
    let response = http::request(
        api,
        "POST",
        "/switchover",
        Some(&body.to_string()),
        SWITCHOVER_LIMIT,
    )
    .await?;
    if response.status == 200 {
        Ok(response.body.trim().to_owned())
    } else {
        Err(format!(
            "POST /switchover answered {}: {}",
            response.status,
            response.body.trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_cluster_endpoint() {
        let value: Value = serde_json::from_str(
            r#"{"members": [
                {"name": "node1", "role": "replica", "state": "running", "api_url": "http://127.0.0.1:1/patroni",
                 "host": "127.0.0.1", "port": 25431, "timeline": 2, "lag": 0},
                {"name": "node2", "role": "leader", "state": "running", "host": "127.0.0.1", "port": 25432, "timeline": 2},
                {"name": "node3", "role": "replica", "state": "starting", "lag": "unknown"},
                {"name": "node4", "role": "witness"}
            ]}"#,
        )
        .unwrap();
        let status = ClusterStatus::parse(&value).unwrap();
        assert_eq!(status.leader().map(|m| m.name.as_str()), Some("node2"));
        assert!(status.leader().unwrap().is_running_leader());
        let node1 = status.member("node1").unwrap();
        assert_eq!(
            (node1.port, node1.lag, node1.timeline),
            (Some(25431), Some(0), Some(2))
        );
        assert_eq!(status.member("node3").unwrap().lag, None);
        assert_eq!(
            status.member("node4").unwrap().role,
            MemberRole::Other("witness".into())
        );
        assert!(!status.paused);
        assert!(ClusterStatus::parse(&Value::Null).is_err());
    }
}
