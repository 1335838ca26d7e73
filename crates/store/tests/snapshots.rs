//! A snapshot from a peer must extend this node's chain: never move it
//! backwards, never onto another chain, never carry a bundle that fails
//! admission (the malicious-snapshot row of the attack table).

use std::path::Path;

use stele_ledger::{
    BundleFiles, ChainState, Hash, Header, Kind, Ledger, Reason, SecretKey, TrustSet, Version,
};
use stele_store::StoreError;
use stele_store::snapshot::{Position, SnapshotError, agrees, decode, encode, verify_for};
use stele_store::{LogId, Machine, Pending, SnapshotMeta};

fn key(n: u8) -> SecretKey {
    SecretKey::from_seed([n; 32])
}

fn bundle(comment: &str) -> BundleFiles {
    let example = stele_policy::load_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/zero-trust"),
    )
    .unwrap();
    let mut out = BundleFiles::default();
    for (path, content) in example.files() {
        let content = if path == "access.cedar" {
            format!("{content}\n// {comment}\n")
        } else {
            content.to_string()
        };
        out.insert(path.into(), content).unwrap();
    }
    out
}

/// A chain of `len` versions; `fork` changes every message, so two chains
/// with different forks share nothing.
fn chain(len: u64, fork: &str, signers: &[u8]) -> Ledger {
    let mut ledger = Ledger::new();
    let trust = TrustSet::new(vec![key(1).public_key(), key(2).public_key()], 2).unwrap();
    for seq in 1..=len {
        let files = bundle(&format!("{fork}{seq}"));
        let head = ledger.head();
        let mut version = Version::unsigned(Header {
            seq,
            parent_hash: head.map_or(Hash::ZERO, |h| h.hash),
            bundle_digest: files.digest(),
            kind: if seq == 1 {
                Kind::Genesis
            } else {
                Kind::Update
            },
            message: format!("{fork} {seq}"),
            author: "t".into(),
            created_at: 0,
            trust: (seq == 1).then(|| trust.clone()),
            expires_at: None,
            members: None,
        });
        for n in signers {
            version.sign(&key(*n));
        }
        ledger
            .submit(version, files, &stele_ledger::structural_only)
            .unwrap();
    }
    ledger
}

fn snapshot_of(ledger: &Ledger) -> Vec<u8> {
    let fetch = |digest: &Hash| Ok::<_, StoreError>(ledger.bundle(digest).unwrap().clone());
    encode(ledger.versions(), fetch, &[], 0, &Position::default()).unwrap()
}

fn local(ledger: &Ledger) -> ChainState {
    ledger.state().clone()
}

#[test]
fn a_snapshot_that_extends_the_chain_is_accepted() {
    let ours = chain(2, "a", &[1, 2]);
    let theirs = decode(&snapshot_of(&chain(4, "a", &[1, 2])), None).unwrap();
    assert_eq!(verify_for(&local(&ours), &theirs), Ok(()));
    assert_eq!(verify_for(&ChainState::default(), &theirs), Ok(()));
}

#[test]
fn a_snapshot_behind_this_node_is_refused() {
    let ours = chain(4, "a", &[1, 2]);
    let theirs = decode(&snapshot_of(&chain(2, "a", &[1, 2])), None).unwrap();
    let why = verify_for(&local(&ours), &theirs).unwrap_err();
    assert!(
        matches!(why, SnapshotError::Backwards { theirs: 2, ours: 4 }),
        "{why}"
    );
}

#[test]
fn a_snapshot_of_another_chain_is_refused() {
    let ours = chain(2, "a", &[1, 2]);
    let theirs = decode(&snapshot_of(&chain(3, "b", &[1, 2])), None).unwrap();
    let why = verify_for(&local(&ours), &theirs).unwrap_err();
    assert!(
        matches!(why, SnapshotError::OtherChain { seq: 2, .. }),
        "{why}"
    );
}

#[test]
fn a_snapshot_whose_chain_does_not_verify_is_refused() {
    let ledger = chain(3, "a", &[1, 2]);
    let text = String::from_utf8(snapshot_of(&ledger)).unwrap();
    let edited = text.replacen("\"message\":\"a 2\"", "\"message\":\"a 9\"", 1);
    let why = decode(edited.as_bytes(), None).err().unwrap();
    assert!(
        matches!(&why, SnapshotError::Ledger(e) if e.seq() == 2),
        "{why}"
    );
    // A version carrying one approval of the two required, as a malicious
    // peer could write it (encoding does not judge; decoding does).
    let mut versions = ledger.versions().to_vec();
    versions[1]
        .signatures
        .retain(|a| a.key == key(1).public_key());
    let fetch = |digest: &Hash| Ok::<_, StoreError>(ledger.bundle(digest).unwrap().clone());
    let forged = encode(&versions, fetch, &[], 0, &Position::default()).unwrap();
    let why = decode(&forged, None).err().unwrap();
    assert!(
        matches!(&why, SnapshotError::Ledger(e)
            if e.seq() == 2 && e.reason() == Some(Reason::BelowThreshold)),
        "{why}"
    );
}

#[test]
fn a_snapshot_with_a_bundle_that_fails_admission_is_refused() {
    // A bundle whose scenario expects the opposite of what it does: signed,
    // but it would never pass admission.
    let ours = chain(1, "a", &[1, 2]);
    let mut ledger = chain(1, "a", &[1, 2]);
    let mut files = BundleFiles::default();
    for (path, content) in bundle("bad").files() {
        let content = if path == "tests/sre.json" {
            content.replacen("\"decision\": \"Allow\"", "\"decision\": \"Deny\"", 1)
        } else {
            content.to_string()
        };
        files.insert(path.into(), content).unwrap();
    }
    let head = ledger.head().unwrap();
    let mut version = Version::unsigned(Header {
        seq: 2,
        parent_hash: head.hash,
        bundle_digest: files.digest(),
        kind: Kind::Update,
        message: "bad".into(),
        author: "t".into(),
        created_at: 0,
        trust: None,
        expires_at: None,
        members: None,
    });
    version.sign(&key(1));
    version.sign(&key(2));
    ledger
        .submit(version, files, &stele_ledger::structural_only)
        .unwrap();
    let theirs = decode(&snapshot_of(&ledger), None).unwrap();
    let why = verify_for(&local(&ours), &theirs).unwrap_err();
    assert!(
        matches!(&why, SnapshotError::Bundle(e)
            if e.seq == 2 && e.rejection.reason() == Reason::BundleInvalid),
        "{why}"
    );
    assert!(why.to_string().contains("scenario"), "{why}");
}

#[test]
fn metadata_that_claims_another_position_than_the_data_is_refused() {
    let ledger = chain(2, "a", &[1, 2]);
    let at = |index| Some(LogId::new(openraft::CommittedLeaderId::new(3, 1), index));
    let position = Position {
        last_log_id: at(40),
        last_membership: Default::default(),
    };
    let fetch = |digest: &Hash| Ok::<_, StoreError>(ledger.bundle(digest).unwrap().clone());
    let data = decode(
        &encode(ledger.versions(), fetch, &[], 0, &position).unwrap(),
        None,
    )
    .unwrap();
    let meta = |last_log_id| SnapshotMeta {
        last_log_id,
        last_membership: Default::default(),
        snapshot_id: "s".into(),
    };
    assert_eq!(agrees(&meta(at(40)), &data), Ok(()));
    for claimed in [at(1 << 62), at(41), None] {
        assert!(
            matches!(
                agrees(&meta(claimed), &data),
                Err(SnapshotError::PositionDisagrees { .. })
            ),
            "{claimed:?}"
        );
    }
}

#[test]
fn a_stored_or_received_pending_proposal_with_a_forged_signature_is_dropped() {
    let ledger = chain(1, "a", &[1, 2]);
    let head = ledger.head().unwrap();
    let pending = |comment: &str, signer: Option<u8>, forge: bool| {
        let files = bundle(comment);
        let mut version = Version::unsigned(Header {
            seq: 2,
            parent_hash: head.hash,
            bundle_digest: files.digest(),
            kind: Kind::Update,
            message: comment.into(),
            author: "t".into(),
            created_at: 0,
            trust: None,
            expires_at: None,
            members: None,
        });
        if let Some(n) = signer {
            version.sign(&key(n));
        }
        if forge {
            // "Signed by key 2": its key, anyone's bytes.
            version.add_approval(stele_ledger::Approval {
                key: key(2).public_key(),
                signature: stele_ledger::Signature([7; 64]),
            });
        }
        Pending {
            version,
            bundle: std::sync::Arc::new(files),
            expires_at_ms: u64::MAX,
            closed: None,
        }
    };
    let honest = pending("honest", Some(1), false);
    let forged = pending("forged", None, true);
    let unsigned = pending("unsigned", None, false);
    let (machine, dropped) = Machine::from_parts(
        ledger.state().clone(),
        ledger.versions().to_vec(),
        vec![honest.clone(), forged, unsigned],
        0,
    );
    assert_eq!(dropped, 2);
    let kept: Vec<_> = machine.pending().map(|p| p.version.hash()).collect();
    assert_eq!(kept, vec![honest.version.hash()]);
}
