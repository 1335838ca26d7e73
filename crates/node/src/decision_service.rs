//! Decisions: one atomic load of the served snapshot, a freshness check,
//! Cedar, and the answer stamped with the version that made it. No lock and
//! no Raft round trip on this path.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use stele_ledger::Head;
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
    /// `NODE-BOOT-`: a per-boot prefix and a counter make decision ids
    /// unique without coordination.
    pub id_prefix: String,
    pub counter: AtomicU64,
}

impl DecisionService {
    pub fn new(
        node_id: u64,
        published: Arc<Published>,
        freshness: Arc<Freshness>,
        on_stale: OnStale,
        min_version_wait: Duration,
        boot_id: u32,
    ) -> DecisionService {
        DecisionService {
            node_id,
            published,
            freshness,
            on_stale,
            min_version_wait,
            id_prefix: format!("{node_id}-{boot_id:08x}-"),
            counter: AtomicU64::new(0),
        }
    }

    /// Waits, up to the bound, until this node serves `min` or later. The
    /// served seq never decreases, so a snapshot loaded afterwards is new
    /// enough.
    async fn reach<T>(&self, min: u64, request: &Request<T>) -> Result<(), Status> {
        let reached = |head: &Option<Head>| head.is_some_and(|h| h.seq >= min);
        let mut watch = self.published.watch_served();
        if reached(&watch.borrow_and_update()) {
            return Ok(());
        }
        // Answer before the caller's deadline, so it hears why.
        let bound = client_deadline(request).map_or(self.min_version_wait, |d| {
            d.saturating_sub(d / 10 + Duration::from_millis(20))
                .min(self.min_version_wait)
        });
        match tokio::time::timeout(bound, watch.wait_for(reached)).await {
            Ok(Ok(_)) => Ok(()),
            _ => {
                let own = self.published.served().as_ref().map_or(0, |s| s.head.seq);
                Err(behind_min_version(own, min))
            }
        }
    }

    /// The snapshot to answer from, and whether it is served stale.
    fn current<'a>(&self, served: &'a Option<Arc<Served>>) -> Result<(&'a Served, bool), Status> {
        let served = served.as_deref().ok_or_else(no_policy)?;
        let stale_now = match self.freshness.check() {
            Ok(()) => false,
            Err(why) if self.on_stale == OnStale::Fail => return Err(stale(why, served.head.seq)),
            Err(_) => true,
        };
        Ok((served, stale_now))
    }

    fn decide(
        &self,
        served: &Served,
        stale_now: bool,
        request: CheckRequest,
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
        let mut decision_id = String::with_capacity(self.id_prefix.len() + 20);
        decision_id.push_str(&self.id_prefix);
        write!(decision_id, "{n}").expect("writing to a String cannot fail");
        CheckResponse {
            decision: match decision.decision {
                Outcome::Allow => stele_proto::v1::Outcome::Allow as i32,
                Outcome::Deny => stele_proto::v1::Outcome::Deny as i32,
            },
            version: Some(VersionRef {
                seq: served.head.seq,
                hash: served.hash_hex.clone(),
            }),
            reasons: decision.reasons,
            errors: decision.errors,
            decision_id,
            node_id: self.node_id,
            stale: stale_now,
        }
    }
}

fn to_query(request: CheckRequest) -> Result<Query, String> {
    let entity = |role: &str, entity: Option<stele_proto::v1::EntityRef>| {
        entity
            .map(|e| EntityRef {
                type_name: e.r#type,
                id: e.id,
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
        &entity("principal", request.principal)?,
        &entity("action", request.action)?,
        &entity("resource", request.resource)?,
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
        if let Some(min) = request.get_ref().min_version {
            self.reach(min, &request).await?;
        }
        let served = self.published.served();
        let (served, stale_now) = self.current(&served)?;
        self.decide(served, stale_now, request.into_inner())
            .map(Response::new)
            .map_err(Status::invalid_argument)
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
        if let Some(min) = batch.min_version {
            self.reach(min, &request).await?;
        }
        let served = self.published.served();
        let (served, stale_now) = self.current(&served)?;
        let results = request
            .into_inner()
            .requests
            .into_iter()
            .map(|request| CheckResult {
                result: Some(match self.decide(served, stale_now, request) {
                    Ok(decision) => check_result::Result::Decision(decision),
                    Err(error) => check_result::Result::Error(error),
                }),
            })
            .collect();
        Ok(Response::new(CheckBatchResponse { results }))
    }
}
