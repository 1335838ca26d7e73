//! What one node says about the chain, read for a command that reviews or
//! signs: its versions (a page at a time), its pending proposals, and the
//! trust and member sets in force at a seq.

use stele_client::Client;
use stele_ledger::{BundleFiles, Hash, Proposal, Version};
use stele_proto::v1::{ListVersionsRequest, ProposalStatus};

use super::ids::{Found, Typed, resolve};
use super::review::checked_parent;
use crate::failure::{Code, Failure, Result};
use crate::remote::call;

/// Every version the node holds up to `last` (all of them with `None`),
/// oldest first.
pub fn versions(client: &Client, last: Option<u64>) -> Result<Vec<Version>> {
    let mut versions: Vec<Version> = Vec::new();
    loop {
        let from_seq = versions.len() as u64 + 1;
        if last.is_some_and(|last| from_seq > last) {
            return Ok(versions);
        }
        let page = call(client.list_versions(ListVersionsRequest { from_seq, limit: 0 }))?;
        let before = versions.len();
        for version in page {
            // A node that skips or repeats seqs is not answering honestly.
            if version.seq() != versions.len() as u64 + 1 {
                return Err(Failure::new(
                    Code::NodeError,
                    format!(
                        "the node sent seq {} where seq {} was due; not trusting its answer",
                        version.seq(),
                        versions.len() + 1
                    ),
                ));
            }
            if last.is_some_and(|last| version.seq() > last) {
                break;
            }
            versions.push(version);
        }
        if versions.len() == before {
            return Ok(versions);
        }
    }
}

/// The pending proposals' statuses, as the node lists them.
pub fn pending(client: &Client) -> Result<Vec<ProposalStatus>> {
    Ok(call(client.list_proposals())?.proposals)
}

fn pending_ids(statuses: &[ProposalStatus]) -> Result<Vec<Hash>> {
    statuses
        .iter()
        .map(|status| {
            status.proposal_id.parse().map_err(|e| {
                Failure::new(
                    Code::NodeError,
                    format!("the node listed a malformed proposal id: {e}"),
                )
            })
        })
        .collect()
}

/// A version or pending proposal, read and checked: a pending proposal's
/// hash is its id and its bundle matches its digest (the client checks
/// both); a committed version's bundle matches its digest.
pub struct Read {
    pub version: Version,
    pub bundle: BundleFiles,
    pub pending: bool,
}

/// What a typed id names on this node.
pub fn find(client: &Client, versions: &[Version], typed: &Typed) -> Result<Read> {
    let statuses = match typed {
        // A seq names a committed version only.
        Typed::Seq(_) => Vec::new(),
        _ => pending(client)?,
    };
    match resolve(typed, versions, &pending_ids(&statuses)?)? {
        Found::Committed { seq, .. } => {
            let (version, bundle) = committed(client, seq)?;
            Ok(Read {
                version,
                bundle,
                pending: false,
            })
        }
        Found::Pending(id) => {
            let Proposal { version, bundle } = call(client.proposal(&id))?;
            Ok(Read {
                version,
                bundle,
                pending: true,
            })
        }
    }
}

/// Version `seq` and its bundle, the bundle checked against the digest.
pub fn committed(client: &Client, seq: u64) -> Result<(Version, BundleFiles)> {
    let (version, bundle) = call(client.version(seq))?;
    if version.seq() != seq || bundle.digest() != version.header.bundle_digest {
        return Err(Failure::new(
            Code::NodeError,
            format!(
                "the node's answer for seq {seq} is not that version with its bundle; not trusting it"
            ),
        ));
    }
    Ok((version, bundle))
}

/// The bundle `version`'s parent holds, checked to be the parent it names.
pub fn parent_bundle(client: &Client, version: &Version) -> Result<Option<BundleFiles>> {
    if version.seq() <= 1 {
        return Ok(None);
    }
    let (parent, bundle) = call(client.version(version.seq() - 1))?;
    checked_parent(version, &parent, &bundle)?;
    Ok(Some(bundle))
}
