//! Decisions: one atomic load of the served snapshot, a freshness check,
//! Cedar, and the answer stamped with the version that made it. No lock and
//! no Raft round trip on this path.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use stele_ledger::Head;
use stele_policy::{Decision, Described, EntityRef, Outcome, Query, QueryError};
use stele_proto::v1::decision_server::Decision as DecisionRpc;
use stele_proto::v1::{
    CheckBatchRequest, CheckBatchResponse, CheckRequest, CheckResponse, CheckResult, VersionRef,
    check_result,
};
use stele_store::{Published, Served};
use tonic::{Request, Response, Status};

use crate::config::{NodeConfig, OnStale};
use crate::decision_log::{DecisionLog, ToLog, Unlogged};
use crate::errors::{behind_min_version, no_policy, stale, unlogged};
use crate::freshness::Freshness;
use crate::limits::MAX_BATCH_REQUESTS;
use crate::metrics::Metrics;

/// Why a query got no decision. Each API answers these its own way.
pub(crate) enum Undecided {
    /// The node does not decide now: no policy yet, stale, or behind the
    /// version asked for. A refusal, counted as such.
    Refused(Status),
    /// It cannot be evaluated: a bad request.
    Invalid(String),
    /// The decision log would not take it: the node must not answer it,
    /// and the caller should ask another node.
    Unlogged(Status),
}

impl From<Undecided> for Status {
    fn from(undecided: Undecided) -> Status {
        match undecided {
            Undecided::Refused(status) | Undecided::Unlogged(status) => status,
            Undecided::Invalid(why) => Status::invalid_argument(why),
        }
    }
}

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
    pub metrics: Arc<Metrics>,
    pub log: Option<Arc<DecisionLog>>,
}

impl DecisionService {
    pub fn new(
        config: &NodeConfig,
        published: Arc<Published>,
        freshness: Arc<Freshness>,
        boot_id: u32,
        metrics: Arc<Metrics>,
        log: Option<Arc<DecisionLog>>,
    ) -> DecisionService {
        DecisionService {
            node_id: config.id,
            published,
            freshness,
            on_stale: config.on_stale,
            min_version_wait: config.min_version_wait,
            id_prefix: format!("{}-{boot_id:08x}-", config.id),
            counter: AtomicU64::new(0),
            metrics,
            log,
        }
    }

    /// Waits, up to the bound, until this node serves `min` or later. The
    /// served seq never decreases, so a snapshot loaded afterwards is new
    /// enough. `deadline` is how long the caller said it would wait.
    pub(crate) async fn reach(
        &self,
        min: u64,
        deadline: Option<Duration>,
        decisions: u64,
    ) -> Result<(), Status> {
        let reached = |head: &Option<Head>| head.is_some_and(|h| h.seq >= min);
        let mut watch = self.published.watch_served();
        if reached(&watch.borrow_and_update()) {
            return Ok(());
        }
        // Answer before the caller's deadline, so it hears why.
        let bound = deadline.map_or(self.min_version_wait, |d| {
            d.saturating_sub(d / 10 + Duration::from_millis(20))
                .min(self.min_version_wait)
        });
        match tokio::time::timeout(bound, watch.wait_for(reached)).await {
            Ok(Ok(_)) => Ok(()),
            _ => {
                let own = self.published.served().as_ref().map_or(0, |s| s.head.seq);
                self.metrics.refused(decisions);
                Err(behind_min_version(own, min))
            }
        }
    }

    /// The snapshot to answer from, and, when it is served stale (`--on-stale
    /// serve`), why it is stale. `decisions` is how many the call asked for,
    /// counted as refused when it is.
    pub(crate) fn current<'a>(
        &self,
        served: &'a Option<Arc<Served>>,
        decisions: u64,
    ) -> Result<(&'a Served, Option<Status>), Undecided> {
        let refused = |status: Status| {
            self.metrics.refused(decisions);
            Undecided::Refused(status)
        };
        let served = served.as_deref().ok_or_else(|| refused(no_policy()))?;
        if let Some(why) = self.log.as_ref().and_then(|log| log.refuses()) {
            self.metrics.refused(decisions);
            return Err(Undecided::Unlogged(unlogged(&why)));
        }
        match self.freshness.check() {
            Ok(()) => Ok((served, None)),
            Err(why) if self.on_stale == OnStale::Fail => Err(refused(stale(why, served.head.seq))),
            Err(why) => Ok((served, Some(stale(why, served.head.seq)))),
        }
    }

    /// Evaluates one query against the served snapshot and hands the
    /// decision to the log: the decision and its id, counted by outcome,
    /// only once the log took it.
    pub(crate) fn decide_logged(
        &self,
        served: &Served,
        query: &Query,
        described: &[Described],
    ) -> Result<(Decision, String), Undecided> {
        let started = Instant::now();
        let decision = if described.is_empty() {
            served.snapshot.evaluate(query)
        } else {
            served.snapshot.evaluate_described(query, described)
        }
        .map_err(|QueryError(why)| {
            self.metrics.invalid();
            Undecided::Invalid(why)
        })?;
        let took = started.elapsed();
        let decision_id = self.decision_id();
        self.log(served, &decision_id, query, described, &decision)
            .map_err(Undecided::Unlogged)?;
        self.metrics.decided(decision.decision, took);
        Ok((decision, decision_id))
    }

    fn decide(
        &self,
        served: &Served,
        stale_now: bool,
        request: CheckRequest,
    ) -> Result<CheckResponse, Status> {
        let query = to_query(request)
            .inspect_err(|_| self.metrics.invalid())
            .map_err(Status::invalid_argument)?;
        let (decision, decision_id) = self.decide_logged(served, &query, &[])?;
        Ok(self.answer(served, stale_now, decision, decision_id))
    }

    /// Hands the decision to the decision log, when the node keeps one. An
    /// error means the decision must not be answered (it was counted as
    /// refused).
    fn log(
        &self,
        served: &Served,
        decision_id: &str,
        query: &Query,
        described: &[Described],
        decision: &Decision,
    ) -> Result<(), Status> {
        let Some(log) = &self.log else {
            return Ok(());
        };
        log.record(ToLog {
            decision_id,
            seq: served.head.seq,
            hash: served.head.hash,
            query,
            described,
            decision,
        })
        .map_err(|Unlogged(why)| {
            self.metrics.refused(1);
            unlogged(&why)
        })
    }

    /// A new decision id: unique on this node, and across its restarts.
    pub(crate) fn decision_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut decision_id = String::with_capacity(self.id_prefix.len() + 20);
        decision_id.push_str(&self.id_prefix);
        write!(decision_id, "{n}").expect("writing to a String cannot fail");
        decision_id
    }

    fn answer(
        &self,
        served: &Served,
        stale_now: bool,
        decision: Decision,
        decision_id: String,
    ) -> CheckResponse {
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
            self.reach(min, client_deadline(&request), 1).await?;
        }
        let served = self.published.served();
        let (served, stale) = self.current(&served, 1)?;
        self.decide(served, stale.is_some(), request.into_inner())
            .map(Response::new)
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
            let decisions = batch.requests.len() as u64;
            self.reach(min, client_deadline(&request), decisions)
                .await?;
        }
        let served = self.published.served();
        let (served, stale) = self.current(&served, batch.requests.len() as u64)?;
        let results = request
            .into_inner()
            .requests
            .into_iter()
            .map(|request| CheckResult {
                result: Some(match self.decide(served, stale.is_some(), request) {
                    Ok(decision) => check_result::Result::Decision(decision),
                    Err(error) => check_result::Result::Error(error.message().to_string()),
                }),
            })
            .collect();
        Ok(Response::new(CheckBatchResponse { results }))
    }
}
