//! The node's HTTP API end to end: AuthZEN 1.0 evaluations as an
//! enforcement point sends them, the spec's error cases, the consistency
//! header, discovery, health, readiness and metrics.

mod common;

use common::cluster::{Cluster, serial};
use common::http::{get, post, request};
use serde_json::{Value, json};

const EVALUATION: &str = "/access/v1/evaluation";
const EVALUATIONS: &str = "/access/v1/evaluations";

/// The example's SRE opening a shell on a production server: allowed.
fn ssh(user: &str) -> Value {
    json!({
        "subject": {"type": "User", "id": user},
        "action": {"name": "ssh"},
        "resource": {"type": "Server", "id": "prod-web-1"},
        "context": {
            "network_zone": "corp",
            "device": {"managed": true, "disk_encrypted": true, "os_patch_age_days": 3},
            "mfa_age_seconds": 120
        }
    })
}

fn served_hash(cluster: &Cluster) -> String {
    let log = cluster.run(&["--json", "log"]).ok();
    let head = log.json_lines().pop().unwrap();
    head["hash"].as_str().unwrap().to_string()
}

#[test]
fn an_enforcement_point_gets_decisions_with_the_version_that_made_them() {
    let _one_at_a_time = serial();
    let cluster = Cluster::start(1, &[]);
    let http = cluster.nodes[0].http.clone();
    // Before any policy: alive, not ready, and decisions fail closed.
    assert_eq!(get(&http, "/healthz").status, 200);
    assert_eq!(get(&http, "/readyz").status, 503);
    let early = post(&http, EVALUATION, &ssh("erin"));
    assert_eq!(early.status, 200, "{}", early.body);
    assert_eq!(early.json()["decision"], false);
    assert!(
        early.json()["context"]["reason"]
            .as_str()
            .unwrap()
            .contains("no policy version yet"),
        "{}",
        early.body
    );

    cluster.genesis();
    cluster.wait_all_serve(1);
    let hash = served_hash(&cluster);
    let ready = get(&http, "/readyz");
    assert_eq!(ready.status, 200);
    assert!(ready.body.contains("serving seq 1"), "{}", ready.body);

    let allowed = request(
        &http,
        "POST",
        EVALUATION,
        &[("X-Request-ID", "req-42")],
        ssh("erin").to_string().as_bytes(),
    );
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(allowed.header("x-request-id"), Some("req-42"));
    assert_eq!(allowed.header("content-type"), Some("application/json"));
    let answer = allowed.json();
    assert_eq!(answer["decision"], true, "{answer}");
    assert_eq!(answer["context"]["version"]["seq"], 1);
    assert_eq!(answer["context"]["version"]["hash"], hash.as_str());
    assert_eq!(
        answer["context"]["reasons"],
        json!(["sre-operate-production"])
    );
    assert!(
        answer["context"]["decision_id"]
            .as_str()
            .unwrap()
            .starts_with("1-")
    );

    // A contractor is denied; an unknown user too.
    for user in ["dave", "nobody"] {
        let denied = post(&http, EVALUATION, &ssh(user)).json();
        assert_eq!(denied["decision"], false, "{user}: {denied}");
        assert_eq!(denied["context"]["version"]["seq"], 1);
    }

    // Unknown fields are ignored, as the spec asks.
    let mut extra = ssh("erin");
    extra["subject"]["email"] = json!("erin@example.com");
    extra["trace"] = json!({"span": 7});
    assert_eq!(post(&http, EVALUATION, &extra).json()["decision"], true);

    // Properties describe entities the bundle does not hold; the bundle's
    // own entities keep their attributes (a wrong type would be refused).
    let mut described = ssh("erin");
    described["subject"]["properties"] = json!({"employment": 5});
    assert_eq!(post(&http, EVALUATION, &described).json()["decision"], true);
    let mut stranger = ssh("zed");
    stranger["subject"]["properties"] = json!({"employment": "contractor"});
    let reply = post(&http, EVALUATION, &stranger);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["decision"], false);
    // A workload the bundle does not know: its properties are what allow
    // it, and only for its own environment's databases.
    let workload = |environment: Option<&str>| {
        let mut subject = json!({"type": "ServiceAccount", "id": "new-worker"});
        if let Some(environment) = environment {
            subject["properties"] =
                json!({"environment": {"__entity": {"type": "Environment", "id": environment}}});
        }
        json!({
            "subject": subject,
            "action": {"name": "db:read"},
            "resource": {"type": "Database", "id": "prod-catalog"},
            "context": {"network_zone": "cluster"},
        })
    };
    for (environment, allowed) in [
        (None, false),
        (Some("staging"), false),
        (Some("production"), true),
    ] {
        let answer = post(&http, EVALUATION, &workload(environment)).json();
        assert_eq!(answer["decision"], allowed, "{environment:?}: {answer}");
    }
    stranger["subject"]["properties"] = json!({"employment": 5});
    let refused = post(&http, EVALUATION, &stranger);
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("entity properties"),
        "{}",
        refused.body
    );

    // The consistency token: met at once, or 412 after the wait.
    let fresh = request(
        &http,
        "POST",
        EVALUATION,
        &[("Stele-Min-Version", "1")],
        ssh("erin").to_string().as_bytes(),
    );
    assert_eq!(fresh.json()["decision"], true);
    let ahead = request(
        &http,
        "POST",
        EVALUATION,
        &[("Stele-Min-Version", "9"), ("X-Request-ID", "r9")],
        ssh("erin").to_string().as_bytes(),
    );
    assert_eq!(ahead.status, 412, "{}", ahead.body);
    assert_eq!(ahead.header("x-request-id"), Some("r9"));
    assert!(
        ahead.body.contains("behind the requested min_version 9"),
        "{}",
        ahead.body
    );
    // A batch is answered from one version: not reached, the batch as a
    // whole is 412.
    let batch = json!({"evaluations": [ssh("erin"), ssh("erin")]});
    let ahead = request(
        &http,
        "POST",
        EVALUATIONS,
        &[("Stele-Min-Version", "9")],
        batch.to_string().as_bytes(),
    );
    assert_eq!(ahead.status, 412, "{}", ahead.body);

    // Discovery names the endpoints on the node's own address, whatever
    // Host the caller sent.
    let configuration = request(
        &http,
        "GET",
        "/.well-known/authzen-configuration",
        &[("Host", "attacker.example")],
        b"",
    )
    .json();
    assert_eq!(
        configuration["access_evaluation_endpoint"],
        format!("https://{}{EVALUATION}", http.addr)
    );
    assert_eq!(
        configuration["access_evaluations_endpoint"],
        format!("https://{}{EVALUATIONS}", http.addr)
    );

    // Metrics count what was decided and name the served version.
    let metrics = get(&http, "/metrics");
    assert_eq!(metrics.status, 200);
    let text = metrics.body;
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    assert!(value("stele_decisions_total{outcome=\"allow\"}") >= 4.0);
    assert!(value("stele_decisions_total{outcome=\"deny\"}") >= 3.0);
    assert!(value("stele_decisions_total{outcome=\"invalid\"}") >= 1.0);
    assert!(value("stele_decisions_total{outcome=\"refused\"}") >= 2.0);
    assert!(value("stele_decision_duration_seconds_count") >= 7.0);
    assert_eq!(value("stele_served_seq"), 1.0);
    assert!(text.contains(&format!(
        "stele_served_version{{seq=\"1\",hash=\"{hash}\"}} 1"
    )));
    assert_eq!(value("stele_ready"), 1.0);
    assert_eq!(value("stele_raft_is_leader"), 1.0);
    assert!(value("stele_raft_term") >= 1.0);
    assert!(value("stele_raft_commit_index") >= 1.0);
    assert_eq!(
        value("stele_raft_commit_index"),
        value("stele_raft_applied_index")
    );
    assert_eq!(value("stele_raft_apply_lag"), 0.0);
    assert!(value("stele_staleness_seconds") < 5.0);
    assert!(value("stele_proposals_total{verdict=\"committed\"}") >= 1.0);
}

#[test]
fn bad_requests_get_a_clear_error_and_the_node_keeps_serving() {
    let _one_at_a_time = serial();
    let cluster = Cluster::start(1, &[]);
    cluster.genesis();
    cluster.wait_all_serve(1);
    let http = cluster.nodes[0].http.clone();
    let message = |reply: &common::http::Reply| {
        reply.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    let malformed = request(
        &http,
        "POST",
        EVALUATION,
        &[("X-Request-ID", "m1")],
        b"{\"subject\":",
    );
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.header("x-request-id"), Some("m1"));
    assert!(
        message(&malformed).contains("not a valid request"),
        "{}",
        malformed.body
    );

    let mut missing = ssh("erin");
    missing.as_object_mut().unwrap().remove("subject");
    let reply = post(&http, EVALUATION, &missing);
    assert_eq!(reply.status, 400);
    assert_eq!(message(&reply), "subject is missing");
    let mut nameless = ssh("erin");
    nameless["action"] = json!({});
    assert_eq!(
        message(&post(&http, EVALUATION, &nameless)),
        "action.name is missing"
    );
    let mut wrong_type = ssh("erin");
    wrong_type["subject"]["id"] = json!(7);
    assert_eq!(post(&http, EVALUATION, &wrong_type).status, 400);
    let mut outside_schema = ssh("erin");
    outside_schema["resource"]["type"] = json!("Spaceship");
    let reply = post(&http, EVALUATION, &outside_schema);
    assert_eq!(reply.status, 400);
    assert!(message(&reply).contains("Spaceship"), "{}", reply.body);

    let bad_token = request(
        &http,
        "POST",
        EVALUATION,
        &[("Stele-Min-Version", "latest")],
        ssh("erin").to_string().as_bytes(),
    );
    assert_eq!(bad_token.status, 400);
    assert!(
        message(&bad_token).contains("Stele-Min-Version"),
        "{}",
        bad_token.body
    );

    let oversized = vec![b' '; 17 * 1024 * 1024];
    let reply = request(&http, "POST", EVALUATION, &[], &oversized);
    assert_eq!(reply.status, 413, "{}", reply.body);

    assert_eq!(get(&http, "/access/v1/nothing").status, 404);
    assert_eq!(get(&http, EVALUATION).status, 405);

    // Garbage on the port: the connection is dropped, nothing else.
    {
        use std::io::Write;
        let mut socket = std::net::TcpStream::connect(&http.addr).unwrap();
        let _ = socket.write_all(&[0xff, 0x00, 0x13, 0x37, b'\r', b'\n', b'\r', b'\n']);
    }
    let after = post(&http, EVALUATION, &ssh("erin"));
    assert_eq!(after.status, 200);
    assert_eq!(after.json()["decision"], true);
}

#[test]
fn batches_take_defaults_and_stop_as_their_semantic_says() {
    let _one_at_a_time = serial();
    let cluster = Cluster::start(1, &[]);
    cluster.genesis();
    cluster.wait_all_serve(1);
    let http = cluster.nodes[0].http.clone();
    let base = ssh("erin");
    let batch = |semantic: Option<&str>| {
        let mut body = json!({
            "subject": base["subject"],
            "action": base["action"],
            "context": base["context"],
            "evaluations": [
                {"resource": {"type": "Server", "id": "prod-web-1"}},
                {"subject": {"type": "User", "id": "dave"}, "resource": {"type": "Server", "id": "prod-web-1"}},
                {"resource": {"type": "Server"}},
                {"resource": {"type": "Server", "id": "prod-web-1"}},
            ],
        });
        if let Some(semantic) = semantic {
            body["options"] = json!({"evaluations_semantic": semantic});
        }
        let reply = post(&http, EVALUATIONS, &body);
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["evaluations"].as_array().unwrap().clone()
    };
    let decisions = |results: &[Value]| -> Vec<bool> {
        results
            .iter()
            .map(|r| r["decision"].as_bool().unwrap())
            .collect()
    };

    let all = batch(None);
    assert_eq!(decisions(&all), [true, false, false, true]);
    assert_eq!(all[0]["context"]["version"]["seq"], 1);
    assert_eq!(all[2]["context"]["error"]["status"], 400);
    assert_eq!(
        all[2]["context"]["error"]["message"],
        "resource.id is missing"
    );
    assert_eq!(
        decisions(&batch(Some("execute_all"))),
        [true, false, false, true]
    );
    assert_eq!(decisions(&batch(Some("deny_on_first_deny"))), [true, false]);
    assert_eq!(decisions(&batch(Some("permit_on_first_permit"))), [true]);
    let unknown = post(
        &http,
        EVALUATIONS,
        &json!({"evaluations": [ssh("erin")], "options": {"evaluations_semantic": "majority"}}),
    );
    assert_eq!(unknown.status, 400, "{}", unknown.body);

    // Without `evaluations` it is a single evaluation, answered as one.
    let single = post(&http, EVALUATIONS, &ssh("erin")).json();
    assert_eq!(single["decision"], true, "{single}");
    assert_eq!(single["context"]["version"]["seq"], 1);

    let too_many: Vec<Value> = (0..10_001).map(|_| json!({})).collect();
    let reply = post(&http, EVALUATIONS, &json!({"evaluations": too_many}));
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("over the limit"), "{}", reply.body);

    // A 1 MiB default context inherited by 100 evaluations would be 100
    // MiB of requests from a 1 MiB body: refused before any is built.
    let mut amplified = ssh("erin");
    amplified["context"]["padding"] = json!("x".repeat(1 << 20));
    amplified["evaluations"] = (0..100).map(|_| json!({})).collect::<Vec<_>>().into();
    let reply = post(&http, EVALUATIONS, &amplified);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("defaults copied"), "{}", reply.body);
    // The same evaluations, each with its own small context, are fine.
    let own_contexts = || -> Value {
        (0..100)
            .map(|_| json!({"context": base["context"]}))
            .collect::<Vec<_>>()
            .into()
    };
    amplified["evaluations"] = own_contexts();
    let reply = post(&http, EVALUATIONS, &amplified);
    assert_eq!(reply.status, 200, "{}", reply.body);
    // A default action name is copied too.
    let mut named = ssh("erin");
    named["action"]["name"] = json!("x".repeat(1 << 20));
    named["evaluations"] = own_contexts();
    let reply = post(&http, EVALUATIONS, &named);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("defaults copied"), "{}", reply.body);

    // An evaluation that cannot be made is counted as invalid, in a batch
    // as alone.
    let invalid = |text: &str| -> f64 {
        text.lines()
            .find_map(|line| {
                line.strip_prefix("stele_decisions_total{outcome=\"invalid\"}")?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    let before = invalid(&get(&http, "/metrics").body);
    batch(None);
    let after = invalid(&get(&http, "/metrics").body);
    assert_eq!(after - before, 1.0);
}
