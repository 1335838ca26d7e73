//! Whether a node would decide now, and why not.

use std::fmt;

use stele_audit::Unlogged;

use crate::freshness::Stale;

/// Ready: the version the node serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready {
    pub seq: u64,
    pub hash: String,
}

impl fmt::Display for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "serving seq {} ({})", self.seq, self.hash)
    }
}

/// Why a node would not decide now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotReady {
    /// Its decision log cannot take decisions.
    Unlogged(Unlogged),
    NoPolicy,
    /// It cannot show that the version it serves is current.
    Stale {
        served_seq: u64,
        stale: Stale,
    },
    /// It was removed from the cluster.
    Removed,
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotReady::Unlogged(why) => write!(f, "{why}"),
            NotReady::NoPolicy => f.write_str("no policy version yet"),
            NotReady::Removed => f.write_str(
                "removed from the cluster: this node decides nothing and can be shut down",
            ),
            NotReady::Stale { served_seq, stale } => write!(
                f,
                "serving seq {served_seq} but cannot show it is current (last evidence {}, bound {:?})",
                stale
                    .age
                    .map_or("never".to_string(), |age| format!("{age:?} ago")),
                stale.max_staleness
            ),
        }
    }
}
