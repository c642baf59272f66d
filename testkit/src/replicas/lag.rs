//! Replication progress: [`Lsn`]s and [`ReplicationLag`], measured from the primary's current
//! WAL position and the replica's receive and replay positions.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

/// A write-ahead log position (`pg_lsn`), as a byte offset. Displays and parses PostgreSQL's
/// `X/Y` form (`0/3000148`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = String;

    fn from_str(text: &str) -> Result<Lsn, String> {
        let bad = || format!("`{text}` is not an LSN such as 0/3000148");
        let (high, low) = text.trim().split_once('/').ok_or_else(bad)?;
        let high = u32::from_str_radix(high, 16).map_err(|_| bad())?;
        let low = u32::from_str_radix(low, 16).map_err(|_| bad())?;
        Ok(Lsn((u64::from(high) << 32) | u64::from(low)))
    }
}

/// How far a replica is behind its primary, measured once
/// ([`ReplicaSet::lag`](crate::ReplicaSet::lag)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReplicationLag {
    /// The primary's current WAL position (`pg_current_wal_lsn()`).
    pub primary_lsn: Lsn,
    /// The last position the replica received and flushed (`pg_last_wal_receive_lsn()`);
    /// `None` before it received anything by streaming.
    pub receive_lsn: Option<Lsn>,
    /// The last position the replica replayed (`pg_last_wal_replay_lsn()`): what its queries
    /// see.
    pub replay_lsn: Option<Lsn>,
    /// Whether replay is paused (or a pause was requested: `pg_is_wal_replay_paused()`).
    pub replay_paused: bool,
    /// When the last transaction the replica replayed committed on the primary
    /// (`pg_last_xact_replay_timestamp()`); `None` before it replayed any.
    pub last_replayed_commit: Option<SystemTime>,
    /// The replica's clock minus [`ReplicationLag::last_replayed_commit`]. It grows while
    /// replay is behind, and also while the primary commits nothing: it measures staleness
    /// only under a steady stream of writes.
    pub replay_age: Option<Duration>,
}

impl ReplicationLag {
    /// WAL bytes written on the primary and not replayed yet: 0 when the replica has caught
    /// up with the position measured.
    pub fn bytes(&self) -> u64 {
        self.primary_lsn
            .0
            .saturating_sub(self.replay_lsn.map_or(0, |l| l.0))
    }

    /// Whether the replica has replayed everything the primary had written when measured.
    pub fn is_caught_up(&self) -> bool {
        self.bytes() == 0
    }
}

/// Seconds since the epoch (as PostgreSQL's `extract(epoch ...)` gives them) as a time.
pub(crate) fn epoch_seconds(seconds: f64) -> Option<SystemTime> {
    (seconds.is_finite() && seconds >= 0.0)
        .then(|| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_round_trip_in_postgresql_form() {
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn.0, 0x16_B374_D848);
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!("0/0".parse::<Lsn>().unwrap(), Lsn(0));
        assert!("0-1".parse::<Lsn>().is_err());
        assert!("x/1".parse::<Lsn>().is_err());
    }

    #[test]
    fn bytes_behind_never_go_negative() {
        let mut lag = ReplicationLag {
            primary_lsn: Lsn(100),
            receive_lsn: Some(Lsn(100)),
            replay_lsn: Some(Lsn(40)),
            replay_paused: true,
            last_replayed_commit: None,
            replay_age: None,
        };
        assert_eq!(lag.bytes(), 60);
        assert!(!lag.is_caught_up());
        lag.replay_lsn = Some(Lsn(120));
        assert_eq!(lag.bytes(), 0);
        assert!(lag.is_caught_up());
    }
}
