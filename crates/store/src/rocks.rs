//! The durable store: the Raft log and the state machine in one RocksDB
//! database, one column family each for the log, Raft's vote and commit
//! index, the ledger, bundles by digest, pending proposals, and the state
//! machine's own bookkeeping. Log appends and votes are written with fsync
//! before they are acknowledged.

// openraft's storage traits fix the error type (`StorageError`, over 200
// bytes); the helpers here return it as it is rather than boxing it.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::fs;
use std::io::Write;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader, StorageIOError};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, Direction, IteratorMode,
    Options, WriteBatch, WriteOptions,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use stele_ledger::{BundleFiles, Hash, Version};

use crate::backend::{Backend, Batch, Replacement, StoreError, Stored, replaces};
use crate::machine::{Change, Pending};
use crate::snapshot::SnapshotError;
use crate::types::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig, Vote};

const CF_LOG: &str = "log";
const CF_RAFT: &str = "raft";
const CF_LEDGER: &str = "ledger";
const CF_BUNDLES: &str = "bundles";
const CF_PENDING: &str = "pending";
const CF_MACHINE: &str = "machine";
const COLUMN_FAMILIES: [&str; 6] = [
    CF_LOG, CF_RAFT, CF_LEDGER, CF_BUNDLES, CF_PENDING, CF_MACHINE,
];

/// Past every key of up to 32 bytes (seqs, log indexes, hashes): the end of
/// a range delete over a whole column.
const AFTER_ALL_KEYS: [u8; 33] = [0xff; 33];

/// Opens (or creates) the store in `dir`: the log store for openraft, and
/// the state machine's backend.
pub fn open(dir: &Path) -> Result<(RocksLogStore, Arc<RocksBackend>), StoreError> {
    fs::create_dir_all(dir).map_err(|e| io(format!("{}: {e}", dir.display())))?;
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
    refuse_unknown_families(&dir.join("db"))?;
    let families =
        COLUMN_FAMILIES.map(|name| ColumnFamilyDescriptor::new(name, family_options(&cache)));
    let db = DB::open_cf_descriptors(&options, dir.join("db"), families)
        .map_err(|e| io(format!("opening RocksDB in {}: {e}", dir.display())))?;
    check_layout(&db)?;
    let db = Arc::new(db);
    let snapshot_dir = dir.join("snapshot");
    fs::create_dir_all(&snapshot_dir)
        .map_err(|e| io(format!("{}: {e}", snapshot_dir.display())))?;
    Ok((
        RocksLogStore { db: db.clone() },
        Arc::new(RocksBackend {
            db,
            snapshot_dir,
            snapshot_lock: Mutex::new(()),
        }),
    ))
}

/// The store layout this build reads and writes. 3: membership follows
/// signed versions of the ledger, whose genesis names the first members,
/// and the Raft log may carry a whole restored chain. (2: members record a
/// peer address beside the client address, set by unsigned calls.) Stores
/// of layouts 1 and 2 written before the key existed carry none; they are
/// told apart by a membership that does not read (1) or does (2), or by
/// Raft entries with no membership applied (refused rather than stamped:
/// they cannot be told apart).
const LAYOUT: u32 = 3;
const LAYOUT_KEY: &[u8] = b"layout";

/// A newer stele may add column families: RocksDB would refuse to open
/// such a store with an error naming none of this, so it is checked first,
/// reading only the store's manifest.
fn refuse_unknown_families(db_dir: &Path) -> Result<(), StoreError> {
    // No database yet: nothing to refuse.
    let Ok(existing) = DB::list_cf(&Options::default(), db_dir) else {
        return Ok(());
    };
    let unknown: Vec<String> = existing
        .into_iter()
        .filter(|name| name != "default" && !COLUMN_FAMILIES.contains(&name.as_str()))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(StoreError::UnknownColumnFamilies {
        names: unknown.join(", "),
    })
}

/// Refuses a store of another layout before anything reads it, naming
/// what to do; records the layout in a new store.
fn check_layout(db: &DB) -> Result<(), StoreError> {
    let machine = cf(db, CF_MACHINE);
    let stored = db
        .get_cf(machine, LAYOUT_KEY)
        .map_err(|e| io(format!("reading the store layout: {e}")))?;
    let found = match &stored {
        Some(bytes) => decode::<u32>(bytes, "the store layout")?,
        None => {
            let membership = db
                .get_cf(machine, b"membership")
                .map_err(|e| io(format!("reading the membership: {e}")))?;
            let reads = match &membership {
                Some(bytes) => serde_json::from_slice::<StoredMembership>(bytes).is_ok(),
                // Nothing applied: a new store, unless Raft wrote to it
                // (whose entries this build may not read).
                None => {
                    let mut empty = true;
                    for family in [CF_LOG, CF_RAFT] {
                        match db.iterator_cf(cf(db, family), IteratorMode::Start).next() {
                            None => {}
                            Some(Ok(_)) => empty = false,
                            Some(Err(e)) => {
                                return Err(io(format!("reading the {family} column: {e}")));
                            }
                        }
                    }
                    empty
                }
            };
            match (reads, membership.is_some()) {
                (false, _) => 1,
                (true, true) => 2,
                (true, false) => LAYOUT,
            }
        }
    };
    // Layout 2 as the first builds with signed membership wrote it: its
    // genesis names the members (or there is no chain yet), so membership
    // follows the ledger already: layout 3 in all but the key.
    let found = match found {
        2 if stored_genesis(db)?.is_none_or(|genesis| genesis.header.members.is_some()) => LAYOUT,
        found => found,
    };
    if found == LAYOUT && stored.as_deref() != Some(encode(&LAYOUT).as_slice()) {
        db.put_cf_opt(machine, LAYOUT_KEY, encode(&LAYOUT), &synced())
            .map_err(|e| io(format!("recording the store layout: {e}")))?;
    }
    match found.cmp(&LAYOUT) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => Err(StoreError::OlderLayout {
            found,
            reads: LAYOUT,
        }),
        std::cmp::Ordering::Greater => Err(StoreError::NewerLayout {
            found,
            reads: LAYOUT,
        }),
    }
}

/// The stored chain's genesis, if there is a chain.
fn stored_genesis(db: &DB) -> Result<Option<Version>, StoreError> {
    let genesis = db
        .get_cf(cf(db, CF_LEDGER), 1u64.to_be_bytes())
        .map_err(|e| io(format!("reading the genesis: {e}")))?;
    genesis
        .map(|bytes| decode(&bytes, "the genesis"))
        .transpose()
}

/// Memory bounds. RocksDB's defaults (a 64 MiB memtable per column family,
/// twice) let a node replaying a log of large bundles hold hundreds of MiB
/// for nothing: bundles are read rarely, and a node's working set is its
/// compiled snapshot, not its store.
const MEMTABLE_BYTES: usize = 8 << 20;
/// Shared by every column family.
const BLOCK_CACHE_BYTES: usize = 8 << 20;

fn family_options(cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    let mut options = Options::default();
    options.set_write_buffer_size(MEMTABLE_BYTES);
    options.set_max_write_buffer_number(2);
    options.set_block_based_table_factory(&table);
    options
}

fn io(message: String) -> StoreError {
    StoreError::Io(message)
}

fn cf<'a>(db: &'a DB, name: &str) -> &'a ColumnFamily {
    db.cf_handle(name)
        .expect("every column family is created at open")
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("stored values always serialize")
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn synced() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

/// The state machine's storage.
pub struct RocksBackend {
    db: Arc<DB>,
    snapshot_dir: PathBuf,
    /// Serializes snapshot saves (a build and an install may race).
    snapshot_lock: Mutex<()>,
}

impl RocksBackend {
    fn get<T: DeserializeOwned>(
        &self,
        family: &str,
        key: &[u8],
        what: &str,
    ) -> Result<Option<T>, StoreError> {
        let bytes = self
            .db
            .get_cf(cf(&self.db, family), key)
            .map_err(|e| io(format!("reading {what}: {e}")))?;
        bytes.map(|b| decode(&b, what)).transpose()
    }

    fn put_machine_fields(
        &self,
        batch: &mut WriteBatch,
        applied: Option<LogId>,
        membership: &StoredMembership,
        clock_ms: u64,
    ) {
        let machine = cf(&self.db, CF_MACHINE);
        batch.put_cf(machine, b"applied", encode(&applied));
        batch.put_cf(machine, b"membership", encode(membership));
        batch.put_cf(machine, b"clock_ms", encode(&clock_ms));
    }
}

const GENESIS_KEY: &[u8] = b"genesis";

impl RocksBackend {
    /// The genesis this store's node accepts, pinned in the store: the one
    /// it was first started with (`--genesis`), and from then on the only
    /// one. A store from before the pin that holds a chain is pinned to its
    /// chain's genesis. A node with neither, an empty store and no
    /// `--genesis`, would accept whichever genesis reached it first, so it
    /// is refused.
    pub fn pin_genesis(&self, given: Option<Hash>) -> Result<Hash, StoreError> {
        let pinned: Option<String> = self.get(CF_MACHINE, GENESIS_KEY, "the pinned genesis")?;
        let pinned = pinned
            .map(|hex| {
                hex.parse::<Hash>()
                    .map_err(|e| StoreError::Corrupt(format!("the pinned genesis {hex:?}: {e}")))
            })
            .transpose()?;
        let chain = stored_genesis(&self.db)?;
        let stored = pinned.or(chain.map(|genesis| genesis.hash()));
        let pin = match (stored, given) {
            (Some(stored), Some(given)) if stored != given => {
                return Err(StoreError::GenesisDiffers { stored, given });
            }
            (Some(stored), _) => stored,
            (None, Some(given)) => given,
            (None, None) => return Err(StoreError::GenesisRequired),
        };
        if pinned != Some(pin) {
            self.db
                .put_cf_opt(
                    cf(&self.db, CF_MACHINE),
                    GENESIS_KEY,
                    encode(&pin.to_hex()),
                    &synced(),
                )
                .map_err(|e| io(format!("pinning the genesis: {e}")))?;
        }
        Ok(pin)
    }
}

impl RocksBackend {
    /// The current snapshot's metadata and data file name.
    fn current_snapshot_meta(&self) -> Result<Option<(SnapshotMeta, String)>, StoreError> {
        let current = self.snapshot_dir.join("current.json");
        if !current.exists() {
            return Ok(None);
        }
        let bytes = fs::read(&current).map_err(|e| io(format!("{}: {e}", current.display())))?;
        decode(&bytes, "the snapshot metadata").map(Some)
    }
}

impl RocksBackend {
    fn put_version(&self, batch: &mut WriteBatch, version: &Version, bundle: &BundleFiles) {
        batch.put_cf(
            cf(&self.db, CF_LEDGER),
            version.seq().to_be_bytes(),
            encode(version),
        );
        batch.put_cf(
            cf(&self.db, CF_BUNDLES),
            version.header.bundle_digest.as_bytes(),
            encode(bundle),
        );
    }

    fn put_pending(&self, batch: &mut WriteBatch, held: &Pending) {
        batch.put_cf(
            cf(&self.db, CF_PENDING),
            held.version.hash().as_bytes(),
            encode(held),
        );
    }
}

impl Backend for RocksBackend {
    fn load(&self) -> Result<Stored, StoreError> {
        let mut versions = Vec::new();
        for item in self
            .db
            .iterator_cf(cf(&self.db, CF_LEDGER), IteratorMode::Start)
        {
            let (key, value) = item.map_err(|e| io(format!("reading the ledger: {e}")))?;
            let seq = versions.len() as u64 + 1;
            if key.as_ref() != seq.to_be_bytes() {
                return Err(StoreError::Corrupt(format!(
                    "the stored ledger has no version at seq {seq}"
                )));
            }
            versions.push(decode::<Version>(
                &value,
                &format!("the stored version at seq {seq}"),
            )?);
        }
        let mut pending = Vec::new();
        for item in self
            .db
            .iterator_cf(cf(&self.db, CF_PENDING), IteratorMode::Start)
        {
            let (_, value) = item.map_err(|e| io(format!("reading pending proposals: {e}")))?;
            pending.push(decode::<Pending>(&value, "a stored pending proposal")?);
        }
        Ok(Stored {
            versions,
            pending,
            clock_ms: self
                .get(CF_MACHINE, b"clock_ms", "the state machine clock")?
                .unwrap_or(0),
            applied: self
                .get(CF_MACHINE, b"applied", "the applied log id")?
                .flatten(),
            membership: self
                .get(CF_MACHINE, b"membership", "the membership")?
                .unwrap_or_default(),
        })
    }

    fn bundle(&self, digest: &Hash) -> Result<Option<BundleFiles>, StoreError> {
        self.get(
            CF_BUNDLES,
            digest.as_bytes(),
            &format!("the stored bundle {digest}"),
        )
    }

    fn commit(&self, applied: Batch<'_>) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for change in applied.changes {
            match change {
                Change::Appended {
                    version, bundle, ..
                } => self.put_version(&mut batch, version, bundle),
                Change::PendingStored(held) => self.put_pending(&mut batch, held),
                Change::PendingRemoved(id) => {
                    batch.delete_cf(cf(&self.db, CF_PENDING), id.as_bytes())
                }
            }
        }
        self.put_machine_fields(
            &mut batch,
            applied.applied,
            applied.membership,
            applied.clock_ms,
        );
        self.db
            .write(batch)
            .map_err(|e| io(format!("writing the state machine: {e}")))
    }

    fn replace(&self, new: Replacement<'_>) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for family in [CF_LEDGER, CF_BUNDLES, CF_PENDING] {
            batch.delete_range_cf(cf(&self.db, family), &[][..], &AFTER_ALL_KEYS[..]);
        }
        for version in new.versions {
            let digest = version.header.bundle_digest;
            let bundle = (new.bundles)(&digest).ok_or(StoreError::BadSnapshot(
                SnapshotError::MissingBundle { digest },
            ))?;
            self.put_version(&mut batch, version, bundle);
        }
        for held in new.pending {
            self.put_pending(&mut batch, held);
        }
        self.put_machine_fields(&mut batch, new.applied, new.membership, new.clock_ms);
        self.db
            .write_opt(batch, &synced())
            .map_err(|e| io(format!("installing a snapshot: {e}")))
    }

    fn save_snapshot(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StoreError> {
        let _saving = self.snapshot_lock.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.current_snapshot_meta()?;
        if !replaces(current.as_ref().map(|(meta, _)| meta), meta) {
            return Ok(());
        }
        // Data first, then the meta that points at it: a crash in between
        // leaves the previous meta, whose data file name differs.
        let data_name = format!("{}.data", meta.snapshot_id);
        write_atomically(&self.snapshot_dir.join(&data_name), data)?;
        write_atomically(
            &self.snapshot_dir.join("current.json"),
            &encode(&(meta, &data_name)),
        )?;
        for entry in fs::read_dir(&self.snapshot_dir)
            .map_err(|e| io(e.to_string()))?
            .flatten()
        {
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(".data") && name.to_string_lossy() != data_name {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    fn load_snapshot(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, StoreError> {
        let Some((meta, data_name)) = self.current_snapshot_meta()? else {
            return Ok(None);
        };
        let data_path = self.snapshot_dir.join(data_name);
        let data = fs::read(&data_path).map_err(|e| io(format!("{}: {e}", data_path.display())))?;
        Ok(Some((meta, data)))
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let temp = path.with_extension("tmp");
    let mut file = fs::File::create(&temp).map_err(|e| io(format!("{}: {e}", temp.display())))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(|e| io(format!("{}: {e}", temp.display())))?;
    fs::rename(&temp, path).map_err(|e| io(format!("{}: {e}", path.display())))?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(format!("{}: {e}", dir.display())))?;
    }
    Ok(())
}

/// The Raft log, its vote and its commit index.
#[derive(Clone)]
pub struct RocksLogStore {
    db: Arc<DB>,
}

fn log_read_error(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_logs(&e).into()
}

fn log_write_error(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_logs(&e).into()
}

impl RocksLogStore {
    fn raft_get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        let bytes = self
            .db
            .get_cf(cf(&self.db, CF_RAFT), key)
            .map_err(log_read_error)?;
        bytes
            .map(|b| decode(&b, "Raft metadata").map_err(log_read_error))
            .transpose()
    }

    fn raft_put<T: Serialize>(&self, key: &[u8], value: &T) -> Result<(), StorageError> {
        self.db
            .put_cf_opt(cf(&self.db, CF_RAFT), key, encode(value), &synced())
            .map_err(log_write_error)
    }
}

impl RaftLogReader<TypeConfig> for RocksLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(n) => *n,
            Bound::Excluded(n) => n + 1,
            Bound::Unbounded => 0,
        };
        let mut entries = Vec::new();
        let mode = IteratorMode::From(&start.to_be_bytes(), Direction::Forward);
        for item in self.db.iterator_cf(cf(&self.db, CF_LOG), mode) {
            let (key, value) = item.map_err(log_read_error)?;
            let index = u64::from_be_bytes(key.as_ref().try_into().map_err(|_| {
                log_read_error(StoreError::Corrupt("a log key is not 8 bytes".into()))
            })?);
            if !range.contains(&index) {
                break;
            }
            entries.push(
                decode::<Entry>(&value, &format!("log entry {index}")).map_err(log_read_error)?,
            );
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for RocksLogStore {
    type LogReader = RocksLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.raft_get(b"last_purged")?.flatten();
        let last = match self
            .db
            .iterator_cf(cf(&self.db, CF_LOG), IteratorMode::End)
            .next()
        {
            Some(item) => {
                let (_, value) = item.map_err(log_read_error)?;
                Some(
                    decode::<Entry>(&value, "the last log entry")
                        .map_err(log_read_error)?
                        .log_id,
                )
            }
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.raft_put(b"vote", vote)
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.raft_get(b"vote")
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.raft_put(b"committed", &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.raft_get(b"committed")?.flatten())
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
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(
                cf(&self.db, CF_LOG),
                entry.log_id.index.to_be_bytes(),
                encode(&entry),
            );
        }
        // Acknowledged only once durable.
        let result = self.db.write_opt(batch, &synced());
        let outcome = result
            .as_ref()
            .map(|_| ())
            .map_err(|e| std::io::Error::other(e.to_string()));
        callback.log_io_completed(outcome);
        result.map_err(log_write_error)
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            cf(&self.db, CF_LOG),
            &log_id.index.to_be_bytes()[..],
            &AFTER_ALL_KEYS[..],
        );
        self.db.write_opt(batch, &synced()).map_err(log_write_error)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.raft_put(b"last_purged", &Some(log_id))?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            cf(&self.db, CF_LOG),
            0u64.to_be_bytes(),
            (log_id.index + 1).to_be_bytes(),
        );
        self.db.write_opt(batch, &synced()).map_err(log_write_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens `dir`, writes `key = value` in the machine's column, closes.
    fn write_raw(dir: &Path, key: &[u8], value: Option<&[u8]>) {
        write_raw_in(dir, CF_MACHINE, key, value);
    }

    fn write_raw_in(dir: &Path, family: &str, key: &[u8], value: Option<&[u8]>) {
        let (log, backend) = open(dir).unwrap();
        let machine = cf(&backend.db, family);
        match value {
            Some(value) => backend.db.put_cf(machine, key, value).unwrap(),
            None => backend.db.delete_cf(machine, key).unwrap(),
        }
        drop((log, backend));
    }

    /// A genesis version's stored bytes, listing `members`.
    fn genesis(members: Option<stele_ledger::MemberSet>) -> Vec<u8> {
        let key = stele_ledger::SecretKey::from_seed([1; 32]).public_key();
        let by = stele_ledger::Authorship {
            message: "g".into(),
            author: "t".into(),
            created_at: 0,
        };
        let trust = stele_ledger::TrustSet::new(vec![key], 1).unwrap();
        let mut header = stele_ledger::Header::genesis(Hash::ZERO, trust, by);
        if let Some(members) = members {
            header = header.listing(members);
        }
        encode(&Version::unsigned(header))
    }

    fn member_set() -> stele_ledger::MemberSet {
        stele_ledger::MemberSet::new(vec![stele_ledger::Member {
            id: 1,
            role: stele_ledger::Role::Voter,
            client: "127.0.0.1:7001".into(),
            peer: "127.0.0.1:7101".into(),
            region: String::new(),
            spki_sha256: Hash::ZERO,
        }])
        .unwrap()
    }

    #[test]
    fn a_store_of_another_layout_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        // A new store records its layout, and opens again.
        drop(open(dir.path()).unwrap());
        drop(open(dir.path()).unwrap());
        // A store of layout 1: no layout key, members without a peer address.
        let membership = serde_json::json!({
            "log_id": null,
            "membership": {"configs": [[1]], "nodes": {"1": {"addr": "127.0.0.1:7001"}}}
        });
        write_raw(
            dir.path(),
            b"membership",
            Some(membership.to_string().as_bytes()),
        );
        write_raw(dir.path(), LAYOUT_KEY, None);
        let refused = open(dir.path()).err().expect("an older store is refused");
        assert!(
            matches!(
                refused,
                StoreError::OlderLayout {
                    found: 1,
                    reads: LAYOUT
                }
            ),
            "{refused}"
        );
        assert!(refused.to_string().contains("empty --data director"));
        // Refused again: nothing was written over it.
        assert!(matches!(
            open(dir.path()),
            Err(StoreError::OlderLayout { .. })
        ));
        // Layout 2, whose membership was set by unsigned calls (its genesis
        // names no members): with the key, or from before it (a membership
        // that reads).
        for key in [Some(&b"2"[..]), None] {
            let dir = tempfile::tempdir().unwrap();
            let membership = encode(&StoredMembership::default());
            write_raw(dir.path(), b"membership", Some(&membership));
            let genesis = genesis(None);
            write_raw_in(dir.path(), CF_LEDGER, &1u64.to_be_bytes(), Some(&genesis));
            write_raw(dir.path(), LAYOUT_KEY, key);
            let refused = open(dir.path()).err().expect("a layout 2 store is refused");
            assert!(
                matches!(
                    refused,
                    StoreError::OlderLayout {
                        found: 2,
                        reads: LAYOUT
                    }
                ),
                "{refused}"
            );
            assert!(
                refused.to_string().contains("cluster init --ledger"),
                "{refused}"
            );
            assert!(matches!(
                open(dir.path()),
                Err(StoreError::OlderLayout { found: 2, .. })
            ));
        }
        // Layout 2 as the first builds with signed membership wrote it (a
        // genesis that names members), or with no chain: layout 3 but for
        // the key, which it gets.
        for listed in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let membership = encode(&StoredMembership::default());
            write_raw(dir.path(), b"membership", Some(&membership));
            if listed {
                let genesis = genesis(Some(member_set()));
                write_raw_in(dir.path(), CF_LEDGER, &1u64.to_be_bytes(), Some(&genesis));
            }
            write_raw(dir.path(), LAYOUT_KEY, Some(b"2"));
            let (_log, backend) = open(dir.path()).unwrap();
            let recorded = backend
                .db
                .get_cf(cf(&backend.db, CF_MACHINE), LAYOUT_KEY)
                .unwrap();
            assert_eq!(recorded.as_deref(), Some(encode(&LAYOUT).as_slice()));
        }
        // A newer layout.
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path()).unwrap());
        write_raw(dir.path(), LAYOUT_KEY, Some(b"4"));
        let refused = open(dir.path()).err().expect("a newer store is refused");
        assert!(
            matches!(
                refused,
                StoreError::NewerLayout {
                    found: 4,
                    reads: LAYOUT
                }
            ),
            "{refused}"
        );
    }

    #[test]
    fn a_store_with_column_families_of_a_newer_stele_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path()).unwrap());
        {
            let mut options = Options::default();
            options.create_missing_column_families(true);
            let mut families: Vec<&str> = COLUMN_FAMILIES.to_vec();
            families.push("membership_versions");
            DB::open_cf(&options, dir.path().join("db"), families).unwrap();
        }
        let refused = open(dir.path()).err().expect("refused");
        assert!(
            matches!(&refused, StoreError::UnknownColumnFamilies { names } if names == "membership_versions"),
            "{refused}"
        );
        assert!(refused.to_string().contains("newer stele"));
    }

    #[test]
    fn raft_entries_with_nothing_applied_and_no_layout_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path()).unwrap());
        {
            let (_log, backend) = open(dir.path()).unwrap();
            let db = &backend.db;
            db.put_cf(cf(db, CF_RAFT), b"vote", b"{}").unwrap();
            db.delete_cf(cf(db, CF_MACHINE), LAYOUT_KEY).unwrap();
        }
        assert!(matches!(
            open(dir.path()),
            Err(StoreError::OlderLayout { found: 1, .. })
        ));
    }
}
