//! `stele ledger …` and `stele proposal …`, through the real binary.

mod common;

use common::*;
use serde_json::json;

#[test]
fn a_ledger_is_created_verified_logged_and_shown() {
    let ws = Workspace::new();
    let genesis = ws.genesis();
    assert_eq!(genesis["status"], "appended");
    assert_eq!(genesis["seq"], 1);
    let verify = ws
        .run(&["--json", "ledger", "verify", "ledger.l"])
        .ok()
        .json();
    assert_eq!(
        verify,
        json!({"ok": true, "head": {"seq": 1, "hash": genesis["hash"]}})
    );
    let show = ws
        .run(&["--json", "ledger", "show", "ledger.l", "1"])
        .ok()
        .json();
    for field in [
        "seq",
        "hash",
        "parent_hash",
        "bundle_digest",
        "kind",
        "message",
        "signers",
    ] {
        assert!(show.get(field).is_some(), "show lacks {field}: {show}");
    }
    assert_eq!(show["kind"], "genesis");
    assert_eq!(show["parent_hash"], "0".repeat(64));
    assert_eq!(show["signers"].as_array().unwrap().len(), 2);
    assert_eq!(show["trust"]["threshold"], 2);
    let digest = ws.run(&["bundle", "digest", "bundle"]).ok().stdout;
    assert_eq!(show["bundle_digest"], digest.trim_end());
    let second = ws.append_update("v2");
    assert_eq!(second["seq"], 2);
    let log = ws
        .run(&["--json", "ledger", "log", "ledger.l"])
        .ok()
        .json_lines();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1]["parent_hash"], genesis["hash"]);
    assert_eq!(log[1]["message"], "v2");
    let missing = ws
        .run(&["--json", "ledger", "show", "ledger.l", "9"])
        .fails()
        .json();
    assert_eq!(missing["error"], "not_found");
}

#[test]
fn a_rejected_append_leaves_the_ledger_byte_for_byte_unchanged() {
    let ws = Workspace::new();
    ws.genesis();
    let before = ws.read("ledger.l");
    ws.bundle_variant("v2", |text| format!("{text}\n// v2\n"));
    let run = ws
        .run(&[
            "--json", "ledger", "append", "ledger.l", "--bundle", "v2", "-m", "one key", "--key",
            "a",
        ])
        .fails();
    let out = run.json();
    assert_eq!(out["error"], "below_threshold");
    assert_eq!(out["status"], "rejected");
    assert!(
        run.stderr
            .contains("1 distinct approver signature(s), 2 required"),
        "{}",
        run.stderr
    );
    assert_eq!(ws.read("ledger.l"), before);
}

#[test]
fn an_invalid_bundle_is_refused_with_cedars_message() {
    let ws = Workspace::new();
    ws.genesis();
    let before = ws.read("ledger.l");
    ws.bundle_variant("broken", |text| {
        text.replace("context.device.managed", "context.device.managedd")
    });
    let run = ws
        .run(&[
            "--json", "ledger", "append", "ledger.l", "--bundle", "broken", "-m", "typo", "--key",
            "a", "--key", "b",
        ])
        .fails();
    let out = run.json();
    assert_eq!(out["error"], "bundle_invalid");
    assert!(
        out["message"]
            .as_str()
            .unwrap()
            .contains("guardrails.cedar:"),
        "{out}"
    );
    assert_eq!(ws.read("ledger.l"), before);
}

#[test]
fn proposals_are_signed_on_separate_machines_then_appended() {
    let ws = Workspace::new();
    ws.genesis();
    ws.bundle_variant("v2", |text| {
        text.replace(
            "os_patch_age_days <= 30",
            "os_patch_age_days <= 30 && context.device.os_patch_age_days >= 0",
        )
    });
    let new = ws
        .run(&[
            "--json",
            "proposal",
            "new",
            "--author",
            "a",
            "--ledger",
            "ledger.l",
            "--bundle",
            "v2",
            "-m",
            "patch age must not be negative",
            "--out",
            "p.json",
        ])
        .ok()
        .json();
    assert_eq!(new["seq"], 2);
    // Approver a signs on "their" machine: a copy of the proposal file.
    let machine_a = tempfile::tempdir().unwrap();
    std::fs::copy(ws.file("p.json"), machine_a.path().join("p.json")).unwrap();
    std::fs::copy(ws.file("a"), machine_a.path().join("a")).unwrap();
    std::fs::copy(ws.file("ledger.l"), machine_a.path().join("ledger.l")).unwrap();
    let signed = stele(
        machine_a.path(),
        &[
            "--json", "proposal", "sign", "p.json", "--ledger", "ledger.l", "--key", "a",
        ],
    )
    .ok()
    .json();
    assert_eq!(
        (signed["status"].as_str(), signed["signatures"].as_u64()),
        (Some("signed"), Some(1))
    );
    let again = stele(
        machine_a.path(),
        &[
            "--json", "proposal", "sign", "p.json", "--ledger", "ledger.l", "--key", "a",
        ],
    )
    .ok()
    .json();
    assert_eq!(again["status"], "already_signed");
    std::fs::copy(machine_a.path().join("p.json"), ws.file("p.json")).unwrap();
    // Before the second signature, show says what is missing and what changes.
    let show = ws
        .run(&[
            "--json", "proposal", "show", "p.json", "--ledger", "ledger.l",
        ])
        .ok()
        .json();
    assert_eq!(show["admission"]["reason"], "below_threshold");
    assert_eq!(show["bundle_check"]["ok"], true);
    assert_eq!(
        show["changes"]["policies_changed"],
        json!(["untrusted-device"])
    );
    assert_eq!(
        show["changes"]["files_changed"],
        json!(["guardrails.cedar"])
    );
    assert_eq!(show["signatures"][0]["valid"], true);
    ws.run(&[
        "proposal", "sign", "p.json", "--ledger", "ledger.l", "--key", "c",
    ])
    .ok();
    let show = ws
        .run(&[
            "--json", "proposal", "show", "p.json", "--ledger", "ledger.l",
        ])
        .ok()
        .json();
    assert_eq!(
        show["admission"],
        json!({"status": "would_append", "seq": 2})
    );
    let appended = ws
        .run(&[
            "--json",
            "ledger",
            "append",
            "ledger.l",
            "--proposal",
            "p.json",
        ])
        .ok()
        .json();
    assert_eq!(appended["status"], "appended");
    assert_eq!(appended["hash"], new["hash"]);
}

#[test]
fn appending_a_committed_version_again_is_already_committed() {
    let ws = Workspace::new();
    ws.genesis();
    ws.bundle_variant("v2", |text| format!("{text}\n// v2\n"));
    ws.run(&[
        "proposal", "new", "--author", "a", "--ledger", "ledger.l", "--bundle", "v2", "-m", "v2",
        "--out", "p.json",
    ])
    .ok();
    ws.run(&[
        "proposal", "sign", "p.json", "--ledger", "ledger.l", "--key", "a", "--key", "b",
    ])
    .ok();
    ws.run(&["ledger", "append", "ledger.l", "--proposal", "p.json"])
        .ok();
    let before = ws.read("ledger.l");
    let again = ws
        .run(&[
            "--json",
            "ledger",
            "append",
            "ledger.l",
            "--proposal",
            "p.json",
        ])
        .ok()
        .json();
    assert_eq!(again, json!({"status": "already_committed", "seq": 2}));
    assert_eq!(ws.read("ledger.l"), before);
}

#[test]
fn a_rollback_is_a_new_signed_version_with_the_old_bundle() {
    let ws = Workspace::new();
    ws.genesis();
    ws.append_update("v2");
    let out = ws
        .run(&[
            "--json",
            "ledger",
            "rollback",
            "ledger.l",
            "--to",
            "1",
            "-m",
            "back to genesis policy",
            "--key",
            "b",
            "--key",
            "c",
        ])
        .ok()
        .json();
    assert_eq!(out["seq"], 3);
    let show = ws
        .run(&["--json", "ledger", "show", "ledger.l", "3"])
        .ok()
        .json();
    let first = ws
        .run(&["--json", "ledger", "show", "ledger.l", "1"])
        .ok()
        .json();
    assert_eq!(show["kind"], "rollback");
    assert_eq!(show["to_seq"], 1);
    assert_eq!(show["bundle_digest"], first["bundle_digest"]);
    let missing = ws
        .run(&[
            "--json", "ledger", "rollback", "ledger.l", "--to", "7", "-m", "x", "--key", "a",
            "--key", "b",
        ])
        .fails()
        .json();
    assert_eq!(missing["error"], "rollback_target_missing");
}

#[test]
fn a_rotation_by_proposal_replaces_the_trust_set() {
    let ws = Workspace::new();
    ws.genesis();
    ws.run(&["keygen", "--out", "d"]).ok();
    ws.run(&[
        "proposal",
        "new",
        "--author",
        "a",
        "--kind",
        "rotate",
        "--ledger",
        "ledger.l",
        "--approver",
        "c.pub",
        "--approver",
        "d.pub",
        "--threshold",
        "2",
        "-m",
        "retire a and b",
        "--out",
        "rotate.json",
    ])
    .ok();
    ws.run(&[
        "proposal",
        "sign",
        "rotate.json",
        "--ledger",
        "ledger.l",
        "--key",
        "a",
        "--key",
        "b",
    ])
    .ok();
    let half = ws
        .run(&[
            "--json",
            "ledger",
            "append",
            "ledger.l",
            "--proposal",
            "rotate.json",
        ])
        .fails()
        .json();
    assert_eq!(half["error"], "rotation_not_co_signed");
    ws.run(&[
        "proposal",
        "sign",
        "rotate.json",
        "--ledger",
        "ledger.l",
        "--key",
        "c",
        "--key",
        "d",
    ])
    .ok();
    ws.run(&["ledger", "append", "ledger.l", "--proposal", "rotate.json"])
        .ok();
    ws.bundle_variant("v3", |text| format!("{text}\n// v3\n"));
    let retired = ws
        .run(&[
            "--json", "ledger", "append", "ledger.l", "--bundle", "v3", "-m", "x", "--key", "a",
            "--key", "b",
        ])
        .fails()
        .json();
    assert_eq!(retired["error"], "unknown_key");
    ws.run(&[
        "ledger", "append", "ledger.l", "--bundle", "v3", "-m", "x", "--key", "c", "--key", "d",
    ])
    .ok();
    ws.run(&["ledger", "verify", "ledger.l"]).ok();
}

/// `proposal new` for a genesis of approvers a and b (2 of 2), proposed
/// by a; the caller adds the message and the output file.
const GENESIS_PROPOSAL: &[&str] = &[
    "proposal",
    "new",
    "--author",
    "a",
    "--kind",
    "genesis",
    "--bundle",
    "bundle",
    "--approver",
    "a.pub",
    "--approver",
    "b.pub",
    "--threshold",
    "2",
];

#[test]
fn a_genesis_can_be_approved_offline_by_proposal() {
    let ws = Workspace::new();
    ws.run(&[GENESIS_PROPOSAL, &["-m", "first", "--out", "g.json"]].concat())
        .ok();
    ws.run(&["proposal", "sign", "g.json", "--key", "a"]).ok();
    let short = ws
        .run(&[
            "--json",
            "ledger",
            "new",
            "ledger.l",
            "--proposal",
            "g.json",
        ])
        .fails()
        .json();
    assert_eq!(short["error"], "below_threshold");
    assert!(!ws.file("ledger.l").exists());
    ws.run(&[
        "ledger",
        "new",
        "ledger.l",
        "--proposal",
        "g.json",
        "--key",
        "b",
    ])
    .ok();
    let exists = ws
        .run(&[
            "--json",
            "ledger",
            "new",
            "ledger.l",
            "--proposal",
            "g.json",
        ])
        .fails()
        .json();
    assert_eq!(exists["error"], "exists");
}

#[test]
fn proposal_flags_that_do_not_fit_the_kind_are_usage_errors() {
    let ws = Workspace::new();
    ws.genesis();
    let run = ws
        .run(&[
            "--json", "proposal", "new", "--author", "a", "--kind", "rollback", "--ledger",
            "ledger.l", "-m", "x", "--out", "p.json",
        ])
        .fails();
    assert_eq!(run.json()["error"], "usage");
    assert!(run.stderr.contains("--to SEQ"), "{}", run.stderr);
    let run = ws
        .run(&[
            "proposal",
            "new",
            "--author",
            "a",
            "--ledger",
            "ledger.l",
            "--bundle",
            "bundle",
            "--threshold",
            "2",
            "-m",
            "x",
            "--out",
            "p.json",
        ])
        .fails();
    assert!(
        run.stderr.contains("does not take --threshold"),
        "{}",
        run.stderr
    );
    assert!(!ws.file("p.json").exists());
}

#[test]
fn verify_names_the_first_bad_seq_of_an_edited_file() {
    let ws = Workspace::new();
    ws.genesis();
    ws.append_update("v2");
    ws.append_update("v3");
    let text = String::from_utf8(ws.read("ledger.l")).unwrap();
    // Edit the message of seq 2 in place.
    let edited = text.replacen("\"message\":\"v2\"", "\"message\":\"v9\"", 1);
    assert_ne!(edited, text);
    std::fs::write(ws.file("ledger.l"), edited).unwrap();
    let out = ws
        .run(&["--json", "ledger", "verify", "ledger.l"])
        .fails()
        .json();
    assert_eq!(out["ok"], false);
    assert_eq!(out["seq"], 2);
    assert_eq!(out["error"], "bad_signature");
    // Reads refuse the tampered ledger too.
    ws.run(&["ledger", "log", "ledger.l"]).fails();
}

#[test]
fn a_ledger_cut_short_is_caught_by_a_version_hash_seen_before() {
    let ws = Workspace::new();
    ws.genesis();
    let v2 = ws.append_update("v2");
    let whole = String::from_utf8(ws.read("ledger.l")).unwrap();
    // Drop the last version and its bundle record: a shorter, valid chain.
    let mut lines: Vec<&str> = whole.lines().collect();
    lines.truncate(lines.len() - 2);
    std::fs::write(ws.file("ledger.l"), lines.join("\n") + "\n").unwrap();
    ws.run(&["ledger", "verify", "ledger.l"]).ok();
    let hash = v2["hash"].as_str().unwrap();
    let out = ws
        .run(&["--json", "ledger", "verify", "ledger.l", "--contains", hash])
        .fails()
        .json();
    assert_eq!(out["error"], "missing_version");
    assert_eq!(out["head"]["seq"], 1);
    // Nothing but the header line: no genesis at all.
    std::fs::write(ws.file("ledger.l"), format!("{}\n", lines[0])).unwrap();
    let out = ws
        .run(&["--json", "ledger", "verify", "ledger.l"])
        .fails()
        .json();
    assert_eq!(out["error"], "empty_ledger");
}

#[test]
fn verify_checks_bundles_only_after_the_chain() {
    let ws = Workspace::new();
    ws.genesis();
    let text = String::from_utf8(ws.read("ledger.l")).unwrap();
    // An unsigned edit to a policy: the chain check must name it, not Cedar.
    let edited = text.replacen(
        r#"@id(\"break-glass\")"#,
        r#"@id(\"break-glass\") @id(\"twice\")"#,
        1,
    );
    assert_ne!(edited, text);
    std::fs::write(ws.file("ledger.l"), edited).unwrap();
    let out = ws
        .run(&["--json", "ledger", "verify", "ledger.l"])
        .fails()
        .json();
    assert_eq!(
        (out["error"].as_str(), out["seq"].as_u64()),
        (Some("format"), Some(1)),
        "{out}"
    );
}

#[test]
fn concurrent_appends_lose_nothing() {
    let ws = Workspace::new();
    ws.genesis();
    let names: Vec<String> = (0..6).map(|n| format!("c{n}")).collect();
    for name in &names {
        ws.bundle_variant(name, |text| format!("{text}\n// {name}\n"));
    }
    let results: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .iter()
            .map(|name| {
                let ws = &ws;
                scope.spawn(move || {
                    ws.run(&[
                        "--json", "ledger", "append", "ledger.l", "--bundle", name, "-m", name,
                        "--key", "a", "--key", "b",
                    ])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let appended = results.iter().filter(|r| r.code == 0).count();
    assert_eq!(
        appended,
        names.len(),
        "each append waits for the lock and extends the head"
    );
    let log = ws
        .run(&["--json", "ledger", "log", "ledger.l"])
        .ok()
        .json_lines();
    assert_eq!(log.len(), names.len() + 1);
}

#[test]
fn approvers_are_named_in_the_ledger_and_the_author_is_one_of_them() {
    let ws = Workspace::new();
    let genesis = ws.genesis();
    assert_eq!(genesis["seq"], 1);
    // Named after their key files, signed into the genesis.
    let shown = ws
        .run(&["--json", "ledger", "show", "ledger.l", "1"])
        .ok()
        .json();
    assert_eq!(approver_names(&shown), ["a", "b", "c"], "{shown}");
    // The author is the first signer's name, never $USER ("tester" here).
    assert_eq!(shown["author"], "a");
    let mut signed_by: Vec<&str> = shown["signed_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    signed_by.sort();
    assert_eq!(signed_by, ["a", "b"]);
    ws.bundle_variant("v2", |text| format!("{text}\n// v2\n"));
    ws.run(&[
        "ledger", "append", "ledger.l", "--bundle", "v2", "-m", "v2", "--key", "c", "--key", "b",
    ])
    .ok();
    let log = ws.run(&["ledger", "log", "ledger.l"]).ok();
    let second = log.stdout.lines().nth(1).unwrap();
    assert!(second.contains("by c"), "{second}");
    assert!(
        second.contains("signed by b, c") || second.contains("signed by c, b"),
        "{second}"
    );
    // An author who is not among the signers is refused before signing.
    ws.bundle_variant("v3", |text| format!("{text}\n// v3\n"));
    let wrong = ws
        .run(&[
            "--json", "ledger", "append", "ledger.l", "--bundle", "v3", "-m", "v3", "--author",
            "a", "--key", "b", "--key", "c",
        ])
        .fails()
        .json();
    assert_eq!(wrong["error"], "usage", "{wrong}");
    let unchanged = ws
        .run(&["--json", "ledger", "verify", "ledger.l"])
        .ok()
        .json();
    assert_eq!(unchanged["head"]["seq"], 2, "{unchanged}");
}

/// A signed genesis proposal at `out` listing node 1, which cannot commit
/// after now + `expires_in`.
fn expiring_genesis(ws: &Workspace, out: &str, expires_in: &str) {
    let listing = [
        "--member",
        "1=127.0.0.1:1,127.0.0.1:2",
        "--cert",
        "tls/node-1.pem",
    ];
    let about = ["-m", out, "--expires-in", expires_in, "--out", out];
    ws.run(&[GENESIS_PROPOSAL, &listing, &about].concat()).ok();
    ws.run(&["proposal", "sign", out, "--key", "a", "--key", "b"])
        .ok();
}

/// `cluster init` with `genesis` at an endpoint where nothing listens.
fn init_nowhere(ws: &Workspace, genesis: &str) -> serde_json::Value {
    ws.run(&[
        "--json",
        "--insecure-plaintext",
        "cluster",
        "init",
        "--genesis-file",
        genesis,
        "--endpoint",
        "http://127.0.0.1:1",
        "--timeout",
        "30s",
    ])
    .fails()
    .json()
}

/// A genesis past its signed expiry could start Raft on every pinned node
/// and then never commit: `cluster init` refuses it before it calls any
/// node (nothing listens at the endpoint here).
#[test]
fn an_expired_genesis_is_refused_before_the_cluster_is_called() {
    let ws = Workspace::new();
    stele(ws.path(), &["certs", "init", "tls"]).ok();
    stele(
        ws.path(),
        &["certs", "node", "tls", "--id", "1", "--host", "127.0.0.1"],
    )
    .ok();
    expiring_genesis(&ws, "g.json", "1s");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let refused = init_nowhere(&ws, "g.json");
    assert_eq!(refused["error"], "proposal_expired", "{refused}");
    // Nor one that would expire while init waits for a leader.
    expiring_genesis(&ws, "soon.json", "20s");
    let soon = init_nowhere(&ws, "soon.json");
    assert_eq!(soon["error"], "proposal_expired", "{soon}");
    assert!(
        soon["message"].as_str().unwrap().contains("--timeout 30s"),
        "{soon}"
    );
}
