//! What a node checks in every Raft message from a peer, and in every reply
//! to its own, before openraft sees it. openraft trusts its peers: a term
//! near `u64::MAX` makes its RaftCore panic on the next election (and the
//! vote is persisted, so it panics again after every restart), and a log id
//! it takes as present is never sent again. These checks keep a message
//! from anyone, a member included, from stopping or freezing a node.
//!
//! Each check is a pure function of who sent the message (the identity its
//! certificate proves), the message, and what this node knows, so that the
//! simulator drives the same checks without TLS.

use openraft::raft::{AppendEntriesRequest, VoteRequest};
use stele_store::{LogId, NodeId, SnapshotMeta, TypeConfig, Vote};
use thiserror::Error;

/// No term above this is ever accepted: far beyond any real cluster's
/// elections, far below where openraft's `term + 1` could wrap.
pub const MAX_TERM: u64 = 1 << 62;
/// The most a message's term may be above the receiver's. A node cut off
/// for a long time still rejoins: its own term is what its peers compare
/// against, and elections add one at a time (2^20 elections at one per
/// 400 ms are four days of continuous failed elections).
pub const MAX_TERM_STEP: u64 = 1 << 20;
/// No log index above this is accepted.
pub const MAX_INDEX: u64 = 1 << 62;

/// Who sent a Raft message, as the transport proved it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// A peer whose certificate names this node id.
    Node(NodeId),
    /// A transport that proves no identity (`--insecure-plaintext`): the
    /// identity checks cannot run, the bounds still do.
    Unproven,
}

/// What a node knows when it checks a message.
#[derive(Clone, Copy, Debug)]
pub struct Local {
    /// The receiver's current term.
    pub term: u64,
}

/// Why a Raft message, or a reply to one, is refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Forged {
    #[error("the message speaks for node {claimed}, but the peer's certificate is node {peer}'s")]
    NotTheSender { claimed: NodeId, peer: NodeId },
    #[error(
        "term {term} is out of bounds (this node is at term {ours}; a peer's term may be at most {MAX_TERM_STEP} above it and never above {MAX_TERM})"
    )]
    TermOutOfBounds { term: u64, ours: u64 },
    #[error("log index {index} is above the bound {MAX_INDEX}")]
    IndexOutOfBounds { index: u64 },
    #[error("log id {log_id} claims a leader later than the vote it came under ({vote})")]
    LogIdAboveVote { log_id: LogId, vote: Vote },
    #[error("log id {log_id} claims term {term} for another leader than that term's ({vote})")]
    LogIdOfAnotherLeader {
        log_id: LogId,
        term: u64,
        vote: Vote,
    },
    #[error("entry {index} does not follow {after}: entries must be consecutive")]
    NotConsecutive { index: u64, after: String },
    #[error(
        "the snapshot ends at index {index}, beyond the highest commit ({committed}) this leader has sent"
    )]
    SnapshotAheadOfCommit { index: u64, committed: String },
}

impl Forged {
    /// The metric label of this refusal.
    pub fn kind(&self) -> &'static str {
        match self {
            Forged::NotTheSender { .. } => "identity",
            Forged::TermOutOfBounds { .. } => "term",
            Forged::IndexOutOfBounds { .. } | Forged::NotConsecutive { .. } => "index",
            Forged::LogIdAboveVote { .. } | Forged::LogIdOfAnotherLeader { .. } => "log_id",
            Forged::SnapshotAheadOfCommit { .. } => "snapshot",
        }
    }
}

/// A term from a peer, against the receiver's.
pub fn check_term(term: u64, ours: u64) -> Result<(), Forged> {
    if term > MAX_TERM || term > ours.saturating_add(MAX_TERM_STEP) {
        return Err(Forged::TermOutOfBounds { term, ours });
    }
    Ok(())
}

fn check_index(index: u64) -> Result<(), Forged> {
    if index > MAX_INDEX {
        return Err(Forged::IndexOutOfBounds { index });
    }
    Ok(())
}

/// The vote a message is sent under: its term within bounds, and its
/// leader (or candidate) the peer that sent it.
fn check_vote(sender: Sender, vote: &Vote, local: Local) -> Result<(), Forged> {
    check_term(vote.leader_id.term, local.term)?;
    let claimed = vote.leader_id.node_id;
    match sender {
        Sender::Node(peer) if peer != claimed => Err(Forged::NotTheSender { claimed, peer }),
        _ => Ok(()),
    }
}

/// A log id a message carries: within bounds, of a term no later than the
/// vote it travels under (no leader holds entries of a later term), and,
/// in the vote's own term, the vote's leader's (one leader per term: an
/// entry of this term under another node's name is forged, and openraft
/// would take the real one at that position as already present).
fn check_log_id(log_id: &LogId, vote: &Vote) -> Result<(), Forged> {
    check_index(log_id.index)?;
    let (entry, under) = (&log_id.leader_id, &vote.leader_id);
    if entry.term > under.term {
        return Err(Forged::LogIdAboveVote {
            log_id: *log_id,
            vote: *vote,
        });
    }
    if entry.term == under.term && entry.node_id != under.node_id {
        return Err(Forged::LogIdOfAnotherLeader {
            log_id: *log_id,
            term: entry.term,
            vote: *vote,
        });
    }
    Ok(())
}

/// An AppendEntries: sent by the leader it names, under bounded terms, with
/// consecutive entries that follow `prev_log_id`.
pub fn check_append(
    sender: Sender,
    rpc: &AppendEntriesRequest<TypeConfig>,
    local: Local,
) -> Result<(), Forged> {
    check_vote(sender, &rpc.vote, local)?;
    for log_id in rpc.prev_log_id.iter().chain(rpc.leader_commit.iter()) {
        check_log_id(log_id, &rpc.vote)?;
    }
    let mut after = rpc.prev_log_id;
    for entry in &rpc.entries {
        check_log_id(&entry.log_id, &rpc.vote)?;
        let expected = after.map_or(Some(0), |prev| prev.index.checked_add(1));
        if Some(entry.log_id.index) != expected || after.is_some_and(|prev| prev > entry.log_id) {
            return Err(Forged::NotConsecutive {
                index: entry.log_id.index,
                after: after.map_or("the start".into(), |prev| prev.to_string()),
            });
        }
        after = Some(entry.log_id);
    }
    Ok(())
}

/// A RequestVote: from the candidate it names, under a bounded term.
pub fn check_vote_request(
    sender: Sender,
    rpc: &VoteRequest<NodeId>,
    local: Local,
) -> Result<(), Forged> {
    check_vote(sender, &rpc.vote, local)?;
    if let Some(last) = &rpc.last_log_id {
        check_log_id(last, &rpc.vote)?;
    }
    Ok(())
}

/// The highest commit a leader has sent this node, under the vote it sent
/// it with: a snapshot from that leader cannot end beyond it, since a
/// leader snapshots only what it applied, and it applies only what it
/// committed.
pub type Committed = Option<(Vote, LogId)>;

/// A snapshot's header: from the leader it names, under a bounded term,
/// ending no later than what that leader said it had committed.
pub fn check_snapshot(
    sender: Sender,
    vote: &Vote,
    meta: &SnapshotMeta,
    committed: &Committed,
    local: Local,
) -> Result<(), Forged> {
    check_vote(sender, vote, local)?;
    let Some(last) = &meta.last_log_id else {
        return Ok(());
    };
    check_log_id(last, vote)?;
    // The deliberate defect drops every check of where a snapshot ends, this
    // bound included, so that the simulator proves its checkers find a
    // node moved backwards.
    #[cfg(stele_sim)]
    if stele_ledger::defects::active(stele_ledger::defects::Defect::SnapshotRegress) {
        return Ok(());
    }
    let bound = committed
        .as_ref()
        .filter(|(under, _)| under == vote)
        .map(|(_, commit)| *commit);
    if bound.is_none_or(|commit| last.index > commit.index) {
        return Err(Forged::SnapshotAheadOfCommit {
            index: last.index,
            committed: bound.map_or("none under this vote".into(), |c| c.to_string()),
        });
    }
    Ok(())
}

/// A vote in a peer's reply (a vote response, a higher vote): its term
/// within bounds of the term this node sent.
pub fn check_reply_vote(vote: &Vote, sent_term: u64) -> Result<(), Forged> {
    check_term(vote.leader_id.term, sent_term)
}

/// A log id in a peer's reply: within bounds.
pub fn check_reply_log_id(log_id: &LogId, sent_term: u64) -> Result<(), Forged> {
    check_index(log_id.index)?;
    check_term(log_id.leader_id.term, sent_term)
}

/// Whether freshness evidence from `sender` counts: only a node that the
/// applied membership lists (`None`: this node has applied none yet, and
/// counts no evidence).
pub fn counts_as_evidence(
    sender: Sender,
    leader: NodeId,
    members: Option<&std::collections::BTreeSet<NodeId>>,
) -> bool {
    let from = match sender {
        Sender::Node(peer) => peer,
        Sender::Unproven => leader,
    };
    members.is_some_and(|members| members.contains(&from))
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};
    use stele_store::Entry;

    use super::*;

    fn vote(term: u64, node: NodeId) -> Vote {
        Vote::new_committed(term, node)
    }

    /// A log id of the leader of `term`: node 1 in these tests.
    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn append(vote: Vote, prev: Option<LogId>, ids: &[LogId]) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote,
            prev_log_id: prev,
            leader_commit: prev,
            entries: ids
                .iter()
                .map(|id| Entry {
                    log_id: *id,
                    payload: EntryPayload::Blank,
                })
                .collect(),
        }
    }

    const LOCAL: Local = Local { term: 7 };

    #[test]
    fn a_message_under_another_nodes_vote_is_refused() {
        let rpc = append(vote(7, 1), Some(log_id(7, 4)), &[log_id(7, 5)]);
        assert_eq!(check_append(Sender::Node(1), &rpc, LOCAL), Ok(()));
        assert_eq!(
            check_append(Sender::Node(2), &rpc, LOCAL),
            Err(Forged::NotTheSender {
                claimed: 1,
                peer: 2
            })
        );
        // Without a proven identity, only the bounds run.
        assert_eq!(check_append(Sender::Unproven, &rpc, LOCAL), Ok(()));
    }

    #[test]
    fn an_entry_of_this_term_under_another_leaders_name_is_refused() {
        // Node 2 leads term 8 and sends node 1's term-7 entries: fine. An
        // entry of term 8 named for node 1 is not node 2's to send.
        let honest = append(vote(8, 2), Some(log_id(7, 4)), &[log_id(7, 5)]);
        assert_eq!(check_append(Sender::Node(2), &honest, LOCAL), Ok(()));
        let forged = append(vote(8, 2), Some(log_id(7, 4)), &[log_id(8, 5)]);
        assert!(matches!(
            check_append(Sender::Unproven, &forged, LOCAL),
            Err(Forged::LogIdOfAnotherLeader { term: 8, .. })
        ));
    }

    #[test]
    fn terms_far_above_the_receivers_or_near_the_top_are_refused() {
        for term in [u64::MAX, MAX_TERM + 1, 7 + MAX_TERM_STEP + 1] {
            let rpc = append(vote(term, 1), None, &[]);
            assert_eq!(
                check_append(Sender::Node(1), &rpc, LOCAL),
                Err(Forged::TermOutOfBounds { term, ours: 7 })
            );
            let request = VoteRequest::new(vote(term, 1), None);
            assert!(check_vote_request(Sender::Node(1), &request, LOCAL).is_err());
            assert!(check_reply_vote(&vote(term, 2), 7).is_err());
        }
        let step = append(vote(7 + MAX_TERM_STEP, 1), None, &[]);
        assert_eq!(check_append(Sender::Node(1), &step, LOCAL), Ok(()));
        // A receiver already near the top cannot be pushed over it.
        let top = Local { term: MAX_TERM };
        assert!(
            check_append(
                Sender::Node(1),
                &append(vote(MAX_TERM + 1, 1), None, &[]),
                top
            )
            .is_err()
        );
    }

    #[test]
    fn log_ids_must_be_bounded_consecutive_and_no_later_than_the_vote() {
        let ahead = append(vote(7, 1), Some(log_id(7, 4)), &[log_id(8, 5)]);
        assert!(matches!(
            check_append(Sender::Node(1), &ahead, LOCAL),
            Err(Forged::LogIdAboveVote { .. })
        ));
        let gap = append(vote(7, 1), Some(log_id(7, 4)), &[log_id(7, 6)]);
        assert!(matches!(
            check_append(Sender::Node(1), &gap, LOCAL),
            Err(Forged::NotConsecutive { index: 6, .. })
        ));
        let huge = append(vote(7, 1), Some(log_id(7, MAX_INDEX + 1)), &[]);
        assert!(matches!(
            check_append(Sender::Node(1), &huge, LOCAL),
            Err(Forged::IndexOutOfBounds { .. })
        ));
        let wraps = append(vote(7, 1), Some(log_id(7, u64::MAX)), &[log_id(7, 0)]);
        assert!(check_append(Sender::Node(1), &wraps, LOCAL).is_err());
        let older_terms = append(
            vote(7, 1),
            None,
            &[log_id(3, 0), log_id(5, 1), log_id(7, 2)],
        );
        assert_eq!(check_append(Sender::Node(1), &older_terms, LOCAL), Ok(()));
    }

    #[test]
    fn a_snapshot_may_not_end_beyond_what_its_leader_committed() {
        let leader = vote(7, 1);
        let meta = |index| SnapshotMeta {
            last_log_id: Some(log_id(7, index)),
            last_membership: Default::default(),
            snapshot_id: "s".into(),
        };
        let committed: Committed = Some((leader, log_id(7, 40)));
        assert_eq!(
            check_snapshot(Sender::Node(1), &leader, &meta(40), &committed, LOCAL),
            Ok(())
        );
        for (index, committed) in [
            (1 << 62, committed),
            (41, committed),
            (40, None),
            (40, Some((vote(6, 1), log_id(6, 50)))),
        ] {
            assert!(
                check_snapshot(Sender::Node(1), &leader, &meta(index), &committed, LOCAL).is_err(),
                "index {index} with {committed:?}"
            );
        }
        assert!(matches!(
            check_snapshot(Sender::Node(2), &leader, &meta(40), &committed, LOCAL),
            Err(Forged::NotTheSender { .. })
        ));
    }

    #[test]
    fn evidence_counts_only_from_applied_members() {
        let members: std::collections::BTreeSet<NodeId> = [1, 2, 3].into();
        assert!(counts_as_evidence(Sender::Node(1), 1, Some(&members)));
        assert!(!counts_as_evidence(Sender::Node(9), 9, Some(&members)));
        assert!(!counts_as_evidence(Sender::Node(1), 1, None));
        assert!(counts_as_evidence(Sender::Unproven, 2, Some(&members)));
    }
}
