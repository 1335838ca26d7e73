//! Whether a membership change leaves a cluster that can still commit,
//! checked by the leader from how each member is doing now, before Raft
//! sees the change (etcd's strict reconfiguration check). A learner is
//! promoted only once it answers and holds nearly the whole log, and no
//! change may leave fewer healthy voters than a majority of the old set
//! or of the new one: otherwise one promotion of a dead learner makes a
//! cluster that cannot elect or commit.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

/// How far behind the leader's log a learner may be when promoted.
pub const MAX_PROMOTION_LAG: u64 = 64;

/// How a member is doing, as the leader sees it now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    /// It answered a status call just now.
    pub reachable: bool,
    /// How many log entries it lacks of the leader's; `None` if the leader
    /// has never replicated to it.
    pub behind: Option<u64>,
}

impl Health {
    fn caught_up(self) -> bool {
        self.reachable && self.behind.is_some_and(|lag| lag <= MAX_PROMOTION_LAG)
    }
}

/// The change asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Promote(u64),
    Remove(u64),
}

/// Why a change is refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Unsafe {
    #[error("node {0} is not a member")]
    NotAMember(u64),
    #[error("node {0} is already a voter")]
    AlreadyAVoter(u64),
    #[error(
        "learner {0} does not answer: a voter that cannot vote weakens the quorum. Start it (and check its addresses), wait until `stele cluster status` shows it caught up, then promote it"
    )]
    LearnerUnreachable(u64),
    #[error(
        "learner {id} has {} of the leader's log entries yet; promote it once it is within {MAX_PROMOTION_LAG} entries", match behind { Some(lag) => format!("{lag} fewer than all"), None => "none".into() }
    )]
    LearnerBehind { id: u64, behind: Option<u64> },
    #[error("node {0} is the last voter; a cluster needs one. Add and promote another first")]
    LastVoter(u64),
    #[error(
        "after this change, {healthy} of the {which} {voters} voters would be reachable and caught up, fewer than the {needed} a quorum needs; bring the unreachable voters back first"
    )]
    NoHealthyQuorum {
        which: &'static str,
        voters: usize,
        healthy: usize,
        needed: usize,
    },
}

/// Whether `change` to a membership of `voters` and `learners`, led by
/// `leader`, is safe, given each other member's `health` (a member missing
/// from it counts as unreachable; the leader is healthy).
pub fn check(
    voters: &BTreeSet<u64>,
    learners: &BTreeSet<u64>,
    leader: u64,
    change: Change,
    health: &BTreeMap<u64, Health>,
) -> Result<(), Unsafe> {
    let healthy = |id: &u64| *id == leader || health.get(id).is_some_and(|h| h.caught_up());
    let new_voters: BTreeSet<u64> = match change {
        Change::Promote(id) if voters.contains(&id) => return Err(Unsafe::AlreadyAVoter(id)),
        Change::Promote(id) if !learners.contains(&id) => return Err(Unsafe::NotAMember(id)),
        Change::Promote(id) => {
            match health.get(&id) {
                Some(h) if !h.reachable => return Err(Unsafe::LearnerUnreachable(id)),
                None => return Err(Unsafe::LearnerUnreachable(id)),
                Some(h) if !h.caught_up() => {
                    return Err(Unsafe::LearnerBehind {
                        id,
                        behind: h.behind,
                    });
                }
                Some(_) => {}
            }
            voters.iter().copied().chain([id]).collect()
        }
        Change::Remove(id) if voters.len() == 1 && voters.contains(&id) => {
            return Err(Unsafe::LastVoter(id));
        }
        Change::Remove(id) if !voters.contains(&id) && !learners.contains(&id) => {
            return Err(Unsafe::NotAMember(id));
        }
        // Removing a learner changes no quorum.
        Change::Remove(id) if !voters.contains(&id) => return Ok(()),
        Change::Remove(id) => voters.iter().copied().filter(|v| *v != id).collect(),
    };
    // Raft commits the change under both configurations (joint
    // consensus), so both need a healthy majority.
    for (which, set) in [("current", voters), ("new", &new_voters)] {
        let count = set.iter().filter(|id| healthy(id)).count();
        let needed = set.len() / 2 + 1;
        if count < needed {
            return Err(Unsafe::NoHealthyQuorum {
                which,
                voters: set.len(),
                healthy: count,
                needed,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UP: Health = Health {
        reachable: true,
        behind: Some(0),
    };
    const DOWN: Health = Health {
        reachable: false,
        behind: Some(0),
    };

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    fn health(entries: &[(u64, Health)]) -> BTreeMap<u64, Health> {
        entries.iter().copied().collect()
    }

    #[test]
    fn a_learner_is_promoted_only_once_it_answers_and_has_caught_up() {
        let (voters, learners) = (set(&[1, 2, 3]), set(&[5]));
        let others = [(2, UP), (3, UP)];
        let with = |learner: Health| {
            let mut all = health(&others);
            all.insert(5, learner);
            check(&voters, &learners, 1, Change::Promote(5), &all)
        };
        assert_eq!(with(DOWN), Err(Unsafe::LearnerUnreachable(5)));
        let never = Health {
            reachable: true,
            behind: None,
        };
        assert!(matches!(with(never), Err(Unsafe::LearnerBehind { .. })));
        let behind = Health {
            reachable: true,
            behind: Some(MAX_PROMOTION_LAG + 1),
        };
        assert!(matches!(with(behind), Err(Unsafe::LearnerBehind { .. })));
        assert_eq!(with(UP), Ok(()));
        // Unknown to the leader: unreachable.
        let all = health(&others);
        assert_eq!(
            check(&voters, &learners, 1, Change::Promote(5), &all),
            Err(Unsafe::LearnerUnreachable(5))
        );
        assert_eq!(
            check(&voters, &learners, 1, Change::Promote(2), &all),
            Err(Unsafe::AlreadyAVoter(2))
        );
        assert_eq!(
            check(&voters, &learners, 1, Change::Promote(9), &all),
            Err(Unsafe::NotAMember(9))
        );
    }

    #[test]
    fn no_change_may_leave_fewer_healthy_voters_than_a_quorum() {
        // Two of four voters down: promoting a fifth, healthy one gives 3
        // of 5 healthy, but the current set has only 2 of 4.
        let voters = set(&[1, 2, 3, 4]);
        let all = health(&[(2, UP), (3, DOWN), (4, DOWN), (5, UP)]);
        assert!(matches!(
            check(&voters, &set(&[5]), 1, Change::Promote(5), &all),
            Err(Unsafe::NoHealthyQuorum {
                which: "current",
                ..
            })
        ));
        // One of three down: removing a healthy voter leaves 1 of 2.
        let voters = set(&[1, 2, 3]);
        let all = health(&[(2, UP), (3, DOWN)]);
        assert!(matches!(
            check(&voters, &set(&[]), 1, Change::Remove(2), &all),
            Err(Unsafe::NoHealthyQuorum { which: "new", .. })
        ));
        // Removing the down one leaves 2 of 2.
        assert_eq!(
            check(&voters, &set(&[]), 1, Change::Remove(3), &all),
            Ok(())
        );
    }

    #[test]
    fn the_last_voter_stays_and_a_learner_goes_freely() {
        let all = health(&[(5, DOWN)]);
        assert_eq!(
            check(&set(&[1]), &set(&[5]), 1, Change::Remove(1), &all),
            Err(Unsafe::LastVoter(1))
        );
        assert_eq!(
            check(&set(&[1]), &set(&[5]), 1, Change::Remove(5), &all),
            Ok(())
        );
        assert_eq!(
            check(&set(&[1]), &set(&[]), 1, Change::Remove(7), &all),
            Err(Unsafe::NotAMember(7))
        );
    }
}
