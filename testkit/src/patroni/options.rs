//! [`PatroniOptions`]: the shape and timings of a Patroni cluster the test kit starts.

use std::path::PathBuf;

use sqlx_resilience_runtime::Error;

use crate::Result;
use crate::options::is_setting_name;

/// Options of a Patroni cluster ([`PatroniCluster::start_with`](crate::PatroniCluster::start_with)).
///
/// The timings are Patroni's dynamic configuration, in whole seconds, tightened for tests:
/// a leader whose Patroni stops renewing its lock loses it after `ttl`; each node acts every
/// `loop_wait`; DCS and PostgreSQL calls are retried for up to `retry_timeout`. Patroni asks
/// for `loop_wait + 2 * retry_timeout <= ttl`.
///
/// ```
/// use sqlx_resilience_testkit::PatroniOptions;
///
/// let options = PatroniOptions::new()
///     .nodes(2)
///     .ttl(10)
///     .parameter("max_connections", "150");
/// assert_eq!(options.nodes, 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PatroniOptions {
    /// Patroni nodes, each running one PostgreSQL (default 3; 1 to 5).
    pub nodes: usize,
    /// `ttl`: seconds before a leader lock that is not renewed expires (default 8).
    pub ttl: u32,
    /// `loop_wait`: seconds between two runs of each node's HA loop (default 1).
    pub loop_wait: u32,
    /// `retry_timeout`: seconds DCS and PostgreSQL operations are retried (default 3).
    pub retry_timeout: u32,
    /// `primary_start_timeout`: seconds a crashed primary may take to recover in place before
    /// failing over (default 0: fail over at once when a replica can take over; Patroni's own
    /// default, 300, restarts the primary where it was).
    pub primary_start_timeout: u32,
    /// `maximum_lag_on_failover`: bytes a replica may lag and still be promoted (default 1 MiB).
    pub maximum_lag_on_failover: u64,
    /// `synchronous_mode`: commits wait for a synchronous standby, so a failover loses no
    /// acknowledged write (default off).
    pub synchronous_mode: bool,
    /// PostgreSQL parameters for every node (Patroni's dynamic `postgresql.parameters`),
    /// written after the test kit's own (`fsync = off`), so they win.
    pub parameters: Vec<(String, String)>,
    /// The directory holding `initdb` and `postgres`; `None` (the default) searches like
    /// [`ServerOptions::bindir`](crate::ServerOptions::bindir).
    pub bindir: Option<PathBuf>,
}

impl Default for PatroniOptions {
    fn default() -> Self {
        PatroniOptions {
            nodes: 3,
            ttl: 8,
            loop_wait: 1,
            retry_timeout: 3,
            primary_start_timeout: 0,
            maximum_lag_on_failover: 1024 * 1024,
            synchronous_mode: false,
            parameters: Vec::new(),
            bindir: None,
        }
    }
}

impl PatroniOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the number of nodes.
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// Sets `ttl` (seconds).
    pub fn ttl(mut self, seconds: u32) -> Self {
        self.ttl = seconds;
        self
    }

    /// Sets `loop_wait` (seconds).
    pub fn loop_wait(mut self, seconds: u32) -> Self {
        self.loop_wait = seconds;
        self
    }

    /// Sets `retry_timeout` (seconds).
    pub fn retry_timeout(mut self, seconds: u32) -> Self {
        self.retry_timeout = seconds;
        self
    }

    /// Sets `primary_start_timeout` (seconds).
    pub fn primary_start_timeout(mut self, seconds: u32) -> Self {
        self.primary_start_timeout = seconds;
        self
    }

    /// Sets `maximum_lag_on_failover` (bytes).
    pub fn maximum_lag_on_failover(mut self, bytes: u64) -> Self {
        self.maximum_lag_on_failover = bytes;
        self
    }

    /// Turns `synchronous_mode` on or off.
    pub fn synchronous_mode(mut self, on: bool) -> Self {
        self.synchronous_mode = on;
        self
    }

    /// Adds a PostgreSQL parameter for every node.
    pub fn parameter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameters.push((name.into(), value.into()));
        self
    }

    /// Uses the server binaries in `dir`.
    pub fn bindir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bindir = Some(dir.into());
        self
    }

    pub(crate) fn check(&self) -> Result<()> {
        let invalid = |detail: String, hint: &str| {
            Err(Error::test_kit(
                "start a Patroni cluster",
                detail,
                hint.to_owned(),
            ))
        };
        if !(1..=5).contains(&self.nodes) {
            return invalid(format!("{} nodes asked for", self.nodes), "ask for 1 to 5");
        }
        if self.loop_wait == 0 || self.retry_timeout == 0 {
            return invalid(
                "loop_wait and retry_timeout must be at least 1 second".to_owned(),
                "raise them",
            );
        }
        if self.loop_wait + 2 * self.retry_timeout > self.ttl {
            return invalid(
                format!(
                    "loop_wait ({}) + 2 * retry_timeout ({}) exceeds ttl ({})",
                    self.loop_wait, self.retry_timeout, self.ttl
                ),
                "Patroni needs loop_wait + 2 * retry_timeout <= ttl: raise ttl or lower the others",
            );
        }
        if let Some((name, _)) = self
            .parameters
            .iter()
            .find(|(name, _)| !is_setting_name(name))
        {
            return invalid(
                format!("`{name}` is not a parameter name"),
                "use a postgresql.conf parameter name such as `work_mem`",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_must_fit_patronis_rule() {
        assert!(PatroniOptions::new().check().is_ok());
        let message = PatroniOptions::new()
            .ttl(6)
            .retry_timeout(3)
            .check()
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("loop_wait + 2 * retry_timeout"),
            "{message}"
        );
        assert!(PatroniOptions::new().nodes(0).check().is_err());
        assert!(PatroniOptions::new().parameter("a b", "1").check().is_err());
    }
}
