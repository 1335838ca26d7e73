//! The policy state machine: commits, pending proposals, approvals,
//! withdrawals, superseded proposals, expiry, and determinism (the same requests give the same answers on every node).

use std::path::Path;

use stele_ledger::{
    BundleFiles, Hash, Header, Kind, Proposal, Reason, SecretKey, TrustSet, Version,
};
use stele_store::{
    Change, Closed, Command, MAX_CLOSED, MAX_PENDING, Machine, Pending, ProposalState, Request,
    Response,
};

fn key(n: u8) -> SecretKey {
    SecretKey::from_seed([n; 32])
}

fn example() -> BundleFiles {
    stele_policy::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/zero-trust"))
        .unwrap()
}

fn variant(n: u32) -> BundleFiles {
    let mut out = BundleFiles::default();
    for (path, content) in example().files() {
        let content = if path == "access.cedar" {
            format!("{content}\n// {n}\n")
        } else {
            content.to_string()
        };
        out.insert(path.into(), content).unwrap();
    }
    out
}

fn version(machine: &Machine, bundle: &BundleFiles, signers: &[u8]) -> Version {
    let head = machine.head();
    let genesis = head.is_none();
    let header = Header {
        seq: head.map_or(1, |h| h.seq + 1),
        parent_hash: head.map_or(Hash::ZERO, |h| h.hash),
        bundle_digest: bundle.digest(),
        kind: if genesis { Kind::Genesis } else { Kind::Update },
        message: "m".into(),
        author: "t".into(),
        created_at: 0,
        trust: genesis.then(|| {
            TrustSet::new(
                vec![
                    key(1).public_key(),
                    key(2).public_key(),
                    key(3).public_key(),
                ],
                2,
            )
            .unwrap()
        }),
        expires_at: None,
        members: None,
    };
    let mut version = Version::unsigned(header);
    for n in signers {
        version.sign(&key(*n));
    }
    version
}

fn propose(time_ms: u64, version: Version, bundle: BundleFiles, commit_only: bool) -> Request {
    Request {
        time_ms,
        command: Command::Propose {
            proposal: Box::new(Proposal { version, bundle }),
            commit_only,
            pending_ttl_ms: 1_000,
        },
    }
}

fn approve(time_ms: u64, id: Hash, signer: u8) -> Request {
    Request {
        time_ms,
        command: Command::Approve {
            proposal_id: id,
            approvals: vec![stele_ledger::Approval {
                key: key(signer).public_key(),
                signature: key(signer).sign(&id),
            }],
        },
    }
}

fn apply(machine: &mut Machine, request: &Request) -> Response {
    machine.apply(request.clone(), &mut Vec::new())
}

fn state(response: &Response) -> ProposalState {
    match response {
        Response::Accepted(status) => status.state,
        other => panic!("expected acceptance, got {other:?}"),
    }
}

fn refusal(response: &Response) -> Reason {
    match response {
        Response::Refused(refusal) => refusal.reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn with_genesis() -> Machine {
    let mut machine = Machine::new(None);
    let bundle = example();
    let genesis = version(&machine, &bundle, &[1, 2]);
    assert_eq!(
        state(&apply(&mut machine, &propose(0, genesis, bundle, true))),
        ProposalState::Committed
    );
    machine
}

#[test]
fn a_fully_signed_proposal_commits_and_reports_its_compiled_bundle() {
    let mut machine = with_genesis();
    let bundle = variant(2);
    let v2 = version(&machine, &bundle, &[2, 3]);
    let mut changes = Vec::new();
    let response = machine.apply(propose(1, v2.clone(), bundle, false), &mut changes);
    assert_eq!(state(&response), ProposalState::Committed);
    assert_eq!(machine.head().unwrap().hash, v2.hash());
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::Appended { version, .. } if **version == v2))
    );
}

#[test]
fn a_short_proposal_waits_for_approvals_then_commits() {
    let mut machine = with_genesis();
    let bundle = variant(2);
    let v2 = version(&machine, &bundle, &[1]);
    let id = v2.hash();
    let pending = apply(&mut machine, &propose(1, v2, bundle, false));
    assert_eq!(state(&pending), ProposalState::Pending);
    assert_eq!(machine.head().unwrap().seq, 1);
    // The same approver again changes nothing.
    assert_eq!(
        state(&apply(&mut machine, &approve(2, id, 1))),
        ProposalState::Pending
    );
    assert_eq!(
        state(&apply(&mut machine, &approve(3, id, 3))),
        ProposalState::Committed
    );
    assert_eq!(machine.head().unwrap().hash, id);
    assert_eq!(machine.pending().count(), 0);
    // Approving what is committed answers so.
    assert_eq!(
        state(&apply(&mut machine, &approve(4, id, 2))),
        ProposalState::AlreadyCommitted
    );
}

#[test]
fn commit_only_refuses_rather_than_holding() {
    let mut machine = with_genesis();
    let bundle = variant(2);
    let v2 = version(&machine, &bundle, &[1]);
    assert_eq!(
        refusal(&apply(&mut machine, &propose(1, v2, bundle, true))),
        Reason::BelowThreshold
    );
    assert_eq!(machine.pending().count(), 0);
    let unsigned = version(&machine, &variant(3), &[]);
    assert_eq!(
        refusal(&apply(
            &mut machine,
            &propose(1, unsigned, variant(3), false)
        )),
        Reason::BelowThreshold
    );
    assert_eq!(
        machine.pending().count(),
        0,
        "nothing is held without a signature"
    );
}

#[test]
fn a_commit_makes_other_pending_proposals_stale() {
    let mut machine = with_genesis();
    let (a, b) = (variant(2), variant(3));
    let pending = version(&machine, &a, &[1]);
    let id = pending.hash();
    apply(&mut machine, &propose(1, pending, a, false));
    let winner = version(&machine, &b, &[1, 2]);
    assert_eq!(
        state(&apply(&mut machine, &propose(2, winner, b, false))),
        ProposalState::Committed
    );
    assert_eq!(
        refusal(&apply(&mut machine, &approve(3, id, 3))),
        Reason::UnknownProposal
    );
}

#[test]
fn pending_proposals_expire_by_leader_time_which_never_goes_back() {
    let mut machine = with_genesis();
    let bundle = variant(2);
    let v2 = version(&machine, &bundle, &[1]);
    let id = v2.hash();
    apply(&mut machine, &propose(10_000, v2, bundle, false));
    // An entry stamped earlier does not turn the clock back.
    assert_eq!(
        state(&apply(&mut machine, &approve(5, id, 1))),
        ProposalState::Pending
    );
    assert_eq!(
        refusal(&apply(&mut machine, &approve(11_000, id, 3))),
        Reason::UnknownProposal
    );
    assert_eq!(machine.head().unwrap().seq, 1);
}

/// `version` re-signed by `signers` with `expires_at`.
fn expiring(version: Version, at: u64, signers: &[u8]) -> Version {
    let mut version = Version::unsigned(version.header.expiring(at));
    for n in signers {
        version.sign(&key(*n));
    }
    version
}

#[test]
fn a_version_past_its_own_expiry_never_commits() {
    let mut machine = with_genesis();
    let bundle = variant(2);
    let v2 = expiring(version(&machine, &bundle, &[]), 100, &[1, 2]);
    // Fully signed, but the leader's clock is at its expiry.
    let refused = apply(
        &mut machine,
        &propose(100_000, v2.clone(), bundle.clone(), false),
    );
    assert_eq!(refusal(&refused), Reason::ProposalExpired);
    assert_eq!(machine.head().unwrap().seq, 1);
    assert_eq!(machine.pending().count(), 0);
    // A moment before, the same version commits.
    let mut machine = with_genesis();
    let committed = apply(&mut machine, &propose(99_999, v2, bundle, false));
    assert_eq!(state(&committed), ProposalState::Committed);
}

#[test]
fn a_pending_proposal_is_held_no_longer_than_its_own_expiry() {
    let mut machine = with_genesis();
    let bundle = variant(2);
    // The node would hold it for 1,000 s (the request's ttl); the version
    // says 20 s.
    let v2 = expiring(version(&machine, &bundle, &[]), 20, &[1]);
    let id = v2.hash();
    let mut request = propose(10_000, v2, bundle, false);
    if let Command::Propose { pending_ttl_ms, .. } = &mut request.command {
        *pending_ttl_ms = 1_000_000;
    }
    let held = apply(&mut machine, &request);
    match held {
        Response::Accepted(status) => {
            assert_eq!(status.state, ProposalState::Pending);
            assert_eq!(status.expires_at_ms, Some(20_000));
        }
        other => panic!("expected a pending proposal, got {other:?}"),
    }
    // The approval that would reach M comes after the expiry.
    assert_eq!(
        refusal(&apply(&mut machine, &approve(20_000, id, 2))),
        Reason::UnknownProposal
    );
    assert_eq!(machine.head().unwrap().seq, 1);
}

#[test]
fn one_entry_stamped_far_ahead_does_not_expire_every_later_version() {
    let mut machine = with_genesis();
    // A leader's clock jumped a year ahead for one entry.
    let year_ms = 365 * 24 * 3600 * 1000;
    let bundle = variant(2);
    let v2 = version(&machine, &bundle, &[1]);
    apply(&mut machine, &propose(year_ms, v2, bundle, false));
    // Back to now: a version expiring in a minute still commits.
    let bundle = variant(3);
    let v3 = expiring(version(&machine, &bundle, &[]), 60, &[1, 2]);
    let committed = apply(&mut machine, &propose(1_000, v3, bundle, false));
    assert_eq!(state(&committed), ProposalState::Committed);
}

#[test]
fn a_received_pending_proposal_is_held_no_longer_than_its_own_expiry() {
    let machine = with_genesis();
    let bundle = variant(2);
    let v2 = expiring(version(&machine, &bundle, &[]), 20, &[1]);
    // A snapshot claims it is held for ever.
    let forged = Pending {
        version: v2.clone(),
        bundle: std::sync::Arc::new(bundle.clone()),
        expires_at_ms: u64::MAX,
        closed: None,
    };
    let versions: Vec<Version> = machine.versions().cloned().collect();
    let (received, dropped) = Machine::from_parts(
        machine.chain().clone(),
        versions.clone(),
        vec![forged.clone()],
        5_000,
    );
    assert_eq!(dropped, 0);
    let held = received.pending().next().unwrap();
    assert_eq!(held.expires_at_ms, 20_000);
    // Received after its expiry: dropped.
    let (late, dropped) =
        Machine::from_parts(machine.chain().clone(), versions, vec![forged], 20_000);
    assert_eq!((dropped, late.pending().count()), (1, 0));
}

#[test]
fn two_machines_given_the_same_requests_agree() {
    let mut first = with_genesis();
    let mut second = with_genesis();
    let mut requests = Vec::new();
    let b2 = variant(2);
    let v2 = version(&first, &b2, &[1]);
    requests.push(propose(1, v2.clone(), b2, false));
    requests.push(approve(2, Hash::of_bytes(b"nothing"), 2));
    requests.push(approve(3, v2.hash(), 2));
    let b3 = variant(3);
    let mut after = first.clone();
    for request in &requests {
        apply(&mut after, request);
    }
    requests.push(propose(4, version(&after, &b3, &[3, 1]), b3, true));
    for request in &requests {
        assert_eq!(apply(&mut first, request), apply(&mut second, request));
    }
    assert_eq!(first.head(), second.head());
    assert_eq!(first.head().unwrap().seq, 3);
}

/// A chain from another cluster (genesis, then an update that expires at
/// 5 s), with a membership version on top signed by `signers` and expiring
/// at `expires_at`: what `cluster init --ledger` sends. Returns the ledger
/// file and the genesis hash.
fn restore_ledger(
    head_kind: Option<Kind>,
    signers: &[u8],
    expires_at: Option<u64>,
) -> (String, Hash) {
    let mut old = with_genesis();
    let update = variant(2);
    let v2 = expiring(version(&old, &update, &[1]), 5, &[1, 2]);
    assert_eq!(
        state(&apply(&mut old, &propose(1, v2, update.clone(), true))),
        ProposalState::Committed
    );
    let head = old.head().unwrap();
    let member = stele_ledger::Member {
        id: 4,
        role: stele_ledger::Role::Voter,
        client: "127.0.0.1:7004".into(),
        peer: "127.0.0.1:8004".into(),
        region: String::new(),
        spki_sha256: Hash::of_bytes(b"node 4's key"),
    };
    let mut header = Header::after(
        head,
        update.digest(),
        head_kind.unwrap_or(Kind::Membership),
        stele_ledger::Authorship {
            message: "continue".into(),
            author: "t".into(),
            created_at: 0,
        },
    );
    header = header.listing(stele_ledger::MemberSet::new(vec![member]).unwrap());
    if let Some(at) = expires_at {
        header = header.expiring(at);
    }
    let mut top = Version::unsigned(header);
    for n in signers {
        top.sign(&key(*n));
    }
    let top = head_kind.map(|_| top);
    let versions: Vec<Version> = old.versions().cloned().chain(top).collect();
    let text = stele_ledger::export::encode_with(&versions, |digest| {
        let files = [example(), update.clone()]
            .into_iter()
            .find(|files| files.digest() == *digest)
            .unwrap();
        Ok::<_, std::convert::Infallible>(files)
    })
    .unwrap();
    (text, versions[0].hash())
}

fn restore(time_ms: u64, ledger: &str) -> Request {
    Request {
        time_ms,
        command: Command::Restore {
            ledger: ledger.into(),
        },
    }
}

#[test]
fn a_restore_appends_the_whole_chain_at_once_and_only_onto_an_empty_one() {
    // Long after seq 2's own expiry (5 s): history is not judged again.
    let now_ms = 60_000;
    let (ledger, genesis) = restore_ledger(Some(Kind::Membership), &[1, 2], None);
    let mut machine = Machine::new(Some(genesis));
    // The genesis itself, pending with one signature: stale once restored.
    let entries = stele_ledger::export::decode(ledger.as_bytes()).unwrap();
    let mut first = entries.versions[0].clone();
    first.signatures.truncate(1);
    let bundle = entries.bundles[&first.header.bundle_digest].clone();
    assert_eq!(
        state(&apply(&mut machine, &propose(now_ms, first, bundle, false))),
        ProposalState::Pending
    );
    let mut changes = Vec::new();
    let response = machine.apply(restore(now_ms, &ledger), &mut changes);
    assert_eq!(state(&response), ProposalState::Committed);
    assert_eq!(
        machine.pending().count(),
        0,
        "a pending genesis outlived the restore"
    );
    assert_eq!(machine.head().unwrap().seq, 3);
    assert_eq!(
        machine
            .chain()
            .members()
            .unwrap()
            .voter_ids()
            .collect::<Vec<_>>(),
        [4]
    );
    // One change per version, and only the head, the one served, compiled.
    let compiled: Vec<bool> = changes
        .iter()
        .filter_map(|change| match change {
            Change::Appended { compiled, .. } => Some(compiled.is_some()),
            _ => None,
        })
        .collect();
    assert_eq!(compiled, [false, false, true]);

    // The same ledger again: already committed. Any other: refused, and
    // the chain stays as it is.
    assert_eq!(
        state(&apply(&mut machine, &restore(now_ms, &ledger))),
        ProposalState::AlreadyCommitted
    );
    let (other, _) = restore_ledger(Some(Kind::Membership), &[1, 2], Some(1_000_000));
    assert_eq!(
        refusal(&apply(&mut machine, &restore(now_ms, &other))),
        Reason::ChainExists
    );
    assert_eq!(machine.head().unwrap().seq, 3);

    // A chain restored onto a machine pinned to another genesis: refused.
    let mut elsewhere = Machine::new(Some(Hash::of_bytes(b"another genesis")));
    assert_eq!(
        refusal(&apply(&mut elsewhere, &restore(now_ms, &ledger))),
        Reason::GenesisMismatch
    );
    assert!(elsewhere.head().is_none());
}

#[test]
fn a_restore_whose_head_is_not_a_signed_unexpired_membership_version_changes_nothing() {
    let now_ms = 60_000;
    let refused = |ledger: &str, genesis: Hash| {
        let mut machine = Machine::new(Some(genesis));
        let mut changes = Vec::new();
        let response = machine.apply(restore(now_ms, ledger), &mut changes);
        assert!(machine.head().is_none(), "a refused restore appended");
        assert!(changes.is_empty(), "a refused restore changed something");
        refusal(&response)
    };
    // Signed by one of the two approvers needed.
    let (under, genesis) = restore_ledger(Some(Kind::Membership), &[1], None);
    assert_eq!(refused(&under, genesis), Reason::BelowThreshold);
    // Expired on the leader's clock.
    let (expired, genesis) = restore_ledger(Some(Kind::Membership), &[1, 2], Some(59));
    assert_eq!(refused(&expired, genesis), Reason::ProposalExpired);
    // A plain export: it names no new members.
    let (plain, genesis) = restore_ledger(None, &[], None);
    assert_eq!(refused(&plain, genesis), Reason::Malformed);
    // A history edited below the signed head.
    let (ledger, genesis) = restore_ledger(Some(Kind::Membership), &[1, 2], None);
    let edited = ledger.replacen("\"expires_at\":5", "\"expires_at\":6", 1);
    assert_ne!(edited, ledger);
    assert_eq!(refused(&edited, genesis), Reason::BadSignature);
    // A bundle edited below it: the file names it by its old digest.
    let edited = ledger.replacen("// 2", "// 3", 1);
    assert_ne!(edited, ledger);
    assert_eq!(refused(&edited, genesis), Reason::Malformed);
    // Another validly signed seq 2 under the same head: the head's parent
    // hash pins the history it was signed on.
    let (spliced, genesis) = splice_second(&ledger);
    assert_eq!(refused(&spliced, genesis), Reason::StaleParent);
    // Not a ledger file at all.
    assert_eq!(refused("garbage", genesis), Reason::Malformed);
}

/// `ledger` with its seq 2 replaced by another, validly signed (another
/// expiry), under the same head.
fn splice_second(ledger: &str) -> (String, Hash) {
    let mut entries = stele_ledger::export::decode(ledger.as_bytes()).unwrap();
    let second = expiring(entries.versions[1].clone(), 7, &[1, 2]);
    assert_ne!(second.hash(), entries.versions[1].hash());
    entries.versions[1] = second;
    let bundles = entries.bundles.clone();
    let text = stele_ledger::export::encode_with(&entries.versions, |digest| {
        Ok::<_, std::convert::Infallible>(bundles[digest].clone())
    })
    .unwrap();
    (text, entries.versions[0].hash())
}

/// A withdrawal of `id` signed by `signers` (over the withdrawal message,
/// or, with `as_approval`, over the approval message instead).
fn withdraw(time_ms: u64, id: Hash, signers: &[u8], as_approval: bool) -> Request {
    Request {
        time_ms,
        command: Command::Withdraw {
            proposal_id: id,
            approvals: signers
                .iter()
                .map(|n| stele_ledger::Approval {
                    key: key(*n).public_key(),
                    signature: match as_approval {
                        true => key(*n).sign(&id),
                        false => key(*n).sign_withdrawal(&id),
                    },
                })
                .collect(),
        },
    }
}

/// A version proposed by key `author` (the name a trust set without names
/// gives it), signed by it alone.
fn proposed_by(machine: &Machine, bundle: &BundleFiles, author: u8) -> Version {
    let mut version = version(machine, bundle, &[]);
    version.header.author = format!("key {}", &key(author).public_key().to_hex()[..16]);
    version.sign(&key(author));
    version
}

#[test]
fn a_pending_proposal_is_withdrawn_by_its_proposer_or_by_m_approvers_and_never_by_one_other() {
    let mut machine = with_genesis();
    let bundle = variant(2);
    let v2 = proposed_by(&machine, &bundle, 1);
    let id = v2.hash();
    apply(&mut machine, &propose(1, v2, bundle, false));
    // One other approver of 2-of-3 cannot veto alone; an approval is not a
    // withdrawal; a key outside the trust set counts for nothing.
    for (request, reason) in [
        (withdraw(2, id, &[2], false), Reason::BelowThreshold),
        (withdraw(2, id, &[1], true), Reason::BadSignature),
        (withdraw(2, id, &[9], false), Reason::UnknownKey),
    ] {
        assert_eq!(refusal(&apply(&mut machine, &request)), reason);
        assert_eq!(machine.pending().count(), 1, "{reason:?} withdrew it");
    }
    let mut changes = Vec::new();
    let withdrawn = machine.apply(withdraw(3, id, &[1], false), &mut changes);
    assert_eq!(state(&withdrawn), ProposalState::Withdrawn);
    assert_eq!(machine.pending().count(), 0);
    let record = machine.closed().next().expect("the withdrawal is recorded");
    assert_eq!(
        record.closed,
        Some(Closed::Withdrawn {
            by: vec![key(1).public_key()]
        })
    );
    assert!(record.bundle.is_empty(), "a closed record keeps no bundle");
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::PendingStored(r) if r.closed.is_some()))
    );
    assert_eq!(
        refusal(&apply(&mut machine, &approve(4, id, 2))),
        Reason::UnknownProposal
    );
    // Someone else's proposal: withdrawn by M approvers together.
    let bundle = variant(3);
    let v2b = version(&machine, &bundle, &[3]);
    let other = v2b.hash();
    apply(&mut machine, &propose(5, v2b, bundle, false));
    assert_eq!(
        state(&apply(&mut machine, &withdraw(6, other, &[2, 3], false))),
        ProposalState::Withdrawn
    );
    assert_eq!(
        (machine.pending().count(), machine.closed().count()),
        (0, 2)
    );
}

#[test]
fn a_commit_keeps_the_proposals_it_supersedes_listed_until_they_lapse_outside_the_pending_slots() {
    let mut machine = with_genesis();
    // A full table of pending proposals, then a commit over all of them.
    let mut superseded = Vec::new();
    for n in 0..MAX_PENDING as u32 {
        let bundle = variant(100 + n);
        let pending = version(&machine, &bundle, &[1]);
        superseded.push(pending.hash());
        apply(&mut machine, &propose(1, pending, bundle, false));
    }
    let bundle = variant(2);
    let winner = version(&machine, &bundle, &[1, 2]);
    let winner_id = winner.hash();
    assert_eq!(
        state(&apply(&mut machine, &propose(2, winner, bundle, false))),
        ProposalState::Committed
    );
    assert_eq!(machine.pending().count(), 0);
    let closed: Vec<_> = machine.closed().collect();
    assert_eq!(closed.len(), MAX_CLOSED);
    for record in &closed {
        assert!(superseded.contains(&record.version.hash()));
        assert_eq!(
            record.closed,
            Some(Closed::Superseded {
                by: winner_id,
                seq: 2
            })
        );
        assert!(record.bundle.is_empty());
    }
    // The records take no pending slot.
    let bundle = variant(3);
    let next = version(&machine, &bundle, &[1]);
    assert_eq!(
        state(&apply(&mut machine, &propose(3, next, bundle, false))),
        ProposalState::Pending
    );
    // A node rebuilt from storage or a snapshot keeps them.
    let versions: Vec<Version> = machine.versions().cloned().collect();
    let stored: Vec<Pending> = machine
        .pending()
        .chain(machine.closed())
        .map(|p| (**p).clone())
        .collect();
    let (rebuilt, dropped) = Machine::from_parts(
        machine.chain().clone(),
        versions,
        stored,
        machine.clock_ms(),
    );
    assert_eq!(
        (dropped, rebuilt.pending().count(), rebuilt.closed().count()),
        (0, 1, MAX_CLOSED)
    );
    // Listed until they would have lapsed (the pending hold, 1 s here).
    apply(&mut machine, &approve(5_000, Hash::ZERO, 1));
    assert_eq!(machine.closed().count(), 0);
}
