//! gRPC `Decision`: reads the request, asks the decision path, and maps
//! its answer. The decision path decides; this adapter only translates.

use std::sync::Arc;

use stele_decision::{Ask, Decided, DecisionPath, Session, StaleAnswers, Undecided};
use stele_policy::Outcome;
use stele_proto::v1::decision_server::Decision as DecisionRpc;
use stele_proto::v1::{
    CheckBatchRequest, CheckBatchResponse, CheckRequest, CheckResponse, CheckResult, VersionRef,
    check_result,
};
use tonic::{Request, Response, Status};

use crate::check_wire::question;
use crate::errors::undecided;
use crate::limits::MAX_BATCH_REQUESTS;
use crate::state::client_deadline;

pub struct DecisionService {
    pub decisions: Arc<DecisionPath>,
}

/// The answer to one request of `session`'s.
fn answer(session: &Session<'_>, decided: Decided, node_id: u64) -> CheckResponse {
    let (seq, hash) = session.version();
    CheckResponse {
        decision: match decided.decision.decision {
            Outcome::Allow => stele_proto::v1::Outcome::Allow as i32,
            Outcome::Deny => stele_proto::v1::Outcome::Deny as i32,
        },
        version: Some(VersionRef {
            seq,
            hash: hash.to_string(),
        }),
        reasons: decided.decision.reasons,
        errors: decided.decision.errors,
        decision_id: decided.decision_id,
        node_id,
        stale: session.stale().is_some(),
    }
}

impl DecisionService {
    fn decide(
        &self,
        session: &Session<'_>,
        request: CheckRequest,
    ) -> Result<CheckResponse, Undecided> {
        let decided = session.decide(question(request))?;
        Ok(answer(session, decided, self.decisions.node_id()))
    }

    /// A session for `decisions` answers from `min_version` on, within the
    /// caller's deadline.
    async fn session<T>(
        &self,
        request: &Request<T>,
        min_version: Option<u64>,
        decisions: u64,
    ) -> Result<Session<'_>, Status> {
        let ask = Ask {
            decisions,
            min_version,
            // Read only when there is a version to wait for.
            deadline: min_version.and_then(|_| client_deadline(request)),
            answers: StaleAnswers::Flagged,
        };
        self.decisions
            .open(ask)
            .await
            .map_err(|why| undecided(&why))
    }
}

#[tonic::async_trait]
impl DecisionRpc for DecisionService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let min_version = request.get_ref().min_version;
        let session = self.session(&request, min_version, 1).await?;
        self.decide(&session, request.into_inner())
            .map(Response::new)
            .map_err(|why| undecided(&why))
    }

    async fn check_batch(
        &self,
        request: Request<CheckBatchRequest>,
    ) -> Result<Response<CheckBatchResponse>, Status> {
        let batch = request.get_ref();
        if batch.requests.len() > MAX_BATCH_REQUESTS {
            return Err(Status::invalid_argument(format!(
                "{} requests in one batch, over the limit of {MAX_BATCH_REQUESTS}",
                batch.requests.len()
            )));
        }
        if batch.requests.iter().any(|r| r.min_version.is_some()) {
            return Err(Status::invalid_argument(
                "set min_version on the batch, not on the requests in it: one batch is answered from one version",
            ));
        }
        let (min_version, count) = (batch.min_version, batch.requests.len() as u64);
        let session = self.session(&request, min_version, count).await?;
        let mut requests = Some(request.into_inner().requests);
        let mut results = Vec::new();
        // Up to 10,000 evaluations: off the async workers that drive Raft.
        stele_decision::block_in_place(&mut || {
            results = requests
                .take()
                .unwrap_or_default()
                .into_iter()
                .map(|request| CheckResult {
                    result: Some(match self.decide(&session, request) {
                        Ok(decision) => check_result::Result::Decision(decision),
                        Err(why) => check_result::Result::Error(why.to_string()),
                    }),
                })
                .collect();
        });
        Ok(Response::new(CheckBatchResponse { results }))
    }
}
