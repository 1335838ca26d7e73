//! The leader makes openraft's membership follow the ledger: the member set
//! of the last committed genesis or `membership` version, which M of the
//! trust set signed. Nothing else changes who runs the cluster once the
//! ledger names its members (the Admin membership calls refuse then).
//!
//! It works in a task of its own, never in apply (which must stay
//! deterministic, and which a blocked membership change would stall), one
//! openraft change at a time, each waiting for the previous one to commit.
//! A leader that dies half-way leaves a membership the next leader's task
//! compares with the same ledger and finishes: a joint configuration is
//! left for the target's voters like any other difference.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::{ChangeMembers, ServerState};
use stele_ledger::{MemberSet, Role};
use stele_store::{MemberAddrs, NodeId};
use tokio::task::JoinHandle;

use crate::state::NodeState;

/// How often the task looks again while it waits (for a learner to catch
/// up, or after a change failed).
const RETRY: Duration = Duration::from_millis(500);

/// The longest one openraft change may take: one that cannot commit (its
/// new voters lost their quorum, or this node was deposed) is given up and
/// planned again from what Raft and the ledger say then.
const STEP_DEADLINE: Duration = Duration::from_secs(30);

/// openraft's membership, as the task compares it with the ledger's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftMembers {
    pub nodes: BTreeMap<NodeId, MemberAddrs>,
    pub voters: BTreeSet<NodeId>,
    /// A joint configuration: a change some leader began.
    pub joint: bool,
}

/// The one openraft change that brings its membership a step closer to
/// the ledger's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nodes the ledger lists and Raft does not: they join as learners.
    AddLearners(BTreeMap<NodeId, MemberAddrs>),
    /// Nodes whose addresses the ledger changed.
    SetAddresses(BTreeMap<NodeId, MemberAddrs>),
    /// Learners to be voters are too far behind: wait.
    WaitForCatchUp(BTreeSet<NodeId>),
    /// Make the ledger's voters Raft's voters (leaving a joint
    /// configuration too); voters no longer listed as voters stay learners
    /// until the next step.
    ReplaceVoters(BTreeSet<NodeId>),
    /// Nodes the ledger no longer lists, learners by now.
    RemoveNodes(BTreeSet<NodeId>),
}

fn addrs(member: &stele_ledger::Member) -> MemberAddrs {
    MemberAddrs {
        addr: member.client.clone(),
        peer_addr: member.peer.clone(),
    }
}

/// The next step from `raft` to `ledger`, or `None` when they agree.
/// `behind` says how many entries each node trails the leader (`None`:
/// not known to have any yet).
pub fn next_step(
    ledger: &MemberSet,
    raft: &RaftMembers,
    behind: &BTreeMap<NodeId, Option<u64>>,
) -> Option<Step> {
    let missing: BTreeMap<NodeId, MemberAddrs> = ledger
        .members()
        .iter()
        .filter(|member| !raft.nodes.contains_key(&member.id))
        .map(|member| (member.id, addrs(member)))
        .collect();
    if !missing.is_empty() {
        return Some(Step::AddLearners(missing));
    }
    let moved: BTreeMap<NodeId, MemberAddrs> = ledger
        .members()
        .iter()
        .filter(|member| raft.nodes.get(&member.id) != Some(&addrs(member)))
        .map(|member| (member.id, addrs(member)))
        .collect();
    if !moved.is_empty() {
        return Some(Step::SetAddresses(moved));
    }
    let voters: BTreeSet<NodeId> = ledger.voter_ids().collect();
    if raft.voters != voters || raft.joint {
        let lagging: BTreeSet<NodeId> = voters
            .difference(&raft.voters)
            .filter(|id| {
                behind
                    .get(id)
                    .copied()
                    .flatten()
                    .is_none_or(|lag| lag > crate::member_set_check::MAX_PROMOTION_LAG)
            })
            .copied()
            .collect();
        // The voters that can vote now: a learner still catching up does
        // not hold back the demotion of a voter the ledger dropped.
        let ready: BTreeSet<NodeId> = voters.difference(&lagging).copied().collect();
        if !ready.is_empty() && (ready != raft.voters || raft.joint) {
            return Some(Step::ReplaceVoters(ready));
        }
        // The voters are as close to the ledger's as they can be now:
        // remove what it dropped (learners by now), then wait.
        return Some(removal(ledger, raft).unwrap_or(Step::WaitForCatchUp(lagging)));
    }
    removal(ledger, raft)
}

/// Removing the nodes Raft has and the ledger no longer lists.
fn removal(ledger: &MemberSet, raft: &RaftMembers) -> Option<Step> {
    let gone: BTreeSet<NodeId> = raft
        .nodes
        .keys()
        .filter(|id| ledger.get(**id).is_none())
        .copied()
        .collect();
    (!gone.is_empty()).then_some(Step::RemoveNodes(gone))
}

/// Whether `ledger` lists `id` as a voter.
pub fn lists_as_voter(ledger: &MemberSet, id: NodeId) -> bool {
    ledger
        .get(id)
        .is_some_and(|member| member.role == Role::Voter)
}

/// Runs the task until the node shuts down.
pub fn spawn(node: Arc<NodeState>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut metrics = node.raft.metrics();
        let mut served = node.published.watch_served();
        let mut last_logged: Option<Step> = None;
        loop {
            let step = match plan(&node) {
                Some(step) => step,
                None => {
                    last_logged = None;
                    tokio::select! {
                        changed = metrics.changed() => if changed.is_err() { return },
                        changed = served.changed() => if changed.is_err() { return },
                    }
                    continue;
                }
            };
            // A new leader may not have applied everything its
            // predecessors committed, the latest membership version
            // included: catch up, then plan again from there.
            if let Err(error) = node.raft.ensure_linearizable().await {
                tracing::debug!(%error, "not planning membership: leadership unconfirmed");
                tokio::time::sleep(RETRY).await;
                continue;
            }
            let Some(step) = plan(&node).filter(|again| *again == step) else {
                continue;
            };
            if last_logged.as_ref() != Some(&step) {
                tracing::info!(?step, "membership follows the ledger");
                last_logged = Some(step.clone());
            }
            match tokio::time::timeout(STEP_DEADLINE, take(&node, step)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, "a membership step failed; trying again");
                }
                Err(_) => tracing::warn!(
                    "a membership step did not commit within {STEP_DEADLINE:?}; planning again"
                ),
            }
            tokio::time::sleep(RETRY).await;
        }
    })
}

/// What this node, if it leads and the ledger names members, should do
/// next.
fn plan(node: &NodeState) -> Option<Step> {
    // Borrowed, not cloned: this runs on every change of the leader's
    // metrics, which is every replication round.
    let watch = node.raft.metrics();
    let metrics = watch.borrow();
    if metrics.state != ServerState::Leader {
        return None;
    }
    #[cfg(stele_sim)]
    if stele_ledger::defects::active(stele_ledger::defects::Defect::IgnoreMemberSet) {
        return None;
    }
    let machine = node.published.machine();
    let ledger = machine.chain().members()?;
    // A leader the ledger no longer lists as a voter leaves the change to
    // the next leader: the voters refuse its messages from now on.
    if !lists_as_voter(ledger, node.id()) {
        return None;
    }
    let membership = metrics.membership_config.membership();
    let raft = RaftMembers {
        nodes: membership
            .nodes()
            .map(|(id, addrs)| (*id, addrs.clone()))
            .collect(),
        voters: membership.voter_ids().collect(),
        joint: membership.get_joint_config().len() > 1,
    };
    let last_index = metrics.last_log_index.unwrap_or(0);
    let behind = metrics
        .replication
        .iter()
        .flatten()
        .map(|(id, matched)| {
            (
                *id,
                matched.map(|log_id| last_index.saturating_sub(log_id.index)),
            )
        })
        .collect();
    next_step(ledger, &raft, &behind)
}

async fn take(node: &NodeState, step: Step) -> Result<(), String> {
    let changes = match step {
        Step::WaitForCatchUp(_) => return Ok(()),
        Step::AddLearners(nodes) => ChangeMembers::AddNodes(nodes),
        Step::SetAddresses(nodes) => ChangeMembers::SetNodes(nodes),
        Step::ReplaceVoters(voters) => ChangeMembers::ReplaceAllVoters(voters),
        Step::RemoveNodes(ids) => ChangeMembers::RemoveNodes(ids),
    };
    // `retain`: a voter the ledger made a learner stays one; one it
    // removed goes in the RemoveNodes step that follows.
    node.raft
        .change_membership(changes, true)
        .await
        .map(|_| ())
        .map_err(|error| error.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use stele_ledger::{Hash, Member};

    /// Node `id` as a member set lists it; its key is `key(id)`.
    pub(crate) fn member(id: u64, role: Role) -> Member {
        Member {
            id,
            role,
            client: format!("10.0.0.{id}:7000"),
            peer: format!("10.0.0.{id}:7100"),
            region: String::new(),
            spki_sha256: key(id),
        }
    }

    pub(crate) fn key(id: u64) -> Hash {
        Hash::of_bytes(&id.to_be_bytes())
    }

    pub(crate) fn ledger(members: &[(u64, Role)]) -> MemberSet {
        MemberSet::new(
            members
                .iter()
                .map(|(id, role)| member(*id, *role))
                .collect(),
        )
        .unwrap()
    }

    fn raft(voters: &[u64], learners: &[u64]) -> RaftMembers {
        RaftMembers {
            nodes: voters
                .iter()
                .chain(learners)
                .map(|id| (*id, addrs(&member(*id, Role::Voter))))
                .collect(),
            voters: voters.iter().copied().collect(),
            joint: false,
        }
    }

    fn caught_up(ids: &[u64]) -> BTreeMap<u64, Option<u64>> {
        ids.iter().map(|id| (*id, Some(0))).collect()
    }

    use Role::{Learner, Voter};

    #[test]
    fn agreeing_memberships_need_nothing() {
        let target = ledger(&[(1, Voter), (2, Voter), (3, Learner)]);
        assert_eq!(
            next_step(&target, &raft(&[1, 2], &[3]), &caught_up(&[2, 3])),
            None
        );
    }

    #[test]
    fn a_new_voter_joins_as_a_learner_catches_up_then_votes() {
        let target = ledger(&[(1, Voter), (2, Voter), (3, Voter), (4, Voter)]);
        let mut now = raft(&[1, 2, 3], &[]);
        let Some(Step::AddLearners(added)) = next_step(&target, &now, &caught_up(&[2, 3])) else {
            panic!("the new node is added first");
        };
        assert_eq!(added.keys().copied().collect::<Vec<_>>(), [4]);
        now.nodes.extend(added);
        // Not yet replicated to, then far behind: it waits.
        let mut behind = caught_up(&[2, 3]);
        assert_eq!(
            next_step(&target, &now, &behind),
            Some(Step::WaitForCatchUp(BTreeSet::from([4])))
        );
        behind.insert(4, Some(crate::member_set_check::MAX_PROMOTION_LAG + 1));
        assert!(matches!(
            next_step(&target, &now, &behind),
            Some(Step::WaitForCatchUp(_))
        ));
        behind.insert(4, Some(3));
        assert_eq!(
            next_step(&target, &now, &behind),
            Some(Step::ReplaceVoters(BTreeSet::from([1, 2, 3, 4])))
        );
    }

    #[test]
    fn a_removed_voter_is_demoted_then_removed() {
        let target = ledger(&[(1, Voter), (2, Voter)]);
        let now = raft(&[1, 2, 3], &[]);
        assert_eq!(
            next_step(&target, &now, &caught_up(&[2, 3])),
            Some(Step::ReplaceVoters(BTreeSet::from([1, 2])))
        );
        let demoted = raft(&[1, 2], &[3]);
        assert_eq!(
            next_step(&target, &demoted, &caught_up(&[2, 3])),
            Some(Step::RemoveNodes(BTreeSet::from([3])))
        );
    }

    #[test]
    fn a_lagging_new_voter_does_not_hold_back_a_demotion() {
        // One version drops voter 3 and makes 4 a voter; 4 is behind.
        let target = ledger(&[(1, Voter), (2, Voter), (4, Voter)]);
        let now = raft(&[1, 2, 3], &[4]);
        let mut behind = caught_up(&[2, 3]);
        behind.insert(4, None);
        assert_eq!(
            next_step(&target, &now, &behind),
            Some(Step::ReplaceVoters(BTreeSet::from([1, 2])))
        );
        let demoted = raft(&[1, 2], &[3, 4]);
        assert_eq!(
            next_step(&target, &demoted, &behind),
            Some(Step::RemoveNodes(BTreeSet::from([3])))
        );
        let removed = raft(&[1, 2], &[4]);
        assert_eq!(
            next_step(&target, &removed, &behind),
            Some(Step::WaitForCatchUp(BTreeSet::from([4])))
        );
    }

    #[test]
    fn a_joint_configuration_left_by_a_dead_leader_is_finished() {
        let target = ledger(&[(1, Voter), (2, Voter), (3, Voter)]);
        let mut half_way = raft(&[1, 2, 3], &[]);
        half_way.joint = true;
        assert_eq!(
            next_step(&target, &half_way, &caught_up(&[2, 3])),
            Some(Step::ReplaceVoters(BTreeSet::from([1, 2, 3])))
        );
    }

    #[test]
    fn new_addresses_are_recorded_and_only_ledger_voters_lead_the_change() {
        let mut moved = member(2, Voter);
        moved.client = "10.9.9.2:7000".into();
        let target = MemberSet::new(vec![member(1, Voter), moved.clone()]).unwrap();
        let Some(Step::SetAddresses(nodes)) =
            next_step(&target, &raft(&[1, 2], &[]), &caught_up(&[2]))
        else {
            panic!("the new address is recorded");
        };
        assert_eq!(nodes[&2].addr, "10.9.9.2:7000");
        assert!(lists_as_voter(&target, 1));
        assert!(!lists_as_voter(&ledger(&[(1, Voter), (2, Learner)]), 2));
        assert!(!lists_as_voter(&target, 9));
    }
}
