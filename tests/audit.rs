//! Every decision traced to its version from a verified log: a node logs
//! what it decides (over HTTP and gRPC), `stele audit verify` proves a
//! copy of the log with the key `cluster status` shows, `stele audit show`
//! finds a decision and the version that made it, and a tampered copy
//! fails, naming the record.

mod common;

use common::cluster::{Cluster, serial};
use common::http::post;
use common::stele;
use serde_json::json;

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
        .run(&[
            "--json",
            "check",
            "--principal",
            r#"User::"dave""#,
            "--action",
            r#"Action::"ssh""#,
            "--resource",
            r#"Server::"prod-web-1""#,
            "--context",
            r#"{"network_zone":"corp"}"#,
        ])
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
