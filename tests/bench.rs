//! `stele bench`: synthetic bundles, and the load generator against a real
//! node.

mod common;

use common::cluster::{Cluster, serial};
use common::stele;

#[test]
fn bench_bundle_writes_a_valid_bundle_and_its_requests_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rbac");
    let out_arg = out.to_str().unwrap();
    let written = stele(
        dir.path(),
        &[
            "--json",
            "bench",
            "bundle",
            "--policies",
            "200",
            "--requests",
            "50",
            "--out",
            out_arg,
        ],
    )
    .ok()
    .json();
    assert_eq!(written["policies"], 200);
    let requests = std::fs::read_to_string(out.join("requests.jsonl")).unwrap();
    assert_eq!(requests.lines().count(), 50);
    // The digest printed is the bundle's, as `stele bundle digest` computes it
    // (requests.jsonl is not a bundle file, so it is moved aside first).
    std::fs::rename(
        out.join("requests.jsonl"),
        dir.path().join("requests.jsonl"),
    )
    .unwrap();
    let digest = stele(dir.path(), &["bundle", "digest", out_arg]).ok();
    assert_eq!(digest.stdout.trim(), written["digest"].as_str().unwrap());
    let answers = stele(
        dir.path(),
        &[
            "--json",
            "check",
            "--bundle",
            out_arg,
            "--requests",
            "requests.jsonl",
        ],
    )
    .ok()
    .json_lines();
    assert_eq!(answers.len(), 50);
    assert!(answers.iter().any(|a| a["decision"] == "Allow"));
    let again = stele(dir.path(), &["bench", "bundle", "--out", out_arg]).fails();
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
}

#[test]
fn bench_check_reports_throughput_latency_and_the_version_served() {
    let _one_at_a_time = serial();
    let cluster = Cluster::start(1, &[]);
    cluster.genesis();
    cluster.wait_all_serve(1);
    let common = [
        "--json",
        "bench",
        "check",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--concurrency",
        "4",
    ];
    let single = cluster.run(&common).ok().json();
    assert_eq!(single["call"], "Check");
    assert_eq!(single["errors"], 0, "{single}");
    assert_eq!(single["versions"], serde_json::json!([1]));
    let decisions = single["decisions"].as_u64().unwrap();
    assert!(decisions > 0);
    assert_eq!(single["calls"].as_u64(), Some(decisions));
    let p50 = single["latency_ms"]["p50"].as_f64().unwrap();
    let p99 = single["latency_ms"]["p99"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= p99, "{single}");

    let mut batched_args = common.to_vec();
    batched_args.extend(["--batch", "10"]);
    let batched = cluster.run(&batched_args).ok().json();
    assert_eq!(batched["call"], "CheckBatch of 10");
    assert_eq!(batched["errors"], 0, "{batched}");
    assert_eq!(
        batched["decisions"].as_u64().unwrap(),
        10 * batched["calls"].as_u64().unwrap()
    );

    // A held rate sends the calls due in the measured second: 200 of them.
    let mut held_args = common.to_vec();
    held_args.extend(["--rate", "200"]);
    let held = cluster.run(&held_args).ok().json();
    assert_eq!(held["rate"], 200);
    assert_eq!(held["errors"], 0, "{held}");
    let sent = held["decisions"].as_u64().unwrap();
    assert!((195..=200).contains(&sent), "{held}");
    let refused = cluster.run(&["bench", "check", "--rate", "0"]).fails();
    assert!(
        refused.stderr.contains("--rate must be at least 1"),
        "{}",
        refused.stderr
    );

    // A request file with a bad line is refused before any load, naming it.
    std::fs::write(cluster.path().join("bad.jsonl"), "{\"principal\": 3}\n").unwrap();
    let refused = cluster
        .run(&[
            "bench",
            "check",
            "--requests",
            "bad.jsonl",
            "--duration",
            "1s",
        ])
        .fails();
    assert!(
        refused.stderr.contains("bad.jsonl: line 1"),
        "{}",
        refused.stderr
    );
}
