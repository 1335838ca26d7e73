//! The in-memory store, for simulation only: the same openraft traits and
//! the same state machine as the RocksDB store, with maps for storage.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader};
use stele_ledger::{BundleFiles, Hash, Version};

use crate::backend::{Backend, Batch, Replacement, StoreError, Stored, replaces};
use crate::machine::{Change, Pending};
use crate::types::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig, Vote};

#[derive(Default)]
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
}

impl MemBackend {
    fn lock(&self) -> MutexGuard<'_, MemState> {
        self.state
            .lock()
            .expect("the memory store's lock is never poisoned")
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
            let bundle = (new.bundles)(&digest)
                .ok_or_else(|| StoreError::BadSnapshot(format!("it lacks bundle {digest}")))?;
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
        Ok(())
    }

    fn save_snapshot(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StoreError> {
        let mut state = self.lock();
        if replaces(state.snapshot.as_ref().map(|(current, _)| current), meta) {
            state.snapshot = Some((meta.clone(), data.to_vec()));
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

/// The Raft log, in memory.
#[derive(Clone, Default)]
pub struct MemLogStore {
    log: Arc<Mutex<MemLog>>,
}

impl MemLogStore {
    fn lock(&self) -> MutexGuard<'_, MemLog> {
        self.log
            .lock()
            .expect("the memory log's lock is never poisoned")
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
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.lock().committed = committed;
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
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.lock().entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut log = self.lock();
        log.last_purged = Some(log_id);
        log.entries = log.entries.split_off(&(log_id.index + 1));
        Ok(())
    }
}
