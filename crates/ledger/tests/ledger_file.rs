//! The ledger file: round trips, strict decoding, and property tests that
//! random valid chains verify while any tampering is detected.

mod common;

use common::*;
use proptest::prelude::*;
use stele_ledger::export::{self, LEDGER_FILE_HEADER};
use stele_ledger::{Entries, Kind, Ledger, LedgerFileError, TrustSet, structural_only};

fn entries_of(ledger: &Ledger) -> Entries {
    let mut entries = Entries::default();
    for (version, bundle) in ledger.entries() {
        entries.push(version.clone(), bundle.clone());
    }
    entries
}

fn read(bytes: &[u8]) -> Result<Ledger, LedgerFileError> {
    export::read(bytes, Ledger::new(), &structural_only)
}

#[test]
fn a_ledger_round_trips_through_its_file() {
    let mut ledger = chain(3);
    let old = ledger.bundle_at(2).unwrap().clone();
    let rollback = next(&ledger, &old, Kind::Rollback { to_seq: 2 }, None, &[1, 2]);
    ledger.submit(rollback, old, &accept_all).unwrap();
    let text = export::encode(&ledger);
    assert!(text.starts_with(LEDGER_FILE_HEADER));
    // The rollback reuses seq 2's bundle: it is written once.
    assert_eq!(text.matches(r#"{"bundle":"#).count(), 4);
    let back = read(text.as_bytes()).unwrap();
    assert_eq!(back.head(), ledger.head());
    assert_eq!(back.versions(), ledger.versions());
    assert_eq!(export::encode(&back), text);
}

#[test]
fn a_chunked_ledger_is_the_same_file_and_asks_for_bundles_only_as_it_goes() {
    let ledger = chain(20);
    let whole = export::encode(&ledger);
    let chunk_bytes = 100;
    let mut chunked = export::Chunked::new(chunk_bytes);
    let mut fetched = 0;
    let mut out = Vec::new();
    for (seq, version) in ledger.versions().iter().enumerate() {
        chunked
            .push(version, |digest| {
                fetched += 1;
                Ok::<_, ()>(ledger.bundle(digest).unwrap().clone())
            })
            .unwrap();
        // One bundle per version so far: nothing was fetched ahead.
        assert_eq!(fetched, seq + 1);
        while let Some(chunk) = chunked.take_full() {
            assert_eq!(chunk.len(), chunk_bytes);
            out.extend(chunk);
        }
    }
    let last = chunked.finish();
    assert!(last.len() < chunk_bytes);
    out.extend(last);
    assert_eq!(String::from_utf8(out).unwrap(), whole);
}

#[test]
fn signatures_must_be_sorted_by_key_in_files() {
    let ledger = chain(1);
    let text = export::encode(&ledger);
    let version = ledger.version(2).unwrap();
    let [first, second] = [&version.signatures[0], &version.signatures[1]];
    let sorted = format!(
        r#"{{"key":"{}","signature":"{}"}},{{"key":"{}","signature":"{}"}}"#,
        first.key,
        first.signature.to_hex(),
        second.key,
        second.signature.to_hex()
    );
    let swapped = format!(
        r#"{{"key":"{}","signature":"{}"}},{{"key":"{}","signature":"{}"}}"#,
        second.key,
        second.signature.to_hex(),
        first.key,
        first.signature.to_hex()
    );
    assert!(text.contains(&sorted));
    let error = read(text.replacen(&sorted, &swapped, 1).as_bytes()).unwrap_err();
    assert!(error.to_string().contains("sorted by key"), "{error}");
}

#[test]
fn an_empty_file_and_a_foreign_file_are_refused() {
    assert!(read(b"").is_err());
    assert!(read(b"{\"format\":\"something-else\"}\n").is_err());
    let ok = format!("{LEDGER_FILE_HEADER}\n");
    assert_eq!(read(ok.as_bytes()).unwrap().len(), 0);
}

#[test]
fn a_respelled_record_is_not_canonical() {
    let text = export::encode(&chain(1));
    let spaced = text.replacen("\"seq\":1", "\"seq\": 1", 1);
    let error = read(spaced.as_bytes()).unwrap_err();
    assert_eq!((error.reason(), error.seq()), (None, 1));
    assert!(error.to_string().contains("canonical"), "{error}");
}

#[test]
fn a_truncated_file_is_refused() {
    let text = export::encode(&chain(2));
    let cut = &text[..text.len() - 1];
    assert!(read(cut.as_bytes()).is_err());
    // Dropping the last version line leaves its bundle record dangling.
    let last_line_start = text[..text.len() - 1].rfind('\n').unwrap() + 1;
    let without_last_version = &text[..last_line_start];
    let error = read(without_last_version.as_bytes()).unwrap_err();
    assert!(error.to_string().contains("no version uses"), "{error}");
}

#[test]
fn the_first_bad_seq_is_named() {
    let ledger = chain(4);
    let mut entries = entries_of(&ledger);
    entries.versions[2].header.message = "edited after signing".into();
    let error = Ledger::verify(Ledger::new(), entries, &structural_only).unwrap_err();
    assert_eq!(error.seq, 3);
    assert_eq!(error.rejection.reason(), stele_ledger::Reason::BadSignature);
}

/// One step of a random chain.
#[derive(Clone, Debug)]
enum Step {
    Update {
        bundle: u8,
        signers: Vec<u8>,
    },
    Rollback {
        back: u8,
        signers: Vec<u8>,
    },
    Rotate {
        keys: Vec<u8>,
        threshold: u8,
        signers: Vec<u8>,
    },
}

fn key_set() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(1u8..=6, 0..5)
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (any::<u8>(), key_set()).prop_map(|(bundle, signers)| Step::Update { bundle, signers }),
        1 => (any::<u8>(), key_set()).prop_map(|(back, signers)| Step::Rollback { back, signers }),
        1 => (proptest::collection::vec(1u8..=6, 1..4), 1u8..=3, key_set())
            .prop_map(|(keys, threshold, signers)| Step::Rotate { keys, threshold, signers }),
    ]
}

/// Applies the steps that admission accepts; refused ones are skipped, and
/// must leave the ledger as it was.
fn build(steps: &[Step]) -> Ledger {
    let mut ledger = chain(0);
    for step in steps {
        let head = ledger.head().unwrap();
        let (version, bundle) = match step {
            Step::Update { bundle: n, signers } => {
                let b = bundle(&format!("random {n}"));
                (next(&ledger, &b, Kind::Update, None, signers), b)
            }
            Step::Rollback { back, signers } => {
                let to_seq = 1 + u64::from(*back) % head.seq;
                let b = ledger.bundle_at(to_seq).unwrap().clone();
                (
                    next(&ledger, &b, Kind::Rollback { to_seq }, None, signers),
                    b,
                )
            }
            Step::Rotate {
                keys,
                threshold,
                signers,
            } => {
                let mut keys: Vec<_> = keys.iter().map(|n| public(*n)).collect();
                keys.sort();
                keys.dedup();
                let threshold = u32::from(*threshold).min(keys.len() as u32);
                let trust = TrustSet::new(keys, threshold).unwrap();
                let b = ledger.bundle_at(head.seq).unwrap().clone();
                (next(&ledger, &b, Kind::Rotate, Some(trust), signers), b)
            }
        };
        let before = ledger.len();
        if ledger.submit(version, bundle, &accept_all).is_err() {
            assert_eq!(ledger.len(), before);
        }
    }
    ledger
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_valid_chains_verify(steps in proptest::collection::vec(step(), 0..24)) {
        let ledger = build(&steps);
        let text = export::encode(&ledger);
        let back = read(text.as_bytes()).unwrap();
        prop_assert_eq!(back.head(), ledger.head());
        prop_assert_eq!(back.trust(), ledger.trust());
    }

    #[test]
    fn any_single_byte_change_is_detected(
        steps in proptest::collection::vec(step(), 0..8),
        position in any::<prop::sample::Index>(),
        replacement in any::<u8>(),
    ) {
        let ledger = build(&steps);
        let mut bytes = export::encode(&ledger).into_bytes();
        let at = position.index(bytes.len());
        prop_assume!(bytes[at] != replacement);
        bytes[at] = replacement;
        prop_assert!(read(&bytes).is_err(), "byte {} changed to {:#04x} went unnoticed", at, replacement);
    }

    #[test]
    fn random_tamperings_never_verify(
        steps in proptest::collection::vec(step(), 1..10),
        victim in any::<prop::sample::Index>(),
        tampering in 0u8..8,
    ) {
        let ledger = build(&steps);
        prop_assume!(ledger.len() >= 2);
        let mut entries = entries_of(&ledger);
        let versions = &mut entries.versions;
        let at = victim.index(versions.len());
        let other = (at + 1) % versions.len();
        match tampering {
            0 => versions[at].header.message.push('!'),
            1 => {
                let digest = versions[at].header.bundle_digest;
                entries.bundles.insert(digest, bundle("permit(principal, action, resource);"));
            }
            // Removing the last version is truncation, which a chain alone cannot
            // tell from a shorter ledger (see `truncation_is_caught_by_a_known_hash`).
            2 => { versions.remove(at.min(versions.len() - 2)); }
            3 => versions.swap(at, other),
            4 => { let copy = versions[at].clone(); versions.insert(at + 1, copy); }
            5 => versions[at].signatures.truncate(0),
            6 => {
                // Re-sign the edit with a key outside every trust set.
                versions[at].header.created_at += 1;
                versions[at].signatures.clear();
                versions[at].sign(&key(9));
            }
            _ => versions[at].header.seq += 1,
        }
        prop_assert!(Ledger::verify(Ledger::new(), entries, &structural_only).is_err());
    }
}
