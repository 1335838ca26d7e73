//! Before a `membership` version commits, the leader checks that the
//! cluster can run on the member set it declares. Once it commits, a
//! leader's or candidate's message counts only from a listed voter holding
//! its listed key: a set whose fingerprints match no running node (a wrong
//! `--cert`) would have every node refuse every leader, for good. So a
//! majority of the new voters must answer now and hold the keys listed for
//! them; a voter that does not vote today must answer and have caught up
//! (it is promoted by this change); and the voters of today must keep a
//! healthy majority too (Raft commits the change under both, joint
//! consensus). Checked when the approval that reaches M arrives, not in
//! apply, which must stay deterministic.

use std::collections::{BTreeMap, BTreeSet};

use stele_ledger::MemberSet;
use thiserror::Error;

use crate::state::NodeState;

/// How far behind the leader's log a node may be when it becomes a voter.
pub const MAX_PROMOTION_LAG: u64 = 64;

/// What the leader learnt of one listed node just now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// It answered a status call.
    pub reachable: bool,
    /// The SHA-256 of its TLS public key, as it reported it (hex; empty
    /// without TLS).
    pub spki_sha256: String,
    /// How many log entries it lacks of the leader's (`None`: never
    /// replicated to).
    pub behind: Option<u64>,
}

/// Why the cluster could not run on a member set.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Unrunnable {
    #[error(
        "the member set lists key {listed} for node {id}, this node, which holds {holds}: once committed, no node would follow it. Give node {id}'s own certificate with --cert"
    )]
    OwnKey {
        id: u64,
        listed: String,
        holds: String,
    },
    #[error(
        "{healthy} of the {voters} voters of the new member set answer and hold the key it lists for them, fewer than the {needed} a quorum needs ({problems}): once committed, no leader could be elected. Check each --cert and that the nodes run"
    )]
    NewVoters {
        voters: usize,
        healthy: usize,
        needed: usize,
        problems: String,
    },
    #[error(
        "node {id} would become a voter but {why}: start it, wait until `stele cluster status` shows it caught up (within {MAX_PROMOTION_LAG} entries), then propose again"
    )]
    NotReadyToVote { id: u64, why: &'static str },
    #[error(
        "{healthy} of today's {voters} voters answer, fewer than the {needed} a quorum needs: Raft commits a change under today's voters too. Bring them back first"
    )]
    CurrentVoters {
        voters: usize,
        healthy: usize,
        needed: usize,
    },
    #[error(
        "Raft here started with voters {raft}, and this would be the cluster's first version with {listed}: the first version a cluster commits lists the voters it was started with (`cluster init` sends the genesis or ledger it bootstrapped from; to continue a chain, `cluster init --ledger`)"
    )]
    NotRaftsVoters { raft: String, listed: String },
}

/// The first version(s) a cluster commits (a genesis, or a restore) must
/// list the voters Raft was started with, at the addresses it knows them
/// by: otherwise, between the bootstrap and that commit, an operator could
/// commit another first version, an old genesis of the chain a restore
/// continues (a rollback), or one that names no members at all.
pub fn first_lists_raft_voters(
    raft: &openraft::Membership<u64, stele_store::MemberAddrs>,
    first: Option<&MemberSet>,
) -> Result<(), Unrunnable> {
    let started: BTreeMap<u64, (&str, &str)> = raft
        .voter_ids()
        .filter_map(|id| Some((id, raft.get_node(&id)?)))
        .map(|(id, addrs)| (id, (addrs.addr.as_str(), addrs.peer_addr.as_str())))
        .collect();
    let listed: BTreeMap<u64, (&str, &str)> = first
        .map(|set| {
            set.voter_ids()
                .filter_map(|id| set.get(id))
                .map(|m| (m.id, (m.client.as_str(), m.peer.as_str())))
                .collect()
        })
        .unwrap_or_default();
    if started == listed {
        return Ok(());
    }
    let ids = |set: &BTreeMap<u64, (&str, &str)>| format!("{:?}", set.keys().collect::<Vec<_>>());
    Err(Unrunnable::NotRaftsVoters {
        raft: ids(&started),
        listed: match first {
            Some(_) => format!("voters {}", ids(&listed)),
            None => "no member set".into(),
        },
    })
}

/// Whether `set` lists node `id` (whose own key is `own_key`, `None`
/// without TLS) with the key it holds; a set that does not list it at all
/// is not judged here.
pub fn own_key_listed(set: &MemberSet, id: u64, own_key: Option<&str>) -> Result<(), Unrunnable> {
    match (own_key, set.get(id)) {
        (Some(holds), Some(listed)) if listed.spki_sha256.to_hex() != holds => {
            Err(Unrunnable::OwnKey {
                id,
                listed: listed.spki_sha256.to_hex(),
                holds: holds.to_string(),
            })
        }
        _ => Ok(()),
    }
}

/// Whether `new` is a set the cluster can run on, led by `leader` (whose
/// own key is `own_key`, `None` without TLS, when keys are not checked),
/// with today's Raft `voters` and what each listed node `reports`.
pub fn verdict(
    new: &MemberSet,
    voters: &BTreeSet<u64>,
    leader: u64,
    own_key: Option<&str>,
    reports: &BTreeMap<u64, Report>,
) -> Result<(), Unrunnable> {
    let keyed = own_key.is_some();
    own_key_listed(new, leader, own_key)?;
    let report = |id: u64| reports.get(&id).cloned().unwrap_or_default();
    let mut problems = Vec::new();
    let mut healthy = 0;
    let new_voters: Vec<u64> = new.voter_ids().collect();
    for id in &new_voters {
        if *id == leader {
            healthy += 1;
            continue;
        }
        let report = report(*id);
        let listed = new.get(*id).map(|m| m.spki_sha256.to_hex());
        if !report.reachable {
            problems.push(format!("node {id} does not answer"));
        } else if keyed && Some(&report.spki_sha256) != listed.as_ref() {
            problems.push(format!(
                "node {id} holds key {}, not the listed one",
                report.spki_sha256
            ));
        } else {
            healthy += 1;
        }
        if !voters.contains(id) {
            let caught_up = report.behind.is_some_and(|lag| lag <= MAX_PROMOTION_LAG);
            let why = match (report.reachable, caught_up) {
                (false, _) => Some("does not answer"),
                (true, false) => Some("has not caught up with the leader's log"),
                (true, true) => None,
            };
            if let Some(why) = why {
                return Err(Unrunnable::NotReadyToVote { id: *id, why });
            }
        }
    }
    let needed = new_voters.len() / 2 + 1;
    if healthy < needed {
        return Err(Unrunnable::NewVoters {
            voters: new_voters.len(),
            healthy,
            needed,
            problems: problems.join("; "),
        });
    }
    let current_healthy = voters
        .iter()
        .filter(|id| **id == leader || report(**id).reachable)
        .count();
    let needed = voters.len() / 2 + 1;
    if !voters.is_empty() && current_healthy < needed {
        return Err(Unrunnable::CurrentVoters {
            voters: voters.len(),
            healthy: current_healthy,
            needed,
        });
    }
    Ok(())
}

/// The key `member` holds, as it reports it now (hex; empty without TLS),
/// or `None` if it does not answer.
pub async fn key_of(node: &NodeState, member: &stele_ledger::Member) -> Option<String> {
    let status = node.own_status_of(member.id, &member.client).await?;
    Some(status.spki_sha256)
}

/// Probes every node `new` lists (but this one) and judges it.
pub async fn check(node: &NodeState, new: &MemberSet) -> Result<(), Unrunnable> {
    let metrics = node.raft.metrics().borrow().clone();
    let last_index = metrics.last_log_index.unwrap_or(0);
    let matched = metrics.replication.clone().unwrap_or_default();
    let voters: BTreeSet<u64> = metrics.membership_config.membership().voter_ids().collect();
    let asks = new
        .members()
        .iter()
        .filter(|member| member.id != node.id())
        .map(|member| {
            let behind = matched
                .get(&member.id)
                .copied()
                .flatten()
                .map(|log_id| last_index.saturating_sub(log_id.index));
            async move {
                let key = key_of(node, member).await;
                let report = Report {
                    reachable: key.is_some(),
                    spki_sha256: key.unwrap_or_default(),
                    behind,
                };
                (member.id, report)
            }
        });
    let reports = futures::future::join_all(asks).await.into_iter().collect();
    verdict(
        new,
        &voters,
        node.id(),
        node.spki_sha256.as_deref(),
        &reports,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::tests::{key, ledger as set};
    use stele_ledger::Role;

    fn up(id: u64) -> Report {
        Report {
            reachable: true,
            spki_sha256: key(id).to_hex(),
            behind: Some(0),
        }
    }

    fn reports(list: &[(u64, Report)]) -> BTreeMap<u64, Report> {
        list.iter().cloned().collect()
    }

    fn ids(list: &[u64]) -> BTreeSet<u64> {
        list.iter().copied().collect()
    }

    use Role::{Learner, Voter};

    #[test]
    fn a_set_whose_voters_answer_with_their_listed_keys_is_runnable() {
        let new = set(&[(1, Voter), (2, Voter), (3, Voter), (4, Learner)]);
        let all = reports(&[(2, up(2)), (3, up(3))]);
        let own = key(1).to_hex();
        assert_eq!(verdict(&new, &ids(&[1, 2, 3]), 1, Some(&own), &all), Ok(()));
        // Without TLS there are no keys to compare.
        let unkeyed = reports(&[
            (
                2,
                Report {
                    spki_sha256: String::new(),
                    ..up(2)
                },
            ),
            (3, up(3)),
        ]);
        assert_eq!(verdict(&new, &ids(&[1, 2, 3]), 1, None, &unkeyed), Ok(()));
    }

    #[test]
    fn wrong_keys_for_most_voters_or_for_the_leader_are_refused() {
        let new = set(&[(1, Voter), (2, Voter), (3, Voter)]);
        let own = key(1).to_hex();
        let wrong = |id| Report {
            spki_sha256: key(id + 100).to_hex(),
            ..up(id)
        };
        // One wrong of three: two still hold their keys.
        let one = reports(&[(2, wrong(2)), (3, up(3))]);
        assert_eq!(verdict(&new, &ids(&[1, 2, 3]), 1, Some(&own), &one), Ok(()));
        let two = reports(&[(2, wrong(2)), (3, wrong(3))]);
        assert!(matches!(
            verdict(&new, &ids(&[1, 2, 3]), 1, Some(&own), &two),
            Err(Unrunnable::NewVoters {
                healthy: 1,
                needed: 2,
                ..
            })
        ));
        let all = reports(&[(2, up(2)), (3, up(3))]);
        let not_mine = key(9).to_hex();
        assert!(matches!(
            verdict(&new, &ids(&[1, 2, 3]), 1, Some(&not_mine), &all),
            Err(Unrunnable::OwnKey { id: 1, .. })
        ));
    }

    #[test]
    fn a_new_voter_must_answer_and_have_caught_up() {
        let new = set(&[(1, Voter), (2, Voter), (3, Voter), (4, Voter)]);
        let own = key(1).to_hex();
        let behind = Report {
            behind: Some(MAX_PROMOTION_LAG + 1),
            ..up(4)
        };
        for four in [
            Report::default(),
            behind,
            Report {
                behind: None,
                ..up(4)
            },
        ] {
            let all = reports(&[(2, up(2)), (3, up(3)), (4, four)]);
            assert!(matches!(
                verdict(&new, &ids(&[1, 2, 3]), 1, Some(&own), &all),
                Err(Unrunnable::NotReadyToVote { id: 4, .. })
            ));
        }
        let all = reports(&[(2, up(2)), (3, up(3)), (4, up(4))]);
        assert_eq!(verdict(&new, &ids(&[1, 2, 3]), 1, Some(&own), &all), Ok(()));
    }

    #[test]
    fn todays_voters_must_keep_a_quorum_too() {
        // Removing 2 and 3 while both are down: the new set {1} is fine,
        // but the change must commit under {1, 2, 3}.
        let new = set(&[(1, Voter)]);
        let own = key(1).to_hex();
        assert!(matches!(
            verdict(&new, &ids(&[1, 2, 3]), 1, Some(&own), &reports(&[])),
            Err(Unrunnable::CurrentVoters {
                healthy: 1,
                needed: 2,
                ..
            })
        ));
        let one_up = reports(&[(2, up(2))]);
        assert_eq!(
            verdict(&new, &ids(&[1, 2, 3]), 1, Some(&own), &one_up),
            Ok(())
        );
    }
}
