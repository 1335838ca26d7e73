//! The Raft type configuration every stele node shares.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::command::{Request, Response};
use crate::runtime::SteleRuntime;

pub type NodeId = u64;

openraft::declare_raft_types!(
    /// stele's Raft types: entries carry [`Request`]s, applying one yields a
    /// [`Response`]; members are addressed by their [`MemberAddrs`].
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = MemberAddrs,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = SteleRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, MemberAddrs>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, MemberAddrs>;
pub type Membership = openraft::Membership<NodeId, MemberAddrs>;

/// Where a member is reached: clients (and members forwarding a write or
/// asking for status) at `addr`, the Raft transport at `peer_addr`, as
/// etcd separates its client and peer ports (2379, 2380).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberAddrs {
    pub addr: String,
    pub peer_addr: String,
}

impl std::fmt::Display for MemberAddrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (peers: {})", self.addr, self.peer_addr)
    }
}
pub type Snapshot = openraft::Snapshot<TypeConfig>;
