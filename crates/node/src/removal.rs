//! Whether this node was removed from the cluster. The surest sign is the
//! ledger: a `membership` version it applied no longer lists it, though an
//! earlier member set did. A removed node may not hear of that version (or
//! of Raft's change after it): a voter then hears no more heartbeats, so
//! it campaigns, raising its term, for ever; its peers refuse its votes as
//! from no member (`REMOVED`), and this module counts who did. So the node
//! counts as removed when the ledger it applied drops it, when the
//! membership in its log does not list it, or when most of the other
//! voters of that membership refused it: then it decides nothing, `/readyz` says so, it
//! stands for no election, and its log tells the operator it can be shut
//! down. A leader's message it accepts (it was added again) undoes it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use stele_decision::DecisionPath;
use stele_store::{Machine, NodeId, Published, Raft};
use tokio::sync::watch;

use crate::current_members::{Members, members_of};

/// The peers that refused this node as no member, since it last heard
/// from a leader.
pub struct Removal {
    refused_by: watch::Sender<BTreeSet<NodeId>>,
    /// The highest commit index a leader told this node of.
    leader_commit: AtomicU64,
}

impl Default for Removal {
    fn default() -> Removal {
        Removal {
            refused_by: watch::Sender::new(BTreeSet::new()),
            leader_commit: AtomicU64::new(0),
        }
    }
}

impl Removal {
    /// `peer` refused a message of this node's: no membership it applied
    /// lists this node.
    pub fn refused_by(&self, peer: NodeId) {
        self.refused_by.send_if_modified(|peers| peers.insert(peer));
    }

    /// A leader told this node that it committed up to log index `index`,
    /// of which this node is to hold at least that much.
    pub fn leader_committed(&self, index: u64) {
        self.leader_commit.fetch_max(index, Ordering::Relaxed);
    }

    /// This node accepted a leader's AppendEntries: whatever peers said
    /// before, a leader counts it a member.
    pub fn heard_from_leader(&self) {
        self.refused_by.send_if_modified(|peers| {
            let had = !peers.is_empty();
            peers.clear();
            had
        });
    }
}

/// Whether the ledger `machine` applied removed node `me`: its member set
/// in force does not list it, and an earlier one did. (A node being added
/// applies versions from before the one that lists it: never listed yet,
/// it is not removed.)
pub fn removed_in_ledger(me: NodeId, machine: &Machine) -> bool {
    let (mut listed_before, mut listed_now) = (false, false);
    for set in machine
        .versions()
        .filter_map(|version| version.header.members.as_ref())
    {
        listed_before |= listed_now;
        listed_now = set.get(me).is_some();
    }
    listed_before && !listed_now
}

/// Whether the node has applied all that a leader told it was committed:
/// only then is the ledger it applied the cluster's. A node added again
/// under an id removed before replays the version that removed it while it
/// catches up (by log or snapshot), long after the version adding it again
/// committed, and must not take that replay for its removal. A removed
/// node heard of at least the commit of the version that dropped it.
pub fn caught_up(last_applied: Option<u64>, leader_commit: u64) -> bool {
    last_applied.unwrap_or(0) >= leader_commit
}

/// Whether node `me` is removed: the ledger removed it, `members` (`None`
/// before it has any) does not list it, or more than half of the other
/// voters refused it (only voters answer votes, so only they can).
pub fn is_removed(
    me: NodeId,
    settled: bool,
    in_ledger: bool,
    members: Option<&Members>,
    refused_by: &BTreeSet<NodeId>,
) -> bool {
    if settled && in_ledger {
        return true;
    }
    let Some(members) = members else {
        return false;
    };
    // Like the ledger, a membership this node's log holds while it catches
    // up may be one that an entry it has not received yet undoes.
    if settled && !members.nodes.contains(&me) {
        return true;
    }
    let others: Vec<&NodeId> = members.voters.iter().filter(|id| **id != me).collect();
    let refusing = others.iter().filter(|id| refused_by.contains(id)).count();
    !others.is_empty() && 2 * refusing > others.len()
}

/// Follows the refusals and the membership for as long as the node runs,
/// and acts on a change of verdict. Raft's metrics change with every
/// heartbeat; the verdict is worked out again only when the membership
/// entry or the refusals did.
pub fn spawn_watch(
    me: NodeId,
    removal: Arc<Removal>,
    raft: Raft,
    published: Arc<Published>,
    decisions: Arc<DecisionPath>,
) {
    let mut refusals = removal.refused_by.subscribe();
    let mut metrics = raft.metrics();
    let mut served = published.watch_served();
    tokio::spawn(async move {
        let mut removed = false;
        loop {
            served.borrow_and_update();
            let applied_at = metrics.borrow_and_update().last_applied;
            let settled = caught_up(
                applied_at.map(|id| id.index),
                removal.leader_commit.load(Ordering::Relaxed),
            );
            let in_ledger = removed_in_ledger(me, &published.machine());
            let members = members_of(&metrics.borrow());
            let membership_at = members.as_ref().and_then(|m| m.log_id);
            let verdict = is_removed(
                me,
                settled,
                in_ledger,
                members.as_ref(),
                &refusals.borrow_and_update(),
            );
            // Catching up delays a verdict, and undoes none: a removed node
            // still receiving entries is behind its leader at every message.
            let now = verdict || (removed && !settled);
            if now != removed {
                removed = now;
                decisions.set_removed(removed);
                raft.runtime_config().elect(!removed);
                if removed {
                    tracing::warn!(
                        "node {me} was removed from the cluster (the ledger's member set, its Raft membership, or most of its voters no longer list it): it decides nothing and stands for no election; it can be shut down, or added again with `stele cluster add-learner`"
                    );
                } else {
                    tracing::info!("node {me} is a member again: deciding and voting");
                }
            }
            loop {
                tokio::select! {
                    changed = refusals.changed() => match changed {
                        Ok(()) => break,
                        Err(_) => return,
                    },
                    changed = served.changed() => match changed {
                        Ok(()) => break,
                        Err(_) => return,
                    },
                    changed = metrics.changed() => match changed {
                        Ok(())
                            if *metrics.borrow().membership_config.log_id() != membership_at
                                || metrics.borrow().last_applied != applied_at =>
                        {
                            break;
                        }
                        Ok(()) => {}
                        Err(_) => return,
                    },
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[NodeId]) -> BTreeSet<NodeId> {
        list.iter().copied().collect()
    }

    fn voters(list: &[NodeId], learners: &[NodeId]) -> Members {
        Members {
            nodes: ids(list).union(&ids(learners)).copied().collect(),
            voters: ids(list),
            ..Members::default()
        }
    }

    #[test]
    fn the_ledger_counts_only_once_the_node_applied_what_its_leader_committed() {
        // Replaying versions from before the one that adds it again.
        assert!(!caught_up(Some(12), 40));
        assert!(!caught_up(None, 40));
        assert!(caught_up(Some(40), 40));
        assert!(caught_up(Some(41), 40));
        // Never told of a commit (a leader, or a node alone): its own.
        assert!(caught_up(None, 0));
    }

    #[test]
    fn a_node_is_removed_by_its_own_membership_or_most_of_its_voters() {
        let members = voters(&[1, 2, 3], &[]);
        // The ledger it applied dropped it: removed, whatever Raft says.
        assert!(is_removed(3, true, true, Some(&members), &ids(&[])));
        // Catching up, neither the ledger nor Raft's membership counts; a
        // majority of refusals does.
        assert!(!is_removed(4, false, true, Some(&members), &ids(&[])));
        assert!(is_removed(3, false, false, Some(&members), &ids(&[1, 2])));
        // No membership yet (a new node): never removed.
        assert!(!is_removed(3, true, false, None, &ids(&[1, 2])));
        // Its membership does not list it.
        assert!(is_removed(4, true, false, Some(&members), &ids(&[])));
        // One of two others is no majority; both are.
        assert!(!is_removed(3, true, false, Some(&members), &ids(&[])));
        assert!(!is_removed(3, true, false, Some(&members), &ids(&[1])));
        assert!(is_removed(3, true, false, Some(&members), &ids(&[1, 2])));
        // Refusals from nodes outside the membership do not count.
        assert!(!is_removed(
            3,
            true,
            false,
            Some(&members),
            &ids(&[1, 7, 8])
        ));
        // Five voters: two of four others are not more than half.
        let five = voters(&[1, 2, 3, 4, 5], &[]);
        assert!(!is_removed(5, true, false, Some(&five), &ids(&[1, 2])));
        assert!(is_removed(5, true, false, Some(&five), &ids(&[1, 2, 3])));
        // Learners answer no votes, so they are not counted: the two other
        // voters are enough, whatever the learners.
        let with_learners = voters(&[1, 2, 3], &[4, 5]);
        assert!(is_removed(
            3,
            true,
            false,
            Some(&with_learners),
            &ids(&[1, 2])
        ));
        // Alone: nobody can refuse it.
        assert!(!is_removed(
            1,
            true,
            false,
            Some(&voters(&[1], &[])),
            &ids(&[2])
        ));
    }

    #[test]
    fn hearing_from_a_leader_forgets_the_refusals() {
        let removal = Removal::default();
        let seen = removal.refused_by.subscribe();
        removal.refused_by(1);
        removal.refused_by(2);
        assert_eq!(*seen.borrow(), ids(&[1, 2]));
        removal.heard_from_leader();
        assert!(seen.borrow().is_empty());
    }
}
