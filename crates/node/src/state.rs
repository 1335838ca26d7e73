//! What every service of a node shares: its state, the one clock, the
//! connections to its peers, writes through Raft, and the one way a call
//! is either served here or forwarded to the leader.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::ServerState;
use stele_client::Client;
use stele_decision::{DecisionPath, Freshness};
use stele_ledger::{Reason, WallClock};
use stele_proto::v1::{MemberStatus, StatusRequest};
use stele_store::{BundleSource, ProposalState, Published, Raft, Refusal, Request, Response};
use thiserror::Error;
use tonic::{Code, Status};

use crate::config::NodeConfig;
use crate::dial::Dial;
use crate::errors::{no_leader, refused};
use crate::metrics::Metrics;
use crate::removal::Removal;

pub use stele_client::FORWARDED;

/// The system's wall clock, Unix milliseconds: the one a node runs on.
pub fn system_clock() -> WallClock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    })
}

pub struct NodeState {
    pub config: NodeConfig,
    pub raft: Raft,
    pub published: Arc<Published>,
    pub bundles: Arc<dyn BundleSource>,
    pub freshness: Arc<Freshness>,
    /// The decision path, shared by every API that decides.
    pub decisions: Arc<DecisionPath>,
    pub dial: Dial,
    /// Leader time for log entries; the decision log's clock too.
    pub clock: WallClock,
    /// One client (one HTTP/2 connection) per peer address, reused by
    /// every forwarded write and status call.
    pub peers: Mutex<HashMap<String, Client>>,
    pub metrics: Arc<Metrics>,
    /// Which peers refused this node as no member (see [`Removal`]).
    pub removal: Arc<Removal>,
    /// SHA-256 of this node's TLS public key, hex (`None` without TLS):
    /// what the ledger's member set must list for it.
    pub spki_sha256: Option<String>,
}

/// How long a node waits for another member's status (`Status`, and the
/// leader's probes before a membership change).
pub const PEER_STATUS_TIMEOUT: Duration = Duration::from_millis(800);

/// The deadline of a forwarded call whose caller set none.
const FORWARD_DEADLINE: Duration = Duration::from_secs(30);
/// The longest a forwarded call waits for the leader, whatever deadline
/// its caller claims: a write commits in milliseconds, and a forward holds
/// a call to the leader open while it waits.
const MAX_FORWARD_DEADLINE: Duration = Duration::from_secs(120);

/// Where a call goes.
pub enum Route {
    Here,
    Leader(Leader),
}

/// The leader, as a follower knows it.
pub struct Leader {
    pub id: u64,
    pub addr: String,
}

/// Why a write through Raft failed.
#[derive(Debug, Error)]
pub enum WriteError {
    /// The state machine refused it (on the trial run or when applied).
    #[error("{}", .0.message)]
    Refused(Refusal),
    #[error("this node could not confirm its leadership ({0}); retry")]
    LeadershipUnconfirmed(String),
    #[error("checking the command failed: {0}")]
    Check(String),
    #[error(
        "this node stopped leading before the write reached the log; nothing was written: retry"
    )]
    NotWritten,
    #[error(
        "leadership changed while writing ({0}); the outcome is unknown: resubmit the same version (it is idempotent)"
    )]
    OutcomeUnknown(String),
    #[error("Raft failed: {0}")]
    Raft(String),
}

impl From<WriteError> for Status {
    fn from(error: WriteError) -> Status {
        match &error {
            WriteError::Refused(refusal) => refused(refusal),
            WriteError::Check(_) | WriteError::Raft(_) => Status::internal(error.to_string()),
            WriteError::LeadershipUnconfirmed(_)
            | WriteError::NotWritten
            | WriteError::OutcomeUnknown(_) => Status::unavailable(error.to_string()),
        }
    }
}

impl NodeState {
    pub fn id(&self) -> u64 {
        self.config.id
    }

    /// This node when it leads; otherwise the leader, if one is known and
    /// the request was not forwarded already.
    pub fn route<T>(&self, request: &tonic::Request<T>) -> Result<Route, Status> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        if metrics.state == ServerState::Leader {
            return Ok(Route::Here);
        }
        if request.metadata().contains_key(FORWARDED) {
            return Err(no_leader());
        }
        let id = metrics.current_leader.ok_or_else(no_leader)?;
        let addr = metrics
            .membership_config
            .membership()
            .get_node(&id)
            .map(|node| node.addr.clone())
            .ok_or_else(no_leader)?;
        Ok(Route::Leader(Leader { id, addr }))
    }

    /// Serves `request` here when this node leads, or forwards it to the
    /// leader with `forward` and returns the leader's answer.
    pub async fn forward_or_serve<T, R, F, S>(
        &self,
        request: tonic::Request<T>,
        forward: impl FnOnce(Client, T) -> F,
        serve: impl FnOnce(tonic::Request<T>) -> S,
    ) -> Result<tonic::Response<R>, Status>
    where
        F: Future<Output = Result<R, stele_client::Error>>,
        S: Future<Output = Result<tonic::Response<R>, Status>>,
    {
        match self.route(&request)? {
            Route::Here => serve(request).await,
            Route::Leader(leader) => leader.forward(self, request, forward).await,
        }
    }

    /// The client for the peer at `addr`.
    /// A client for member `id`'s client port at `addr` (its certificate
    /// must be node `id`'s).
    pub fn peer(&self, id: u64, addr: &str) -> Result<Client, Status> {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = peers.get(addr) {
            return Ok(client.clone());
        }
        let channel = (self.dial)(addr, id).map_err(|e| {
            Status::unavailable(format!("the member address {addr:?} is not usable: {e}"))
        })?;
        let client = Client::from_channel(addr, channel, FORWARD_DEADLINE);
        peers.insert(addr.to_string(), client.clone());
        Ok(client)
    }

    /// Node `id`'s own status, asked at its client address `addr`, if it
    /// answers within [`PEER_STATUS_TIMEOUT`].
    pub async fn own_status_of(&self, id: u64, addr: &str) -> Option<MemberStatus> {
        let client = self.peer(id, addr).ok()?;
        let reply = client
            .with_timeout(PEER_STATUS_TIMEOUT)
            .status(StatusRequest { local_only: true })
            .await
            .ok()?;
        reply.members.into_iter().next()
    }

    /// Replicates a command through Raft (this node leads), after checking it
    /// against a copy of the current state so that a refused command is
    /// answered without touching the log. The state machine checks it again
    /// when it applies, with the same code.
    pub async fn write(&self, request: Request) -> Result<Response, WriteError> {
        // The check below reads the state machine: first let it apply all
        // that earlier leaders committed, so that a resubmitted version is
        // recognised as already committed rather than refused.
        self.raft
            .ensure_linearizable()
            .await
            .map_err(|e| WriteError::LeadershipUnconfirmed(e.to_string()))?;
        let machine = self.published.machine();
        let trial = request.clone();
        let (verdict, new_members, first) = stele_store::offload(move || {
            let mut copy = (*machine).clone();
            let verdict = copy.apply(trial, &mut Vec::new());
            // A membership version this write would commit.
            let changed = copy.chain().members() != machine.chain().members();
            let new_members = changed.then(|| copy.chain().members().cloned()).flatten();
            // The cluster's first version(s): what members they list.
            let first = (machine.head().is_none() && copy.head().is_some())
                .then(|| copy.chain().members().cloned());
            (verdict, new_members, first)
        })
        .await
        .map_err(|e| WriteError::Check(e.to_string()))?;
        match verdict {
            Response::Refused(refusal) => return Err(WriteError::Refused(refusal)),
            // Committed already, as of this linearizable read: the answer
            // needs no log entry (a retried restore would write its whole
            // ledger into every node's log again).
            Response::Accepted(status) if status.state == ProposalState::AlreadyCommitted => {
                return Ok(Response::Accepted(status));
            }
            _ => {}
        }
        if let Some(first) = first {
            let raft = self
                .raft
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .clone();
            crate::member_set_check::first_lists_raft_voters(&raft, first.as_ref()).map_err(
                |why| WriteError::Refused(Refusal::new(Reason::MembershipUnsafe, why.to_string())),
            )?;
        }
        if let Some(members) = new_members {
            crate::member_set_check::check(self, &members)
                .await
                .map_err(|why| {
                    WriteError::Refused(Refusal::new(
                        Reason::MembershipUnsafe,
                        format!("membership version refused before it commits: {why}"),
                    ))
                })?;
        }
        match self.raft.client_write(request).await {
            Ok(written) => match written.data {
                Response::Refused(refusal) => Err(WriteError::Refused(refusal)),
                response => Ok(response),
            },
            Err(openraft::error::RaftError::APIError(
                openraft::error::ClientWriteError::ForwardToLeader(_),
            )) => Err(WriteError::NotWritten),
            Err(openraft::error::RaftError::APIError(error)) => {
                Err(WriteError::OutcomeUnknown(error.to_string()))
            }
            Err(error) => Err(WriteError::Raft(error.to_string())),
        }
    }
}

impl Leader {
    /// Sends the caller's request on to the leader with `call`, keeping the
    /// caller's deadline (a forward never waits for ever). The leader's own
    /// answers pass through as they are; a failure to reach it says that
    /// the call was forwarded, and where.
    pub async fn forward<T, R, F>(
        self,
        node: &NodeState,
        request: tonic::Request<T>,
        call: impl FnOnce(Client, T) -> F,
    ) -> Result<tonic::Response<R>, Status>
    where
        F: Future<Output = Result<R, stele_client::Error>>,
    {
        let deadline =
            client_deadline(&request).map_or(FORWARD_DEADLINE, |d| d.min(MAX_FORWARD_DEADLINE));
        // The leader checks the caller's roles again, as this node did.
        let roles = crate::access::forwarded_value(&crate::access::request_roles(&request));
        let client = node.peer(self.id, &self.addr)?.forwarding(deadline, roles);
        match call(client, request.into_inner()).await {
            Ok(reply) => Ok(tonic::Response::new(reply)),
            Err(error) => Err(forward_failed(self.id, &self.addr, error)),
        }
    }
}

/// The deadline the caller set (gRPC's `grpc-timeout`), if any.
pub(crate) fn client_deadline<T>(request: &tonic::Request<T>) -> Option<Duration> {
    let value = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

fn forward_failed(id: u64, addr: &str, error: stele_client::Error) -> Status {
    let status = match error.into_status() {
        Ok(status) => status,
        Err(other) => {
            return Status::unavailable(format!(
                "forwarding to the leader (node {id} at {addr}): {other}"
            ));
        }
    };
    let transport = status.details().is_empty()
        && matches!(
            status.code(),
            Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
        );
    if transport {
        Status::new(
            status.code(),
            format!(
                "forwarding to the leader (node {id} at {addr}): {}",
                status.message()
            ),
        )
    } else {
        status
    }
}
