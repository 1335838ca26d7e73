//! Loading and saving ledger and proposal files for the offline commands.

use std::path::Path;

use stele_ledger::limits::MAX_BUNDLE_BYTES;
use stele_ledger::{Ledger, Proposal, export, structural_only};

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

pub fn author_or_default(author: Option<String>) -> String {
    author
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Now, in Unix seconds (the system clock a node runs on): the proposer's
/// claim in `created_at`.
pub fn now_unix_seconds() -> u64 {
    stele_node::system_clock()() / 1000
}
