//! openraft's state machine for stele, over any [`Backend`]: applies entries
//! through [`Machine`], persists what changed atomically, publishes the new
//! state, builds snapshots and installs verified ones.

use std::io::Cursor;
use std::sync::Arc;

use openraft::{
    EntryPayload, RaftSnapshotBuilder, StorageIOError, storage::RaftStateMachine,
    storage::Snapshot as RaftSnapshot,
};
use stele_ledger::{ChainError, ChainState, Hash, Head, Version, structural_only};
use stele_policy::Snapshot;
use thiserror::Error;

use crate::backend::{Backend, Batch, Replacement, StoreError};
use crate::command::Response;
use crate::machine::{Change, Machine};
use crate::published::{Published, Served};
use crate::snapshot;
use crate::types::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

/// Why a node refuses to start on its stored state.
#[derive(Debug, Error)]
pub enum OpenError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error(
        "the stored ledger does not verify at seq {}: {} (the store was tampered with or is corrupt; this node will not serve it)",
        .0.seq, .0.rejection
    )]
    Tampered(ChainError),
    #[error(
        "the bundle of the head (seq {seq}) no longer compiles: {message} (it passed when it was admitted, so this stele build's Cedar differs from the one that admitted it: run that build, or upgrade every node together)"
    )]
    HeadBundle { seq: u64, message: String },
}

pub struct PolicyStateMachine<B: Backend> {
    backend: Arc<B>,
    machine: Machine,
    applied: Option<LogId>,
    membership: StoredMembership,
    published: Arc<Published>,
    pinned_genesis: Option<Hash>,
    snapshots_built: u64,
}

impl<B: Backend> PolicyStateMachine<B> {
    /// Opens the stored state: verifies the stored chain from genesis (a
    /// tampered or corrupt store is refused, naming the first bad seq),
    /// compiles the head bundle and publishes both.
    pub fn open(
        backend: Arc<B>,
        published: Arc<Published>,
        pinned_genesis: Option<Hash>,
    ) -> Result<Self, OpenError> {
        let stored = backend.load()?;
        let chain = verify_stored(&stored.versions, pinned_genesis, |digest| {
            backend.bundle(digest)
        })?;
        let (machine, dropped) =
            Machine::from_parts(chain, stored.versions, stored.pending, stored.clock_ms);
        published.pending_dropped(dropped);
        let state_machine = PolicyStateMachine {
            backend,
            machine,
            applied: stored.applied,
            membership: stored.membership,
            published,
            pinned_genesis,
            snapshots_built: 0,
        };
        state_machine.publish_head()?;
        state_machine
            .published
            .set_machine(state_machine.machine.clone());
        Ok(state_machine)
    }

    /// Compiles the head's bundle and serves it.
    fn publish_head(&self) -> Result<(), OpenError> {
        let Some(head) = self.machine.head() else {
            return Ok(());
        };
        let version = self
            .machine
            .version(head.seq)
            .expect("the head is a version");
        let bundle = self
            .backend
            .bundle(&version.header.bundle_digest)?
            .ok_or_else(|| {
                StoreError::Corrupt(format!("the bundle of seq {} is missing", head.seq))
            })?;
        let snapshot = Snapshot::compile(&bundle).map_err(|e| OpenError::HeadBundle {
            seq: head.seq,
            message: e.to_string(),
        })?;
        self.published.serve(Served::new(head, Arc::new(snapshot)));
        Ok(())
    }
}

/// Replays admission over stored versions, fetching each bundle to check
/// its digest (bundles were compiled and tested when they were admitted).
pub fn verify_stored(
    versions: &[Version],
    pinned_genesis: Option<Hash>,
    bundle: impl Fn(&Hash) -> Result<Option<stele_ledger::BundleFiles>, StoreError>,
) -> Result<ChainState, OpenError> {
    let mut chain = pinned_genesis
        .map(ChainState::pinned_to)
        .unwrap_or_default();
    for version in versions {
        let bundle = bundle(&version.header.bundle_digest)?;
        chain
            .append_verified(version, bundle.as_ref(), &structural_only)
            .map_err(OpenError::Tampered)?;
    }
    Ok(chain)
}

fn write_error(error: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(&error).into()
}

fn read_error(error: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_state_machine(&error).into()
}

impl<B: Backend> RaftStateMachine<TypeConfig> for PolicyStateMachine<B> {
    type SnapshotBuilder = SnapshotBuilder<B>;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut responses = Vec::new();
        let mut changes = Vec::new();
        let before = self.machine.head();
        for entry in entries {
            self.applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => Response::Done,
                EntryPayload::Normal(request) => self.machine.apply(request, &mut changes),
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Response::Done
                }
            };
            responses.push(response);
        }
        self.backend
            .commit(Batch {
                applied: self.applied,
                membership: &self.membership,
                clock_ms: self.machine.clock_ms(),
                changes: &changes,
            })
            .map_err(write_error)?;
        if !changes.is_empty() {
            self.published.set_machine(self.machine.clone());
        }
        let newest = changes.into_iter().rev().find_map(|change| match change {
            Change::Appended {
                version, compiled, ..
            } => Some((version, compiled)),
            _ => None,
        });
        if let Some((version, compiled)) = newest {
            let compiled = compiled.expect("the newest version appended is served, and compiled");
            debug_assert!(before.map_or(0, |h| h.seq) < version.seq());
            let head = Head {
                seq: version.seq(),
                hash: version.hash(),
            };
            self.published.serve(Served::new(head, compiled));
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshots_built += 1;
        SnapshotBuilder {
            backend: self.backend.clone(),
            machine: self.machine.clone(),
            applied: self.applied,
            membership: self.membership.clone(),
            number: self.snapshots_built,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    /// The node checked this snapshot against its chain, bundles included,
    /// before it handed it to openraft (see [`snapshot::verify_for`]). Here
    /// it is decoded (which verifies its chain's structure) and must still
    /// extend this node's chain; Cedar does not run a second time.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        data: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = data.into_inner();
        let refused = |why: snapshot::SnapshotError| read_error(StoreError::BadSnapshot(why));
        let state = snapshot::decode(&bytes, self.pinned_genesis).map_err(refused)?;
        snapshot::agrees(meta, &state).map_err(refused)?;
        snapshot::extends(self.machine.chain(), &state).map_err(refused)?;
        let ledger = &state.ledger;
        let lookup = |digest: &Hash| ledger.bundle(digest);
        self.backend
            .replace(Replacement {
                versions: ledger.versions(),
                bundles: &lookup,
                pending: &state.pending,
                clock_ms: state.clock_ms,
                applied: meta.last_log_id,
                membership: &meta.last_membership,
            })
            .map_err(write_error)?;
        self.backend
            .save_snapshot(meta, &bytes)
            .map_err(write_error)?;
        let (chain, versions) = state.ledger.into_parts();
        let (machine, dropped) =
            Machine::from_parts(chain, versions, state.pending, state.clock_ms);
        self.published.pending_dropped(dropped);
        self.machine = machine;
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        let served = self.published.served().as_ref().map(|s| s.head);
        if served != self.machine.head() {
            self.publish_head().map_err(write_error)?;
        }
        self.published.set_machine(self.machine.clone());
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<RaftSnapshot<TypeConfig>>, StorageError> {
        let stored = self.backend.load_snapshot().map_err(read_error)?;
        Ok(stored.map(|(meta, data)| RaftSnapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

/// Builds a snapshot from a copy of the machine taken when openraft asked.
pub struct SnapshotBuilder<B: Backend> {
    backend: Arc<B>,
    machine: Machine,
    applied: Option<LogId>,
    membership: StoredMembership,
    number: u64,
}

impl<B: Backend> RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder<B> {
    async fn build_snapshot(&mut self) -> Result<RaftSnapshot<TypeConfig>, StorageError> {
        let backend = &self.backend;
        let bundle = |digest: &Hash| {
            backend
                .bundle(digest)?
                .ok_or_else(|| StoreError::Corrupt(format!("bundle {digest} is missing")))
        };
        let pending: Vec<_> = self.machine.pending().map(|p| p.as_ref()).collect();
        let data = snapshot::encode(
            self.machine.versions(),
            bundle,
            &pending,
            self.machine.clock_ms(),
            &snapshot::Position {
                last_log_id: self.applied,
                last_membership: self.membership.clone(),
            },
        )
        .map_err(read_error)?;
        let snapshot_id = match self.applied {
            Some(log_id) => format!("{}-{}-{}", log_id.leader_id.term, log_id.index, self.number),
            None => format!("0-0-{}", self.number),
        };
        let meta = SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        self.backend
            .save_snapshot(&meta, &data)
            .map_err(write_error)?;
        Ok(RaftSnapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
