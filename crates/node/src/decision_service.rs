//! Decisions: one atomic load of the served snapshot, a freshness check,
//! Cedar, and the answer stamped with the version that made it. No lock and
//! no Raft round trip on this path.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use stele_policy::{Decision, EntityRef, Outcome, Query};
use stele_proto::v1::decision_server::Decision as DecisionRpc;
use stele_proto::v1::{
    CheckBatchRequest, CheckBatchResponse, CheckRequest, CheckResponse, CheckResult, VersionRef,
    check_result,
};
use stele_store::{Published, Served};
use tonic::{Request, Response, Status};

use crate::config::OnStale;
use crate::errors::{behind_min_version, no_policy, stale};
use crate::freshness::Freshness;
use crate::limits::MAX_BATCH_REQUESTS;

pub struct DecisionService {
    pub node_id: u64,
    pub published: Arc<Published>,
    pub freshness: Arc<Freshness>,
    pub on_stale: OnStale,
    pub min_version_wait: Duration,
    /// A per-boot prefix and a counter make decision ids unique.
    pub boot_id: u32,
    pub counter: AtomicU64,
}

impl DecisionService {
    /// The snapshot to answer from, once it reaches `min_version` (waiting
    /// up to the bound), and whether it is served stale.
    async fn snapshot(
        &self,
        min_version: Option<u64>,
        deadline: Option<Duration>,
    ) -> Result<(Arc<Served>, bool), Status> {
        let served = match min_version {
            Some(min) => self.wait_for(min, deadline).await?,
            None => self.published.served().clone().ok_or_else(no_policy)?,
        };
        let stale_now = match self.freshness.check() {
            Ok(()) => false,
            Err(why) if self.on_stale == OnStale::Fail => return Err(stale(why, served.head.seq)),
            Err(_) => true,
        };
        Ok((served, stale_now))
    }

    async fn wait_for(&self, min: u64, deadline: Option<Duration>) -> Result<Arc<Served>, Status> {
        let ready =
            |served: &Option<Arc<Served>>| served.as_ref().filter(|s| s.head.seq >= min).cloned();
        if let Some(served) = ready(&self.published.served()) {
            return Ok(served);
        }
        // Answer before the caller's deadline, so it hears why.
        let bound = deadline.map_or(self.min_version_wait, |d| {
            d.saturating_sub(d / 10 + Duration::from_millis(20))
                .min(self.min_version_wait)
        });
        let mut watch = self.published.watch_served();
        let reached = tokio::time::timeout(
            bound,
            watch.wait_for(|head| head.is_some_and(|h| h.seq >= min)),
        )
        .await;
        match (reached, ready(&self.published.served())) {
            (Ok(Ok(_)), Some(served)) => Ok(served),
            _ => {
                let own = self.published.served().as_ref().map_or(0, |s| s.head.seq);
                Err(behind_min_version(own, min))
            }
        }
    }

    fn decide(
        &self,
        served: &Served,
        stale_now: bool,
        request: &CheckRequest,
    ) -> Result<CheckResponse, String> {
        let query = to_query(request)?;
        let decision = served
            .snapshot
            .evaluate(&query)
            .map_err(|e| e.to_string())?;
        Ok(self.answer(served, stale_now, decision))
    }

    fn answer(&self, served: &Served, stale_now: bool, decision: Decision) -> CheckResponse {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        CheckResponse {
            decision: match decision.decision {
                Outcome::Allow => stele_proto::v1::Outcome::Allow as i32,
                Outcome::Deny => stele_proto::v1::Outcome::Deny as i32,
            },
            version: Some(VersionRef {
                seq: served.head.seq,
                hash: served.head.hash.to_hex(),
            }),
            reasons: decision.reasons,
            errors: decision.errors,
            decision_id: format!("{}-{:08x}-{n}", self.node_id, self.boot_id),
            node_id: self.node_id,
            stale: stale_now,
        }
    }
}

fn to_query(request: &CheckRequest) -> Result<Query, String> {
    let entity = |role: &str, entity: &Option<stele_proto::v1::EntityRef>| {
        entity
            .as_ref()
            .map(|e| EntityRef {
                type_name: e.r#type.clone(),
                id: e.id.clone(),
            })
            .ok_or_else(|| format!("{role} is missing"))
    };
    let context = if request.context_json.trim().is_empty() {
        None
    } else {
        Some(
            serde_json::from_str(&request.context_json)
                .map_err(|e| format!("context is not valid JSON: {e}"))?,
        )
    };
    Query::from_parts(
        &entity("principal", &request.principal)?,
        &entity("action", &request.action)?,
        &entity("resource", &request.resource)?,
        context,
    )
    .map_err(|e| e.to_string())
}

/// The deadline the client set (gRPC's `grpc-timeout`), if any.
fn client_deadline<T>(request: &Request<T>) -> Option<Duration> {
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

#[tonic::async_trait]
impl DecisionRpc for DecisionService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let deadline = client_deadline(&request);
        let request = request.into_inner();
        let (served, stale_now) = self.snapshot(request.min_version, deadline).await?;
        self.decide(&served, stale_now, &request)
            .map(Response::new)
            .map_err(Status::invalid_argument)
    }

    async fn check_batch(
        &self,
        request: Request<CheckBatchRequest>,
    ) -> Result<Response<CheckBatchResponse>, Status> {
        let deadline = client_deadline(&request);
        let batch = request.into_inner();
        if batch.requests.len() > MAX_BATCH_REQUESTS {
            return Err(Status::invalid_argument(format!(
                "{} requests in one batch, over the limit of {MAX_BATCH_REQUESTS}",
                batch.requests.len()
            )));
        }
        let (served, stale_now) = self.snapshot(batch.min_version, deadline).await?;
        let results = batch
            .requests
            .iter()
            .map(|request| CheckResult {
                result: Some(match self.decide(&served, stale_now, request) {
                    Ok(decision) => check_result::Result::Decision(decision),
                    Err(error) => check_result::Result::Error(error),
                }),
            })
            .collect();
        Ok(Response::new(CheckBatchResponse { results }))
    }
}
