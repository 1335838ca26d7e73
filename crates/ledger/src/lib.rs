//! # stele-ledger
//!
//! The write-once policy ledger: versions and their canonical encoding,
//! domain-separated SHA-256 hashes, ed25519 approvals, M-of-N trust sets,
//! admission (the rule every node and verifier applies to a candidate
//! version), whole-chain verification, and the ledger and proposal file
//! formats.
//!
//! It does no I/O, no async and knows nothing of Cedar: admission takes the
//! bundle check (compile, validate, run scenarios) as a function, so the chain
//! rules are tested alone. The byte-exact formats are in `docs/FORMAT.md`.

pub mod admission;
pub mod bundle;
pub mod chain;
#[cfg(stele_sim)]
pub mod defects;
pub mod export;
pub mod hash;
pub mod keys;
pub mod limits;
pub mod member_set;
pub mod proposal;
pub mod restore;
mod strict_json;
pub mod time;
pub mod trust;
pub mod version;

pub use admission::{Admitted, Approvals, BundleCheck, ChainState, Head, Rejection, Review};
pub use bundle::{BundleFiles, BundleFilesError};
pub use chain::{ChainError, Entries, Ledger, structural_only};
pub use export::{FormatError, LedgerFileError};
pub use hash::{Hash, HexError};
pub use keys::{Approval, KeyError, PublicKey, SecretKey, Signature};
pub use member_set::{Member, MemberChange, MemberSet, MemberSetError, Role};
pub use proposal::{Proposal, ProposalError};
pub use restore::{Restore, RestoreError};
pub use stele_reason::Reason;
pub use strict_json::StrictJsonError;
pub use time::WallClock;
pub use trust::{Approver, TrustSet, TrustSetError};
pub use version::{Authorship, Header, Kind, Version};
