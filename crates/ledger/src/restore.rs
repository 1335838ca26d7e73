//! A chain continued in a new cluster: a whole ledger file (a cluster's
//! export) whose head is a signed `membership` version naming the new
//! cluster's members. The approvers who sign that version sign its parent
//! hash, which pins every version below it: the signatures that start the
//! new cluster vouch for the whole history it continues.

use thiserror::Error;

use crate::admission::ChainState;
use crate::chain::{ChainError, Entries, structural_only};
use crate::export::{FormatError, decode};
use crate::limits::MAX_RESTORE_LEDGER_BYTES;
use crate::member_set::MemberSet;
use crate::version::{Kind, Version};
use stele_reason::Reason;

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RestoreError {
    #[error(
        "the ledger is {bytes} bytes, over the {MAX_RESTORE_LEDGER_BYTES} a restore carries in one request"
    )]
    TooLarge { bytes: usize },
    #[error("not a ledger file: {0}")]
    Format(#[from] FormatError),
    #[error("the ledger does not verify at {0}")]
    Chain(#[from] ChainError),
    #[error("the ledger holds no version")]
    Empty,
    #[error(
        "its head (seq {seq}) is a version of kind {kind}, and a restore ends with a signed membership version naming the new cluster's members: make one on the export (`stele proposal new --kind membership --ledger EXPORT --member ID=ADDR,PEER --cert node-ID.pem ... -m WHY --author NAME --out P`), have M approvers sign it (`stele proposal sign P --key K`), and append it (`stele ledger append EXPORT --proposal P`)"
    )]
    HeadNotMembership { seq: u64, kind: String },
}

impl RestoreError {
    pub fn reason(&self) -> Reason {
        match self {
            RestoreError::TooLarge { .. } => Reason::OverSizeLimit,
            RestoreError::Format(_)
            | RestoreError::Empty
            | RestoreError::HeadNotMembership { .. } => Reason::Malformed,
            RestoreError::Chain(error) => error.rejection.reason(),
        }
    }
}

/// A verified restore: the chain state after its head, and its versions
/// and bundles.
pub struct Restore {
    pub chain: ChainState,
    pub entries: Entries,
}

impl Restore {
    pub fn head(&self) -> &Version {
        self.entries
            .versions
            .last()
            .expect("a verified restore holds a version")
    }

    /// The member set the head names: the new cluster's.
    pub fn members(&self) -> &MemberSet {
        self.chain
            .members()
            .expect("a verified restore ends with a membership version")
    }
}

/// Decodes `bytes` as a ledger file and verifies it onto `start` (an empty
/// chain, pinned to the genesis a node was started with): hash links,
/// signatures and thresholds, and every bundle its digest's. The bundles
/// are not compiled here (the head's is, by whoever serves it). Expiry is
/// the caller's: it needs a clock.
pub fn verify(bytes: &[u8], start: ChainState) -> Result<Restore, RestoreError> {
    if bytes.len() > MAX_RESTORE_LEDGER_BYTES {
        return Err(RestoreError::TooLarge { bytes: bytes.len() });
    }
    let entries = decode(bytes)?;
    let mut chain = start;
    for version in &entries.versions {
        let bundle = entries.bundles.get(&version.header.bundle_digest);
        chain.append_verified(version, bundle, &structural_only)?;
    }
    let head = entries.versions.last().ok_or(RestoreError::Empty)?;
    if head.header.kind != Kind::Membership {
        return Err(RestoreError::HeadNotMembership {
            seq: head.seq(),
            kind: head.header.kind.name().to_string(),
        });
    }
    Ok(Restore { chain, entries })
}
