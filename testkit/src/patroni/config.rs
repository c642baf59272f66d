//! The configuration files of a Patroni node and the command line of its etcd.
//!
//! Patroni reads YAML; the file is written as JSON, which YAML parsers (PyYAML included) read
//! as the same mapping, so no YAML writer is needed and every string is escaped correctly.

use std::path::Path;

use serde_json::{Map, json};

use super::options::PatroniOptions;

/// Where one node lives and listens.
pub(crate) struct NodeLayout<'a> {
    pub(crate) name: &'a str,
    pub(crate) node_dir: &'a Path,
    pub(crate) data_dir: &'a Path,
    pub(crate) pg_port: u16,
    pub(crate) api_port: u16,
    pub(crate) etcd_port: u16,
    pub(crate) bindir: &'a Path,
}

/// The passwords Patroni sets and uses.
pub(crate) struct Credentials<'a> {
    pub(crate) superuser: &'a str,
    pub(crate) replication: &'a str,
}

/// The name of the replication role Patroni creates.
pub(crate) const REPLICATION_USER: &str = "replicator";

/// `patroni.yml` of one node.
pub(crate) fn node_config(
    scope: &str,
    node: &NodeLayout<'_>,
    credentials: &Credentials<'_>,
    options: &PatroniOptions,
) -> String {
    let mut parameters = Map::new();
    // Throwaway data: no fsync. full_page_writes stays on: pg_rewind needs it.
    parameters.insert("fsync".into(), json!("off"));
    for (name, value) in &options.parameters {
        parameters.insert(name.clone(), json!(value));
    }
    let node_dir = node.node_dir.to_string_lossy();
    // A socket path longer than the kernel's limit (about 100 bytes) fails the start.
    let socket_dir = if node_dir.len() < 80 { &*node_dir } else { "" };
    let config = json!({
        "scope": scope,
        "namespace": "/sqlx-resilience/",
        "name": node.name,
        "log": { "level": "INFO" },
        "restapi": {
            "listen": format!("127.0.0.1:{}", node.api_port),
            "connect_address": format!("127.0.0.1:{}", node.api_port),
        },
        "etcd3": {
            "hosts": [format!("127.0.0.1:{}", node.etcd_port)],
            "protocol": "http",
        },
        "bootstrap": {
            "dcs": {
                "ttl": options.ttl,
                "loop_wait": options.loop_wait,
                "retry_timeout": options.retry_timeout,
                "primary_start_timeout": options.primary_start_timeout,
                "maximum_lag_on_failover": options.maximum_lag_on_failover,
                "synchronous_mode": options.synchronous_mode,
                "postgresql": {
                    "use_pg_rewind": true,
                    "use_slots": true,
                    "remove_data_directory_on_rewind_failure": true,
                    "remove_data_directory_on_diverged_timelines": true,
                    "parameters": parameters,
                },
            },
            "initdb": [{ "encoding": "UTF8" }, { "locale": "C" }, "no-sync"],
            "pg_hba": [
                "local all all trust",
                "local replication all trust",
                "host all all 127.0.0.1/32 scram-sha-256",
                "host replication all 127.0.0.1/32 scram-sha-256",
            ],
        },
        "postgresql": {
            "listen": format!("127.0.0.1:{}", node.pg_port),
            "connect_address": format!("127.0.0.1:{}", node.pg_port),
            "data_dir": node.data_dir.to_string_lossy(),
            "bin_dir": node.bindir.to_string_lossy(),
            "pgpass": node.node_dir.join("pgpass").to_string_lossy(),
            "authentication": {
                "superuser": { "username": "postgres", "password": credentials.superuser },
                "replication": { "username": REPLICATION_USER, "password": credentials.replication },
            },
            // A spread checkpoint would make every clone wait for it.
            "basebackup": [{ "checkpoint": "fast" }],
            "parameters": {
                "unix_socket_directories": socket_dir,
                "password_encryption": "scram-sha-256",
            },
        },
        // Patroni's watchdog would try /dev/watchdog; tests need none.
        "watchdog": { "mode": "off" },
        "tags": {
            "nofailover": false,
            "noloadbalance": false,
            "clonefrom": false,
            "nosync": false,
        },
    });
    serde_json::to_string_pretty(&config).unwrap_or_default() + "\n"
}

/// etcd's command line: one member, client and peer URLs on loopback, logs at warning level.
pub(crate) fn etcd_args(
    data_dir: &Path,
    client_port: u16,
    peer_port: u16,
    token: &str,
) -> Vec<String> {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    vec![
        "--name".into(),
        "etcd".into(),
        "--data-dir".into(),
        data_dir.to_string_lossy().into_owned(),
        "--listen-client-urls".into(),
        client.clone(),
        "--advertise-client-urls".into(),
        client,
        "--listen-peer-urls".into(),
        peer.clone(),
        "--initial-advertise-peer-urls".into(),
        peer.clone(),
        "--initial-cluster".into(),
        format!("etcd={peer}"),
        "--initial-cluster-state".into(),
        "new".into(),
        "--initial-cluster-token".into(),
        token.into(),
        "--logger".into(),
        "zap".into(),
        "--log-level".into(),
        "warn".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn a_node_config_is_json_with_the_layout_and_timings() {
        let options = PatroniOptions::new().parameter("work_mem", "8MB");
        let text = node_config(
            "scope-1",
            &NodeLayout {
                name: "node2",
                node_dir: Path::new("/tmp/x/node2"),
                data_dir: Path::new("/tmp/x/node2/data"),
                pg_port: 15432,
                api_port: 18008,
                etcd_port: 12379,
                bindir: Path::new("/usr/lib/postgresql/15/bin"),
            },
            &Credentials {
                superuser: "s\"1",
                replication: "r1",
            },
            &options,
        );
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["name"], "node2");
        assert_eq!(value["restapi"]["listen"], "127.0.0.1:18008");
        assert_eq!(value["etcd3"]["hosts"][0], "127.0.0.1:12379");
        assert_eq!(value["postgresql"]["listen"], "127.0.0.1:15432");
        assert_eq!(value["postgresql"]["bin_dir"], "/usr/lib/postgresql/15/bin");
        assert_eq!(
            value["postgresql"]["authentication"]["superuser"]["password"],
            "s\"1"
        );
        let dcs = &value["bootstrap"]["dcs"];
        assert_eq!(
            (dcs["ttl"].as_u64(), dcs["loop_wait"].as_u64()),
            (Some(8), Some(1))
        );
        assert_eq!(dcs["postgresql"]["parameters"]["work_mem"], "8MB");
        assert_eq!(dcs["postgresql"]["parameters"]["fsync"], "off");
    }
}
