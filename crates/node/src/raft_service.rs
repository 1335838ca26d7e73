//! The Raft transport, server side. Every message passes the Raft guard
//! (who sent it, bounded terms and indexes) before openraft sees it.
//! AppendEntries from a leader records the freshness evidence it carries; a
//! snapshot is received whole under deadlines, decoded and checked against
//! this node's chain and its own metadata before openraft sees it (openraft
//! treats a failed install as fatal, so a bad snapshot must never reach it).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest};
use serde::Serialize;
use stele_proto::v1::raft_server::Raft as RaftRpc;
use stele_proto::v1::{RaftReply, RaftRequest, SnapshotChunk};
use stele_store::{NodeId, Published, Raft, SnapshotMeta, TypeConfig, Vote, snapshot};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::current_members::members_of;
use crate::errors::with_reason;
use crate::limits::{MAX_SNAPSHOT_BYTES, SNAPSHOT_IDLE_DEADLINE, SNAPSHOT_TOTAL_DEADLINE};
use crate::metrics::Metrics;
use crate::raft_guard::{self, Committed, Forged, Local, Sender};
use crate::removal::Removal;
use stele_decision::Freshness;
use stele_ledger::{Reason, Role};
use stele_tls::Caller;

pub struct RaftService {
    pub raft: Raft,
    pub freshness: Arc<Freshness>,
    pub published: Arc<Published>,
    pub pinned_genesis: Option<stele_ledger::Hash>,
    pub metrics: Arc<Metrics>,
    /// One snapshot is received at a time: each is held in memory whole.
    pub receiving_snapshot: tokio::sync::Semaphore,
    /// The highest commit the current leader has sent, under its vote.
    pub committed: Mutex<Committed>,
    /// This process's boot, in every reply: an echo of another boot's
    /// clock is no evidence.
    pub boot: u64,
    pub removal: Arc<Removal>,
}

impl RaftService {
    pub fn new(
        raft: Raft,
        freshness: Arc<Freshness>,
        published: Arc<Published>,
        pinned_genesis: Option<stele_ledger::Hash>,
        metrics: Arc<Metrics>,
        removal: Arc<Removal>,
    ) -> RaftService {
        RaftService {
            raft,
            freshness,
            published,
            pinned_genesis,
            metrics,
            receiving_snapshot: tokio::sync::Semaphore::new(1),
            committed: Mutex::new(None),
            boot: rand::Rng::r#gen(&mut stele_store::ThreadRng),
            removal,
        }
    }

    /// The request's sender; a caller that is not a member is refused,
    /// counted and logged.
    fn sender<T>(&self, request: &Request<T>) -> Result<Sender, Status> {
        sender(request).inspect_err(|status| {
            self.metrics.raft_refused("identity");
            tracing::warn!("refused a Raft call: {}", status.message());
        })
    }

    fn local(&self) -> Local {
        Local {
            term: self.raft.metrics().borrow().current_term,
        }
    }

    /// The members of the membership this node has, `None` before it has
    /// any (a new node, which counts no evidence until it joins).
    fn members(&self) -> Option<BTreeSet<NodeId>> {
        members_of(&self.raft.metrics().borrow()).map(|members| members.nodes)
    }

    /// A vote from a node this node's membership does not list is refused
    /// (`REMOVED`) before openraft sees it: a removed node campaigns for
    /// ever, and its terms must not disturb the members. The refusal tells
    /// it so; most voters saying it makes it stop. A candidate whose log
    /// reaches past this node's membership entry may know a newer one that
    /// lists it (this node lags): its vote goes to openraft as usual.
    fn refuse_non_member(&self, sender: Sender, rpc: &VoteRequest<NodeId>) -> Result<(), Status> {
        let Sender::Node(id) = sender else {
            return Ok(());
        };
        let members = members_of(&self.raft.metrics().borrow());
        match members {
            Some(members) if !members.nodes.contains(&id) && rpc.last_log_id <= members.log_id => {
                self.metrics.raft_refused("not_a_member");
                tracing::info!(
                    peer = id,
                    "refused a vote from node {id}, which this node's membership does not list (removed?)"
                );
                Err(with_reason(
                    Reason::Removed,
                    format!(
                        "node {id} is not a member of this cluster (it was removed, or never added): it may stop; add it again with `stele cluster add-learner`"
                    ),
                    Default::default(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Once the ledger names the members (a genesis or `membership`
    /// version, signed by M of the trust set), a leader's or candidate's
    /// message counts only from a node it lists as a voter, holding the key
    /// it lists for that node. A certificate from the cluster CA alone
    /// makes no member, so a stolen CA key adds no node; and a leader the
    /// ledger removed is not followed, so the next leader finishes the
    /// change (`reconcile`). Before the ledger names any (a new node, or a
    /// chain from before member sets), openraft's membership decides.
    fn refuse_unlisted<T>(
        &self,
        request: &Request<T>,
        sender: Sender,
        what: &str,
    ) -> Result<(), Status> {
        let Sender::Node(id) = sender else {
            return Ok(());
        };
        let machine = self.published.machine();
        let Some(members) = machine.chain().members() else {
            return Ok(());
        };
        // (`--insecure-plaintext` proves no sender: `Sender::Unproven`,
        // which returned above, so no key is checked.)
        let caller = Caller::proven(request.extensions().get::<Caller>());
        let presented = match caller {
            Caller::Certified(certified) => Some(certified.spki_sha256.as_str()),
            _ => None,
        };
        // The simulation's stolen certificate comes with its key.
        #[cfg(stele_sim)]
        let listed_hex = members.get(id).map(|m| m.spki_sha256.to_hex());
        #[cfg(stele_sim)]
        let presented = match stolen_certificate(request, caller) {
            Some(_) => listed_hex.as_deref(),
            None => presented,
        };
        let refusal = match members.get(id) {
            Some(member) if member.role == Role::Voter => {
                // Parsed, not printed: nothing allocated per heartbeat.
                if presented.and_then(|hex| hex.parse::<stele_ledger::Hash>().ok())
                    == Some(member.spki_sha256)
                {
                    return Ok(());
                }
                self.metrics.raft_refused("not_the_listed_key");
                Status::permission_denied(format!(
                    "node {id}'s certificate does not hold the key the ledger lists for node {id} (SHA-256 of its public key {}, listed {}): a certificate of the cluster CA alone makes no member",
                    presented.unwrap_or("unknown"),
                    member.spki_sha256
                ))
            }
            listed => {
                self.metrics.raft_refused("not_a_voter_in_the_ledger");
                let role = match listed {
                    Some(_) => "lists it as a learner, which never leads or campaigns",
                    None => "does not list it (it was removed, or never added)",
                };
                with_reason(
                    Reason::Removed,
                    format!(
                        "the ledger's member set {role}: node {id} is no voter of this cluster, and its Raft messages are refused"
                    ),
                    Default::default(),
                )
            }
        };
        tracing::warn!(peer = id, "refused a Raft {what}: {}", refusal.message());
        Err(refusal)
    }

    /// Logs and counts a refused message, and the status that tells the
    /// sender.
    fn refused(&self, sender: Sender, what: &str, why: Forged) -> Status {
        self.metrics.raft_refused(why.kind());
        tracing::warn!(peer = ?sender, "refused a Raft {what}: {why}");
        match why {
            Forged::NotTheSender { .. } => Status::permission_denied(why.to_string()),
            _ => Status::invalid_argument(why.to_string()),
        }
    }

    /// A reply carrying this node's clock and boot, for the leader to echo.
    fn stamped(&self, mut reply: Response<RaftReply>) -> Response<RaftReply> {
        let reply_ref = reply.get_mut();
        reply_ref.sent_at_ms = self.freshness.clock_ms();
        reply_ref.boot = self.boot;
        reply
    }

    fn note_commit(&self, vote: Vote, commit: Option<stele_store::LogId>) {
        let Some(commit) = commit else {
            return;
        };
        let mut committed = self.committed.lock().unwrap_or_else(|e| e.into_inner());
        match committed.as_mut() {
            Some((under, highest)) if *under == vote => *highest = (*highest).max(commit),
            _ => *committed = Some((vote, commit)),
        }
    }
}

/// Who sent a request, as its connection proved it: a node's certificate,
/// or plaintext (`--insecure-plaintext`, which proves nothing). Anyone
/// else, a client's certificate included, is refused: the peer port is for
/// members.
fn sender<T>(request: &Request<T>) -> Result<Sender, Status> {
    let caller = Caller::proven(request.extensions().get::<Caller>());
    #[cfg(stele_sim)]
    if let Some(stolen) = stolen_certificate(request, caller) {
        return Ok(Sender::Node(stolen));
    }
    let node = match caller {
        Caller::Insecure => return Ok(Sender::Unproven),
        Caller::Certified(certified) => certified.node,
        Caller::Anonymous => None,
    };
    node.map(Sender::Node).ok_or_else(|| {
        Status::permission_denied(format!(
            "the peer port serves members only: {caller} presented no node certificate of this cluster"
        ))
    })
}

/// Simulation only: the adversary holds member N's certificate (a member's
/// key can be stolen) when it says so in `x-stele-sim-stolen-node`.
#[cfg(stele_sim)]
fn stolen_certificate<T>(request: &Request<T>, caller: &Caller) -> Option<NodeId> {
    matches!(caller, Caller::Certified(c) if c.node.is_none())
        .then(|| request.metadata().get("x-stele-sim-stolen-node"))
        .flatten()
        .and_then(|value| value.to_str().ok()?.parse().ok())
}

fn reply<T: Serialize>(value: &T) -> Response<RaftReply> {
    Response::new(RaftReply {
        json: serde_json::to_vec(value).expect("Raft replies serialize"),
        ..Default::default()
    })
}

fn refuse(message: String) -> Response<RaftReply> {
    Response::new(RaftReply {
        error: message,
        ..Default::default()
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
        let sender = self.sender(&request)?;
        self.refuse_unlisted(&request, sender, "AppendEntries")?;
        let request = request.into_inner();
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&request.json)?;
        raft_guard::check_append(sender, &rpc, self.local())
            .map_err(|why| self.refused(sender, "AppendEntries", why))?;
        let vote = rpc.vote;
        let leader_commit = rpc.leader_commit;
        // Before openraft applies anything of it: the removal watch must not
        // see this batch applied with the commit still unknown. Not capped at
        // what this message brings: a node catching up batch by batch is not
        // caught up at the end of a batch.
        if let Some(commit) = leader_commit {
            self.removal.leader_committed(commit.index);
        }
        let result = self.raft.append_entries(rpc).await;
        let accepted = match &result {
            Ok(AppendEntriesResponse::Success | AppendEntriesResponse::PartialSuccess(_)) => true,
            Ok(AppendEntriesResponse::Conflict) => false,
            Ok(AppendEntriesResponse::HigherVote(_)) | Err(_) => {
                return Ok(self.stamped(reply(&result)));
            }
        };
        // openraft took the vote: this is the current leader, and it counts
        // this node a member.
        self.note_commit(vote, leader_commit);
        self.removal.heard_from_leader();
        // Accepted from the current leader, a member: as current as that
        // leader was, no fresher than the reply of this boot it echoes,
        // once this node has applied what the leader had committed.
        let leader = vote.leader_id.node_id;
        if accepted
            && let Some(age_ms) = request.quorum_ack_age_ms
            && let Some(echo_ms) = request.echo_ms
            && request.echo_boot == self.boot
            && raft_guard::counts_as_evidence(sender, leader, self.members().as_ref())
        {
            self.freshness.note_echoed(
                Duration::from_millis(age_ms).saturating_add(arrived.elapsed()),
                echo_ms,
                leader_commit.map(|log_id| log_id.index),
            );
        }
        Ok(self.stamped(reply(&result)))
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let sender = self.sender(&request)?;
        self.refuse_unlisted(&request, sender, "RequestVote")?;
        let rpc: VoteRequest<NodeId> = decode(&request.into_inner().json)?;
        raft_guard::check_vote_request(sender, &rpc, self.local())
            .map_err(|why| self.refused(sender, "RequestVote", why))?;
        self.refuse_non_member(sender, &rpc)?;
        Ok(reply(&self.raft.vote(rpc).await))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftReply>, Status> {
        let sender = self.sender(&request)?;
        self.refuse_unlisted(&request, sender, "snapshot")?;
        let mut chunks = request.into_inner();
        // The header first, within the idle deadline, so that only the
        // leader it names, under a vote and position it could hold, ever
        // takes the receive slot.
        let Some(first) = next_chunk(&mut chunks).await? else {
            return Err(Status::invalid_argument("an empty snapshot stream"));
        };
        let (vote, meta): (Vote, SnapshotMeta) = decode(&first.header_json)?;
        let committed = *self.committed.lock().unwrap_or_else(|e| e.into_inner());
        raft_guard::check_snapshot(sender, &vote, &meta, &committed, self.local())
            .map_err(|why| self.refused(sender, "snapshot", why))?;
        let Ok(_receiving) = self.receiving_snapshot.try_acquire() else {
            return Ok(refuse(
                "another snapshot is being received; try again later".into(),
            ));
        };
        let received = tokio::time::timeout(SNAPSHOT_TOTAL_DEADLINE, async {
            let mut data = first.data;
            while let Some(chunk) = next_chunk(&mut chunks).await? {
                if data.len() + chunk.data.len() > MAX_SNAPSHOT_BYTES {
                    return Err(Status::resource_exhausted(format!(
                        "snapshot over the limit of {MAX_SNAPSHOT_BYTES} bytes"
                    )));
                }
                data.extend_from_slice(&chunk.data);
            }
            Ok(data)
        })
        .await;
        let data = match received {
            Ok(received) => received.inspect_err(|_| self.metrics.raft_refused("stream"))?,
            Err(_) => {
                self.metrics.raft_refused("stream");
                return Err(Status::deadline_exceeded(format!(
                    "the snapshot took longer than {SNAPSHOT_TOTAL_DEADLINE:?} to arrive"
                )));
            }
        };
        let pinned = self.pinned_genesis;
        let local = self.published.machine();
        let bytes = data;
        let claimed = meta.clone();
        let checked = stele_store::offload(move || {
            let state = snapshot::decode(&bytes, pinned)?;
            snapshot::agrees(&claimed, &state)?;
            snapshot::verify_for(local.chain(), &state)?;
            Ok::<_, stele_store::SnapshotError>(bytes)
        })
        .await
        .map_err(|e| Status::internal(format!("snapshot check failed: {e}")))?;
        let bytes = match checked {
            Ok(bytes) => bytes,
            Err(why) => {
                if matches!(why, stele_store::SnapshotError::PositionDisagrees { .. }) {
                    self.metrics.raft_refused("snapshot");
                }
                tracing::warn!(peer = ?sender, snapshot = %meta.snapshot_id, "refused a snapshot: {why}");
                return Ok(refuse(format!("snapshot refused: {why}")));
            }
        };
        tracing::info!(snapshot = %meta.snapshot_id, "installing a snapshot from the leader (checked against this node's chain)");
        // A leader sends a snapshot to a node far behind, with entries to
        // follow: until it applies past the snapshot, the ledger it holds is
        // not taken for the cluster's (`removal`).
        if let Some(last) = meta.last_log_id {
            self.removal.leader_committed(last.index + 1);
        }
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

/// The next chunk of a snapshot stream, or its end; a stream silent for
/// longer than the idle deadline is cut off.
async fn next_chunk(
    chunks: &mut Streaming<SnapshotChunk>,
) -> Result<Option<SnapshotChunk>, Status> {
    match tokio::time::timeout(SNAPSHOT_IDLE_DEADLINE, chunks.next()).await {
        Ok(Some(chunk)) => chunk.map(Some),
        Ok(None) => Ok(None),
        Err(_) => Err(Status::deadline_exceeded(format!(
            "the snapshot stream sent nothing for {SNAPSHOT_IDLE_DEADLINE:?}"
        ))),
    }
}
