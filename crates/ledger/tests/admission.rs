//! One test per admission rule: each builds the smallest candidate that
//! breaks the rule and asserts the typed rejection, and that the chain did
//! not change.

mod common;

use common::*;
use stele_ledger::limits::{MAX_AUTHOR_BYTES, MAX_MESSAGE_BYTES, MAX_SIGNATURES};
use stele_ledger::{
    Admitted, Approval, Hash, Kind, Ledger, Rejection, Signature, TrustSet, Version,
};

fn refuse(ledger: &mut Ledger, version: Version, bundle: stele_ledger::BundleFiles) -> Rejection {
    let before = ledger.head();
    let len = ledger.len();
    let rejection = ledger.submit(version, bundle, &accept_all).unwrap_err();
    assert_eq!(
        ledger.head(),
        before,
        "a rejected candidate must not move the head"
    );
    assert_eq!(ledger.len(), len);
    rejection
}

#[test]
fn a_valid_update_is_appended_at_the_next_seq() {
    let mut ledger = chain(0);
    let b = bundle("v2");
    let version = next(&ledger, &b, Kind::Update, None, &[2, 3]);
    let hash = version.hash();
    assert_eq!(
        ledger.submit(version, b, &accept_all),
        Ok(Admitted::Appended { seq: 2, hash })
    );
    assert_eq!(ledger.head().unwrap().hash, hash);
}

#[test]
fn the_same_version_again_is_already_committed_whatever_its_signatures() {
    let mut ledger = chain(2);
    let mut again = ledger.version(2).unwrap().clone();
    again.signatures.clear();
    again.sign(&key(3));
    let b = ledger.bundle_at(2).unwrap().clone();
    assert_eq!(
        ledger.submit(again, b, &accept_all),
        Ok(Admitted::AlreadyCommitted { seq: 2 })
    );
    assert_eq!(ledger.len(), 3);
}

#[test]
fn stale_parent_is_refused_also_when_the_seq_is_taken() {
    let mut ledger = chain(2);
    let b = bundle("fork");
    // A different version on seq 2's parent: its seq (2) is taken.
    let parent = ledger.version(1).unwrap().hash();
    let fork = signed(header(2, parent, &b, Kind::Update, None), &[1, 2]);
    assert!(matches!(
        refuse(&mut ledger, fork, b.clone()),
        Rejection::StaleParent { .. }
    ));
    // Right seq, wrong parent.
    let other = signed(
        header(4, Hash::of_bytes(b"elsewhere"), &b, Kind::Update, None),
        &[1, 2],
    );
    assert!(matches!(
        refuse(&mut ledger, other, b),
        Rejection::StaleParent { .. }
    ));
}

#[test]
fn a_gap_is_refused() {
    let mut ledger = chain(1);
    let b = bundle("ahead");
    let head = ledger.head().unwrap();
    let ahead = signed(
        header(head.seq + 2, head.hash, &b, Kind::Update, None),
        &[1, 2],
    );
    assert_eq!(
        refuse(&mut ledger, ahead, b),
        Rejection::Gap {
            expected: 3,
            seq: 4
        }
    );
}

#[test]
fn a_signature_that_does_not_verify_is_refused_even_above_threshold() {
    let mut ledger = chain(0);
    let b = bundle("v2");
    let mut version = next(&ledger, &b, Kind::Update, None, &[1, 2]);
    version.signatures.push(Approval {
        key: public(3),
        signature: Signature([7; 64]),
    });
    assert_eq!(
        refuse(&mut ledger, version, b),
        Rejection::BadSignature { key: public(3) }
    );
}

#[test]
fn a_signature_over_another_version_is_refused() {
    let mut ledger = chain(0);
    let b = bundle("v2");
    let mut version = next(&ledger, &b, Kind::Update, None, &[1]);
    let other = Hash::of_bytes(b"another version");
    version.signatures.push(Approval {
        key: public(2),
        signature: key(2).sign(&other),
    });
    assert_eq!(
        refuse(&mut ledger, version, b),
        Rejection::BadSignature { key: public(2) }
    );
}

#[test]
fn a_key_outside_the_trust_set_is_refused() {
    let mut ledger = chain(0);
    let b = bundle("v2");
    let version = next(&ledger, &b, Kind::Update, None, &[1, 2, 9]);
    assert_eq!(
        refuse(&mut ledger, version, b),
        Rejection::UnknownKey { key: public(9) }
    );
}

#[test]
fn below_threshold_is_refused_and_a_repeated_signer_counts_once() {
    let mut ledger = chain(0);
    let b = bundle("v2");
    let single = next(&ledger, &b, Kind::Update, None, &[1]);
    assert_eq!(
        refuse(&mut ledger, single.clone(), b.clone()),
        Rejection::BelowThreshold {
            valid: 1,
            threshold: 2
        }
    );
    let mut doubled = single;
    doubled.signatures.push(doubled.signatures[0]);
    assert_eq!(
        refuse(&mut ledger, doubled, b),
        Rejection::BelowThreshold {
            valid: 1,
            threshold: 2
        }
    );
}

#[test]
fn a_bundle_that_does_not_match_its_digest_is_refused() {
    let mut ledger = chain(0);
    let declared = bundle("v2");
    let version = next(&ledger, &declared, Kind::Update, None, &[1, 2]);
    let actual = bundle("v2 edited");
    assert_eq!(
        refuse(&mut ledger, version, actual.clone()),
        Rejection::DigestMismatch {
            declared: declared.digest(),
            actual: actual.digest()
        }
    );
}

#[test]
fn an_invalid_bundle_is_refused_with_the_checks_message() {
    let mut ledger = chain(0);
    let b = bundle("v2");
    let version = next(&ledger, &b, Kind::Update, None, &[1, 2]);
    let cedar_says =
        |_: &stele_ledger::BundleFiles| Err("policy.cedar:1:1: unexpected token".to_string());
    assert_eq!(
        ledger.submit(version, b, &cedar_says),
        Err(Rejection::BundleInvalid {
            message: "policy.cedar:1:1: unexpected token".into()
        })
    );
    assert_eq!(ledger.len(), 1);
}

#[test]
fn a_rollback_restores_an_earlier_bundle_as_a_new_version() {
    let mut ledger = chain(2);
    let old = ledger.bundle_at(1).unwrap().clone();
    let version = next(&ledger, &old, Kind::Rollback { to_seq: 1 }, None, &[1, 3]);
    assert!(matches!(
        ledger.submit(version, old.clone(), &accept_all),
        Ok(Admitted::Appended { seq: 4, .. })
    ));
    assert_eq!(ledger.bundle_at(4), Some(&old));
}

#[test]
fn a_rollback_to_a_missing_seq_is_refused() {
    let mut ledger = chain(1);
    let b = ledger.bundle_at(1).unwrap().clone();
    for to_seq in [0, 3, 99] {
        let version = next(&ledger, &b, Kind::Rollback { to_seq }, None, &[1, 2]);
        assert_eq!(
            refuse(&mut ledger, version, b.clone()),
            Rejection::RollbackTargetMissing {
                to_seq,
                head_seq: 2
            }
        );
    }
}

#[test]
fn a_rollback_whose_bundle_differs_from_its_target_is_refused() {
    let mut ledger = chain(1);
    let weaker = bundle("permit(principal, action, resource);");
    let version = next(
        &ledger,
        &weaker,
        Kind::Rollback { to_seq: 1 },
        None,
        &[1, 2],
    );
    assert!(matches!(
        refuse(&mut ledger, version, weaker),
        Rejection::RollbackDigestDiffers { to_seq: 1, .. }
    ));
}

#[test]
fn a_rotation_needs_the_old_and_the_new_set() {
    let mut ledger = chain(0);
    let head_bundle = ledger.bundle_at(1).unwrap().clone();
    let new_set = TrustSet::new(vec![public(4), public(5), public(6)], 2).unwrap();
    let rotate = |signers: &[u8], ledger: &Ledger| {
        next(
            ledger,
            &head_bundle,
            Kind::Rotate,
            Some(new_set.clone()),
            signers,
        )
    };
    // Only the new keys: a thief with fresh keys cannot take over.
    assert_eq!(
        {
            let candidate = rotate(&[4, 5], &ledger);
            refuse(&mut ledger, candidate, head_bundle.clone())
        },
        Rejection::RotationNotCoSigned {
            old_signers: 0,
            old_threshold: 2,
            new_signers: 2,
            new_threshold: 2
        }
    );
    // Only the old keys: the new approvers never agreed.
    assert!(matches!(
        {
            let candidate = rotate(&[1, 2], &ledger);
            refuse(&mut ledger, candidate, head_bundle.clone())
        },
        Rejection::RotationNotCoSigned { new_signers: 0, .. }
    ));
    let both = rotate(&[1, 2, 4, 5], &ledger);
    ledger
        .submit(both, head_bundle.clone(), &accept_all)
        .unwrap();
    assert_eq!(ledger.trust(), Some(&new_set));
    // From now on the old keys are strangers.
    let b = bundle("after rotation");
    let old_signed = next(&ledger, &b, Kind::Update, None, &[1]);
    assert_eq!(
        refuse(&mut ledger, old_signed, b.clone()),
        Rejection::UnknownKey { key: public(1) }
    );
    let new_signed = next(&ledger, &b, Kind::Update, None, &[5, 6]);
    assert!(ledger.submit(new_signed, b, &accept_all).is_ok());
}

#[test]
fn a_rotation_must_keep_the_heads_bundle() {
    let mut ledger = chain(0);
    let b = bundle("sneaked in with a rotation");
    let new_set = TrustSet::new(vec![public(4)], 1).unwrap();
    let version = next(&ledger, &b, Kind::Rotate, Some(new_set), &[1, 2, 4]);
    assert!(matches!(
        refuse(&mut ledger, version, b),
        Rejection::Malformed { .. }
    ));
}

#[test]
fn the_trust_set_appears_exactly_on_genesis_and_rotate() {
    let mut ledger = chain(0);
    let b = bundle("v2");
    let with_trust = next(&ledger, &b, Kind::Update, Some(trust_1_2_3()), &[1, 2]);
    assert!(matches!(
        refuse(&mut ledger, with_trust, b.clone()),
        Rejection::Malformed { .. }
    ));
    let head_bundle = ledger.bundle_at(1).unwrap().clone();
    let rotate_without = next(&ledger, &head_bundle, Kind::Rotate, None, &[1, 2]);
    assert!(matches!(
        refuse(&mut ledger, rotate_without, head_bundle),
        Rejection::Malformed { .. }
    ));
}

#[test]
fn genesis_is_self_signed_by_its_own_threshold_and_only_first() {
    let mut empty = Ledger::new();
    let b = bundle("v1");
    assert_eq!(
        refuse(&mut empty, genesis(&b, &[1]), b.clone()),
        Rejection::BelowThreshold {
            valid: 1,
            threshold: 2
        }
    );
    let update_first = signed(header(1, Hash::ZERO, &b, Kind::Update, None), &[1, 2]);
    assert!(matches!(
        refuse(&mut empty, update_first, b.clone()),
        Rejection::Malformed { .. }
    ));
    let mut ledger = chain(0);
    let head = ledger.head().unwrap();
    let second_genesis = signed(
        header(2, head.hash, &b, Kind::Genesis, Some(trust_1_2_3())),
        &[1, 2],
    );
    assert!(matches!(
        refuse(&mut ledger, second_genesis, b),
        Rejection::Malformed { .. }
    ));
}

#[test]
fn a_pinned_chain_accepts_only_its_genesis() {
    let b = bundle("v1");
    let real = genesis(&b, &[1, 2]);
    let mut pinned = Ledger::pinned_to(real.hash());
    let mut impostor_header = real.header.clone();
    impostor_header.message = "substituted".into();
    let impostor = signed(impostor_header, &[1, 2]);
    assert!(matches!(
        refuse(&mut pinned, impostor, b.clone()),
        Rejection::GenesisMismatch { .. }
    ));
    assert!(pinned.submit(real, b, &accept_all).is_ok());
}

#[test]
fn oversized_fields_are_refused() {
    let mut ledger = chain(0);
    let b = bundle("v2");
    let mut long_message = next(&ledger, &b, Kind::Update, None, &[]).header;
    long_message.message = "m".repeat(MAX_MESSAGE_BYTES + 1);
    assert!(matches!(
        refuse(&mut ledger, signed(long_message, &[1, 2]), b.clone()),
        Rejection::OverSizeLimit {
            what: "message length in bytes",
            ..
        }
    ));
    let mut long_author = next(&ledger, &b, Kind::Update, None, &[]).header;
    long_author.author = "a".repeat(MAX_AUTHOR_BYTES + 1);
    assert!(matches!(
        refuse(&mut ledger, signed(long_author, &[1, 2]), b.clone()),
        Rejection::OverSizeLimit {
            what: "author length in bytes",
            ..
        }
    ));
    let mut many = next(&ledger, &b, Kind::Update, None, &[1, 2]);
    let first = many.signatures[0];
    many.signatures.resize(MAX_SIGNATURES + 1, first);
    assert!(matches!(
        refuse(&mut ledger, many, b),
        Rejection::OverSizeLimit {
            what: "number of signatures",
            ..
        }
    ));
}

#[test]
fn rejection_codes_are_stable_snake_case() {
    let rejection = Rejection::Gap {
        expected: 2,
        seq: 3,
    };
    assert_eq!(rejection.reason(), stele_ledger::Reason::Gap);
    assert_eq!(
        rejection.to_string(),
        "seq 3 does not follow the head: the next seq is 2"
    );
}

/// Approvers 1, 2, 3 named alice, bob and carol, 2 of 3.
fn named_trust() -> TrustSet {
    let entries = [(1, "alice"), (2, "bob"), (3, "carol")]
        .map(|(n, name)| (public(n), stele_ledger::Approver::named(name)));
    TrustSet::named(entries.to_vec(), 2).unwrap()
}

fn by(author: &str, mut header: stele_ledger::Header) -> stele_ledger::Header {
    header.author = author.into();
    header
}

#[test]
fn when_approvers_have_names_the_author_is_a_signer() {
    let first = bundle("v1");
    let genesis = |author: &str, signers: &[u8]| {
        let header = header(1, Hash::ZERO, &first, Kind::Genesis, Some(named_trust()));
        signed(by(author, header), signers)
    };
    // Nobody of that name, or an approver who did not sign: refused.
    for author in ["mallory", "carol", "tester"] {
        let mut ledger = Ledger::new();
        let rejection = refuse(&mut ledger, genesis(author, &[1, 2]), first.clone());
        assert_eq!(
            rejection,
            Rejection::AuthorNotASigner {
                author: author.into()
            },
            "{author}"
        );
    }
    let mut ledger = Ledger::new();
    ledger
        .submit(genesis("bob", &[1, 2]), first.clone(), &accept_all)
        .unwrap();

    // An update on the named chain: its author must be among its signers,
    // already in review (a pending proposal carries its proposer's name).
    let b = bundle("v2");
    let head = ledger.head().unwrap();
    let update = |author: &str, signers: &[u8]| {
        let header = header(2, head.hash, &b, Kind::Update, None);
        signed(by(author, header), signers)
    };
    let review = ledger
        .state()
        .review(&update("alice", &[2]), &b, &accept_all);
    assert_eq!(
        review.unwrap_err(),
        Rejection::AuthorNotASigner {
            author: "alice".into()
        }
    );
    let review = ledger.state().review(&update("bob", &[2]), &b, &accept_all);
    assert!(matches!(review, Ok(stele_ledger::Review::Valid { .. })));
    ledger
        .submit(update("carol", &[2, 3]), b, &accept_all)
        .unwrap();
    assert_eq!(ledger.head().unwrap().seq, 2);
}

#[test]
fn a_trust_set_without_names_takes_any_author() {
    let mut ledger = chain(0);
    let b = bundle("v2");
    let version = next(&ledger, &b, Kind::Update, None, &[2, 3]);
    let version = signed(by("whoever", version.header), &[2, 3]);
    ledger.submit(version, b, &accept_all).unwrap();
}

#[test]
fn a_named_trust_set_cannot_rotate_to_an_unnamed_one() {
    let first = bundle("v1");
    let header = header(1, Hash::ZERO, &first, Kind::Genesis, Some(named_trust()));
    let mut ledger = Ledger::new();
    ledger
        .submit(
            signed(by("alice", header), &[1, 2]),
            first.clone(),
            &accept_all,
        )
        .unwrap();
    let unnamed = TrustSet::new(vec![public(1), public(2)], 2).unwrap();
    let rotate = next(&ledger, &first, Kind::Rotate, Some(unnamed), &[]);
    let rotate = signed(by("alice", rotate.header), &[1, 2]);
    assert!(matches!(
        refuse(&mut ledger, rotate, first),
        Rejection::Malformed { .. }
    ));
}

#[test]
fn a_membership_version_signed_by_m_of_the_trust_set_sets_the_members_in_force() {
    let mut ledger = chain(1);
    assert_eq!(ledger.state().members(), None);
    let (version, b) = membership(&ledger, voters_1_2_3(), &[1, 3]);
    let hash = version.hash();
    assert_eq!(
        ledger.submit(version, b, &accept_all),
        Ok(Admitted::Appended { seq: 3, hash })
    );
    assert_eq!(ledger.state().members(), Some(&voters_1_2_3()));
    // The next membership version replaces the whole set.
    use stele_ledger::Role::*;
    let grown = stele_ledger::MemberSet::new(vec![
        member(1, Voter),
        member(2, Voter),
        member(3, Voter),
        member(4, Learner),
    ])
    .unwrap();
    let (version, b) = membership(&ledger, grown.clone(), &[2, 3]);
    ledger.submit(version, b, &accept_all).unwrap();
    assert_eq!(ledger.state().members(), Some(&grown));
    // An update leaves the members as they are.
    let b = bundle("v5");
    let update = next(&ledger, &b, Kind::Update, None, &[1, 2]);
    ledger.submit(update, b, &accept_all).unwrap();
    assert_eq!(ledger.state().members(), Some(&grown));
}

#[test]
fn an_unsigned_under_threshold_or_outsider_signed_membership_change_changes_nothing() {
    let mut ledger = chain(0);
    let (first, b) = membership(&ledger, voters_1_2_3(), &[1, 2]);
    ledger.submit(first, b, &accept_all).unwrap();
    // An attacker's set: its own node 9 as the only voter.
    use stele_ledger::Role::*;
    let hostile = stele_ledger::MemberSet::new(vec![member(9, Voter)]).unwrap();
    let (unsigned, b) = membership(&ledger, hostile.clone(), &[]);
    assert_eq!(
        refuse(&mut ledger, unsigned, b),
        Rejection::BelowThreshold {
            valid: 0,
            threshold: 2
        }
    );
    let (one, b) = membership(&ledger, hostile.clone(), &[1]);
    assert_eq!(
        refuse(&mut ledger, one, b),
        Rejection::BelowThreshold {
            valid: 1,
            threshold: 2
        }
    );
    let (outsider, b) = membership(&ledger, hostile.clone(), &[1, 9]);
    assert_eq!(
        refuse(&mut ledger, outsider, b),
        Rejection::UnknownKey { key: public(9) }
    );
    // Signatures collected for one set do not carry over to another: the
    // version hash covers every member's every field.
    let (honest, b) = membership(&ledger, hostile.clone(), &[1, 2]);
    let mut forged = honest.clone();
    let mut swapped = member(9, Voter);
    swapped.spki_sha256 = Hash::of_bytes(b"the attacker's key");
    forged.header.members = Some(stele_ledger::MemberSet::new(vec![swapped]).unwrap());
    assert_ne!(forged.hash(), honest.hash());
    assert!(matches!(
        refuse(&mut ledger, forged, b),
        Rejection::BadSignature { .. }
    ));
    assert_eq!(ledger.state().members(), Some(&voters_1_2_3()));
}

#[test]
fn members_appear_only_on_genesis_and_membership_versions() {
    let mut ledger = chain(0);
    let b = bundle("v2");
    let update_with_members = signed(
        next(&ledger, &b, Kind::Update, None, &[])
            .header
            .listing(voters_1_2_3()),
        &[1, 2],
    );
    assert!(matches!(
        refuse(&mut ledger, update_with_members, b),
        Rejection::Malformed { .. }
    ));
    let head_bundle = ledger.bundle_at(1).unwrap().clone();
    let without = next(&ledger, &head_bundle, Kind::Membership, None, &[1, 2]);
    assert!(matches!(
        refuse(&mut ledger, without, head_bundle),
        Rejection::Malformed { .. }
    ));
    // A new bundle cannot ride in on a membership change.
    let sneaked = bundle("sneaked in with a membership change");
    let with_bundle = signed(
        next(&ledger, &sneaked, Kind::Membership, None, &[])
            .header
            .listing(voters_1_2_3()),
        &[1, 2],
    );
    assert!(matches!(
        refuse(&mut ledger, with_bundle, sneaked),
        Rejection::Malformed { .. }
    ));
    // Nor does a change that changes nothing make a version.
    let (first, b) = membership(&ledger, voters_1_2_3(), &[1, 2]);
    ledger.submit(first, b, &accept_all).unwrap();
    let (again, b) = membership(&ledger, voters_1_2_3(), &[1, 2]);
    assert!(matches!(
        refuse(&mut ledger, again, b),
        Rejection::Malformed { .. }
    ));
}

#[test]
fn a_genesis_may_declare_the_first_members() {
    let mut ledger = Ledger::new();
    let b = bundle("v1");
    let header =
        header(1, Hash::ZERO, &b, Kind::Genesis, Some(trust_1_2_3())).listing(voters_1_2_3());
    ledger
        .submit(signed(header, &[1, 2]), b, &accept_all)
        .unwrap();
    assert_eq!(ledger.state().members(), Some(&voters_1_2_3()));
}
