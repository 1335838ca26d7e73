//! What the decision path answers: a decision, or why none was made.

use std::fmt;

use stele_audit::Unlogged;
use stele_ledger::Reason;
use stele_policy::{Decision, Described, Query, QueryError};

use crate::freshness::Stale;

/// One question as an adapter read it off its wire: the query, and the
/// entities it describes (AuthZEN `properties`; none over gRPC).
pub struct Question {
    pub query: Query,
    pub described: Vec<Described>,
}

impl From<Query> for Question {
    fn from(query: Query) -> Question {
        Question {
            query,
            described: Vec::new(),
        }
    }
}

/// A decision made, logged and counted.
#[derive(Clone, Debug, PartialEq)]
pub struct Decided {
    pub decision: Decision,
    pub decision_id: String,
}

/// Why no decision was made. Every API answers each of these its own way,
/// in one `match`.
#[derive(Clone, Debug, PartialEq)]
pub enum Undecided {
    /// The node has no policy version yet.
    NoPolicy,
    /// The node cannot show it is current (and does not serve stale, or
    /// the caller could not be told).
    Stale { stale: Stale, served_seq: u64 },
    /// The node did not reach the version the caller asked for in time.
    BehindMinVersion { served_seq: u64, min_version: u64 },
    /// The decision log cannot take the decision: the node must not answer,
    /// and the caller should ask another node.
    Unlogged(Unlogged),
    /// The node was removed from the cluster: it decides nothing, and
    /// the caller should ask a member.
    Removed,
    /// The request cannot be evaluated.
    Invalid(QueryError),
}

impl Undecided {
    /// The stable reason a refusal carries; `None` for a bad request,
    /// which is the caller's to fix.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Undecided::NoPolicy => Some(Reason::NoPolicy),
            Undecided::Stale { .. } => Some(Reason::Stale),
            Undecided::Removed => Some(Reason::Removed),
            Undecided::BehindMinVersion { .. } => Some(Reason::BehindMinVersion),
            Undecided::Unlogged(_) => Some(Reason::DecisionLogUnavailable),
            Undecided::Invalid(_) => None,
        }
    }
}

impl fmt::Display for Undecided {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Undecided::NoPolicy => f.write_str(
                "this node has no policy version yet (the cluster has no genesis, or the node has not caught up)",
            ),
            Undecided::Stale { stale, .. } => {
                let age = match stale.age {
                    Some(age) => format!(
                        "its last evidence of being current is {} old",
                        humantime::format_duration(whole_millis(age))
                    ),
                    None => "it has never heard from a leader with a quorum".into(),
                };
                write!(
                    f,
                    "STALE: this node cannot show it serves current policy ({age}; the bound is {}); ask another node",
                    humantime::format_duration(stale.max_staleness)
                )
            }
            Undecided::BehindMinVersion {
                served_seq,
                min_version,
            } => write!(
                f,
                "this node serves seq {served_seq}, behind the requested min_version {min_version}"
            ),
            Undecided::Unlogged(why) => write!(
                f,
                "{why}; this node refuses decisions it cannot log (ask another node)"
            ),
            Undecided::Removed => f.write_str(
                "REMOVED: this node was removed from the cluster and decides nothing; ask a member",
            ),
            Undecided::Invalid(why) => write!(f, "{why}"),
        }
    }
}

fn whole_millis(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_millis(d.as_millis() as u64)
}
