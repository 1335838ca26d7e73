//! What the state machine needs from durable storage; RocksDB and memory
//! provide it. All of it is synchronous and small: bundles are stored once
//! by digest and read on demand, never all held in memory.

use stele_ledger::{BundleFiles, Hash, Version};
use thiserror::Error;

use crate::machine::{Change, Pending};
use crate::types::{LogId, SnapshotMeta, StoredMembership};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Io(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("refused a snapshot from the leader: {0}")]
    BadSnapshot(#[from] crate::snapshot::SnapshotError),
    #[error(
        "this data directory was written by an older stele (store layout {found}; this build reads layout {reads}, in which membership follows signed versions of the ledger), and is left as it was. To continue its chain: export the ledger with the older stele from a running member (`stele export --out EXPORT`); start this build's nodes on empty --data directories with --genesis set to seq 1's hash; append a membership version naming them (`stele proposal new --kind membership --ledger EXPORT --member ID=ADDR,PEER --cert node-ID.pem ... -m WHY --author NAME --out P`, signed by M approvers with `stele proposal sign P --key K`, then `stele ledger append EXPORT --proposal P`); and run `stele cluster init --ledger EXPORT` (docs/CLUSTER.md, \"Continuing a chain\"). Keep the old directory until the new cluster serves the chain."
    )]
    OlderLayout { found: u32, reads: u32 },
    #[error(
        "this data directory was written by a newer stele (store layout {found}; this build reads layout {reads}), and is left as it was: run that stele or a newer one"
    )]
    NewerLayout { found: u32, reads: u32 },
    #[error(
        "this data directory was written by a newer stele (it has column families this build does not know: {names}), and is left as it was: run that stele or a newer one"
    )]
    UnknownColumnFamilies { names: String },
    #[error(
        "this node's data directory holds no chain and no --genesis was given: a new node accepts only the chain whose genesis it is told, and keeps it. Pass --genesis HASH: the hash `stele ledger new` printed for the cluster's genesis, which is also seq 1's in `stele ledger log FILE` (and `stele log` on a running member)"
    )]
    GenesisRequired,
    #[error(
        "this data directory belongs to the chain whose genesis is {stored}, and --genesis says {given}: a node never changes chains. Start it with --genesis {stored}, or on an empty --data directory to join the other chain"
    )]
    GenesisDiffers { stored: Hash, given: Hash },
}

/// Everything the state machine keeps, as read at open.
pub struct Stored {
    pub versions: Vec<Version>,
    pub pending: Vec<Pending>,
    pub clock_ms: u64,
    pub applied: Option<LogId>,
    pub membership: StoredMembership,
}

/// The result of applying some entries, persisted atomically.
pub struct Batch<'a> {
    pub applied: Option<LogId>,
    pub membership: &'a StoredMembership,
    pub clock_ms: u64,
    pub changes: &'a [Change],
}

/// A whole new state, from a snapshot.
pub struct Replacement<'a> {
    pub versions: &'a [Version],
    pub bundles: &'a dyn Fn(&Hash) -> Option<&'a BundleFiles>,
    pub pending: &'a [Pending],
    pub clock_ms: u64,
    pub applied: Option<LogId>,
    pub membership: &'a StoredMembership,
}

pub trait Backend: Send + Sync + 'static {
    fn load(&self) -> Result<Stored, StoreError>;
    fn bundle(&self, digest: &Hash) -> Result<Option<BundleFiles>, StoreError>;
    fn commit(&self, batch: Batch<'_>) -> Result<(), StoreError>;
    fn replace(&self, state: Replacement<'_>) -> Result<(), StoreError>;
    /// Keeps `meta`'s snapshot as the current one unless the current one is
    /// newer: a snapshot build and an install may race, and the one kept
    /// must never move back.
    fn save_snapshot(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StoreError>;
    fn load_snapshot(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, StoreError>;
}

/// Reading bundles, for the node's reads (show, export, diff).
pub trait BundleSource: Send + Sync {
    fn bundle(&self, digest: &Hash) -> Result<Option<BundleFiles>, StoreError>;
}

impl<B: Backend> BundleSource for B {
    fn bundle(&self, digest: &Hash) -> Result<Option<BundleFiles>, StoreError> {
        Backend::bundle(self, digest)
    }
}

/// Whether a snapshot up to `new` may replace one up to `current`.
pub fn replaces(current: Option<&SnapshotMeta>, new: &SnapshotMeta) -> bool {
    current.is_none_or(|current| current.last_log_id <= new.last_log_id)
}
