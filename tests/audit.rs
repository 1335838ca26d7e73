//! Every decision traced to its version from a verified log: a node logs
//! what it decides (over HTTP and gRPC), `stele audit verify` proves a
//! copy of the log with the key `cluster status` shows, `stele audit show`
//! finds a decision and the version that made it, and a tampered copy
//! fails, naming the record.

mod common;

use std::time::Duration;

use common::cluster::{Cluster, serial, wait_until};
use common::http::post;
use common::stele;
use serde_json::{Value, json};

/// `stele check`'s arguments for dave's ssh to a production server.
const DAVE_SSH: &[&str] = &[
    "check",
    "--principal",
    r#"User::"dave""#,
    "--action",
    r#"Action::"ssh""#,
    "--resource",
    r#"Server::"prod-web-1""#,
];

#[test]
fn decisions_are_traced_to_their_version_from_a_verified_log() {
    let _one_at_a_time = serial();
    let mut cluster = Cluster::start(1, &["--decision-log-requests"]);
    cluster.genesis();
    cluster.wait_all_serve(1);
    let status = cluster.run(&["--json", "cluster", "status"]).ok().json();
    let key = status["members"][0]["log_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(key.len(), 64, "{status}");

    let http = cluster.nodes[0].http.clone();
    let request = json!({
        "subject": {"type": "User", "id": "erin"},
        "action": {"name": "ssh"},
        "resource": {"type": "Server", "id": "prod-web-1"},
        "context": {"network_zone": "corp", "device": {"managed": true, "disk_encrypted": true, "os_patch_age_days": 3}, "mfa_age_seconds": 120},
    });
    let answer = post(&http, "/access/v1/evaluation", &request).json();
    assert_eq!(answer["decision"], true, "{answer}");
    let decision_id = answer["context"]["decision_id"]
        .as_str()
        .unwrap()
        .to_string();
    let version_hash = answer["context"]["version"]["hash"]
        .as_str()
        .unwrap()
        .to_string();
    let grpc = cluster
        .run(
            &[
                &["--json"],
                DAVE_SSH,
                &["--context", r#"{"network_zone":"corp"}"#],
            ]
            .concat(),
        )
        .ok()
        .json();
    let grpc_id = grpc["decision_id"].as_str().unwrap().to_string();
    let metrics = common::http::get(&http, "/metrics").body;
    assert!(
        metrics.contains("stele_decision_log_queue_depth "),
        "{metrics}"
    );
    assert!(
        metrics.contains("stele_decision_log_dropped_total 0"),
        "{metrics}"
    );
    // Each decision counted once, as the log holds it once.
    let counted = |outcome: &str| -> u64 {
        let name = format!("stele_decisions_total{{outcome=\"{outcome}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name.as_str())?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    assert_eq!(counted("allow") + counted("deny"), 2, "{metrics}");

    // The node publishes what it signed: the count and head an auditor
    // holds a copy to (a checkpoint comes within 5 s of a decision).
    let mut signed = Value::Null;
    wait_until(
        "a checkpoint covering both decisions",
        Duration::from_secs(15),
        || {
            signed =
                cluster.run(&["--json", "cluster", "status"]).ok().json()["members"][0].clone();
            signed["log_signed_count"] == 2
        },
    );
    let signed_head = signed["log_signed_head"].as_str().unwrap().to_string();

    // A stopping node writes what is queued and signs a last checkpoint.
    assert!(cluster.stop(1).success());
    let copy = cluster.path().join("audit-copy");
    common::copy_dir(&cluster.nodes[0].data.join("decisions"), &copy);
    let copy_arg = copy.to_str().unwrap();
    let dir = cluster.path();

    let verified = stele(
        dir,
        &["--json", "audit", "verify", copy_arg, "--node-key", &key],
    )
    .ok()
    .json();
    assert_eq!(verified["ok"], true);
    assert_eq!(verified["decisions"], 2, "{verified}");
    assert_eq!(verified["unsigned"], 0, "{verified}");
    let expecting = |count: &str, head: &str| {
        stele(
            dir,
            &[
                "audit",
                "verify",
                copy_arg,
                "--node-key",
                &key,
                "--expect-count",
                count,
                "--expect-head",
                head,
            ],
        )
    };
    expecting("2", &signed_head).ok();
    let rewritten = expecting("2", &"0".repeat(64)).fails();
    assert!(
        rewritten.stderr.contains("rewritten"),
        "{}",
        rewritten.stderr
    );
    let short = expecting("3", &signed_head).fails();
    assert!(
        short.stderr.contains("cut from its end"),
        "{}",
        short.stderr
    );

    let show = |json: bool, id: &str| {
        let mut args = vec![
            "audit",
            "show",
            copy_arg,
            "--node-key",
            &key,
            "--decision-id",
            id,
        ];
        if json {
            args.insert(0, "--json");
        }
        stele(dir, &args)
    };
    let shown = show(true, &decision_id).ok().json();
    let record = &shown["record"];
    assert_eq!(record["decision"], "allow");
    assert_eq!(record["seq"], 1);
    assert_eq!(record["hash"], version_hash.as_str());
    assert_eq!(record["reasons"], json!(["sre-operate-production"]));
    assert_eq!(record["request"]["principal"], r#"User::"erin""#);
    assert_eq!(shown["signed"], true);
    let text = show(false, &grpc_id).ok().stdout;
    assert!(
        text.contains("deny") && text.contains("version: seq 1"),
        "{text}"
    );
    let missing = show(false, "1-nope-0").fails();
    assert!(missing.stderr.contains("no decision"), "{}", missing.stderr);

    // A changed record: verification fails and names it; show refuses too.
    let segment = std::fs::read_dir(&copy)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    let text = std::fs::read_to_string(&segment).unwrap();
    std::fs::write(
        &segment,
        text.replacen("\"decision\":\"deny\"", "\"decision\":\"allow\"", 1),
    )
    .unwrap();
    let refused = stele(dir, &["audit", "verify", copy_arg, "--node-key", &key]).fails();
    assert!(refused.stderr.contains("record 1"), "{}", refused.stderr);
    assert!(refused.stderr.contains(&grpc_id), "{}", refused.stderr);
    show(false, &decision_id).fails();
}

#[test]
fn a_node_whose_log_cannot_be_written_stops_deciding() {
    let _one_at_a_time = serial();
    // Small segments: the writer must soon open a new one, and cannot.
    let settings = tempfile::tempdir().unwrap();
    let config = settings.path().join("node.toml");
    std::fs::write(&config, "[decision_log]\nsegment_bytes = 4096\n").unwrap();
    let mut cluster = Cluster::start(1, &["--config", config.to_str().unwrap()]);
    cluster.genesis();
    cluster.wait_all_serve(1);
    let http = cluster.nodes[0].http.clone();
    let request = json!({
        "subject": {"type": "User", "id": "dave"},
        "action": {"name": "ssh"},
        "resource": {"type": "Server", "id": "prod-web-1"},
        "context": {"network_zone": "corp"},
    });
    assert_eq!(post(&http, "/access/v1/evaluation", &request).status, 200);

    let decisions = cluster.nodes[0].data.join("decisions");
    // Moved away at once (removing it races the writer, which may add a
    // file meanwhile), and a file put in its place.
    std::fs::rename(&decisions, decisions.with_extension("moved")).unwrap();
    std::fs::write(&decisions, "not a directory").unwrap();
    let mut refused = None;
    wait_until("decisions refused", Duration::from_secs(30), || {
        let reply = post(&http, "/access/v1/evaluation", &request);
        if reply.status == 503 {
            refused = Some(reply);
        }
        refused.is_some()
    });
    let refused = refused.unwrap();
    assert!(
        refused.body.contains("cannot be written"),
        "{}",
        refused.body
    );
    assert_eq!(common::http::get(&http, "/readyz").status, 503);
    let metrics = common::http::get(&http, "/metrics").body;
    assert!(metrics.contains("stele_decision_log_failed 1"), "{metrics}");
    // The decision the writer held when it failed was answered: it is
    // counted, not forgotten.
    let lost = metrics
        .lines()
        .find_map(|l| l.strip_prefix("stele_decision_log_lost_total "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(lost.is_some_and(|n| n >= 1), "{metrics}");
    let grpc = cluster.run(DAVE_SSH).fails();
    assert!(grpc.stderr.contains("cannot log"), "{}", grpc.stderr);
    let status = cluster.run(&["--json", "cluster", "status"]).ok().json();
    assert!(
        status["members"][0]["log_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{status}"
    );
    // It still stops cleanly.
    assert!(cluster.stop(1).success());
}
