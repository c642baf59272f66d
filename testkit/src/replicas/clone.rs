//! A streaming replica of a throwaway cluster: `pg_basebackup -R` with a replication slot
//! into a cluster directory of its own, then started like any throwaway cluster.

use std::time::{Duration, Instant};

use sqlx_resilience_runtime::Error;

use crate::Result;
use crate::cluster::Cluster;
use crate::command::{run_bounded, server_command};
use crate::error::{SERVER_HINT, scrub};
use crate::options::ServerOptions;
use crate::tools::is_executable;

/// The action of every failure while bringing up a replica.
pub(crate) const ACTION: &str = "start a streaming replica";

/// How long a base backup of a throwaway cluster may take.
const BACKUP_LIMIT: Duration = Duration::from_secs(180);

impl Cluster {
    /// Clones `primary` with `pg_basebackup` (WAL streamed, fast checkpoint, `-R` for
    /// `primary_conninfo` and `standby.signal`, slot `slot` created on the primary) and starts
    /// the copy as a hot standby on a port of its own. Roles and passwords are the primary's.
    pub(crate) fn replica_of(
        primary: &Cluster,
        options: &ServerOptions,
        slot: &str,
    ) -> Result<Cluster> {
        let pg_basebackup = primary.binaries.bindir.join("pg_basebackup");
        if !is_executable(&pg_basebackup) {
            return Err(Error::test_kit(
                ACTION,
                format!("no pg_basebackup in {}", primary.binaries.bindir.display()),
                "install the PostgreSQL server package, which ships pg_basebackup beside \
                 initdb (Debian/Ubuntu: apt-get install postgresql)",
            ));
        }
        let mut replica = Cluster::prepare(
            primary.binaries.clone(),
            primary.run_as.clone(),
            primary.superuser_password.clone(),
            primary.app_password.clone(),
            primary.preload,
        )?;
        let mut cmd = server_command(&pg_basebackup, replica.run_as.as_ref());
        // The password travels in the environment, not on a command line others can read;
        // -R writes it into primary_conninfo, inside the replica's own 0700 data directory.
        cmd.current_dir(&replica.dir)
            .env("PGPASSWORD", &primary.superuser_password)
            .arg("-D")
            .arg(&replica.data)
            .args(["-h", "127.0.0.1", "-p", &primary.port.to_string()])
            .args(["-U", "postgres", "--no-password"])
            .args(["-X", "stream", "-c", "fast", "-R", "-C", "-S", slot]);
        let started = Instant::now();
        let output = run_bounded(&mut cmd, BACKUP_LIMIT).map_err(|e| {
            Error::test_kit(
                ACTION,
                format!("cannot run {}: {e}", pg_basebackup.display()),
                SERVER_HINT,
            )
        })?;
        if !output.status.success() {
            let secrets = [primary.superuser_password.clone()];
            return Err(Error::test_kit(
                ACTION,
                format!(
                    "pg_basebackup exited with {}:\n    {}\n",
                    output.status,
                    scrub(&output.tail(), &secrets)
                ),
                format!(
                    "fix what pg_basebackup reports (the primary needs wal_level = replica and \
                     free max_wal_senders and max_replication_slots){}",
                    replica.reach_hint()
                ),
            ));
        }
        tracing::debug!(elapsed = ?started.elapsed(), slot, "base backup done");
        replica.configure_and_launch(options)?;
        Ok(replica)
    }
}
