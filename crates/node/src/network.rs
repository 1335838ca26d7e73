//! The Raft transport, client side: openraft's RPCs to peers over tonic,
//! payloads in JSON. Each AppendEntries carries the age of this leader's
//! last quorum acknowledgement, the follower's evidence of freshness.
//! Snapshots are streamed in chunks in one call.

// openraft's network traits fix the error type (`RPCError`, over 200 bytes);
// the helpers here return it as it is rather than boxing it.
#![allow(clippy::result_large_err)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{RaftNetwork, RaftNetworkFactory};
use serde::Serialize;
use serde::de::DeserializeOwned;
use stele_proto::v1::raft_client::RaftClient;
use stele_proto::v1::{RaftRequest, SnapshotChunk};
use stele_store::{Command, Entry, MemberAddrs, NodeId, Snapshot, TypeConfig, Vote};
use tonic::transport::Channel;

use crate::dial::Dial;
use crate::limits::{MAX_RAFT_MESSAGE_BYTES, RAFT_BATCH_BYTES, SNAPSHOT_CHUNK_BYTES};
use crate::metrics::Metrics;
use crate::raft_guard::{self, Forged};
use crate::removal::Removal;
use stele_decision::Freshness;
use stele_ledger::Reason;
use tonic_types::StatusExt;

/// Opens clients to peers.
pub struct Network {
    pub dial: Dial,
    /// This node's freshness: as a leader, its last quorum ack.
    pub freshness: Arc<Freshness>,
    pub metrics: Arc<Metrics>,
    /// Told when a peer refuses this node as no member.
    pub removal: Arc<Removal>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &MemberAddrs) -> Self::Network {
        Peer {
            target,
            addr: node.peer_addr.clone(),
            client: (self.dial)(&node.peer_addr, target).map(|channel| {
                RaftClient::new(channel)
                    .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES)
            }),
            freshness: self.freshness.clone(),
            metrics: self.metrics.clone(),
            removal: self.removal.clone(),
            replies: VecDeque::new(),
        }
    }
}

/// How many of a peer's recent replies a leader keeps, to echo.
const KEPT_REPLIES: usize = 32;

/// A connection to one peer.
pub struct Peer {
    target: NodeId,
    addr: String,
    client: Result<RaftClient<Channel>, crate::dial::BadAddress>,
    freshness: Arc<Freshness>,
    metrics: Arc<Metrics>,
    removal: Arc<Removal>,
    /// The peer's recent AppendEntries replies: when each arrived, and the
    /// peer's clock and boot it carried.
    replies: VecDeque<(tokio::time::Instant, u64, u64)>,
}

type RpcError<E = openraft::error::Infallible> =
    RPCError<NodeId, MemberAddrs, RaftError<NodeId, E>>;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

fn unreachable<E: std::error::Error>(message: String) -> RpcError<E> {
    RPCError::Unreachable(Unreachable::new(&TransportError(message)))
}

fn network<E: std::error::Error>(message: String) -> RpcError<E> {
    RPCError::Network(NetworkError::new(&TransportError(message)))
}

/// The typed reason a peer's refusal carries, if any.
fn reason_of(status: &tonic::Status) -> Option<Reason> {
    status
        .get_error_details()
        .error_info()
        .and_then(|info| info.reason.parse().ok())
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("Raft messages serialize")
}

impl Peer {
    fn client<E: std::error::Error>(&self) -> Result<RaftClient<Channel>, RpcError<E>> {
        self.client
            .clone()
            .map_err(|e| unreachable(format!("node {} at {}: {e}", self.target, self.addr)))
    }

    /// Decodes a reply: the remote's `Result<T, RaftError<E>>` in JSON.
    fn reply<T: DeserializeOwned, E: DeserializeOwned + std::error::Error>(
        &self,
        reply: Result<tonic::Response<stele_proto::v1::RaftReply>, tonic::Status>,
    ) -> Result<T, RpcError<E>> {
        if let Err(status) = &reply
            && reason_of(status) == Some(Reason::Removed)
        {
            self.removal.refused_by(self.target);
        }
        let reply = reply
            .map_err(|status| match status.code() {
                tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled => {
                    unreachable(format!("node {}: {}", self.target, status.message()))
                }
                _ => network(format!("node {}: {}", self.target, status.message())),
            })?
            .into_inner();
        if !reply.error.is_empty() {
            return Err(network(format!(
                "node {} refused: {}",
                self.target, reply.error
            )));
        }
        let result: Result<T, RaftError<NodeId, E>> =
            serde_json::from_slice(&reply.json).map_err(|e| {
                network(format!(
                    "node {} sent a reply that does not decode: {e}",
                    self.target
                ))
            })?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    /// A reply the Raft guard refused: a network error, logged and counted,
    /// that openraft never sees as a reply.
    fn forged<E: std::error::Error>(&self, why: Forged) -> RpcError<E> {
        self.metrics.raft_refused(why.kind());
        tracing::warn!(peer = self.target, "refused a Raft reply: {why}");
        network(format!(
            "node {} sent a reply that was refused: {why}",
            self.target
        ))
    }

    fn request<T: Serialize>(
        &self,
        message: &T,
        option: &RPCOption,
        with_freshness: bool,
    ) -> tonic::Request<RaftRequest> {
        let age = with_freshness.then(|| self.freshness.age()).flatten();
        // The peer's latest reply that arrived no later than the quorum
        // ack the age measures: the peer's own clock bounds the evidence.
        let echo = age.and_then(|age| {
            let quorum_at = tokio::time::Instant::now().checked_sub(age)?;
            self.replies
                .iter()
                .rev()
                .find(|(arrived, _, _)| *arrived <= quorum_at)
                .map(|(_, sent_at_ms, boot)| (*sent_at_ms, *boot))
        });
        let mut request = tonic::Request::new(RaftRequest {
            json: encode(message),
            quorum_ack_age_ms: age.map(|age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX)),
            echo_ms: echo.map(|(sent_at_ms, _)| sent_at_ms),
            echo_boot: echo.map_or(0, |(_, boot)| boot),
        });
        request.set_timeout(option.hard_ttl());
        request
    }
}

/// How many entries to send instead, when `entries` weigh more than
/// `budget` bytes (estimated from their bundles, before any encoding);
/// `None` when they fit, or when there is only one.
fn batch_that_fits(entries: &[Entry], budget: usize) -> Option<u64> {
    let weight = |entry: &Entry| match &entry.payload {
        openraft::EntryPayload::Normal(request) => match &request.command {
            Command::Propose { proposal, .. } => proposal.bundle.total_bytes() + 4096,
            Command::Approve { approvals, .. } | Command::Withdraw { approvals, .. } => {
                256 * (approvals.len() + 1)
            }
            // Escaped in JSON, up to twice as long.
            Command::Restore { ledger } => 2 * ledger.len() + 4096,
        },
        _ => 1024,
    };
    let total: usize = entries.iter().map(weight).sum();
    if entries.len() < 2 || total <= budget {
        return None;
    }
    let fit = entries.len() * budget / total;
    Some(fit.max(1) as u64)
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        let entries = rpc.entries.len() as u64;
        // A new leader's first send to a peer may hold hundreds of entries:
        // with large bundles, encoding and sending them all at once would
        // stall the stream (and the heartbeats on it) past every timeout.
        if let Some(fit) = batch_that_fits(&rpc.entries, RAFT_BATCH_BYTES) {
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(fit),
            ));
        }
        let sent_term = rpc.vote.leader_id.term;
        let request = self.request(&rpc, &option, true);
        // Several large bundles may not fit one message: ask openraft for a
        // smaller batch rather than failing the same send for ever.
        if request.get_ref().json.len() > MAX_RAFT_MESSAGE_BYTES && entries > 1 {
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(entries / 2),
            ));
        }
        let reply = self.client()?.append_entries(request).await;
        if let Ok(answer) = &reply {
            let answer = answer.get_ref();
            if self.replies.len() == KEPT_REPLIES {
                self.replies.pop_front();
            }
            self.replies
                .push_back((tokio::time::Instant::now(), answer.sent_at_ms, answer.boot));
        }
        let response: AppendEntriesResponse<NodeId> = self.reply(reply)?;
        let checked = match &response {
            AppendEntriesResponse::HigherVote(vote) => {
                raft_guard::check_reply_vote(vote, sent_term)
            }
            AppendEntriesResponse::PartialSuccess(Some(log_id)) => {
                raft_guard::check_reply_log_id(log_id, sent_term)
            }
            _ => Ok(()),
        };
        checked.map_err(|why| self.forged(why))?;
        Ok(response)
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<InstallSnapshotError>> {
        // Snapshots go whole, through `full_snapshot`; openraft calls this
        // only from its default chunked transport, which stele replaces.
        Err(network(
            "chunked snapshot transfer is not used by stele".into(),
        ))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError> {
        let sent_term = rpc.vote.leader_id.term;
        let request = self.request(&rpc, &option, false);
        let reply = self.client()?.vote(request).await;
        let response: VoteResponse<NodeId> = self.reply(reply)?;
        raft_guard::check_reply_vote(&response.vote, sent_term)
            .and_then(|()| match &response.last_log_id {
                Some(log_id) => raft_guard::check_reply_log_id(log_id, sent_term),
                None => Ok(()),
            })
            .map_err(|why| self.forged(why))?;
        Ok(response)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl std::future::Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let streaming = |e: RpcError| -> StreamingError<TypeConfig, Fatal<NodeId>> {
            match e {
                RPCError::Unreachable(u) => StreamingError::Unreachable(u),
                RPCError::Network(n) => StreamingError::Network(n),
                other => {
                    StreamingError::Network(NetworkError::new(&TransportError(other.to_string())))
                }
            }
        };
        let mut client = self.client().map_err(streaming)?;
        let data = snapshot.snapshot.into_inner();
        let header = encode(&(vote, &snapshot.meta));
        let chunks: Vec<SnapshotChunk> = if data.is_empty() {
            vec![SnapshotChunk {
                header_json: header,
                data: Vec::new(),
            }]
        } else {
            data.chunks(SNAPSHOT_CHUNK_BYTES)
                .enumerate()
                .map(|(i, part)| SnapshotChunk {
                    header_json: if i == 0 { header.clone() } else { Vec::new() },
                    data: part.to_vec(),
                })
                .collect()
        };
        let mut request = tonic::Request::new(tokio_stream::iter(chunks));
        // A snapshot may be large: allow it more than one heartbeat's worth.
        request.set_timeout(option.hard_ttl().max(Duration::from_secs(60)));
        let reply = tokio::select! {
            biased;
            closed = cancel => return Err(StreamingError::Closed(closed)),
            reply = client.install_snapshot(request) => reply,
        };
        let response: SnapshotResponse<NodeId> = self
            .reply::<SnapshotResponse<NodeId>, openraft::error::Infallible>(reply)
            .map_err(streaming)?;
        raft_guard::check_reply_vote(&response.vote, vote.leader_id.term)
            .map_err(|why| streaming(self.forged(why)))?;
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use openraft::{EntryPayload, LogId};
    use stele_ledger::{BundleFiles, Hash, Header, Kind, Proposal, Version};
    use stele_store::Request;

    use super::*;

    fn proposing(bundle_bytes: usize) -> Entry {
        let mut bundle = BundleFiles::default();
        bundle
            .insert("p.cedar".into(), "x".repeat(bundle_bytes))
            .unwrap();
        let version = Version::unsigned(Header {
            seq: 2,
            parent_hash: Hash::ZERO,
            bundle_digest: bundle.digest(),
            kind: Kind::Update,
            message: "m".into(),
            author: "t".into(),
            created_at: 0,
            trust: None,
            expires_at: None,
            members: None,
        });
        Entry {
            log_id: LogId::default(),
            payload: EntryPayload::Normal(Request {
                time_ms: 0,
                command: Command::Propose {
                    proposal: Box::new(Proposal { version, bundle }),
                    commit_only: true,
                    pending_ttl_ms: 0,
                },
            }),
        }
    }

    #[test]
    fn entries_with_large_bundles_are_sent_a_few_at_a_time() {
        let megabyte = 1024 * 1024;
        let entries: Vec<Entry> = (0..50).map(|_| proposing(3 * megabyte / 2)).collect();
        // 50 bundles of 1.5 MiB against an 8 MiB budget: 5 at a time.
        assert_eq!(batch_that_fits(&entries, 8 * megabyte), Some(5));
        assert_eq!(batch_that_fits(&entries[..5], 8 * megabyte), None);
        // A single entry goes whatever its size.
        assert_eq!(
            batch_that_fits(&[proposing(20 * megabyte)], 8 * megabyte),
            None
        );
        // Two entries that do not fit together go one at a time.
        let two = [proposing(6 * megabyte), proposing(6 * megabyte)];
        assert_eq!(batch_that_fits(&two, 8 * megabyte), Some(1));
    }
}
