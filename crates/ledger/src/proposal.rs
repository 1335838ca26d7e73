//! The proposal file: a version that is still collecting signatures, with its
//! bundle, self-contained so approvers on other machines can review and sign
//! it (docs/FORMAT.md, "Proposal file").

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::bundle::BundleFiles;
use crate::hash::Hash;
use crate::strict_json::{self, StrictJsonError};
use crate::version::Version;

const PROPOSAL_FORMAT: &str = "stele-proposal";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposalFile {
    format: String,
    format_version: u32,
    version: Version,
    bundle: BundleFiles,
}

#[derive(Serialize)]
struct ProposalFileRef<'a> {
    format: &'a str,
    format_version: u32,
    version: &'a Version,
    bundle: &'a BundleFiles,
}

/// Bytes that are not a proposal file.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ProposalError {
    #[error("not valid UTF-8")]
    NotUtf8,
    #[error("a proposal file is one line ending with a newline (truncated?)")]
    Truncated,
    #[error("{0}")]
    Json(#[from] StrictJsonError),
    #[error("not a stele proposal file (format {format:?} version {format_version})")]
    NotAProposal { format: String, format_version: u32 },
    #[error("the bundle in the file digests to {actual}, but the header declares {declared}")]
    DigestMismatch { actual: Hash, declared: Hash },
}

/// A version and its bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proposal {
    pub version: Version,
    pub bundle: BundleFiles,
}

impl Proposal {
    /// One canonical JSON line.
    pub fn encode(&self) -> String {
        Proposal::encode_parts(&self.version, &self.bundle)
    }

    /// [`Proposal::encode`] from borrowed parts, for callers that hold
    /// them elsewhere.
    pub fn encode_parts(version: &Version, bundle: &BundleFiles) -> String {
        let file = ProposalFileRef {
            format: PROPOSAL_FORMAT,
            format_version: 1,
            version,
            bundle,
        };
        let mut text = strict_json::encode(&file);
        text.push('\n');
        text
    }

    /// Decodes a proposal file; its bundle must match the header's digest.
    pub fn decode(bytes: &[u8]) -> Result<Proposal, ProposalError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ProposalError::NotUtf8)?;
        let line = text.strip_suffix('\n').ok_or(ProposalError::Truncated)?;
        let file: ProposalFile = strict_json::decode(line)?;
        if file.format != PROPOSAL_FORMAT || file.format_version != 1 {
            return Err(ProposalError::NotAProposal {
                format: file.format,
                format_version: file.format_version,
            });
        }
        let actual = file.bundle.digest();
        if actual != file.version.header.bundle_digest {
            return Err(ProposalError::DigestMismatch {
                actual,
                declared: file.version.header.bundle_digest,
            });
        }
        Ok(Proposal {
            version: file.version,
            bundle: file.bundle,
        })
    }
}
