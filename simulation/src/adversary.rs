//! Attacks, mixed into the workload: each builds something the cluster must
//! refuse and records what it built, so the checkers can prove it was never
//! admitted (or, for the snapshot attack, that no node moved backwards).

use std::collections::{BTreeMap, BTreeSet};

use openraft::Membership;
use rand::Rng;
use stele_ledger::{Approval, Hash, Kind, Signature, Version};
use stele_proto::v1::raft_client::RaftClient;
use stele_proto::v1::{SnapshotChunk, StatusRequest};
use stele_store::{LogId, MemberAddrs, SnapshotMeta, StoredMembership};

use crate::fixtures;
use crate::workload::{Outcome, Workload};

/// Runs one attack chosen by the seed.
pub async fn attack(load: &mut Workload) {
    match load.rng.gen_range(0..13) {
        0 => replay(load).await,
        1 => fork(load).await,
        2 => forged_signature(load).await,
        3 => under_threshold(load).await,
        4 => double_approval(load).await,
        5 => rollback_digest_differs(load).await,
        6 => rotation_not_co_signed(load).await,
        7 | 8 => forged_raft(load).await,
        9 | 10 => forged_snapshot(load).await,
        _ => unapproved_membership(load).await,
    }
}

/// Marks a request as sent with member `node`'s stolen certificate (see
/// `stele-node`'s Raft service: simulation builds only).
pub fn stolen<T>(request: &mut tonic::Request<T>, node: u64) {
    request.metadata_mut().insert(
        "x-stele-sim-stolen-node",
        node.to_string().parse().expect("digits"),
    );
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

/// A membership version that would make an outsider a voter, signed by
/// nobody, by one approver of the two needed, or by two keys outside the
/// trust set in force: membership must not change (the checkers prove it
/// was never admitted, and that Raft's membership is the ledger's).
async fn unapproved_membership(load: &mut Workload) {
    let Some((head, _)) = load.book.head() else {
        return;
    };
    let Some(set) = load.book.members() else {
        return;
    };
    let mut members = set.members().to_vec();
    let outsider = 9;
    members.push(fixtures::member(outsider, stele_ledger::Role::Voter));
    let new = stele_ledger::MemberSet::new(members).expect("a valid member set");
    let bundle = load.book.bundle_of(head).expect("known").clone();
    let trust = load.book.trust().expect("genesis is committed");
    let mut other = load.keys.set(1 - load.keys.set_of(&trust));
    other.truncate(2);
    let (keys, attack) = match load.rng.gen_range(0..3) {
        0 => (Vec::new(), "unsigned-membership"),
        1 => (load.approvers(1), "under-threshold-membership"),
        _ => (other, "outsider-membership"),
    };
    let mut version = load.book.next(&bundle, Kind::Membership, None, attack, &[]);
    version.header = version.header.listing(new);
    let version = fixtures::signed(version, &keys);
    try_admit(load, attack, version, bundle).await;
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
    let nodes: BTreeMap<u64, MemberAddrs> = status
        .members
        .iter()
        .map(|m| {
            (
                m.id,
                MemberAddrs {
                    addr: m.addr.clone(),
                    peer_addr: m.peer_addr.clone(),
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
    // The Raft transport is no client's to offer: the forger dials the
    // peer port, holding the leader's stolen certificate.
    let reply = offer_snapshot(victim, leader, chunk, client.timeout()).await;
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

/// What a member whose certificate was stolen sends on the Raft transport,
/// and what the Raft guard must refuse before openraft sees it: a term over
/// the bound (openraft's term would wrap at the next election), the
/// leader's vote from another member's certificate, an entry of the
/// leader's term under another member's vote (openraft would take the real
/// entry at that position as present), a snapshot ending far past anything
/// committed. Also an age near 2^64 under the leader's own certificate:
/// accepted, and no evidence (the checkers see a node stale for an hour).
async fn forged_raft(load: &mut Workload) {
    use openraft::raft::AppendEntriesRequest;
    use openraft::{CommittedLeaderId, EntryPayload};
    use stele_store::{Entry, TypeConfig, Vote};
    let (victim, client) = load.any_client();
    let Ok(status) = client.status(StatusRequest { local_only: true }).await else {
        return;
    };
    let Some(leader) = status.leader.filter(|l| *l != victim) else {
        return;
    };
    let Some((vote, last)) = load.observed.log_position(victim) else {
        return;
    };
    let term = vote.leader_id().get_term();
    let members: Vec<u64> = load.current_members().collect();
    let Some(&thief) = members.iter().find(|m| **m != leader && **m != victim) else {
        return;
    };
    let next = LogId::new(CommittedLeaderId::new(term, leader), last.index + 1);
    let heartbeat = |vote: Vote| AppendEntriesRequest::<TypeConfig> {
        vote,
        prev_log_id: None,
        leader_commit: None,
        entries: Vec::new(),
    };
    let kind = load.rng.gen_range(0..5);
    let (what, sender, rpc, age) = match kind {
        0 => (
            "a term over the bound",
            thief,
            heartbeat(Vote::new_committed(
                u64::MAX - load.rng.gen_range(0..2),
                thief,
            )),
            None,
        ),
        1 => {
            let mut rpc = heartbeat(vote);
            rpc.prev_log_id = Some(last);
            rpc.entries = vec![Entry {
                log_id: next,
                payload: EntryPayload::Blank,
            }];
            ("the leader's vote from another member", thief, rpc, None)
        }
        2 => {
            let mut rpc = heartbeat(Vote::new_committed(term, thief));
            rpc.prev_log_id = Some(last);
            rpc.entries = vec![Entry {
                log_id: next,
                payload: EntryPayload::Blank,
            }];
            (
                "an entry of the leader's term under another vote",
                thief,
                rpc,
                None,
            )
        }
        3 => (
            "an age near 2^64",
            leader,
            heartbeat(vote),
            Some(u64::MAX - 3_600_000),
        ),
        _ => {
            forged_snapshot_position(load, victim, leader, vote, last).await;
            return;
        }
    };
    let mut raft =
        RaftClient::new(crate::net::channel(&crate::net::peer_addr(victim)).expect("an address"));
    let mut request = tonic::Request::new(stele_proto::v1::RaftRequest {
        json: serde_json::to_vec(&rpc).expect("serializes"),
        quorum_ack_age_ms: age,
        ..Default::default()
    });
    request.set_timeout(client.timeout());
    stolen(&mut request, sender);
    let reply = raft.append_entries(request).await;
    let refused = match &reply {
        Err(status) => !matches!(
            status.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Unavailable | tonic::Code::Cancelled
        ),
        Ok(_) => false,
    };
    let must_refuse = kind != 3;
    if must_refuse && reply.is_ok() {
        load.history.violation(
            "6 raft guard",
            format!("node {victim} passed {what} (sent as node {sender}) to Raft"),
        );
    }
    let result = match (&reply, refused) {
        (Ok(_), _) => "accepted",
        (Err(_), true) => "refused",
        (Err(_), false) => "not delivered",
    };
    load.history.event(format!(
        "forged-raft {what} to node={victim} as node={sender}: {result}"
    ));
    load.history.count(format!("forged-raft {what}: {result}"));
}

/// A snapshot under the leader's vote (its certificate stolen) whose
/// metadata claims a position far past anything committed, its data
/// agreeing: the commit bound refuses it.
async fn forged_snapshot_position(
    load: &mut Workload,
    victim: u64,
    leader: u64,
    vote: stele_store::Vote,
    last: LogId,
) {
    let prefix: Vec<_> = load.book.versions().cloned().collect();
    if prefix.is_empty() {
        return;
    }
    let bundles: BTreeMap<Hash, stele_ledger::BundleFiles> = prefix
        .iter()
        .map(|(v, b)| (v.header.bundle_digest, b.clone()))
        .collect();
    let log_id = LogId::new(last.leader_id, 1 << 40);
    let position = stele_store::snapshot::Position {
        last_log_id: Some(log_id),
        last_membership: Default::default(),
    };
    let Ok(data) = stele_store::snapshot::encode(
        prefix.iter().map(|(v, _)| v),
        |digest| Ok(bundles[digest].clone()),
        &[],
        0,
        &position,
    ) else {
        return;
    };
    let meta = SnapshotMeta {
        last_log_id: Some(log_id),
        last_membership: Default::default(),
        snapshot_id: "stele-sim-far-ahead".into(),
    };
    let chunk = SnapshotChunk {
        header_json: serde_json::to_vec(&(vote, meta)).expect("serializes"),
        data,
    };
    let reply = offer_snapshot(victim, leader, chunk, load.client(victim).timeout()).await;
    if let Ok(reply) = &reply
        && reply.get_ref().error.is_empty()
    {
        load.history.violation(
            "6 raft guard",
            format!("node {victim} passed a snapshot ending at index 2^40 to Raft"),
        );
    }
    let result = if reply.is_ok() { "answered" } else { "refused" };
    load.history
        .count(format!("forged-raft a snapshot far ahead: {result}"));
}

/// Offers `chunk` as a whole snapshot to `victim`'s peer port, with member
/// `holder`'s stolen certificate.
async fn offer_snapshot(
    victim: u64,
    holder: u64,
    chunk: SnapshotChunk,
    timeout: std::time::Duration,
) -> Result<tonic::Response<stele_proto::v1::RaftReply>, tonic::Status> {
    let mut raft =
        RaftClient::new(crate::net::channel(&crate::net::peer_addr(victim)).expect("an address"));
    let mut offer = tonic::Request::new(futures::stream::iter([chunk]));
    offer.set_timeout(timeout);
    stolen(&mut offer, holder);
    raft.install_snapshot(offer).await
}
