//! The node's HTTP API (`stele node --http HOST:PORT`): AuthZEN 1.0
//! evaluations, its discovery document, health, readiness and Prometheus
//! metrics. Decisions go through the same path as gRPC's `Check`
//! ([`DecisionService`]): one snapshot load, the freshness check, Cedar.
//!
//! Errors are JSON, `{"error": {"status": N, "message": "…"}}`. A node
//! that cannot show it is current answers `decision: false` with the
//! reason (fail closed); a request for a version this node does not reach
//! in time (`Stele-Min-Version`) gets 412.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use openraft::ServerState;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::authzen::{
    EvaluationJson, EvaluationsJson, Semantic, decision_json, invalid_json, refused_json,
};
use crate::decision_service::DecisionService;
use crate::limits::{MAX_BATCH_REQUESTS, MAX_HTTP_BODY_BYTES};
use crate::metrics::Gauges;
use crate::state::NodeState;

/// The consistency token: answer only from this version seq or a newer one.
pub const MIN_VERSION_HEADER: &str = "stele-min-version";
const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone)]
struct HttpApi {
    node: Arc<NodeState>,
    decisions: Arc<DecisionService>,
}

pub fn router(node: Arc<NodeState>, decisions: Arc<DecisionService>) -> Router {
    Router::new()
        .route("/access/v1/evaluation", post(evaluation))
        .route("/access/v1/evaluations", post(evaluations))
        .route("/.well-known/authzen-configuration", get(configuration))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_HTTP_BODY_BYTES))
        .layer(middleware::from_fn(echo_request_id))
        .with_state(HttpApi { node, decisions })
}

/// The spec's `X-Request-ID`: whatever the caller sent comes back.
async fn echo_request_id(request: Request, next: Next) -> Response {
    let id = request.headers().get(&REQUEST_ID_HEADER).cloned();
    let mut response = next.run(request).await;
    if let Some(id) = id {
        response.headers_mut().insert(REQUEST_ID_HEADER, id);
    }
    response
}

struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(
            self.status,
            &json!({"error": {"status": self.status.as_u16(), "message": self.message}}),
        )
    }
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).expect("JSON values serialize");
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(|rejection| ApiError {
        status: rejection.status(),
        message: format!(
            "{} (the limit is {MAX_HTTP_BODY_BYTES} bytes)",
            rejection.body_text()
        ),
    })?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a valid request: {e}")))
}

impl HttpApi {
    fn node_id(&self) -> u64 {
        self.node.id()
    }

    /// Waits for the version the caller named in `Stele-Min-Version`.
    async fn reach_min_version(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(value) = headers.get(MIN_VERSION_HEADER) else {
            return Ok(());
        };
        let min: u64 = value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Stele-Min-Version must be a version seq (a whole number), not {value:?}"
                ))
            })?;
        self.decisions
            .reach(min, None)
            .await
            .map_err(|status| ApiError {
                status: StatusCode::PRECONDITION_FAILED,
                message: status.message().to_string(),
            })
    }

    /// One evaluation: its answer, or 400 when it cannot be evaluated.
    fn decide(&self, evaluation: &EvaluationJson) -> Result<Value, ApiError> {
        let (query, described) = evaluation.to_query().map_err(|e| {
            self.decisions.metrics.invalid();
            ApiError::bad_request(e.0)
        })?;
        let served = self.decisions.published.served();
        let (served, stale) = match self.decisions.current(&served, 1) {
            Ok(current) => current,
            Err(status) => return Ok(refused_json(status.message(), self.node_id())),
        };
        let decision = self
            .decisions
            .evaluate(served, &query, &described)
            .map_err(|e| ApiError::bad_request(e.0))?;
        let decision_id = self.decisions.decision_id();
        self.decisions.log(served, &decision_id, query, &decision);
        Ok(decision_json(
            served,
            stale,
            &decision,
            decision_id,
            self.node_id(),
        ))
    }
}

async fn evaluation(
    State(api): State<HttpApi>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let evaluation: EvaluationJson = parse(body)?;
    api.reach_min_version(&headers).await?;
    Ok(json_response(StatusCode::OK, &api.decide(&evaluation)?))
}

async fn evaluations(
    State(api): State<HttpApi>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let batch: EvaluationsJson = parse(body)?;
    let items = batch.evaluations.unwrap_or_default();
    api.reach_min_version(&headers).await?;
    // Without `evaluations`, the request is a single evaluation (the spec's
    // backward-compatible form), and so is its answer.
    if items.is_empty() {
        return Ok(json_response(StatusCode::OK, &api.decide(&batch.defaults)?));
    }
    if items.len() > MAX_BATCH_REQUESTS {
        return Err(ApiError::bad_request(format!(
            "{} evaluations in one request, over the limit of {MAX_BATCH_REQUESTS}",
            items.len()
        )));
    }
    let served = api.decisions.published.served();
    let (served, stale) = match api.decisions.current(&served, items.len() as u64) {
        Ok(current) => current,
        Err(status) => {
            let refused = refused_json(status.message(), api.node_id());
            let all = vec![refused; items.len()];
            return Ok(json_response(StatusCode::OK, &json!({"evaluations": all})));
        }
    };
    let semantic = batch.options.evaluations_semantic;
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let evaluated = item
            .or(&batch.defaults)
            .to_query()
            .and_then(|(query, described)| {
                let decision = api.decisions.evaluate(served, &query, &described)?;
                Ok((query, decision))
            });
        let (allowed, result) = match evaluated {
            Ok((query, decision)) => {
                let decision_id = api.decisions.decision_id();
                api.decisions.log(served, &decision_id, query, &decision);
                (
                    decision.decision == stele_policy::Outcome::Allow,
                    decision_json(served, stale, &decision, decision_id, api.node_id()),
                )
            }
            Err(error) => (false, invalid_json(&error.0)),
        };
        results.push(result);
        match semantic {
            Semantic::DenyOnFirstDeny if !allowed => break,
            Semantic::PermitOnFirstPermit if allowed => break,
            _ => {}
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"evaluations": results}),
    ))
}

/// AuthZEN's discovery document, its URLs on the host the caller used.
async fn configuration(State(api): State<HttpApi>, headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .map(str::to_string)
        .or_else(|| api.node.config.http.map(|addr| addr.to_string()))
        .unwrap_or_default();
    let base = format!("http://{host}");
    json_response(
        StatusCode::OK,
        &json!({
            "policy_decision_point": base,
            "access_evaluation_endpoint": format!("{base}/access/v1/evaluation"),
            "access_evaluations_endpoint": format!("{base}/access/v1/evaluations"),
        }),
    )
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: serving a policy version it can show is current.
async fn readyz(State(api): State<HttpApi>) -> (StatusCode, String) {
    let served = api.node.published.served();
    let Some(served) = served.as_deref() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no policy version yet\n".into(),
        );
    };
    match api.node.freshness.check() {
        Ok(()) => (
            StatusCode::OK,
            format!(
                "ready: serving seq {} ({})\n",
                served.head.seq, served.hash_hex
            ),
        ),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: serving seq {} but cannot show it is current (last evidence {}, bound {:?})\n",
                served.head.seq,
                why.age
                    .map_or("never".to_string(), |age| format!("{age:?} ago")),
                why.max_staleness
            ),
        ),
    }
}

async fn metrics(State(api): State<HttpApi>) -> Response {
    let node = &api.node;
    let served = node.published.served();
    let raft = node.raft.metrics().borrow().clone();
    let gauges = Gauges {
        node_id: node.id(),
        served: served.as_ref().map(|s| (s.head.seq, s.hash_hex.clone())),
        staleness: node.freshness.age(),
        max_staleness: node.config.max_staleness,
        ready: served.is_some() && node.freshness.check().is_ok(),
        raft_term: raft.current_term,
        raft_leader: raft.current_leader,
        raft_is_leader: raft.state == ServerState::Leader,
        raft_last_log_index: raft.last_log_index.unwrap_or(0),
        raft_applied_index: raft.last_applied.map_or(0, |id| id.index),
        log: node
            .decision_log
            .as_ref()
            .map(|log| (log.queue_depth(), log.dropped_total())),
    };
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        node.metrics.render(&gauges),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "no such endpoint: the API is under /access/v1/ (AuthZEN), with /.well-known/authzen-configuration, /healthz, /readyz and /metrics".into(),
    }
}
