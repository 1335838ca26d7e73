//! Snapshots of the policy state: everything apply reads (the ledger with
//! its bundles, the pending proposals, the state-machine clock), and the
//! checks a node runs before it installs one from a peer.
//!
//! Format: a first JSON line `{"format":"stele-snapshot","format_version":2,
//! "clock_ms":N,"ledger_bytes":L,"last_log_id":…,"last_membership":…}`, then
//! L bytes of ledger file (docs/FORMAT.md), then one JSON line per pending
//! proposal. The header records the Raft position the snapshot was built
//! at, so that a receiver can refuse a transfer whose metadata claims
//! another (see `stele-node`'s Raft guard).

use serde::{Deserialize, Serialize};
use stele_ledger::{
    ChainError, ChainState, Hash, Head, Ledger, LedgerFileError, Version, export, structural_only,
};
use stele_policy::check_ledger_bundles;
use thiserror::Error;

use crate::backend::StoreError;
use crate::machine::{MAX_CLOSED, MAX_PENDING, Pending};
use crate::types::{LogId, SnapshotMeta, StoredMembership};

const FORMAT: &str = "stele-snapshot";
const FORMAT_VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotHeader {
    format: String,
    format_version: u32,
    clock_ms: u64,
    ledger_bytes: u64,
    // Defaults only so that a version 1 header parses far enough to be
    // refused by its version.
    #[serde(default)]
    last_log_id: Option<LogId>,
    #[serde(default)]
    last_membership: StoredMembership,
}

/// Why a snapshot is refused: it does not decode, its chain does not
/// verify, or it would not extend this node's chain.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SnapshotError {
    #[error("no snapshot header line")]
    NoHeader,
    #[error("snapshot header: {0}")]
    Header(String),
    #[error("not a stele snapshot (format {format:?} version {format_version})")]
    NotASnapshot { format: String, format_version: u32 },
    #[error("snapshot is shorter than its ledger")]
    Truncated,
    #[error("the snapshot's ledger does not verify: {0}")]
    Ledger(LedgerFileError),
    #[error("snapshot pending proposal: {0}")]
    Pending(String),
    #[error(
        "{count} pending and closed proposals, over the limit of {MAX_PENDING} pending and {MAX_CLOSED} closed"
    )]
    TooManyPending { count: usize },
    #[error("the snapshot is empty but this node holds seq {ours}")]
    Empty { ours: u64 },
    #[error(
        "the snapshot ends at seq {theirs} but this node already holds seq {ours}: it would move the node backwards"
    )]
    Backwards { theirs: u64, ours: u64 },
    #[error("this node's seq {seq} ({hash}) is not in the snapshot: it belongs to another chain")]
    OtherChain { seq: u64, hash: Hash },
    #[error("the snapshot's {0}")]
    Bundle(ChainError),
    #[error("it lacks bundle {digest}")]
    MissingBundle { digest: Hash },
    #[error(
        "its metadata claims log position {claimed} but its data was built at {recorded}: refused, as a transfer that lies about where it ends"
    )]
    PositionDisagrees { claimed: String, recorded: String },
}

/// A decoded snapshot.
pub struct SnapshotState {
    pub ledger: Ledger,
    pub pending: Vec<Pending>,
    pub clock_ms: u64,
    /// The Raft position it was built at, as its data records it.
    pub position: Position,
}

/// Where in the Raft log a snapshot was built: its last applied log id and
/// the membership in force there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub last_log_id: Option<LogId>,
    pub last_membership: StoredMembership,
}

/// Encodes the state, fetching each bundle from `bundle` once.
pub fn encode<'a>(
    versions: impl IntoIterator<Item = &'a Version>,
    bundle: impl FnMut(&Hash) -> Result<stele_ledger::BundleFiles, StoreError>,
    pending: &[&Pending],
    clock_ms: u64,
    position: &Position,
) -> Result<Vec<u8>, StoreError> {
    let ledger = export::encode_with(versions, bundle)?;
    let header = SnapshotHeader {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        clock_ms,
        ledger_bytes: ledger.len() as u64,
        last_log_id: position.last_log_id,
        last_membership: position.last_membership.clone(),
    };
    let mut out = serde_json::to_vec(&header).expect("a header serializes");
    out.push(b'\n');
    out.extend_from_slice(ledger.as_bytes());
    for held in pending {
        out.extend(serde_json::to_vec(held).expect("a pending proposal serializes"));
        out.push(b'\n');
    }
    Ok(out)
}

/// Decodes a snapshot and verifies its chain from genesis (hashes,
/// signatures, thresholds, digests; bundles are checked by [`verify_for`]).
pub fn decode(bytes: &[u8], pinned_genesis: Option<Hash>) -> Result<SnapshotState, SnapshotError> {
    let newline = bytes
        .iter()
        .position(|b| *b == b'\n')
        .ok_or(SnapshotError::NoHeader)?;
    let header: SnapshotHeader = serde_json::from_slice(&bytes[..newline])
        .map_err(|e| SnapshotError::Header(e.to_string()))?;
    if header.format != FORMAT || header.format_version != FORMAT_VERSION {
        return Err(SnapshotError::NotASnapshot {
            format: header.format,
            format_version: header.format_version,
        });
    }
    let rest = &bytes[newline + 1..];
    let ledger_bytes = usize::try_from(header.ledger_bytes)
        .ok()
        .filter(|n| *n <= rest.len())
        .ok_or(SnapshotError::Truncated)?;
    let start = pinned_genesis.map(Ledger::pinned_to).unwrap_or_default();
    let ledger = export::read(&rest[..ledger_bytes], start, &structural_only)
        .map_err(SnapshotError::Ledger)?;
    let mut pending = Vec::new();
    for line in rest[ledger_bytes..]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
    {
        let held: Pending =
            serde_json::from_slice(line).map_err(|e| SnapshotError::Pending(e.to_string()))?;
        pending.push(held);
    }
    if pending.len() > MAX_PENDING + MAX_CLOSED {
        return Err(SnapshotError::TooManyPending {
            count: pending.len(),
        });
    }
    Ok(SnapshotState {
        ledger,
        pending,
        clock_ms: header.clock_ms,
        position: Position {
            last_log_id: header.last_log_id,
            last_membership: header.last_membership,
        },
    })
}

/// Whether the metadata a snapshot travels with claims the position its
/// data was built at. openraft trusts the metadata's log id: one far ahead
/// of the data would make it treat every later entry as already applied.
pub fn agrees(meta: &SnapshotMeta, snapshot: &SnapshotState) -> Result<(), SnapshotError> {
    let recorded = &snapshot.position;
    if meta.last_log_id == recorded.last_log_id && meta.last_membership == recorded.last_membership
    {
        return Ok(());
    }
    let show = |log_id: &Option<LogId>, membership: &StoredMembership| {
        format!(
            "{} with membership {membership}",
            log_id.map_or("none".to_string(), |id| id.to_string())
        )
    };
    Err(SnapshotError::PositionDisagrees {
        claimed: show(&meta.last_log_id, &meta.last_membership),
        recorded: show(&recorded.last_log_id, &recorded.last_membership),
    })
}

/// Whether a node whose chain is `local` may install `snapshot`: the
/// snapshot must extend the local chain (see [`extends`]), and every bundle
/// it adds must pass admission's bundle check.
pub fn verify_for(local: &ChainState, snapshot: &SnapshotState) -> Result<(), SnapshotError> {
    extends(local, snapshot)?;
    let after = local.head().map_or(0, |h: Head| h.seq);
    check_ledger_bundles(&snapshot.ledger, after).map_err(SnapshotError::Bundle)
}

/// Whether `snapshot` extends the chain `local`: it never moves the node
/// backwards or onto another chain.
pub fn extends(local: &ChainState, snapshot: &SnapshotState) -> Result<(), SnapshotError> {
    #[cfg(stele_sim)]
    if stele_ledger::defects::active(stele_ledger::defects::Defect::SnapshotRegress) {
        return Ok(());
    }
    let theirs = snapshot.ledger.head();
    if let Some(ours) = local.head() {
        let Some(theirs) = theirs else {
            return Err(SnapshotError::Empty { ours: ours.seq });
        };
        if theirs.seq < ours.seq {
            return Err(SnapshotError::Backwards {
                theirs: theirs.seq,
                ours: ours.seq,
            });
        }
        if snapshot.ledger.state().seq_of(&ours.hash) != Some(ours.seq) {
            return Err(SnapshotError::OtherChain {
                seq: ours.seq,
                hash: ours.hash,
            });
        }
    }
    Ok(())
}
