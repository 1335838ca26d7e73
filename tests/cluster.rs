//! The replicated cluster end to end: real `stele node` processes on
//! 127.0.0.1, driven through the `stele` command.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use common::cluster::{Cluster, serial, wait_until};
use common::{approver_names, flipped_lines, stele};
use serde_json::Value;

const CONTEXT: &str = r#"{"network_zone":"vpn","device":{"managed":true,"disk_encrypted":true,"os_patch_age_days":3},"mfa_age_seconds":60}"#;
const CORP_CONTEXT: &str = r#"{"network_zone":"corp","device":{"managed":true,"disk_encrypted":true,"os_patch_age_days":3},"mfa_age_seconds":60}"#;

fn check_args() -> Vec<&'static str> {
    vec![
        "--json",
        "check",
        "--principal",
        r#"User::"erin""#,
        "--action",
        r#"Action::"ssh""#,
        "--resource",
        r#"Server::"prod-web-1""#,
        "--context",
        CONTEXT,
    ]
}

/// The example bundle plus a rule refusing shells from the VPN.
fn no_ssh_from_vpn(cluster: &Cluster) -> std::path::PathBuf {
    let dir = cluster.variant("no-ssh");
    std::fs::write(
        dir.join("ssh.cedar"),
        "@id(\"no-ssh-from-vpn\")\nforbid(principal, action == Action::\"ssh\", resource)\nwhen { context.network_zone == \"vpn\" };\n",
    )
    .unwrap();
    dir
}

#[test]
fn a_proposal_past_its_own_expiry_cannot_commit() {
    let _one_at_a_time = serial();
    let cluster = Cluster::start(1, &[]);
    cluster.genesis();
    cluster.wait_all_serve(1);
    no_ssh_from_vpn(&cluster);
    let proposed = cluster
        .run(&[
            "--json",
            "propose",
            "--bundle",
            "no-ssh",
            "-m",
            "expires at once",
            "--expires-in",
            "2s",
            "--key",
            "a",
        ])
        .ok()
        .json();
    assert_eq!(proposed["status"], "pending");
    let id = proposed["proposal_id"].as_str().unwrap();
    // Held until the version's own expiry, not the node's 24 h.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let held_until = proposed["expires_at_ms"].as_u64().unwrap();
    assert!(held_until <= now_ms + 3_000, "{proposed}");
    // Past the expiry, the approval that would reach M commits nothing.
    std::thread::sleep(Duration::from_millis(3_100));
    let late = cluster
        .run(&["--json", "approve", id, "--key", "b"])
        .fails()
        .json();
    assert_eq!(late["error"], "unknown_proposal", "{late}");
    assert_eq!(cluster.served_seq(1), Some(1));
}

#[test]
fn a_rotation_through_the_cluster_names_the_new_approvers_and_retires_the_old() {
    let _one_at_a_time = serial();
    let cluster = Cluster::start(1, &[]);
    cluster.genesis();
    cluster.wait_all_serve(1);
    stele(cluster.path(), &["keygen", "--out", "d"]).ok();
    // c retires, dana joins: 2 of the old set and 2 of the new sign.
    let rotated = cluster
        .run(&[
            "--json",
            "rotate",
            "--approver",
            "a.pub",
            "--approver",
            "b.pub",
            "--approver",
            "dana=d.pub",
            "--contact",
            "dana=dana@example.com",
            "--threshold",
            "2",
            "-m",
            "dana replaces c",
            "--key",
            "a",
            "--key",
            "b",
        ])
        .ok()
        .json();
    assert_eq!(rotated["status"], "committed", "{rotated}");
    cluster.wait_all_serve(2);
    let shown = cluster.run(&["--json", "show", "2"]).ok().json();
    assert_eq!(shown["kind"], "rotate");
    assert_eq!(shown["author"], "a");
    assert_eq!(approver_names(&shown), ["a", "b", "dana"], "{shown}");
    let dana = shown["trust"]["approvers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "dana")
        .unwrap();
    assert_eq!(dana["contact"], "dana@example.com");
    // c's signature no longer counts; dana's does, under her name.
    let variant = cluster.variant("after-rotation");
    let variant = variant.to_str().unwrap();
    let retired = cluster
        .run(&[
            "--json", "propose", "--bundle", variant, "-m", "x", "--key", "c", "--key", "a",
        ])
        .fails()
        .json();
    assert_eq!(retired["error"], "unknown_key", "{retired}");
    let proposed = cluster
        .run(&[
            "--json", "propose", "--bundle", variant, "-m", "x", "--key", "d", "--key", "a",
        ])
        .ok()
        .json();
    assert_eq!(proposed["status"], "committed", "{proposed}");
    let log = cluster.run(&["log"]).ok();
    let third = log
        .stdout
        .lines()
        .find(|line| line.trim_start().starts_with("3 "))
        .unwrap();
    assert!(third.contains("by dana"), "{third}");
    let signers = third.split("signed by ").nth(1).unwrap();
    assert!(
        signers.starts_with("a, dana") || signers.starts_with("dana, a"),
        "{third}"
    );
}

/// Node ids and voter flags from `cluster status` at the first node.
fn voters_and_learners(cluster: &Cluster) -> Vec<(u64, bool)> {
    let status = cluster.run(&["--json", "cluster", "status"]).ok().json();
    status["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_u64().unwrap(), m["voter"].as_bool().unwrap()))
        .collect()
}

#[test]
fn promoting_a_learner_that_does_not_answer_or_removing_the_last_voter_changes_nothing() {
    let _one_at_a_time = serial();
    let mut cluster = Cluster::start(1, &[]);
    cluster.genesis();
    cluster.wait_all_serve(1);
    // Nothing listens at the learner's addresses: it may join as a
    // learner (harmless), never as a voter.
    let (addr, peer) = cluster.plan(5);
    let dead = format!("5={addr},{peer}");
    let cert = cluster.node_cert(5);
    cluster.member_change(&["add-learner", &dead, "--cert", &cert]);
    wait_until("node 5 joins as a learner", Duration::from_secs(30), || {
        voters_and_learners(&cluster) == [(1, true), (5, false)]
    });
    let before = voters_and_learners(&cluster);
    let head = cluster.served_seq(1);
    // Adding the same id again is refused before anything is signed.
    let again = cluster.run(&[
        "--json",
        "cluster",
        "add-learner",
        "5=127.0.0.1:1,127.0.0.1:2",
        "--cert",
        &cert,
        "--key",
        "a",
    ]);
    assert_ne!(again.code, 0);
    assert!(
        again.stderr.contains("already a member"),
        "{}",
        again.stderr
    );
    let refused = cluster
        .run(&[
            "--json", "cluster", "promote", "5", "--key", "a", "--key", "b",
        ])
        .fails()
        .json();
    assert_eq!(refused["error"], "membership_unsafe", "{refused}");
    // A member set needs a voter: removing the last one is no member set.
    let last = cluster.run(&[
        "--json", "cluster", "remove", "1", "--key", "a", "--key", "b",
    ]);
    assert_ne!(last.code, 0);
    assert!(last.stderr.contains("voter"), "{}", last.stderr);
    assert_eq!(voters_and_learners(&cluster), before);
    assert_eq!(cluster.served_seq(1), head, "nothing was committed");
    // The cluster still commits on its one voter, and the learner goes.
    no_ssh_from_vpn(&cluster);
    let committed = cluster
        .run(&[
            "--json", "propose", "--bundle", "no-ssh", "-m", "still", "--key", "a", "--key", "b",
        ])
        .ok()
        .json();
    assert_eq!(committed["status"], "committed");
    cluster.member_change(&["remove", "5"]);
    wait_until("node 5 is removed", Duration::from_secs(30), || {
        voters_and_learners(&cluster) == [(1, true)]
    });
}

#[test]
fn a_proposal_at_a_follower_approved_at_another_node_is_served_everywhere() {
    let _one_at_a_time = serial();
    let cluster = Cluster::start(3, &[]);
    let genesis = cluster.genesis();
    assert_eq!(
        (genesis["status"].as_str(), genesis["seq"].as_u64()),
        (Some("committed"), Some(1))
    );
    cluster.wait_all_serve(1);
    for node in &cluster.nodes {
        let answer = cluster.run_at(&node.addr, &check_args()).ok().json();
        assert_eq!(answer["decision"], "Allow");
        assert_eq!(answer["version"]["seq"], 1);
        assert_eq!(answer["node_id"], node.id);
        assert!(
            answer["decision_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        );
    }
    let leader = cluster.wait_for_leader();
    let follower = cluster.nodes.iter().find(|n| n.id != leader).unwrap();
    let other = cluster
        .nodes
        .iter()
        .find(|n| n.id != leader && n.id != follower.id)
        .unwrap();
    no_ssh_from_vpn(&cluster);
    let proposed = cluster
        .run_at(
            &follower.addr,
            &[
                "--json",
                "propose",
                "--bundle",
                "no-ssh",
                "-m",
                "no ssh from vpn",
                "--key",
                "a",
            ],
        )
        .ok()
        .json();
    assert_eq!(proposed["status"], "pending");
    assert_eq!(
        (
            proposed["signatures"].as_u64(),
            proposed["threshold"].as_u64()
        ),
        (Some(1), Some(2))
    );
    let id = proposed["proposal_id"].as_str().unwrap();
    // The same signer again: said so, and nothing is sent (the node would
    // not count it twice either: crates/store/tests/machine.rs).
    let again = cluster
        .run_at(&other.addr, &["--json", "approve", id, "--key", "a"])
        .ok()
        .json();
    assert_eq!(again["status"], "already_signed");
    let approved = cluster
        .run_at(&other.addr, &["--json", "approve", id, "--key", "c"])
        .ok()
        .json();
    assert_eq!(
        (approved["status"].as_str(), approved["seq"].as_u64()),
        (Some("committed"), Some(2))
    );
    cluster.wait_all_serve(2);
    for node in &cluster.nodes {
        let answer = cluster.run_at(&node.addr, &check_args()).ok().json();
        assert_eq!(answer["decision"], "Deny", "node {}", node.id);
        assert_eq!(answer["reasons"], serde_json::json!(["no-ssh-from-vpn"]));
        assert_eq!(answer["version"]["seq"], 2);
        assert_eq!(answer["version"]["hash"], id);
    }
    let diff = cluster.run(&["--json", "diff", "1", "2"]).ok().json();
    assert_eq!(
        diff["policies_added"],
        serde_json::json!(["no-ssh-from-vpn"])
    );
    // min_version: a node answers from seq 2, and refuses to wait for seq 3 forever.
    let mut args = check_args();
    args.extend(["--min-version", "2"]);
    cluster.run(&args).ok();
    let mut args = check_args();
    args.extend(["--min-version", "3", "--timeout", "1s"]);
    let behind = cluster.run(&args).fails().json();
    assert_eq!(behind["error"], "behind_min_version");
    assert!(
        behind["message"].as_str().unwrap().contains("serves seq 2"),
        "{behind}"
    );
}

#[test]
fn killing_the_leader_loses_no_acknowledged_version_and_the_node_catches_up() {
    let _one_at_a_time = serial();
    let mut cluster = Cluster::start(3, &[]);
    cluster.genesis();
    let mut acknowledged: BTreeMap<u64, String> = BTreeMap::new();
    let mut killed = None;
    let mut attempt = 0;
    while acknowledged.len() < 8 {
        attempt += 1;
        assert!(attempt < 200, "proposals keep failing");
        if acknowledged.len() == 3 && killed.is_none() {
            let leader = cluster.wait_for_leader();
            let head = *acknowledged.keys().last().unwrap();
            let (seq, id) = resubmit_across_a_leader_kill(&mut cluster, leader, head);
            acknowledged.insert(seq, id);
            killed = Some(leader);
        }
        let name = format!("v{attempt}");
        cluster.variant(&name);
        let run = cluster.run(&[
            "--json",
            "propose",
            "--bundle",
            &name,
            "-m",
            &name,
            "--key",
            "a",
            "--key",
            "b",
            "--timeout",
            "3s",
        ]);
        if run.code == 0 {
            let status = run.json();
            assert_eq!(status["status"], "committed");
            acknowledged.insert(
                status["seq"].as_u64().unwrap(),
                status["proposal_id"].as_str().unwrap().to_string(),
            );
        }
    }
    let killed = killed.unwrap();
    let new_leader = cluster.wait_for_leader();
    assert_ne!(new_leader, killed);
    let head = *acknowledged.keys().last().unwrap();
    cluster.launch(killed, &[]);
    cluster.wait_all_serve(head);
    let exports: Vec<Vec<u8>> = cluster.nodes.iter().map(|n| cluster.export(n.id)).collect();
    assert!(
        exports.windows(2).all(|pair| pair[0] == pair[1]),
        "every node exports the same bytes"
    );
    std::fs::write(cluster.path().join("final.l"), &exports[0]).unwrap();
    cluster.run(&["ledger", "verify", "final.l"]).ok();
    let log = cluster
        .run(&["--json", "ledger", "log", "final.l"])
        .ok()
        .json_lines();
    for (seq, hash) in &acknowledged {
        let version = &log[(*seq - 1) as usize];
        assert_eq!(
            version["hash"],
            hash.as_str(),
            "acknowledged seq {seq} is there, unchanged"
        );
    }
}

/// Submits a signed proposal file through a follower while its leader is
/// killed, then resubmits the same file until a node answers: the version
/// ends up committed exactly once (invariant 7), whether or not the first
/// attempt got through.
fn resubmit_across_a_leader_kill(cluster: &mut Cluster, leader: u64, head: u64) -> (u64, String) {
    cluster.wait_all_serve(head);
    let follower = cluster
        .nodes
        .iter()
        .find(|n| n.id != leader)
        .unwrap()
        .addr
        .clone();
    cluster
        .run_at(&follower, &["export", "--out", "before.l"])
        .ok();
    cluster.variant("in-flight");
    cluster
        .run(&[
            "proposal",
            "new",
            "--author",
            "a",
            "--ledger",
            "before.l",
            "--bundle",
            "in-flight",
            "-m",
            "in flight",
            "--out",
            "in-flight.json",
        ])
        .ok();
    for key in ["a", "b"] {
        cluster
            .run(&[
                "proposal",
                "sign",
                "in-flight.json",
                "--ledger",
                "before.l",
                "--key",
                key,
            ])
            .ok();
    }
    let submit = ["--json", "submit", "in-flight.json", "--timeout", "3s"];
    let first = std::thread::scope(|scope| {
        let attempt = scope.spawn(|| cluster.run_at(&follower, &submit));
        std::thread::sleep(Duration::from_millis(5));
        cluster.signal(leader, libc::SIGKILL);
        attempt.join().unwrap()
    });
    cluster.kill_reaped(leader);
    let mut answer = (first.code == 0).then(|| first.json());
    wait_until(
        "a resubmission is answered",
        Duration::from_secs(30),
        || {
            if answer.is_none() {
                let run = cluster.run_at(&follower, &submit);
                answer = (run.code == 0).then(|| run.json());
            }
            answer.is_some()
        },
    );
    let answer = answer.unwrap();
    assert!(
        answer["status"] == "committed" || answer["status"] == "already_committed",
        "{answer}"
    );
    let again = cluster.run_at(&follower, &submit).ok().json();
    assert_eq!(again["status"], "already_committed", "{again}");
    assert_eq!(again["seq"], answer["seq"]);
    (
        answer["seq"].as_u64().unwrap(),
        answer["proposal_id"].as_str().unwrap().to_string(),
    )
}

#[test]
fn a_learner_added_after_fifty_versions_catches_up_by_snapshot_and_serves() {
    let _one_at_a_time = serial();
    let mut cluster = Cluster::start(3, &["--snapshot-every", "10"]);
    cluster.genesis();
    for n in 2..=50 {
        let name = format!("v{n}");
        cluster.variant(&name);
        let status = cluster
            .run(&[
                "--json", "propose", "--bundle", &name, "-m", &name, "--key", "a", "--key", "c",
            ])
            .ok()
            .json();
        assert_eq!(status["seq"], n);
    }
    cluster.launch(4, &["--snapshot-every", "10"]);
    let addr = cluster.node(4).addr.clone();
    let member = format!("4={addr},{}", cluster.node(4).peer_addr);
    let cert = cluster.node_cert(4);
    cluster.member_change(&["add-learner", &member, "--cert", &cert, "--timeout", "60s"]);
    // Seq 51 is the membership version that lists it.
    wait_until("the learner serves seq 51", Duration::from_secs(60), || {
        cluster.served_seq(4) == Some(51)
    });
    assert!(
        cluster
            .log_of(4)
            .contains("installing a snapshot from the leader"),
        "the learner caught up by snapshot"
    );
    let answer = cluster.run_at(&addr, &check_args()).ok().json();
    assert_eq!(
        (
            answer["version"]["seq"].as_u64(),
            answer["node_id"].as_u64()
        ),
        (Some(51), Some(4))
    );
    let status = cluster.status_of(4).unwrap();
    let learner = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == 4)
        .unwrap()
        .clone();
    assert_eq!(
        (learner["role"].as_str(), learner["voter"].as_bool()),
        (Some("learner"), Some(false))
    );
    // Promote it, then remove another voter: the cluster keeps serving.
    cluster.member_change(&["promote", "4"]);
    wait_until("node 4 votes", Duration::from_secs(30), || {
        cluster
            .status_of(1)
            .is_some_and(|s| s["members"][3]["voter"] == true)
    });
    cluster.member_change(&["remove", "3"]);
    wait_until("node 3 is removed", Duration::from_secs(30), || {
        cluster
            .status_of(1)
            .is_some_and(|s| s["members"].as_array().unwrap().len() == 3)
    });
    cluster.stop(3);
    cluster.variant("v51");
    let status = cluster
        .run(&[
            "--json", "propose", "--bundle", "v51", "-m", "v51", "--key", "a", "--key", "b",
        ])
        .ok()
        .json();
    // After seq 52 (promote 4) and 53 (remove 3).
    assert_eq!(status["seq"], 54);
    wait_until("node 4 serves seq 54", Duration::from_secs(30), || {
        cluster.served_seq(4) == Some(54)
    });
    assert_eq!(cluster.export(4), cluster.export(1));
}

#[test]
fn a_node_cut_off_from_its_quorum_fails_closed_then_serves_again() {
    let _one_at_a_time = serial();
    let cluster = Cluster::start(3, &["--max-staleness", "2s"]);
    cluster.genesis();
    cluster.wait_all_serve(1);
    let survivor = &cluster.nodes[0];
    cluster.run_at(&survivor.addr, &check_args()).ok();
    for frozen in &cluster.nodes[1..] {
        cluster.signal(frozen.id, libc::SIGSTOP);
    }
    let mut refusal = Value::Null;
    wait_until(
        "the survivor answers STALE",
        Duration::from_secs(20),
        || {
            let run = cluster.run_at(&survivor.addr, &check_args());
            refusal = if run.code != 0 {
                run.json()
            } else {
                Value::Null
            };
            refusal["error"] == "stale"
        },
    );
    assert!(
        refusal["message"].as_str().unwrap().contains("STALE"),
        "{refusal}"
    );
    // Over HTTP too: an AuthZEN deny naming the reason, and not ready.
    let evaluation = serde_json::json!({
        "subject": {"type": "User", "id": "erin"},
        "action": {"name": "ssh"},
        "resource": {"type": "Server", "id": "prod-web-1"},
        "context": {"network_zone": "corp"},
    });
    assert_refused_as_stale(&survivor.http, &evaluation);
    let ready = common::http::get(&survivor.http, "/readyz");
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(
        ready.body.contains("cannot show it is current"),
        "{}",
        ready.body
    );
    // A frozen node makes a call fail by its deadline, not hang.
    let frozen = &cluster.nodes[1];
    let mut args = check_args();
    args.extend(["--timeout", "1s"]);
    let hung = cluster.run_at(&frozen.addr, &args).fails().json();
    assert_eq!(hung["error"], "timeout");
    for frozen in &cluster.nodes[1..] {
        cluster.signal(frozen.id, libc::SIGCONT);
    }
    wait_until("the survivor serves again", Duration::from_secs(30), || {
        cluster.run_at(&survivor.addr, &check_args()).code == 0
    });
}

#[test]
fn a_node_told_to_serve_when_stale_flags_every_answer_stale() {
    let _one_at_a_time = serial();
    let cluster = Cluster::start(3, &["--max-staleness", "2s", "--on-stale", "serve"]);
    cluster.genesis();
    cluster.wait_all_serve(1);
    let survivor = &cluster.nodes[0];
    let fresh = cluster.run_at(&survivor.addr, &check_args()).ok().json();
    assert_eq!(fresh.get("stale"), None, "{fresh}");
    let evaluation = serde_json::json!({
        "subject": {"type": "User", "id": "erin"},
        "action": {"name": "ssh"},
        "resource": {"type": "Server", "id": "prod-web-1"},
        "context": serde_json::from_str::<Value>(CONTEXT).unwrap(),
    });
    let reply = common::http::post(&survivor.http, "/access/v1/evaluation", &evaluation).json();
    assert_eq!(
        reply["decision"], true,
        "fresh, the request is allowed: {reply}"
    );
    for frozen in &cluster.nodes[1..] {
        cluster.signal(frozen.id, libc::SIGSTOP);
    }
    let mut answer = Value::Null;
    wait_until(
        "the survivor flags its answers stale",
        Duration::from_secs(20),
        || {
            let run = cluster.run_at(&survivor.addr, &check_args());
            answer = if run.code == 0 {
                run.json()
            } else {
                Value::Null
            };
            answer["stale"] == true
        },
    );
    assert_eq!(answer["decision"], "Allow");
    assert_eq!(answer["version"]["seq"], 1);
    // Over HTTP the same request (an allow when fresh) is refused: an
    // AuthZEN caller reads only `decision`, so a stale node never answers
    // true there.
    assert_refused_as_stale(&survivor.http, &evaluation);
    for frozen in &cluster.nodes[1..] {
        cluster.signal(frozen.id, libc::SIGCONT);
    }
    wait_until(
        "the survivor is current again",
        Duration::from_secs(30),
        || {
            let run = cluster.run_at(&survivor.addr, &check_args());
            run.code == 0 && run.json().get("stale").is_none()
        },
    );
}

#[test]
fn replays_and_bad_inputs_get_clear_errors_and_change_nothing() {
    let _one_at_a_time = serial();
    let cluster = Cluster::start(3, &[]);
    cluster.genesis();
    // An offline proposal on seq 1, fully signed, submitted.
    cluster.run(&["export", "--out", "at1.l"]).ok();
    cluster.variant("v2");
    cluster
        .run(&[
            "proposal", "new", "--author", "a", "--ledger", "at1.l", "--bundle", "v2", "-m", "v2",
            "--out", "v2.json",
        ])
        .ok();
    cluster.variant("v2b");
    cluster
        .run(&[
            "proposal", "new", "--author", "a", "--ledger", "at1.l", "--bundle", "v2b", "-m",
            "v2b", "--out", "v2b.json",
        ])
        .ok();
    // Unsigned, then under the threshold: refused, nothing held.
    let unsigned = cluster.run(&["--json", "submit", "v2.json"]).fails().json();
    assert_eq!(unsigned["error"], "below_threshold");
    cluster
        .run(&[
            "proposal", "sign", "v2.json", "--ledger", "at1.l", "--key", "a",
        ])
        .ok();
    let short = cluster.run(&["--json", "submit", "v2.json"]).fails().json();
    assert_eq!(short["error"], "below_threshold");
    cluster
        .run(&[
            "proposal", "sign", "v2.json", "--ledger", "at1.l", "--key", "b",
        ])
        .ok();
    let committed = cluster.run(&["--json", "submit", "v2.json"]).ok().json();
    assert_eq!(committed["seq"], 2);
    let before = cluster.export(1);
    // The same version again: already committed, nothing changes.
    let replay = cluster.run(&["--json", "submit", "v2.json"]).ok().json();
    assert_eq!(
        (replay["status"].as_str(), replay["seq"].as_u64()),
        (Some("already_committed"), Some(2))
    );
    // Another version on the old parent: stale.
    cluster
        .run(&[
            "proposal", "sign", "v2b.json", "--ledger", "at1.l", "--key", "a", "--key", "c",
        ])
        .ok();
    let stale = cluster
        .run(&["--json", "submit", "v2b.json"])
        .fails()
        .json();
    assert_eq!(stale["error"], "stale_parent");
    // A bundle over the size limit never leaves the machine.
    let huge = cluster.variant("huge");
    std::fs::File::create(huge.join("huge.cedar"))
        .unwrap()
        .set_len(stele_ledger::limits::MAX_BUNDLE_BYTES as u64 + 1)
        .unwrap();
    let oversized = cluster
        .run(&[
            "--json", "propose", "--bundle", "huge", "-m", "x", "--key", "a", "--key", "b",
        ])
        .fails()
        .json();
    assert_eq!(oversized["error"], "over_size_limit");
    // Garbage on the gRPC port, and a malformed proposal sent directly.
    let mut socket = std::net::TcpStream::connect(&cluster.nodes[0].addr).unwrap();
    let garbage: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let _ = socket.write_all(&garbage);
    drop(socket);
    let raw = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = cluster.client_as(1, "operator", Duration::from_secs(5));
        client
            .propose(stele_proto::v1::ProposeRequest {
                proposal: b"{not a proposal".to_vec(),
                commit_only: false,
            })
            .await
    });
    let error = raw.unwrap_err();
    assert_eq!(
        error.reason(),
        Some(stele_client::Reason::BadProposal),
        "{error:?}"
    );
    // An approval of a pending proposal carrying 10,000 signatures (more
    // than a version holds): refused before any key is read, and the
    // proposal keeps the one signature it had.
    cluster.variant("v3");
    let pending = cluster
        .run(&[
            "--json", "propose", "--bundle", "v3", "-m", "v3", "--key", "a",
        ])
        .ok()
        .json();
    assert_eq!(pending["status"], "pending");
    let id = pending["proposal_id"].as_str().unwrap().to_string();
    let key_c = std::fs::read_to_string(cluster.path().join("c.pub")).unwrap();
    let flood = stele_proto::v1::Approval {
        key: key_c.trim().to_string(),
        signature: "00".repeat(64),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (flooded, still) = runtime.block_on(async {
        let client = cluster.client_as(2, "operator", Duration::from_secs(10));
        let flooded = client
            .approve(stele_proto::v1::ApproveRequest {
                proposal_id: id.clone(),
                approvals: vec![flood; 10_000],
            })
            .await;
        (flooded, client.list_proposals().await.unwrap())
    });
    let error = flooded.unwrap_err();
    assert_eq!(
        error.reason(),
        Some(stele_client::Reason::OverSizeLimit),
        "{error:?}"
    );
    let held: Vec<_> = still
        .proposals
        .iter()
        .map(|p| (&p.proposal_id, p.signatures))
        .collect();
    assert_eq!(held, vec![(&id, 1)], "the pending proposal is as it was");
    // The node keeps serving, and the ledger is what it was.
    cluster.run(&check_args()).ok();
    for node in &cluster.nodes {
        assert_eq!(cluster.export(node.id), before, "node {}", node.id);
    }
}

#[test]
fn a_tampered_store_makes_the_node_refuse_to_start_naming_the_seq() {
    let _one_at_a_time = serial();
    let mut cluster = Cluster::start(1, &[]);
    cluster.genesis();
    cluster.variant("v2");
    cluster
        .run(&[
            "propose", "--bundle", "v2", "-m", "v2", "--key", "a", "--key", "b",
        ])
        .ok();
    assert!(cluster.stop(1).success());
    // Edit seq 2's message in the store, behind the node's back.
    let db_path = cluster.node(1).data.join("db");
    {
        let families = ["log", "raft", "ledger", "bundles", "pending", "machine"];
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &db_path, families).unwrap();
        let ledger = db.cf_handle("ledger").unwrap();
        let stored = db.get_cf(ledger, 2u64.to_be_bytes()).unwrap().unwrap();
        let edited = String::from_utf8(stored).unwrap().replacen(
            "\"message\":\"v2\"",
            "\"message\":\"v3\"",
            1,
        );
        db.put_cf(ledger, 2u64.to_be_bytes(), edited).unwrap();
    }
    let node = cluster.node(1);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_stele"))
        .args(["node", "--id", "1", "--listen", &node.addr])
        .args(["--peer-listen", &node.peer_addr])
        .args(cluster.node_tls_args(1))
        .arg("--data")
        .arg(&node.data)
        .output()
        .unwrap();
    assert!(!output.status.success(), "a tampered node must not start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not verify at seq 2"), "{stderr}");
}

/// An AuthZEN evaluation at `http` is answered `decision: false` because
/// the node is stale.
fn assert_refused_as_stale(http: &common::http::Http, evaluation: &serde_json::Value) {
    let reply = common::http::post(http, "/access/v1/evaluation", evaluation).json();
    assert_eq!(reply["decision"], false, "{reply}");
    assert!(
        reply["context"]["reason"]
            .as_str()
            .unwrap()
            .contains("STALE"),
        "{reply}"
    );
}

#[test]
fn a_removed_node_says_removed_and_does_not_disturb_the_cluster() {
    let _one_at_a_time = serial();
    // Snapshots every 10 entries: the node added again below catches up
    // from one taken after its removal and before it is added again.
    let cluster = Cluster::start(3, &["--snapshot-every", "10"]);
    cluster.genesis();
    cluster.wait_all_serve(1);
    let leader = cluster.wait_for_leader();
    // A follower other than node 1 (which `run` talks to), left running.
    let removed = [2, 3].into_iter().find(|id| *id != leader).unwrap();
    let staying: Vec<u64> = (1..=3).filter(|id| *id != removed).collect();
    cluster.member_change(&["remove", &removed.to_string()]);
    // It learns it was removed: decisions are refused as REMOVED, gRPC and
    // HTTP alike, /readyz says so, and its log tells the operator.
    let node = cluster.node(removed);
    let mut refusal = Value::Null;
    wait_until(
        "the removed node says REMOVED",
        Duration::from_secs(30),
        || {
            let run = cluster.run_at(&node.addr, &check_args());
            refusal = if run.code != 0 {
                run.json()
            } else {
                Value::Null
            };
            refusal["error"] == "removed"
        },
    );
    assert!(
        refusal["message"].as_str().unwrap().contains("REMOVED"),
        "{refusal}"
    );
    let ready = common::http::get(&node.http, "/readyz");
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("removed"), "{}", ready.body);
    assert!(
        cluster.log_of(removed).contains("it can be shut down"),
        "the log tells the operator"
    );
    // It does not disturb the members: their term stays where it was while
    // it runs for seconds (dozens of its election timeouts), and they commit.
    let term = |id: u64| cluster.status_of(id).unwrap()["term"].as_u64().unwrap();
    let before = term(staying[0]);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        term(staying[0]),
        before,
        "the removed node raised the members' term"
    );
    cluster.variant("v2");
    let committed = cluster
        .run(&[
            "--json", "propose", "--bundle", "v2", "-m", "v2", "--key", "a", "--key", "b",
        ])
        .ok()
        .json();
    // Seq 2 was the membership version that removed it.
    assert_eq!(committed["seq"], 3);
    for id in &staying {
        wait_until(
            &format!("node {id} serves seq 3"),
            Duration::from_secs(30),
            || cluster.served_seq(*id) == Some(3),
        );
    }
    assert_eq!(term(staying[0]), before);

    // Added again under the same id, on an empty data directory, it catches
    // up from a snapshot whose ledger removed it: that is not its removal
    // (it never says so again), and it serves.
    for n in 4..=16 {
        let name = format!("v{n}");
        cluster.variant(&name);
        cluster
            .run(&[
                "--json", "propose", "--bundle", &name, "-m", &name, "--key", "a", "--key", "b",
            ])
            .ok();
    }
    let mut cluster = cluster;
    cluster.stop(removed);
    std::fs::remove_dir_all(&cluster.node(removed).data).unwrap();
    cluster.launch(removed, &[]);
    let node = cluster.node(removed);
    let member = format!("{removed}={},{}", node.addr, node.peer_addr);
    let cert = cluster.node_cert(removed);
    let readded = cluster.member_change(&["add-learner", &member, "--cert", &cert]);
    let seq = readded["seq"].as_u64().unwrap();
    wait_until(
        "the node added again serves",
        Duration::from_secs(60),
        || {
            cluster.served_seq(removed) == Some(seq)
                && common::http::get(&cluster.node(removed).http, "/readyz").status == 200
        },
    );
    assert_eq!(
        cluster
            .log_of(removed)
            .matches("it can be shut down")
            .count(),
        1,
        "the node added again took the replayed removal for its own"
    );
}

/// Node `id`'s view of Raft's membership: each member and whether it votes.
fn raft_members(cluster: &Cluster, id: u64) -> Option<BTreeMap<u64, bool>> {
    let status = cluster.status_of(id)?;
    Some(
        status["members"]
            .as_array()?
            .iter()
            .map(|m| (m["id"].as_u64().unwrap(), m["voter"].as_bool().unwrap()))
            .collect(),
    )
}

#[test]
fn membership_changes_only_by_signed_membership_versions() {
    let _one_at_a_time = serial();
    let mut cluster = Cluster::start(3, &[]);
    cluster.genesis();
    cluster.wait_all_serve(1);
    cluster.launch(4, &[]);
    let c4 = cluster.node_cert(4);
    let four = cluster.node(4);
    let member4 = format!("4={},{}", four.addr, four.peer_addr);
    let three_voters = BTreeMap::from([(1, true), (2, true), (3, true)]);

    // One approver's signature of the two needed: a pending proposal, and
    // Raft's membership does not change.
    let pending = cluster
        .run(&[
            "--json",
            "cluster",
            "add-learner",
            &member4,
            "--region",
            "eu-west",
            "--cert",
            &c4,
            "--key",
            "a",
        ])
        .ok()
        .json();
    assert_eq!(pending["status"], "pending", "{pending}");
    let id = pending["proposal_id"].as_str().unwrap().to_string();

    // The same member set with no signature at all, sent as it is: there
    // is no unsigned way (and the Admin service has no membership call).
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = cluster.client_as(1, "operator", Duration::from_secs(5));
        let mut unsigned = client.proposal(&id.parse().unwrap()).await.unwrap();
        unsigned.version.signatures.clear();
        unsigned.version.header.message = "nobody signed this".into();
        for commit_only in [false, true] {
            let refused = client.submit(&unsigned, commit_only).await.unwrap_err();
            assert_eq!(
                refused.reason(),
                Some(stele_client::Reason::BelowThreshold),
                "{refused}"
            );
        }
    });
    // (A moment for a change that should not happen.)
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(raft_members(&cluster, 1).unwrap(), three_voters);

    // The second approval commits it; the leader adds node 4 as a learner,
    // and node 4 serves the version that lists it.
    let committed = cluster
        .run(&["--json", "approve", &id, "--key", "b"])
        .ok()
        .json();
    assert_eq!(committed["status"], "committed", "{committed}");
    let seq = committed["seq"].as_u64().unwrap();
    let shown = cluster
        .run(&["--json", "show", &seq.to_string()])
        .ok()
        .json();
    assert_eq!(shown["kind"], "membership", "{shown}");
    assert_eq!(shown["members"][3]["region"], "eu-west", "{shown}");
    assert_eq!(shown["members"][3]["role"], "learner", "{shown}");
    wait_until("node 4 joins as a learner", Duration::from_secs(60), || {
        raft_members(&cluster, 1).is_some_and(|m| m.get(&4) == Some(&false))
    });
    cluster.wait_all_serve(seq);

    // A call without --key is no call at all.
    let unsigned = cluster.run(&["--json", "cluster", "remove", "3"]);
    assert_ne!(unsigned.code, 0);
    assert!(unsigned.stderr.contains("--key"), "{}", unsigned.stderr);
    assert_eq!(raft_members(&cluster, 1).unwrap().len(), 4);

    // Two keys at once: committed at once, and node 4 votes.
    let promoted = cluster
        .run(&[
            "--json", "cluster", "promote", "4", "--key", "a", "--key", "b",
        ])
        .ok()
        .json();
    assert_eq!(promoted["status"], "committed", "{promoted}");
    wait_until("node 4 votes", Duration::from_secs(60), || {
        raft_members(&cluster, 1).is_some_and(|m| m.get(&4) == Some(&true))
    });

    // Removing the leader: once that version commits, the other voters
    // refuse its messages, and the next leader finishes the change.
    let old_leader = cluster.wait_for_leader();
    let staying: Vec<u64> = (1..=4).filter(|id| *id != old_leader).collect();
    let at = cluster.node(staying[0]).addr.clone();
    let removed = cluster
        .run_at(
            &at,
            &[
                "--json",
                "cluster",
                "remove",
                &old_leader.to_string(),
                "--key",
                "a",
                "--key",
                "b",
            ],
        )
        .ok()
        .json();
    assert_eq!(removed["status"], "committed", "{removed}");
    let removed_seq = removed["seq"].as_u64().unwrap();
    let three: BTreeMap<u64, bool> = staying.iter().map(|id| (*id, true)).collect();
    wait_until(
        "a new leader finishes removing the old one",
        Duration::from_secs(90),
        || {
            let Some(status) = cluster.status_of(staying[0]) else {
                return false;
            };
            status["leader"].as_u64().is_some_and(|l| l != old_leader)
                && raft_members(&cluster, staying[0]).as_ref() == Some(&three)
        },
    );
    // The remaining voters refused the removed leader's messages (so it
    // was the next leader that finished the change).
    let refusals: f64 = staying
        .iter()
        .map(|id| {
            common::http::get(&cluster.node(*id).http, "/metrics")
                .body
                .lines()
                .filter(|line| {
                    line.starts_with(
                        "stele_raft_refused_total{check=\"not_a_voter_in_the_ledger\"}",
                    )
                })
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        })
        .sum();
    assert!(refusals > 0.0, "no voter refused the removed leader");
    // The cluster without it commits, and every remaining node serves it.
    cluster.variant("v-after");
    let next = cluster
        .run_at(
            &at,
            &[
                "--json", "propose", "--bundle", "v-after", "-m", "after", "--key", "a", "--key",
                "b",
            ],
        )
        .ok()
        .json();
    assert_eq!(next["seq"], removed_seq + 1, "{next}");
    for id in &staying {
        wait_until(
            &format!("node {id} serves the version after the removal"),
            Duration::from_secs(30),
            || cluster.served_seq(*id) == Some(removed_seq + 1),
        );
    }
}

/// `no_ssh_from_vpn`, proposed with key a alone: pending.
fn propose_no_ssh_from_vpn(cluster: &Cluster) -> Value {
    no_ssh_from_vpn(cluster);
    cluster
        .run(&[
            "--json",
            "propose",
            "--bundle",
            "no-ssh",
            "-m",
            "no ssh from vpn",
            "--key",
            "a",
        ])
        .ok()
        .json()
}

/// An approver's path through a pending proposal: listed with its signers,
/// reviewed as Cedar, and signed only by an approver who said so, with the
/// full id when a script says it.
#[test]
fn a_pending_proposal_is_listed_reviewed_and_signed_only_when_confirmed() {
    let _one_at_a_time = serial();
    let cluster = Cluster::start(1, &[]);
    cluster.genesis();
    cluster.wait_all_serve(1);
    let proposed = propose_no_ssh_from_vpn(&cluster);
    let id = proposed["proposal_id"].as_str().unwrap().to_string();
    let prefix = &id[..12];
    let listed = cluster.run(&["--json", "proposals"]).ok().json();
    assert_eq!(
        (listed["proposal_id"].as_str(), listed["signed_by"].clone()),
        (Some(id.as_str()), serde_json::json!(["a"])),
        "{listed}"
    );
    // The review, by prefix: the Cedar being added, line by line.
    let shown = cluster.run(&["show", prefix]).ok();
    assert!(
        shown.stdout.contains("PENDING PROPOSAL"),
        "{}",
        shown.stdout
    );
    assert!(
        shown
            .stdout
            .contains("+forbid(principal, action == Action::\"ssh\", resource)"),
        "{}",
        shown.stdout
    );
    let diff = cluster.run(&["--json", "diff", "1", prefix]).ok().json();
    assert_eq!(
        diff["review"]["policies"][0]["id"], "no-ssh-from-vpn",
        "{diff}"
    );
    assert_eq!(diff["review"]["policies"][0]["change"], "added");
    let pending_signatures = || {
        cluster.run(&["--json", "proposals"]).ok().json()["signatures"]
            .as_u64()
            .unwrap()
    };
    // No terminal and no --yes: nothing signed.
    let unasked = cluster
        .run_unconfirmed(&["--json", "approve", &id, "--key", "b"])
        .fails()
        .json();
    assert_eq!(unasked["error"], "usage", "{unasked}");
    // --yes with a prefix: nothing signed (a prefix can be ground).
    let by_prefix = cluster
        .run_unconfirmed(&["--json", "approve", prefix, "--key", "b", "--yes"])
        .fails()
        .json();
    assert_eq!(by_prefix["error"], "usage", "{by_prefix}");
    // A key outside the trust set: refused here, nothing sent.
    cluster.run(&["keygen", "--out", "mallory"]).ok();
    let stranger = cluster
        .run(&["--json", "approve", &id, "--key", "mallory"])
        .fails()
        .json();
    assert_eq!(stranger["error"], "unknown_key", "{stranger}");
    assert_eq!(pending_signatures(), 1);
    // The proposer again: said so, nothing sent.
    let again = cluster.run(&["--json", "approve", &id, "--key", "a"]).ok();
    assert_eq!(again.json()["status"], "already_signed");
    assert!(
        again.stderr.contains("already signed by a"),
        "{}",
        again.stderr
    );
    assert_eq!(pending_signatures(), 1);
    let approved = cluster
        .run(&["--json", "approve", &id, "--key", "b"])
        .ok()
        .json();
    assert_eq!(
        (approved["status"].as_str(), approved["seq"].as_u64()),
        (Some("committed"), Some(2))
    );
    let shown = cluster.run(&["--json", "show", &id[..8]]).ok().json();
    assert_eq!(
        (shown["seq"].as_u64(), shown["pending"].as_bool()),
        (Some(2), Some(false))
    );
}

/// What happened to a proposal that did not commit stays visible to its
/// author: withdrawn (by the author, not by one other approver), or
/// superseded by the version that committed first.
#[test]
fn withdrawn_and_superseded_proposals_stay_listed_for_their_authors() {
    let _one_at_a_time = serial();
    let cluster = Cluster::start(1, &[]);
    cluster.genesis();
    cluster.wait_all_serve(1);
    no_ssh_from_vpn(&cluster);
    let propose = |bundle: &str, keys: &[&str]| {
        let mut args = vec!["--json", "propose", "--bundle", bundle, "-m", bundle];
        for key in keys {
            args.extend(["--key", key]);
        }
        cluster.run(&args).ok().json()
    };
    let first = propose("no-ssh", &["a"]);
    let id = first["proposal_id"].as_str().unwrap().to_string();
    let listed = |state: &str| -> Vec<Value> {
        cluster
            .run(&["--json", "proposals"])
            .ok()
            .json_lines()
            .into_iter()
            .filter(|line| line["state"] == state)
            .collect()
    };
    // One approver who is not the author cannot take it back alone (2 of 3).
    let vetoed = cluster
        .run(&["--json", "withdraw", &id, "--key", "b"])
        .fails()
        .json();
    assert_eq!(vetoed["error"], "below_threshold", "{vetoed}");
    assert_eq!(listed("pending").len(), 1);
    let withdrawn = cluster
        .run(&["--json", "withdraw", &id, "--key", "a"])
        .ok()
        .json();
    assert_eq!(withdrawn["status"], "withdrawn", "{withdrawn}");
    let closed = listed("withdrawn");
    assert_eq!(
        (
            closed[0]["proposal_id"].as_str(),
            closed[0]["withdrawn_by_names"].clone()
        ),
        (Some(id.as_str()), serde_json::json!(["a"]))
    );
    assert!(listed("pending").is_empty());
    // Another proposal, overtaken by a version that commits at once.
    cluster.variant("second");
    cluster.variant("third");
    let overtaken = propose("second", &["a"]);
    let committed = propose("third", &["a", "b"]);
    assert_eq!(committed["status"], "committed");
    let superseded = listed("superseded");
    assert_eq!(superseded.len(), 1, "{superseded:?}");
    assert_eq!(superseded[0]["proposal_id"], overtaken["proposal_id"]);
    assert_eq!(
        (
            superseded[0]["superseded_seq"].as_u64(),
            superseded[0]["superseded_by"].as_str()
        ),
        (Some(2), committed["proposal_id"].as_str())
    );
    let text = cluster.run(&["proposals"]).ok().stdout;
    assert!(text.contains("SUPERSEDED by seq 2"), "{text}");
    assert!(text.contains("WITHDRAWN by a"), "{text}");
}

/// `proposal impact --from-log`: the requests the nodes logged whole are
/// replayed against the proposal, and exactly the ones it flips are named.
#[test]
fn impact_from_the_decision_logs_names_the_logged_requests_a_change_flips() {
    let _one_at_a_time = serial();
    let cluster = Cluster::start(1, &["--decision-log-requests"]);
    cluster.genesis();
    cluster.wait_all_serve(1);
    // Two shells from the VPN (the change forbids them), one from corp.
    let from_corp: Vec<&str> = check_args()
        .into_iter()
        .map(|arg| if arg == CONTEXT { CORP_CONTEXT } else { arg })
        .collect();
    for args in [check_args(), from_corp, check_args()] {
        assert_eq!(cluster.run(&args).ok().json()["decision"], "Allow");
    }
    let proposed = propose_no_ssh_from_vpn(&cluster);
    let id = proposed["proposal_id"].as_str().unwrap();
    // The log is written off the decision path: wait until it holds all three.
    let mut impact = Value::Null;
    wait_until("three logged requests", Duration::from_secs(10), || {
        impact = cluster
            .run(&["--json", "proposal", "impact", id, "--from-log"])
            .ok()
            .json();
        impact["requests"] == 3
    });
    assert_eq!(
        (
            impact["allow_to_deny"].as_u64(),
            impact["deny_to_allow"].as_u64(),
            impact["unchanged"].as_u64()
        ),
        (Some(2), Some(0), Some(1)),
        "{impact}"
    );
    assert_eq!(flipped_lines(&impact), [1, 3], "{impact}");
    assert_eq!(impact["by_policy"]["no-ssh-from-vpn"]["allow_to_deny"], 2);
    // The review of the pending proposal says so too.
    let shown = cluster.run(&["--json", "show", id]).ok().json();
    assert_eq!(shown["impact"]["allow_to_deny"], 2, "{shown}");
    // A reader may not read who asked for what.
    let reader = cluster
        .run_as(
            "reader",
            &cluster.node(1).addr,
            &["--json", "proposal", "impact", id, "--from-log"],
        )
        .fails()
        .json();
    assert_eq!(reader["error"], "permission_denied", "{reader}");
}
