//! Attacks, mixed into the workload: each builds something the cluster must
//! refuse and records what it built, so the checkers can prove it was never
//! admitted (or, for the snapshot attack, that no node moved backwards).

use std::collections::{BTreeMap, BTreeSet};

use openraft::{BasicNode, Membership};
use rand::Rng;
use stele_ledger::{Approval, Hash, Kind, Signature, Version};
use stele_proto::v1::raft_client::RaftClient;
use stele_proto::v1::{SnapshotChunk, StatusRequest};
use stele_store::{LogId, SnapshotMeta, StoredMembership};

use crate::fixtures;
use crate::workload::{Outcome, Workload};

/// Runs one attack chosen by the seed.
pub async fn attack(load: &mut Workload) {
    match load.rng.gen_range(0..9) {
        0 => replay(load).await,
        1 => fork(load).await,
        2 => forged_signature(load).await,
        3 => under_threshold(load).await,
        4 => double_approval(load).await,
        5 => rollback_digest_differs(load).await,
        6 => rotation_not_co_signed(load).await,
        _ => forged_snapshot(load).await,
    }
}

fn adversarial(load: &Workload, version: &Version, attack: &'static str) {
    load.history
        .lock()
        .adversarial
        .insert(version.hash(), attack);
}

async fn try_admit(
    load: &mut Workload,
    attack: &'static str,
    version: Version,
    bundle: stele_ledger::BundleFiles,
) {
    adversarial(load, &version, attack);
    let (node, _) = load.any_client();
    let outcome = load.propose(node, &version, &bundle, true).await;
    load.settle(attack, node, &outcome).await;
}

/// A committed version sent again: it must answer already_committed and add
/// nothing.
async fn replay(load: &mut Workload) {
    let Some((head, _)) = load.book.head() else {
        return;
    };
    let seq = load.rng.gen_range(1..=head);
    let (version, bundle) = load.book.at(seq).expect("known").clone();
    let (node, _) = load.any_client();
    let outcome = load.propose(node, &version, &bundle, true).await;
    if let Outcome::Committed(got) = outcome
        && got != seq
    {
        load.history
            .event(format!("replay of seq={seq} committed again as seq={got}"));
    }
    load.settle("replay", node, &outcome).await;
}

/// A fork: two M-signed versions on the same parent, sent at once to two
/// nodes; at most one may commit (the no-fork checker holds the chain to
/// that). Then a third child of that parent claims the seq after the winner:
/// it must be refused, its parent is no longer the head.
async fn fork(load: &mut Workload) {
    let parent = load.book.head();
    let keys = load.approvers(2);
    let mut rivals = Vec::new();
    for note in ["fork-a", "fork-b"] {
        let bundle = fixtures::bundle(&mut load.rng);
        let version = load.book.next(&bundle, Kind::Update, None, note, &keys);
        load.book.remember(&version, &bundle);
        let (node, client) = load.any_client();
        rivals.push((node, client, version, bundle));
    }
    let (a, b) = (&rivals[0], &rivals[1]);
    let (reply_a, reply_b) = futures::join!(
        crate::workload::send(&a.1, &a.2, &a.3, true),
        crate::workload::send(&b.1, &b.2, &b.3, true)
    );
    let mut committed = false;
    for ((node, _, version, _), reply) in rivals.iter().zip([reply_a, reply_b]) {
        let outcome = load.outcome(version.hash(), reply);
        committed |= matches!(outcome, Outcome::Committed(_));
        load.settle("fork-rival", *node, &outcome).await;
    }
    if !committed {
        return;
    }
    let bundle = fixtures::bundle(&mut load.rng);
    let mut late = fixtures::header(parent, &bundle, Kind::Update, None, "fork-late");
    late.header.seq += 1;
    let late = fixtures::signed(late, &keys);
    try_admit(load, "fork", late, bundle).await;
}

/// One valid signature and one that is bytes, not a signature.
async fn forged_signature(load: &mut Workload) {
    let bundle = fixtures::bundle(&mut load.rng);
    let keys = load.approvers(2);
    let mut version = load
        .book
        .next(&bundle, Kind::Update, None, "forged", &keys[..1]);
    let mut forged = [0u8; 64];
    load.rng.fill(&mut forged[..]);
    version.add_approval(Approval {
        key: keys[1].public_key(),
        signature: Signature(forged),
    });
    try_admit(load, "forged-signature", version, bundle).await;
}

/// One signature where two are required, sent as commit-only.
async fn under_threshold(load: &mut Workload) {
    let bundle = fixtures::bundle(&mut load.rng);
    let keys = load.approvers(1);
    let version = load.book.next(&bundle, Kind::Update, None, "under", &keys);
    try_admit(load, "under-threshold", version, bundle).await;
}

/// A pending proposal approved again by the key that proposed it: still one
/// approver, so it must stay pending.
async fn double_approval(load: &mut Workload) {
    let bundle = fixtures::bundle(&mut load.rng);
    let keys = load.approvers(1);
    let version = load.book.next(&bundle, Kind::Update, None, "double", &keys);
    adversarial(load, &version, "double-approval");
    let (node, _) = load.any_client();
    let outcome = load.propose(node, &version, &bundle, false).await;
    if !matches!(outcome, Outcome::Pending) {
        load.settle("double-approval-propose", node, &outcome).await;
        return;
    }
    let hash = version.hash();
    let again = keys[0].sign(&hash);
    let outcome = load.approve(hash, &keys[0], again).await;
    load.settle("double-approval", node, &outcome).await;
}

/// A rollback whose bundle is not its target's.
async fn rollback_digest_differs(load: &mut Workload) {
    let Some((head, _)) = load.book.head() else {
        return;
    };
    let to_seq = load.rng.gen_range(1..=head);
    let bundle = fixtures::bundle(&mut load.rng);
    if Some(bundle.digest()) == load.book.bundle_of(to_seq).map(|b| b.digest()) {
        return;
    }
    let keys = load.approvers(2);
    let version = load.book.next(
        &bundle,
        Kind::Rollback { to_seq },
        None,
        "bad-rollback",
        &keys,
    );
    try_admit(load, "rollback-digest-differs", version, bundle).await;
}

/// A rotation signed by the new set only.
async fn rotation_not_co_signed(load: &mut Workload) {
    let Some((head, _)) = load.book.head() else {
        return;
    };
    let trust = load.book.trust().expect("genesis is committed");
    let next = 1 - load.keys.set_of(&trust);
    let bundle = load.book.bundle_of(head).expect("known").clone();
    let version = load.book.next(
        &bundle,
        Kind::Rotate,
        Some(load.keys.trust(next)),
        "rotation",
        &load.keys.set(next)[..2],
    );
    try_admit(load, "rotation-not-co-signed", version, bundle).await;
}

/// A peer on the Raft transport offers a follower a snapshot, under the
/// current leader's vote and a log position just ahead of the follower's:
/// either a shorter prefix of the real chain, or another chain (the real one
/// up to some seq the follower holds, then a different M-signed version).
/// The follower must refuse both: one moves it backwards, the other onto
/// another chain.
async fn forged_snapshot(load: &mut Workload) {
    let (victim, client) = load.any_client();
    let Ok(status) = client.status(StatusRequest { local_only: true }).await else {
        return;
    };
    let (Some(leader), Some(held)) = (
        status.leader,
        status
            .members
            .iter()
            .find(|m| m.id == victim)
            .and_then(|m| m.applied_seq),
    ) else {
        return;
    };
    if leader == victim || held < 2 || load.book.committed() < held {
        return;
    }
    let other_chain = load.rng.gen_bool(0.5);
    let (what, prefix) = if other_chain {
        // The real chain to seq k - 1, then another version at seq k ≤ held.
        let k = load.rng.gen_range(2..=held);
        let mut prefix: Vec<_> = load.book.versions().take(k as usize - 1).cloned().collect();
        let parent = prefix.last().map(|(v, _)| (v.header.seq, v.hash()));
        let trust = prefix
            .iter()
            .rev()
            .find_map(|(v, _)| v.header.trust.clone())
            .expect("genesis declares a trust set");
        let keys = load.keys.set(load.keys.set_of(&trust));
        let bundle = fixtures::bundle(&mut load.rng);
        let fork = fixtures::signed(
            fixtures::header(parent, &bundle, Kind::Update, None, "forged-snapshot"),
            &keys[..2],
        );
        adversarial(load, &fork, "forged-snapshot");
        prefix.push((fork, bundle));
        (format!("another chain forking at seq {k}"), prefix)
    } else {
        let keep = load.rng.gen_range(1..held);
        let prefix = load.book.versions().take(keep as usize).cloned().collect();
        (format!("the chain's first {keep} versions"), prefix)
    };
    let bundles: BTreeMap<Hash, stele_ledger::BundleFiles> = prefix
        .iter()
        .map(|(v, b)| (v.header.bundle_digest, b.clone()))
        .collect();
    let voters: BTreeSet<u64> = status
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| m.id)
        .collect();
    let nodes: BTreeMap<u64, BasicNode> = status
        .members
        .iter()
        .map(|m| {
            (
                m.id,
                BasicNode {
                    addr: m.addr.clone(),
                },
            )
        })
        .collect();
    // Just past the victim's log, so that openraft takes it as news.
    let Some((vote, last)) = load.observed.log_position(victim) else {
        return;
    };
    let log_id = LogId::new(last.leader_id, last.index + 1);
    let meta = SnapshotMeta {
        last_log_id: Some(log_id),
        last_membership: StoredMembership::new(Some(log_id), Membership::new(vec![voters], nodes)),
        snapshot_id: "stele-sim-forged".into(),
    };
    let Ok(data) = stele_store::snapshot::encode(
        prefix.iter().map(|(v, _)| v),
        |digest| Ok(bundles[digest].clone()),
        &[],
        0,
        // Its data agrees with its metadata: the forger is a member that
        // knows the format, and the chain check must stop it.
        &stele_store::snapshot::Position {
            last_log_id: meta.last_log_id,
            last_membership: meta.last_membership.clone(),
        },
    ) else {
        return;
    };
    let chunk = SnapshotChunk {
        header_json: serde_json::to_vec(&(vote, meta)).expect("serializes"),
        data,
    };
    // The Raft transport is no client's to offer: the forger dials it.
    let mut raft = RaftClient::new(crate::net::channel(client.endpoint()).expect("an address"));
    let mut offer = tonic::Request::new(futures::stream::iter([chunk]));
    offer.set_timeout(client.timeout());
    let reply = raft.install_snapshot(offer).await;
    let result = match reply {
        Ok(reply) if reply.get_ref().error.is_empty() => {
            load.history.violation(
                "4 monotonic serving",
                format!("node {victim} holding seq {held} passed a snapshot of {what} to Raft"),
            );
            "passed to Raft".to_string()
        }
        Ok(_) => "refused".to_string(),
        Err(status) => format!("failed {:?}", status.code()),
    };
    load.history.event(format!(
        "forged-snapshot of {what} to node={victim} holding {held}: {result}"
    ));
    load.history.count(format!("forged-snapshot: {result}"));
}
