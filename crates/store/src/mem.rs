//! The in-memory store, for simulation only: the same openraft traits and
//! the same state machine as the RocksDB store, with maps for storage.
//!
//! It can model a power loss as the RocksDB store would suffer it
//! ([`MemBackend::with_power_loss`]): log appends, votes, truncations,
//! purges and snapshot installs are synced there, state-machine writes are
//! not, and one write-ahead log orders them all. So a state-machine write
//! is durable once a later synced write happened, and lost with the power
//! otherwise.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader};
use stele_ledger::{BundleFiles, Hash, Version};

use crate::backend::{Backend, Batch, Replacement, StoreError, Stored, replaces};
use crate::machine::{Change, Pending};
use crate::snapshot::SnapshotError;
use crate::types::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig, Vote};

#[derive(Clone, Default)]
struct MemState {
    versions: Vec<Version>,
    bundles: HashMap<Hash, BundleFiles>,
    pending: BTreeMap<Hash, Pending>,
    clock_ms: u64,
    applied: Option<LogId>,
    membership: StoredMembership,
    snapshot: Option<(SnapshotMeta, Vec<u8>)>,
}

/// The state machine's storage, in memory.
#[derive(Clone, Default)]
pub struct MemBackend {
    state: Arc<Mutex<MemState>>,
    /// What survives a power loss, when power loss is modelled.
    durable: Option<Arc<Mutex<MemState>>>,
}

impl MemBackend {
    /// A store whose state-machine writes are lost at a power loss unless
    /// a synced write followed them (see the module documentation).
    pub fn with_power_loss() -> MemBackend {
        MemBackend {
            state: Arc::default(),
            durable: Some(Arc::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, MemState> {
        self.state
            .lock()
            .expect("the memory store's lock is never poisoned")
    }

    /// A synced write: everything written so far is durable.
    pub fn sync(&self) {
        if let Some(durable) = &self.durable {
            let current = self.lock().clone();
            *durable.lock().expect("never poisoned") = current;
        }
    }

    /// The power went: back to what was durable.
    pub fn lose_power(&self) {
        if let Some(durable) = &self.durable {
            let kept = durable.lock().expect("never poisoned").clone();
            *self.lock() = kept;
        }
    }
}

impl Backend for MemBackend {
    fn load(&self) -> Result<Stored, StoreError> {
        let state = self.lock();
        Ok(Stored {
            versions: state.versions.clone(),
            pending: state.pending.values().cloned().collect(),
            clock_ms: state.clock_ms,
            applied: state.applied,
            membership: state.membership.clone(),
        })
    }

    fn bundle(&self, digest: &Hash) -> Result<Option<BundleFiles>, StoreError> {
        Ok(self.lock().bundles.get(digest).cloned())
    }

    fn commit(&self, batch: Batch<'_>) -> Result<(), StoreError> {
        let mut state = self.lock();
        for change in batch.changes {
            match change {
                Change::Appended {
                    version, bundle, ..
                } => {
                    state
                        .bundles
                        .entry(version.header.bundle_digest)
                        .or_insert_with(|| bundle.as_ref().clone());
                    state.versions.push(version.as_ref().clone());
                }
                Change::PendingStored(held) => {
                    state
                        .pending
                        .insert(held.version.hash(), held.as_ref().clone());
                }
                Change::PendingRemoved(id) => {
                    state.pending.remove(id);
                }
            }
        }
        state.clock_ms = batch.clock_ms;
        state.applied = batch.applied;
        state.membership = batch.membership.clone();
        Ok(())
    }

    fn replace(&self, new: Replacement<'_>) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.bundles.clear();
        for version in new.versions {
            let digest = version.header.bundle_digest;
            let bundle = (new.bundles)(&digest).ok_or(StoreError::BadSnapshot(
                SnapshotError::MissingBundle { digest },
            ))?;
            state.bundles.insert(digest, bundle.clone());
        }
        state.versions = new.versions.to_vec();
        state.pending = new
            .pending
            .iter()
            .map(|p| (p.version.hash(), p.clone()))
            .collect();
        state.clock_ms = new.clock_ms;
        state.applied = new.applied;
        state.membership = new.membership.clone();
        drop(state);
        self.sync();
        Ok(())
    }

    fn save_snapshot(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StoreError> {
        let mut state = self.lock();
        if replaces(state.snapshot.as_ref().map(|(current, _)| current), meta) {
            state.snapshot = Some((meta.clone(), data.to_vec()));
            // A snapshot is its own file, fsynced before it is kept.
            if let Some(durable) = &self.durable {
                durable.lock().expect("never poisoned").snapshot = state.snapshot.clone();
            }
        }
        Ok(())
    }

    fn load_snapshot(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, StoreError> {
        Ok(self.lock().snapshot.clone())
    }
}

#[derive(Default)]
struct MemLog {
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
    entries: BTreeMap<u64, Entry>,
}

/// The Raft log, in memory. Every write is synced (durable before it is
/// acknowledged), and syncs `backend`'s earlier writes with it.
#[derive(Clone, Default)]
pub struct MemLogStore {
    log: Arc<Mutex<MemLog>>,
    backend: Option<MemBackend>,
}

impl MemLogStore {
    /// A log sharing its write-ahead log with `backend`.
    pub fn syncing(backend: MemBackend) -> MemLogStore {
        MemLogStore {
            log: Arc::default(),
            backend: Some(backend),
        }
    }

    fn lock(&self) -> MutexGuard<'_, MemLog> {
        self.log
            .lock()
            .expect("the memory log's lock is never poisoned")
    }

    fn synced(&self) {
        if let Some(backend) = &self.backend {
            backend.sync();
        }
    }
}

impl RaftLogReader<TypeConfig> for MemLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(self
            .lock()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for MemLogStore {
    type LogReader = MemLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let log = self.lock();
        let last = log
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(log.last_purged);
        Ok(LogState {
            last_purged_log_id: log.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.lock().vote = Some(*vote);
        self.synced();
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.lock().committed = committed;
        self.synced();
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        {
            let mut log = self.lock();
            for entry in entries {
                log.entries.insert(entry.log_id.index, entry);
            }
        }
        self.synced();
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.lock().entries.split_off(&log_id.index);
        self.synced();
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut log = self.lock();
        log.last_purged = Some(log_id);
        log.entries = log.entries.split_off(&(log_id.index + 1));
        drop(log);
        self.synced();
        Ok(())
    }
}
