//! What kind of server a multi-host pool wants (libpq's `target_session_attrs`), and in which
//! order it tries its hosts (`load_balance_hosts`).

use std::fmt;

/// Which server a multi-host pool connects to, as libpq's `target_session_attrs` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TargetSessionAttrs {
    /// Any server that answers.
    #[default]
    Any,
    /// A server that accepts writes (`transaction_read_only` is off).
    ReadWrite,
    /// A server that is read-only (`transaction_read_only` is on).
    ReadOnly,
    /// A server not in recovery (`pg_is_in_recovery()` is false).
    Primary,
    /// A server in recovery.
    Standby,
    /// A standby if one answers, else any server.
    PreferStandby,
}

impl TargetSessionAttrs {
    /// The values libpq accepts.
    pub const ACCEPTED: &'static str =
        "any, read-write, read-only, primary, standby or prefer-standby";

    /// Parses libpq's spelling.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "any" => Self::Any,
            "read-write" => Self::ReadWrite,
            "read-only" => Self::ReadOnly,
            "primary" => Self::Primary,
            "standby" => Self::Standby,
            "prefer-standby" => Self::PreferStandby,
            _ => return None,
        })
    }

    /// libpq's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Any => "any",
            Self::ReadWrite => "read-write",
            Self::ReadOnly => "read-only",
            Self::Primary => "primary",
            Self::Standby => "standby",
            Self::PreferStandby => "prefer-standby",
        }
    }

    /// Whether a server with this role suits the target on a first pass over the hosts
    /// (`prefer-standby` takes any server only on a second pass).
    pub(crate) fn accepts(self, role: Role) -> bool {
        match self {
            Self::Any => true,
            Self::ReadWrite => !role.read_only,
            Self::ReadOnly => role.read_only,
            Self::Primary => !role.in_recovery,
            Self::Standby | Self::PreferStandby => role.in_recovery,
        }
    }
}

impl fmt::Display for TargetSessionAttrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// In which order a multi-host pool tries its hosts (libpq's `load_balance_hosts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum LoadBalance {
    /// In the order written.
    #[default]
    Disable,
    /// In a random order, drawn again at each discovery.
    Random,
}

impl LoadBalance {
    /// Parses libpq's spelling.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "disable" => Some(Self::Disable),
            "random" => Some(Self::Random),
            _ => None,
        }
    }
}

/// What a server said about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Role {
    pub(crate) in_recovery: bool,
    pub(crate) read_only: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_accept_the_roles_libpq_accepts() {
        let primary = Role {
            in_recovery: false,
            read_only: false,
        };
        let standby = Role {
            in_recovery: true,
            read_only: true,
        };
        let t = TargetSessionAttrs::parse;
        assert!(t("read-write").unwrap().accepts(primary));
        assert!(!t("read-write").unwrap().accepts(standby));
        assert!(t("primary").unwrap().accepts(primary));
        assert!(t("standby").unwrap().accepts(standby));
        assert!(!t("standby").unwrap().accepts(primary));
        assert!(t("any").unwrap().accepts(standby));
        assert_eq!(t("readwrite"), None);
    }
}
