//! The node's HTTP API (`stele node --http HOST:PORT`): AuthZEN 1.0
//! evaluations, its discovery document, health, readiness and Prometheus
//! metrics. Decisions go through the decision path, as gRPC's `Check` does;
//! this adapter parses, asks, and maps the answer.
//!
//! Errors are JSON, `{"error": {"status": N, "message": "…"}}`. A node
//! that cannot show it is current answers `decision: false` with the
//! reason (fail closed); a request for a version this node does not reach
//! in time (`Stele-Min-Version`) gets 412.

use std::sync::Arc;
use std::time::Duration;

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
use stele_decision::{Ask, Decided, DecisionPath, Session, StaleAnswers, Undecided};
use stele_ledger::limits::json_len;
use stele_policy::Outcome;

use crate::access::{NO_ROLE, Need, Standing, authorize, standing};
use crate::authzen::{
    EntityJson, EvaluationJson, EvaluationsJson, Semantic, decision_json, invalid_json,
    refused_json,
};
use crate::limits::{
    HTTP_REQUEST_DEADLINE, MAX_BATCH_REQUESTS, MAX_EXPANDED_BATCH_BYTES, MAX_HTTP_BODY_BYTES,
};
use crate::metrics::{Gauges, LogGauges};
use crate::state::NodeState;
use stele_tls::{Caller, Role};

/// The consistency token: answer only from this version seq or a newer one.
pub const MIN_VERSION_HEADER: &str = "stele-min-version";
const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone)]
struct HttpApi {
    node: Arc<NodeState>,
}

pub fn router(node: Arc<NodeState>) -> Router {
    let access = HttpApi { node: node.clone() };
    Router::new()
        .route("/access/v1/evaluation", post(evaluation))
        .route("/access/v1/evaluations", post(evaluations))
        .route("/.well-known/authzen-configuration", get(configuration))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_HTTP_BODY_BYTES))
        .layer(middleware::from_fn_with_state(access, check_access))
        .layer(middleware::from_fn(within_deadline))
        .layer(middleware::from_fn(echo_request_id))
        .with_state(HttpApi { node })
}

/// The role each route needs: none for the probes (they present no
/// certificate), reader for /metrics, decide for AuthZEN.
fn route_need(path: &str) -> Need {
    match path {
        "/healthz" | "/readyz" => Need::Nothing,
        "/metrics" => Need::AnyOf(&[Role::Reader]),
        _ if path.starts_with("/access/v1/") || path == "/.well-known/authzen-configuration" => {
            Need::Decide
        }
        _ => Need::Nothing,
    }
}

/// Refuses a request whose caller lacks the role its route needs: 403,
/// naming the role.
async fn check_access(State(api): State<HttpApi>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let caller = Caller::proven(request.extensions().get::<Caller>());
    // HTTP takes no forwarded roles; a node certificate that is no member
    // acts with none at all, as on the gRPC port.
    let forwarded = match standing(caller, &api.node.raft) {
        Standing::NotAMember => Some(NO_ROLE),
        Standing::NotANode | Standing::Member | Standing::NoMembershipYet => None,
    };
    let allowed = authorize(
        caller,
        forwarded,
        route_need(path),
        api.node.config.decide_requires_certificate,
        path,
    );
    match allowed {
        Ok(()) => next.run(request).await,
        Err(denied) => {
            api.node.metrics.access_denied();
            tracing::info!("{denied}");
            ApiError {
                status: StatusCode::FORBIDDEN,
                message: denied.to_string(),
            }
            .into_response()
        }
    }
}

/// A request that takes longer than the deadline (a body sent a byte at a
/// time, say) is answered 408 and its connection closed.
async fn within_deadline(request: Request, next: Next) -> Response {
    match tokio::time::timeout(HTTP_REQUEST_DEADLINE, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = ApiError {
                status: StatusCode::REQUEST_TIMEOUT,
                message: format!(
                    "the request did not complete within {}",
                    humantime::format_duration(HTTP_REQUEST_DEADLINE)
                ),
            }
            .into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
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
    fn decisions(&self) -> &DecisionPath {
        &self.node.decisions
    }

    /// A session for `decisions` answers. Stale is refused over HTTP
    /// whatever `--on-stale` says: an AuthZEN caller reads `decision` only.
    fn session(&self, decisions: u64) -> Result<Session<'_>, Undecided> {
        self.decisions().session(decisions, StaleAnswers::Refused)
    }

    /// One evaluation, answered from `session`.
    fn decide(
        &self,
        session: &Session<'_>,
        evaluation: &EvaluationJson,
    ) -> Result<Value, Undecided> {
        let decided: Decided = session.decide(evaluation.to_question())?;
        Ok(decision_json(session.version(), &decided, self.node.id()))
    }

    /// The answer to one evaluation asked alone, from `min_version` on.
    async fn answer(
        &self,
        evaluation: &EvaluationJson,
        min_version: Option<u64>,
    ) -> Result<Value, ApiError> {
        let ask = Ask {
            decisions: 1,
            min_version,
            deadline: None,
            answers: StaleAnswers::Refused,
        };
        match self.decisions().open(ask).await {
            // Cedar runs off the async workers that also drive Raft.
            Ok(session) => {
                let mut decided = None;
                stele_decision::block_in_place(&mut || {
                    decided = Some(self.decide(&session, evaluation));
                });
                decided
                    .expect("block_in_place runs the closure")
                    .or_else(|why| self.undecided_alone(why))
            }
            Err(why) => self.undecided_alone(why),
        }
    }

    /// How AuthZEN answers an evaluation asked alone (or a batch as a
    /// whole) that the node did not decide: a refusal is `decision: false`
    /// with the reason; a version not reached in time is 412; a bad request
    /// is 400; a decision log that cannot take it is 503 (not a denial: a
    /// node to avoid).
    fn undecided_alone(&self, why: Undecided) -> Result<Value, ApiError> {
        let error = |status: StatusCode| ApiError {
            status,
            message: why.to_string(),
        };
        match why {
            Undecided::Invalid(_) => Err(error(StatusCode::BAD_REQUEST)),
            Undecided::Unlogged(_) => Err(error(StatusCode::SERVICE_UNAVAILABLE)),
            Undecided::BehindMinVersion { .. } => Err(error(StatusCode::PRECONDITION_FAILED)),
            Undecided::NoPolicy | Undecided::Stale { .. } | Undecided::Removed => {
                Ok(refused_json(&why.to_string(), self.node.id()))
            }
        }
    }

    /// How an evaluation in a batch that the node did not decide is
    /// answered: a bad one with the spec's error shape; one the node would
    /// not decide (the decision log stopped taking decisions mid-batch,
    /// say) `decision: false` with the reason.
    fn undecided_in_batch(&self, why: Undecided) -> Value {
        match why {
            Undecided::Invalid(_) => invalid_json(&why.to_string()),
            Undecided::Unlogged(_)
            | Undecided::NoPolicy
            | Undecided::Stale { .. }
            | Undecided::Removed
            | Undecided::BehindMinVersion { .. } => refused_json(&why.to_string(), self.node.id()),
        }
    }

    /// A batch, in order, stopping where `semantic` says.
    fn decide_all(
        &self,
        defaults: &EvaluationJson,
        items: Vec<EvaluationJson>,
        semantic: Semantic,
    ) -> Result<Vec<Value>, ApiError> {
        let refused_count = match semantic {
            Semantic::DenyOnFirstDeny => 1,
            _ => items.len(),
        };
        let session = match self.session(refused_count as u64) {
            Ok(session) => session,
            Err(why) => return Ok(vec![self.undecided_alone(why)?; refused_count]),
        };
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            let (allowed, result) = match session.decide(item.or(defaults).to_question()) {
                Ok(decided) => (
                    decided.decision.decision == Outcome::Allow,
                    decision_json(session.version(), &decided, self.node.id()),
                ),
                Err(why) => (false, self.undecided_in_batch(why)),
            };
            results.push(result);
            match semantic {
                Semantic::DenyOnFirstDeny if !allowed => break,
                Semantic::PermitOnFirstPermit if allowed => break,
                _ => {}
            }
        }
        Ok(results)
    }
}

/// The consistency token the caller sent (`Stele-Min-Version`), if any.
fn min_version(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(MIN_VERSION_HEADER) else {
        return Ok(None);
    };
    let min = value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Stele-Min-Version must be a version seq (a whole number), not {value:?}"
            ))
        })?;
    Ok(Some(min))
}

async fn evaluation(
    State(api): State<HttpApi>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let evaluation: EvaluationJson = parse(body)?;
    let min_version = min_version(&headers)?;
    let answer = api.answer(&evaluation, min_version).await?;
    Ok(json_response(StatusCode::OK, &answer))
}

async fn evaluations(
    State(api): State<HttpApi>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let EvaluationsJson {
        defaults,
        evaluations,
        options,
    } = parse(body)?;
    let items = evaluations.unwrap_or_default();
    // Without `evaluations`, the request is a single evaluation (the spec's
    // backward-compatible form), and so is its answer.
    if items.is_empty() {
        let answer = api.answer(&defaults, min_version(&headers)?).await?;
        return Ok(json_response(StatusCode::OK, &answer));
    }
    // A batch too large is refused before the node waits for any version.
    if items.len() > MAX_BATCH_REQUESTS {
        return Err(ApiError::bad_request(format!(
            "{} evaluations in one request, over the limit of {MAX_BATCH_REQUESTS}",
            items.len()
        )));
    }
    let expanded = expanded_bytes(&defaults, &items);
    if expanded > MAX_EXPANDED_BATCH_BYTES {
        return Err(ApiError::bad_request(format!(
            "the batch's defaults copied into the {} evaluations that leave them out come to {expanded} bytes, over the limit of {MAX_EXPANDED_BATCH_BYTES}: send a smaller default context or properties, or fewer evaluations",
            items.len()
        )));
    }
    if let Some(min) = min_version(&headers)?
        && let Err(why) = api.decisions().reach(min, None, items.len() as u64).await
    {
        // Not reached in time: the batch is answered as a whole (412).
        return api
            .undecided_alone(why)
            .map(|value| json_response(StatusCode::OK, &value));
    }
    // Up to 10,000 evaluations: Cedar runs off the runtime's workers, so a
    // batch never holds up single decisions.
    let semantic = options.evaluations_semantic;
    let results = tokio::task::spawn_blocking(move || api.decide_all(&defaults, items, semantic))
        .await
        .map_err(|e| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("the batch was not evaluated: {e}"),
        })??;
    Ok(json_response(
        StatusCode::OK,
        &json!({"evaluations": results}),
    ))
}

/// The bytes of the batch's defaults that its evaluations copy: each field
/// an evaluation leaves out is the default's, counted once per evaluation.
fn expanded_bytes(defaults: &EvaluationJson, items: &[EvaluationJson]) -> usize {
    let map_len =
        |map: &serde_json::Map<String, Value>| usize::try_from(json_len(map)).unwrap_or(usize::MAX);
    let entity_len = |entity: &Option<EntityJson>| {
        entity.as_ref().map_or(0, |e| {
            e.type_name.as_ref().map_or(0, String::len)
                + e.id.as_ref().map_or(0, String::len)
                + e.properties.as_ref().map_or(0, map_len)
        })
    };
    let subject = entity_len(&defaults.subject);
    let action = defaults
        .action
        .as_ref()
        .map_or(0, |a| a.name.as_ref().map_or(0, String::len));
    let resource = entity_len(&defaults.resource);
    let context = defaults.context.as_ref().map_or(0, map_len);
    items
        .iter()
        .map(|item| {
            let mut bytes = 0usize;
            if item.subject.is_none() {
                bytes = bytes.saturating_add(subject);
            }
            if item.resource.is_none() {
                bytes = bytes.saturating_add(resource);
            }
            if item.action.is_none() {
                bytes = bytes.saturating_add(action);
            }
            if item.context.is_none() {
                bytes = bytes.saturating_add(context);
            }
            bytes
        })
        .fold(0usize, usize::saturating_add)
}

/// AuthZEN's discovery document, its URLs on the address the node listens
/// at. Only a node listening on every interface (`0.0.0.0`) names the host
/// the caller used, since it has no one address of its own to give.
async fn configuration(State(api): State<HttpApi>, headers: HeaderMap) -> Response {
    let configured = api.node.config.http;
    let host = match configured {
        Some(addr) if !addr.ip().is_unspecified() => addr.to_string(),
        _ => headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .filter(|host| host.parse::<axum::http::uri::Authority>().is_ok())
            .map(str::to_string)
            .or_else(|| configured.map(|addr| addr.to_string()))
            .unwrap_or_default(),
    };
    let scheme = match api.node.config.transport {
        crate::config::Transport::Tls(_) => "https",
        crate::config::Transport::InsecurePlaintext => "http",
    };
    let base = format!("{scheme}://{host}");
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

/// `/readyz`: 200 when the node would decide for an AuthZEN caller now,
/// 503 otherwise, saying why.
async fn readyz(State(api): State<HttpApi>) -> (StatusCode, String) {
    match api.decisions().readiness(StaleAnswers::Refused) {
        Ok(ready) => (StatusCode::OK, format!("ready: {ready}\n")),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

async fn metrics(State(api): State<HttpApi>) -> Response {
    let node = &api.node;
    let decisions = api.decisions();
    let served = node
        .published
        .served()
        .as_ref()
        .map(|s| (s.head.seq, s.hash_hex.clone()));
    let raft = node.raft.metrics().borrow().clone();
    // openraft 0.9's metrics leave the commit index out; its state has it.
    // Asked of Raft's core, which may be busy or stuck: a scrape does not
    // wait for it long.
    let raft_commit_index = tokio::time::timeout(
        Duration::from_secs(1),
        node.raft
            .with_raft_state(|state| state.committed.map_or(0, |id| id.index)),
    )
    .await
    .ok()
    .and_then(Result::ok);
    let gauges = Gauges {
        node_id: node.id(),
        served,
        staleness: decisions.freshness().age(),
        max_staleness: node.config.max_staleness,
        ready: decisions.readiness(StaleAnswers::Refused).is_ok(),
        raft_term: raft.current_term,
        raft_leader: raft.current_leader,
        raft_is_leader: raft.state == ServerState::Leader,
        raft_last_log_index: raft.last_log_index.unwrap_or(0),
        raft_commit_index,
        raft_applied_index: raft.last_applied.map_or(0, |id| id.index),
        pending_dropped: node.published.dropped_pending(),
        log: decisions.log().map(|log| LogGauges {
            queue_depth: log.queue_depth(),
            dropped: log.dropped_total(),
            lost: log.lost_total(),
            failed: log.failed().is_some(),
            signed: log.signed(),
        }),
    };
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        node.metrics.render(&decisions.counters().read(), &gauges),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "no such endpoint: the API is under /access/v1/ (AuthZEN), with /.well-known/authzen-configuration, /healthz, /readyz and /metrics".into(),
    }
}
