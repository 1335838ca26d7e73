//! The ledger API: writes (Propose, Approve, Withdraw, Restore) through the leader, forwarded
//! by followers; reads from this node's own state.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use stele_ledger::limits::{MAX_RESTORE_LEDGER_BYTES, MAX_SIGNATURES};
use stele_ledger::{Approval, Hash, Proposal, Reason};
use stele_proto::v1::ledger_server::Ledger as LedgerRpc;
use stele_proto::v1::{
    ApproveRequest, ClosedProposal, ExportChunk, ExportRequest, GetProposalRequest,
    GetVersionRequest, HeadRequest, HeadResponse, ListProposalsRequest, ListProposalsResponse,
    ListVersionsRequest, ListVersionsResponse, ProposalReply, ProposalStatus as ProtoStatus,
    ProposeRequest, RestoreRequest, Superseded, VersionRef, VersionReply, WatchHeadRequest,
    WithdrawRequest, Withdrawn,
};
use stele_store::{
    Closed, Command, ProposalState, ProposalStatus, Request as Entry, Response as Applied,
};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::WatchStream;
use tonic::{Request, Response, Status};

use crate::errors::refuse;
use crate::export_stream::{self, EXPORT_CHUNK_BYTES, ExportWriter};
use crate::state::{NodeState, Route, WriteError};

/// Most versions in one ListVersions answer.
const MAX_LIST: u32 = 1000;

pub struct LedgerService {
    pub node: Arc<NodeState>,
}

pub fn to_proto(status: &ProposalStatus) -> ProtoStatus {
    ProtoStatus {
        proposal_id: status.proposal_id.to_hex(),
        state: match status.state {
            ProposalState::Pending => stele_proto::v1::ProposalState::Pending,
            ProposalState::Committed => stele_proto::v1::ProposalState::Committed,
            ProposalState::AlreadyCommitted => stele_proto::v1::ProposalState::AlreadyCommitted,
            ProposalState::Withdrawn => stele_proto::v1::ProposalState::Withdrawn,
        } as i32,
        signatures: status.signatures,
        threshold: status.threshold,
        seq: status.seq,
        expires_at_ms: status.expires_at_ms,
    }
}

/// A write's verdict as metrics label it: the proposal's state, or why it
/// was not written.
fn verdict(written: &Result<Applied, WriteError>) -> &'static str {
    match written {
        Ok(Applied::Accepted(status)) => match status.state {
            ProposalState::Pending => "pending",
            ProposalState::Committed => "committed",
            ProposalState::AlreadyCommitted => "already_committed",
            ProposalState::Withdrawn => "withdrawn",
        },
        Ok(_) => "unexpected",
        Err(WriteError::Refused(refusal)) => refusal.reason.as_str(),
        Err(WriteError::Check(_) | WriteError::Raft(_)) => "internal",
        Err(
            WriteError::LeadershipUnconfirmed(_)
            | WriteError::NotWritten
            | WriteError::OutcomeUnknown(_),
        ) => "unavailable",
    }
}

fn closed_to_proto(record: &stele_store::Pending) -> ClosedProposal {
    use stele_proto::v1::closed_proposal::Why;
    let why = record.closed.as_ref().map(|why| match why {
        Closed::Superseded { by, seq } => Why::Superseded(Superseded {
            by: by.to_hex(),
            seq: *seq,
        }),
        Closed::Withdrawn { by } => Why::Withdrawn(Withdrawn {
            by: by.iter().map(|key| key.to_hex()).collect(),
        }),
    });
    ClosedProposal {
        proposal_id: record.version.hash().to_hex(),
        version: serde_json::to_vec(&record.version).expect("a version serializes"),
        expires_at_ms: record.expires_at_ms,
        why,
    }
}

fn head_ref(head: stele_ledger::Head) -> VersionRef {
    VersionRef {
        seq: head.seq,
        hash: head.hash.to_hex(),
    }
}

/// Signatures as a request carries them: at least one, at most a version's
/// worth. Counted before a key is parsed: each costs a curve point's
/// decompression.
fn parse_approvals(approvals: &[stele_proto::v1::Approval]) -> Result<Vec<Approval>, Status> {
    if approvals.len() > MAX_SIGNATURES {
        return Err(refuse(
            Reason::OverSizeLimit,
            format!(
                "{} signatures in one request, over the limit of {MAX_SIGNATURES} a version holds",
                approvals.len()
            ),
        ));
    }
    let bad = |why: String| refuse(Reason::BadApproval, why);
    let approvals = approvals
        .iter()
        .map(|a| {
            Ok(Approval {
                key: a
                    .key
                    .parse()
                    .map_err(|e| bad(format!("key {:?}: {e}", a.key)))?,
                signature: a
                    .signature
                    .parse()
                    .map_err(|e| bad(format!("signature: {e}")))?,
            })
        })
        .collect::<Result<Vec<_>, Status>>()?;
    if approvals.is_empty() {
        return Err(bad("at least one signature is needed".into()));
    }
    Ok(approvals)
}

fn parse_id(text: &str) -> Result<Hash, Status> {
    text.parse().map_err(|e| {
        Status::invalid_argument(format!("proposal id {text:?} is not a version hash: {e}"))
    })
}

impl LedgerService {
    async fn write(&self, command: Command) -> Result<Response<ProtoStatus>, Status> {
        let entry = Entry {
            time_ms: (self.node.clock)(),
            command,
        };
        let written = self.node.write(entry).await;
        self.node.metrics.proposal(verdict(&written));
        match written? {
            Applied::Accepted(status) => Ok(Response::new(to_proto(&status))),
            other => Err(Status::internal(format!(
                "unexpected answer from the state machine: {other:?}"
            ))),
        }
    }

    async fn propose_here(&self, request: ProposeRequest) -> Result<Response<ProtoStatus>, Status> {
        let ProposeRequest {
            proposal,
            commit_only,
        } = request;
        let proposal = Proposal::decode(&proposal)
            .map_err(|e| refuse(Reason::BadProposal, format!("not a valid proposal: {e}")))?;
        self.write(Command::Propose {
            proposal: Box::new(proposal),
            commit_only,
            pending_ttl_ms: self.node.config.pending_ttl.as_millis() as u64,
        })
        .await
    }

    async fn approve_here(&self, request: ApproveRequest) -> Result<Response<ProtoStatus>, Status> {
        let ApproveRequest {
            proposal_id,
            approvals,
        } = request;
        self.write(Command::Approve {
            proposal_id: parse_id(&proposal_id)?,
            approvals: parse_approvals(&approvals)?,
        })
        .await
    }

    async fn withdraw_here(
        &self,
        request: WithdrawRequest,
    ) -> Result<Response<ProtoStatus>, Status> {
        let WithdrawRequest {
            proposal_id,
            approvals,
        } = request;
        self.write(Command::Withdraw {
            proposal_id: parse_id(&proposal_id)?,
            approvals: parse_approvals(&approvals)?,
        })
        .await
    }

    async fn restore_here(&self, request: RestoreRequest) -> Result<Response<ProtoStatus>, Status> {
        if request.ledger.len() > MAX_RESTORE_LEDGER_BYTES {
            let too_large = stele_ledger::RestoreError::TooLarge {
                bytes: request.ledger.len(),
            };
            return Err(refuse(too_large.reason(), too_large.to_string()));
        }
        let ledger = String::from_utf8(request.ledger).map_err(|_| {
            refuse(
                Reason::Malformed,
                "the ledger is not UTF-8, so not a ledger file",
            )
        })?;
        self.write(Command::Restore { ledger }).await
    }

    fn head_response(&self) -> HeadResponse {
        HeadResponse {
            head: self.node.published.machine().head().map(head_ref),
            served: self
                .node
                .published
                .served()
                .as_ref()
                .map(|s| head_ref(s.head)),
            node_id: self.node.id(),
        }
    }
}

type ExportStream = Pin<Box<dyn Stream<Item = Result<ExportChunk, Status>> + Send>>;
type HeadStream = Pin<Box<dyn Stream<Item = Result<HeadResponse, Status>> + Send>>;

#[tonic::async_trait]
impl LedgerRpc for LedgerService {
    async fn propose(
        &self,
        request: Request<ProposeRequest>,
    ) -> Result<Response<ProtoStatus>, Status> {
        self.node
            .forward_or_serve(
                request,
                |leader, request| async move { leader.propose(request).await },
                |request| self.propose_here(request.into_inner()),
            )
            .await
    }

    async fn approve(
        &self,
        request: Request<ApproveRequest>,
    ) -> Result<Response<ProtoStatus>, Status> {
        self.node
            .forward_or_serve(
                request,
                |leader, request| async move { leader.approve(request).await },
                |request| self.approve_here(request.into_inner()),
            )
            .await
    }

    async fn withdraw(
        &self,
        request: Request<WithdrawRequest>,
    ) -> Result<Response<ProtoStatus>, Status> {
        self.node
            .forward_or_serve(
                request,
                |leader, request| async move { leader.withdraw(request).await },
                |request| self.withdraw_here(request.into_inner()),
            )
            .await
    }

    async fn restore(
        &self,
        request: Request<RestoreRequest>,
    ) -> Result<Response<ProtoStatus>, Status> {
        self.node
            .forward_or_serve(
                request,
                |leader, request| async move { leader.restore(request.ledger).await },
                |request| self.restore_here(request.into_inner()),
            )
            .await
    }

    async fn get_proposal(
        &self,
        request: Request<GetProposalRequest>,
    ) -> Result<Response<ProposalReply>, Status> {
        let id = parse_id(&request.get_ref().proposal_id)?;
        let machine = self.node.published.machine();
        let Some(held) = machine.pending_proposal(&id) else {
            // A follower may not have applied a proposal made a moment ago
            // at another node: the leader has, before it answered.
            if let Ok(Route::Leader(leader)) = self.node.route(&request) {
                return leader
                    .forward(&self.node, request, |leader, request| async move {
                        leader.get_proposal(request).await
                    })
                    .await;
            }
            return Err(Status::not_found(format!(
                "no pending proposal {id} (it may have committed, expired or been refused)"
            )));
        };
        Ok(Response::new(ProposalReply {
            proposal: Proposal::encode_parts(&held.version, &held.bundle).into_bytes(),
            status: Some(to_proto(&machine.pending_status(held))),
        }))
    }

    async fn list_proposals(
        &self,
        _request: Request<ListProposalsRequest>,
    ) -> Result<Response<ListProposalsResponse>, Status> {
        let machine = self.node.published.machine();
        let proposals = machine
            .pending()
            .map(|held| to_proto(&machine.pending_status(held)))
            .collect();
        let closed = machine
            .closed()
            .map(|record| closed_to_proto(record))
            .collect();
        Ok(Response::new(ListProposalsResponse { proposals, closed }))
    }

    async fn head(&self, request: Request<HeadRequest>) -> Result<Response<HeadResponse>, Status> {
        if !request.get_ref().linearizable {
            return Ok(Response::new(self.head_response()));
        }
        self.node
            .forward_or_serve(
                request,
                |leader, request| async move { leader.head(request).await },
                |_| async {
                    self.node.raft.ensure_linearizable().await.map_err(|e| {
                        Status::unavailable(format!("cannot confirm leadership: {e}"))
                    })?;
                    Ok(Response::new(self.head_response()))
                },
            )
            .await
    }

    async fn get_version(
        &self,
        request: Request<GetVersionRequest>,
    ) -> Result<Response<VersionReply>, Status> {
        let GetVersionRequest { seq, with_bundle } = request.into_inner();
        let machine = self.node.published.machine();
        let version = machine.version(seq).ok_or_else(|| {
            Status::not_found(format!(
                "no version {seq} on this node (its head is {})",
                machine.head().map_or(0, |h| h.seq)
            ))
        })?;
        let bundle = if with_bundle {
            let files = self
                .node
                .bundles
                .bundle(&version.header.bundle_digest)
                .map_err(|e| Status::internal(e.to_string()))?
                .ok_or_else(|| {
                    Status::internal(format!("the bundle of seq {seq} is missing from the store"))
                })?;
            Some(serde_json::to_vec(&files).expect("bundles serialize"))
        } else {
            None
        };
        Ok(Response::new(VersionReply {
            version: serde_json::to_vec(version).expect("versions serialize"),
            bundle,
        }))
    }

    async fn list_versions(
        &self,
        request: Request<ListVersionsRequest>,
    ) -> Result<Response<ListVersionsResponse>, Status> {
        let ListVersionsRequest { from_seq, limit } = request.into_inner();
        let limit = if limit == 0 {
            MAX_LIST
        } else {
            limit.min(MAX_LIST)
        } as usize;
        let machine = self.node.published.machine();
        let versions = machine
            .versions()
            .skip(from_seq.saturating_sub(1) as usize)
            .take(limit)
            .map(|v| serde_json::to_vec(v).expect("versions serialize"))
            .collect();
        Ok(Response::new(ListVersionsResponse { versions }))
    }

    type ExportStream = ExportStream;

    async fn export(
        &self,
        _request: Request<ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let writer = ExportWriter::new(
            self.node.published.machine(),
            self.node.bundles.clone(),
            EXPORT_CHUNK_BYTES,
        );
        Ok(Response::new(Box::pin(export_stream::stream(writer))))
    }

    type WatchHeadStream = HeadStream;

    async fn watch_head(
        &self,
        _request: Request<WatchHeadRequest>,
    ) -> Result<Response<Self::WatchHeadStream>, Status> {
        let node = self.node.clone();
        let changes = WatchStream::new(self.node.published.watch_served()).map(move |served| {
            Ok(HeadResponse {
                head: node.published.machine().head().map(head_ref),
                served: served.map(head_ref),
                node_id: node.id(),
            })
        });
        Ok(Response::new(Box::pin(changes)))
    }
}
