//! The Raft transport, server side. AppendEntries from a leader records the
//! freshness evidence it carries; a snapshot is received whole, decoded and
//! checked against this node's chain before openraft sees it (openraft
//! treats a failed install as fatal, so a bad snapshot must never reach it).

use std::sync::Arc;
use std::time::Duration;

use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest};
use serde::Serialize;
use stele_proto::v1::raft_server::Raft as RaftRpc;
use stele_proto::v1::{RaftReply, RaftRequest, SnapshotChunk};
use stele_store::{NodeId, Published, Raft, SnapshotMeta, TypeConfig, Vote, snapshot};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::limits::MAX_SNAPSHOT_BYTES;
use stele_decision::Freshness;

pub struct RaftService {
    pub raft: Raft,
    pub freshness: Arc<Freshness>,
    pub published: Arc<Published>,
    pub pinned_genesis: Option<stele_ledger::Hash>,
    /// One snapshot is received at a time: each is held in memory whole.
    pub receiving_snapshot: tokio::sync::Semaphore,
}

fn reply<T: Serialize>(value: &T) -> Response<RaftReply> {
    Response::new(RaftReply {
        json: serde_json::to_vec(value).expect("Raft replies serialize"),
        error: String::new(),
    })
}

fn refuse(message: String) -> Response<RaftReply> {
    Response::new(RaftReply {
        json: Vec::new(),
        error: message,
    })
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(bytes)
        .map_err(|e| Status::invalid_argument(format!("malformed Raft message: {e}")))
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let arrived = tokio::time::Instant::now();
        let request = request.into_inner();
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&request.json)?;
        let leader_commit = rpc.leader_commit.map(|log_id| log_id.index);
        let result = self.raft.append_entries(rpc).await;
        // Accepted from the current leader: as current as that leader was,
        // once this node has applied what the leader had committed.
        if let (Ok(response), Some(age_ms)) = (&result, request.quorum_ack_age_ms)
            && matches!(
                response,
                AppendEntriesResponse::Success | AppendEntriesResponse::PartialSuccess(_)
            )
        {
            self.freshness.note(
                Duration::from_millis(age_ms) + arrived.elapsed(),
                leader_commit,
            );
        }
        Ok(reply(&result))
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let rpc: VoteRequest<NodeId> = decode(&request.into_inner().json)?;
        Ok(reply(&self.raft.vote(rpc).await))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftReply>, Status> {
        let Ok(_receiving) = self.receiving_snapshot.try_acquire() else {
            return Ok(refuse(
                "another snapshot is being received; try again later".into(),
            ));
        };
        let mut chunks = request.into_inner();
        let mut header: Option<(Vote, SnapshotMeta)> = None;
        let mut data = Vec::new();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            if header.is_none() {
                header = Some(decode(&chunk.header_json)?);
            }
            if data.len() + chunk.data.len() > MAX_SNAPSHOT_BYTES {
                return Ok(refuse(format!(
                    "snapshot over the limit of {MAX_SNAPSHOT_BYTES} bytes"
                )));
            }
            data.extend_from_slice(&chunk.data);
        }
        let Some((vote, meta)) = header else {
            return Err(Status::invalid_argument("an empty snapshot stream"));
        };
        let pinned = self.pinned_genesis;
        let local = self.published.machine();
        let bytes = data;
        let checked = stele_store::offload(move || {
            let state = snapshot::decode(&bytes, pinned)?;
            snapshot::verify_for(local.chain(), &state)?;
            Ok::<_, stele_store::SnapshotError>(bytes)
        })
        .await
        .map_err(|e| Status::internal(format!("snapshot check failed: {e}")))?;
        let bytes = match checked {
            Ok(bytes) => bytes,
            Err(why) => {
                tracing::warn!(snapshot = %meta.snapshot_id, "refused a snapshot: {why}");
                return Ok(refuse(format!("snapshot refused: {why}")));
            }
        };
        tracing::info!(snapshot = %meta.snapshot_id, "installing a snapshot from the leader (checked against this node's chain)");
        let snapshot = stele_store::Snapshot {
            meta,
            snapshot: Box::new(std::io::Cursor::new(bytes)),
        };
        let result = self
            .raft
            .install_full_snapshot(vote, snapshot)
            .await
            .map_err(openraft::error::RaftError::<NodeId>::Fatal);
        Ok(reply(&result))
    }
}
