//! Loading and saving ledger and proposal files for the offline commands.

use std::path::Path;

use stele_ledger::limits::MAX_BUNDLE_BYTES;
use stele_ledger::{Ledger, Proposal, PublicKey, TrustSet, export, structural_only};

use crate::failure::{Code, Failure, Result};
use crate::files::read_limited;

pub use stele_ledger::limits::MAX_LEDGER_FILE_BYTES;

/// Largest proposal file read: a bundle plus its header and signatures.
pub const MAX_PROPOSAL_FILE_BYTES: u64 = 2 * MAX_BUNDLE_BYTES as u64 + 1024 * 1024;

/// Decodes a ledger file and verifies its chain: encoding, hashes,
/// signatures, thresholds and digests. Bundles are not recompiled here
/// (`ledger verify` does that); they were checked when they were admitted,
/// and their digests are signed.
pub fn decode_ledger(path: &Path, bytes: &[u8]) -> Result<Ledger> {
    export::read(bytes, Ledger::new(), &structural_only).map_err(|error| {
        let failure: Failure = error.into();
        Failure {
            message: format!("{}: {}", path.display(), failure.message),
            ..failure
        }
    })
}

pub fn load_ledger(path: &Path) -> Result<Ledger> {
    decode_ledger(path, &read_limited(path, MAX_LEDGER_FILE_BYTES)?)
}

pub fn load_proposal(path: &Path) -> Result<Proposal> {
    let bytes = read_limited(path, MAX_PROPOSAL_FILE_BYTES)?;
    decode_proposal(path, &bytes)
}

pub fn decode_proposal(path: &Path, bytes: &[u8]) -> Result<Proposal> {
    Proposal::decode(bytes).map_err(|e| {
        Failure::new(
            Code::Reason(stele_ledger::Reason::BadProposal),
            format!("{}: not a valid proposal file: {e}", path.display()),
        )
    })
}

/// The author a new version carries. When a trust set names its approvers
/// (the one in force, or the one the version declares), the author is the
/// name of the first of `keys` it names, or `--author`, which must be an
/// approver's name and, when keys sign here, one of theirs: admission
/// refuses any other (`author_not_a_signer`), and the author is never
/// `$USER`. A trust set from before names existed names nobody: then
/// `--author`, or the first key.
pub fn author_for(sets: &[&TrustSet], keys: &[PublicKey], given: Option<&str>) -> Result<String> {
    let named: Vec<&TrustSet> = sets
        .iter()
        .copied()
        .filter(|set| set.approvers().is_some())
        .collect();
    let name_of = |key: &PublicKey| named.iter().find_map(|set| set.name_of(key));
    if named.is_empty() {
        let first_key = keys
            .first()
            .map(|key| format!("key {}", &key.to_hex()[..16]));
        return Ok(given
            .map(str::to_string)
            .or(first_key)
            .unwrap_or_else(|| "unknown".into()));
    }
    let names: Vec<&str> = named
        .iter()
        .flat_map(|set| set.approvers().unwrap_or_default())
        .map(|approver| approver.name.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    match given {
        Some(name) if !names.contains(&name) => Err(Failure::usage(format!(
            "--author {name:?} is not an approver of the trust set (its approvers: {})",
            names.join(", ")
        ))),
        Some(name) if !keys.is_empty() && !keys.iter().any(|k| name_of(k) == Some(name)) => {
            Err(Failure::usage(format!(
                "--author {name:?} is not the name of a key you sign with; leave --author out to use yours"
            )))
        }
        Some(name) => Ok(name.to_string()),
        None if keys.is_empty() => Err(Failure::usage(format!(
            "give --author NAME, the approver who will sign it first (one of: {})",
            names.join(", ")
        ))),
        // No key of the set: admission names it (`unknown_key`).
        None => Ok(keys
            .iter()
            .find_map(name_of)
            .map(str::to_string)
            .unwrap_or_else(|| keys[0].short())),
    }
}

/// Now, in Unix seconds (the system clock a node runs on): the proposer's
/// claim in `created_at`.
pub fn now_unix_seconds() -> u64 {
    stele_node::system_clock()() / 1000
}
