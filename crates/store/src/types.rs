//! The Raft type configuration every stele node shares.

use std::io::Cursor;

use openraft::BasicNode;

use crate::command::{Request, Response};
use crate::runtime::SteleRuntime;

pub type NodeId = u64;

openraft::declare_raft_types!(
    /// stele's Raft types: entries carry [`Request`]s, applying one yields a
    /// [`Response`]; nodes are addressed by `host:port`.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = SteleRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, BasicNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
