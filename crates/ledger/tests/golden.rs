//! The golden vector: fixed keys, bundle and versions, with the bytes,
//! hashes and signatures docs/FORMAT.md implies, as computed by an
//! independent implementation (docs/format_reference.py). Any change to the
//! encoding, hashing or signing breaks this test, on purpose: old ledgers
//! must keep verifying.

use serde::Deserialize;
use stele_ledger::hash::parse_lower_hex;
use stele_ledger::keys::approval_message;
use stele_ledger::{
    BundleFiles, Hash, Header, Ledger, SecretKey, Version, export, structural_only,
};

#[derive(Deserialize)]
struct Vector {
    approver_seeds: Vec<String>,
    approver_keys: Vec<String>,
    bundle_files: BundleFiles,
    bundle_digest: Hash,
    versions: Vec<VersionVector>,
    ledger_file: String,
}

#[derive(Deserialize)]
struct VersionVector {
    header: Header,
    canonical_header: String,
    hash: Hash,
    approval_message: String,
    signatures: Vec<stele_ledger::Approval>,
    signed_by_seed_index: Vec<usize>,
}

fn vector() -> Vector {
    serde_json::from_str(include_str!("golden/format-v1.json")).unwrap()
}

fn seeds(vector: &Vector) -> Vec<SecretKey> {
    vector
        .approver_seeds
        .iter()
        .map(|hex| SecretKey::from_seed(parse_lower_hex::<32>(hex).unwrap()))
        .collect()
}

#[test]
fn keys_come_from_their_seeds() {
    let vector = vector();
    let keys: Vec<String> = seeds(&vector)
        .iter()
        .map(|k| k.public_key().to_hex())
        .collect();
    assert_eq!(keys, vector.approver_keys);
}

#[test]
fn bundle_digest_matches() {
    let vector = vector();
    assert_eq!(vector.bundle_files.digest(), vector.bundle_digest);
}

#[test]
fn headers_encode_hash_and_sign_byte_for_byte() {
    let vector = vector();
    let secrets = seeds(&vector);
    for expected in &vector.versions {
        assert_eq!(
            hex::encode(expected.header.canonical_bytes()),
            expected.canonical_header
        );
        assert_eq!(expected.header.hash(), expected.hash);
        assert_eq!(
            hex::encode(approval_message(&expected.hash)),
            expected.approval_message
        );
        let mut version = Version::unsigned(expected.header.clone());
        for index in &expected.signed_by_seed_index {
            assert!(version.sign(&secrets[*index]));
        }
        assert_eq!(version.signatures, expected.signatures);
    }
}

#[test]
fn the_ledger_file_is_byte_exact_and_verifies() {
    let vector = vector();
    let ledger = export::read(
        vector.ledger_file.as_bytes(),
        Ledger::new(),
        &structural_only,
    )
    .expect("the golden ledger verifies");
    assert_eq!(
        ledger.head().unwrap().hash,
        vector.versions.last().unwrap().hash
    );
    // The last version declares the first member set.
    let members = ledger.state().members().expect("a member set in force");
    assert_eq!(members.voter_ids().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(members.get(2).unwrap().client, "[2001:db8::2]:7000");
    assert_eq!(members.get(7).unwrap().role, stele_ledger::Role::Learner);
    assert_eq!(ledger.versions()[2].header.expires_at, Some(1_764_892_920));
    let named = ledger.trust().unwrap();
    let bob = named
        .keys()
        .iter()
        .find(|k| named.name_of(k) == Some("bob"));
    assert!(bob.is_some(), "the rotation names its approvers");
    assert_eq!(export::encode(&ledger), vector.ledger_file);
}
