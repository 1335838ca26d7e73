//! Who the members are, as this node's log has it: the latest membership
//! entry, which openraft acts on before it commits. One reading for every
//! module that asks (access checks, the Raft guard, removal).

use std::collections::BTreeSet;

use stele_store::{LogId, MemberAddrs, NodeId};

type Metrics = openraft::RaftMetrics<NodeId, MemberAddrs>;

/// A membership, by node id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    /// Voters and learners.
    pub nodes: BTreeSet<NodeId>,
    pub voters: BTreeSet<NodeId>,
    /// The log entry that set it.
    pub log_id: Option<LogId>,
}

/// The membership `metrics` reports, `None` before there is one.
pub fn members_of(metrics: &Metrics) -> Option<Members> {
    let config = &metrics.membership_config;
    let membership = config.membership();
    config.log_id().is_some().then(|| Members {
        nodes: membership.nodes().map(|(id, _)| *id).collect(),
        voters: membership.voter_ids().collect(),
        log_id: *config.log_id(),
    })
}

/// Whether the membership lists `id`, without building any set (it is
/// asked on every call from a node); `None` before there is one.
pub fn lists(metrics: &Metrics, id: NodeId) -> Option<bool> {
    let config = &metrics.membership_config;
    config
        .log_id()
        .is_some()
        .then(|| config.membership().get_node(&id).is_some())
}
