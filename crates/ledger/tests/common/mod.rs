//! Builders shared by the ledger's integration tests.
#![allow(dead_code)]

use stele_ledger::{
    BundleFiles, Hash, Header, Kind, Ledger, PublicKey, SecretKey, TrustSet, Version,
};

pub fn key(n: u8) -> SecretKey {
    SecretKey::from_seed([n; 32])
}

pub fn public(n: u8) -> PublicKey {
    key(n).public_key()
}

pub fn bundle(policy: &str) -> BundleFiles {
    let mut bundle = BundleFiles::default();
    bundle.insert("policy.cedar".into(), policy.into()).unwrap();
    bundle
        .insert("schema.cedarschema".into(), "entity User;".into())
        .unwrap();
    bundle
}

pub fn accept_all(_: &BundleFiles) -> Result<(), String> {
    Ok(())
}

pub fn header(
    seq: u64,
    parent: Hash,
    bundle: &BundleFiles,
    kind: Kind,
    trust: Option<TrustSet>,
) -> Header {
    Header {
        seq,
        parent_hash: parent,
        bundle_digest: bundle.digest(),
        kind,
        message: format!("version {seq}"),
        author: "tests".into(),
        created_at: 1_760_000_000 + seq,
        trust,
        expires_at: None,
        members: None,
    }
}

pub fn signed(header: Header, signers: &[u8]) -> Version {
    let mut version = Version::unsigned(header);
    for n in signers {
        version.sign(&key(*n));
    }
    version
}

/// Approvers 1, 2 and 3, two of them required.
pub fn trust_1_2_3() -> TrustSet {
    TrustSet::new(vec![public(1), public(2), public(3)], 2).unwrap()
}

pub fn genesis(bundle: &BundleFiles, signers: &[u8]) -> Version {
    signed(
        header(1, Hash::ZERO, bundle, Kind::Genesis, Some(trust_1_2_3())),
        signers,
    )
}

/// The next version on `ledger`'s head.
pub fn next(
    ledger: &Ledger,
    bundle: &BundleFiles,
    kind: Kind,
    trust: Option<TrustSet>,
    signers: &[u8],
) -> Version {
    let head = ledger.head().expect("a chain with a genesis");
    signed(
        header(head.seq + 1, head.hash, bundle, kind, trust),
        signers,
    )
}

/// A chain of `updates + 1` versions, each with its own bundle, signed by 1 and 2.
pub fn chain(updates: u64) -> Ledger {
    let mut ledger = Ledger::new();
    let first = bundle("v1");
    ledger
        .submit(genesis(&first, &[1, 2]), first, &accept_all)
        .unwrap();
    for n in 0..updates {
        let next_bundle = bundle(&format!("v{}", n + 2));
        let version = next(&ledger, &next_bundle, Kind::Update, None, &[1, 2]);
        ledger.submit(version, next_bundle, &accept_all).unwrap();
    }
    ledger
}

/// Node `id` as a member set lists it, with its own addresses and key.
pub fn member(id: u64, role: stele_ledger::Role) -> stele_ledger::Member {
    stele_ledger::Member {
        id,
        role,
        client: format!("10.0.0.{id}:7000"),
        peer: format!("10.0.0.{id}:7100"),
        region: String::new(),
        spki_sha256: Hash::of_bytes(format!("node {id}'s key").as_bytes()),
    }
}

/// Nodes 1, 2 and 3, all voters.
pub fn voters_1_2_3() -> stele_ledger::MemberSet {
    use stele_ledger::Role::Voter;
    stele_ledger::MemberSet::new(vec![member(1, Voter), member(2, Voter), member(3, Voter)])
        .unwrap()
}

/// A `membership` version on `ledger`'s head declaring `members`.
pub fn membership(
    ledger: &Ledger,
    members: stele_ledger::MemberSet,
    signers: &[u8],
) -> (Version, BundleFiles) {
    let head = ledger.head().expect("a chain with a genesis");
    let head_bundle = ledger.bundle_at(head.seq).unwrap().clone();
    let header = header(
        head.seq + 1,
        head.hash,
        &head_bundle,
        Kind::Membership,
        None,
    )
    .listing(members);
    (signed(header, signers), head_bundle)
}
