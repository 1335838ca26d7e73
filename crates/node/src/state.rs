//! What every service of a node shares, and routing writes to the leader.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use openraft::ServerState;
use stele_store::{BundleSource, Published, Raft, Refusal, Request, Response};
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::config::NodeConfig;
use crate::dial::Dial;
use crate::errors::{no_leader, refused};
use crate::freshness::Freshness;
use crate::metrics::Metrics;

/// Leader time for log entries, Unix milliseconds. A simulation supplies its
/// own clock.
pub type WallClock = Arc<dyn Fn() -> u64 + Send + Sync>;

pub fn system_clock() -> WallClock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    })
}

/// gRPC metadata key marking a request a follower already forwarded: the
/// receiver handles it itself or fails, so a request never loops.
pub const FORWARDED: &str = "x-stele-forwarded";

pub struct NodeState {
    pub config: NodeConfig,
    pub raft: Raft,
    pub published: Arc<Published>,
    pub bundles: Arc<dyn BundleSource>,
    pub freshness: Arc<Freshness>,
    pub dial: Dial,
    pub clock: WallClock,
    /// One channel (one HTTP/2 connection) per peer address, reused by
    /// every forwarded write and status call.
    pub channels: Mutex<HashMap<String, Channel>>,
    pub metrics: Arc<Metrics>,
    /// The decision log, when the node keeps one.
    pub decision_log: Option<Arc<crate::decision_log::DecisionLog>>,
}

/// The deadline of a forwarded write whose caller set none.
const FORWARD_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Where a write goes.
pub enum Route {
    Here,
    Leader { id: u64, addr: String },
}

impl NodeState {
    pub fn id(&self) -> u64 {
        self.config.id
    }

    /// Why the node refuses decisions because its decision log cannot be
    /// written, if it does.
    pub fn decision_log_refuses(&self) -> Option<String> {
        self.decision_log.as_ref().and_then(|log| log.refuses())
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
        Ok(Route::Leader { id, addr })
    }

    /// The channel to the peer at `addr`.
    pub fn channel(&self, addr: &str) -> Result<Channel, Status> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let channel = (self.dial)(addr).map_err(|e| {
            Status::unavailable(format!("the member address {addr:?} is not usable: {e}"))
        })?;
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    /// Replicates a command through Raft (this node leads), after checking it
    /// against a copy of the current state so that a refused command is
    /// answered without touching the log. The state machine checks it again
    /// when it applies, with the same code.
    pub async fn write(&self, request: Request) -> Result<Response, Status> {
        // The check below reads the state machine: first let it apply all
        // that earlier leaders committed, so that a resubmitted version is
        // recognised as already committed rather than refused.
        self.raft.ensure_linearizable().await.map_err(|e| {
            Status::unavailable(format!(
                "this node could not confirm its leadership ({e}); retry"
            ))
        })?;
        let machine = self.published.machine();
        let trial = request.clone();
        let verdict = stele_store::offload(move || {
            let mut copy = (*machine).clone();
            copy.apply(trial, &mut Vec::new())
        })
        .await
        .map_err(|e| Status::internal(format!("checking the command failed: {e}")))?;
        if let Response::Refused(refusal) = verdict {
            return Err(refused(&refusal));
        }
        match self.raft.client_write(request).await {
            Ok(written) => match written.data {
                Response::Refused(refusal) => Err(refused(&refusal)),
                response => Ok(response),
            },
            Err(openraft::error::RaftError::APIError(
                openraft::error::ClientWriteError::ForwardToLeader(_),
            )) => Err(Status::unavailable(
                "this node stopped leading before the write reached the log; nothing was written: retry",
            )),
            Err(openraft::error::RaftError::APIError(error)) => Err(Status::unavailable(format!(
                "leadership changed while writing ({error}); the outcome is unknown: resubmit the same version (it is idempotent)"
            ))),
            Err(error) => Err(Status::internal(format!("Raft failed: {error}"))),
        }
    }

    pub fn refusal(code: &str, message: impl Into<String>) -> Status {
        refused(&Refusal::new(code, message))
    }
}

/// A forwarded call's failure: the leader's own answers pass through as
/// they are; a failure to reach it says that the call was forwarded, where.
pub fn forward_failed(id: u64, addr: &str) -> impl FnOnce(Status) -> Status + '_ {
    move |status| {
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
}

/// Copies a request for the leader, marked as forwarded, keeping the
/// caller's deadline (or setting one: a forward never waits for ever).
pub fn forwarded<T>(request: tonic::Request<T>) -> tonic::Request<T> {
    let timeout = request.metadata().get("grpc-timeout").cloned();
    let mut out = tonic::Request::new(request.into_inner());
    out.metadata_mut()
        .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    match timeout {
        Some(timeout) => {
            out.metadata_mut().insert("grpc-timeout", timeout);
        }
        None => out.set_timeout(FORWARD_DEADLINE),
    }
    out
}
