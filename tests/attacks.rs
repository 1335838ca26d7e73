//! One test per row of the attack table in DESIGN.md that the offline tools
//! defend: each mounts the attack through the real `stele` binary and
//! asserts it is refused and changes nothing. Removing the defence makes the
//! test fail.
//!
//! Rows defended by the cluster are tested elsewhere: a stale node serving old
//! policy and a tampered node store in `tests/cluster.rs` (real processes), a
//! malicious snapshot from a peer in `crates/store/tests/snapshots.rs`. The
//! tampered decision log comes with the decision log.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::json;
use stele_ledger::{
    BundleFiles, Header, Kind, Ledger, Proposal, SecretKey, Signature, Version, export,
    structural_only,
};

fn secret(ws: &Workspace, name: &str) -> SecretKey {
    SecretKey::from_key_file(&std::fs::read_to_string(ws.file(name)).unwrap()).unwrap()
}

fn ledger(ws: &Workspace) -> Ledger {
    export::read(&ws.read("ledger.l"), Ledger::new(), &structural_only).unwrap()
}

/// A bundle that permits everything: what an attacker wants in force.
fn permit_all(ws: &Workspace) -> BundleFiles {
    let dir = ws.bundle_variant("weak", |_| {
        "permit(principal, action, resource);\n".to_string()
    });
    for test in std::fs::read_dir(dir.join("tests")).unwrap() {
        std::fs::remove_file(test.unwrap().path()).unwrap();
    }
    stele_policy::load_dir(&dir).unwrap()
}

/// The next header on the ledger's head.
fn next_header(chain: &Ledger, bundle: &BundleFiles, kind: Kind) -> Header {
    let head = chain.head().unwrap();
    Header {
        seq: head.seq + 1,
        parent_hash: head.hash,
        bundle_digest: bundle.digest(),
        kind,
        message: "attack".into(),
        author: "mallory".into(),
        created_at: 1_800_000_000,
        trust: None,
        expires_at: None,
        members: None,
    }
}

/// Writes a crafted proposal file and tries to append it; returns the JSON
/// answer after checking the ledger file did not change.
fn try_append(ws: &Workspace, mut version: Version, bundle: BundleFiles) -> serde_json::Value {
    // Files list signatures in key order: keep crafted ones decodable.
    version.signatures.sort_by_key(|approval| approval.key);
    let path: PathBuf = ws.file("crafted.json");
    std::fs::write(&path, Proposal { version, bundle }.encode()).unwrap();
    let before = ws.read("ledger.l");
    let run = ws.run(&[
        "--json",
        "ledger",
        "append",
        "ledger.l",
        "--proposal",
        "crafted.json",
    ]);
    if run.code != 0 {
        assert_eq!(
            ws.read("ledger.l"),
            before,
            "a refused append changed the ledger"
        );
    }
    run.json()
}

#[test]
fn attack_change_a_policy_in_place() {
    let ws = Workspace::new();
    ws.genesis();
    ws.append_update("v2");
    ws.append_update("v3");
    let original = String::from_utf8(ws.read("ledger.l")).unwrap();
    let chain = ledger(&ws);
    let v2 = chain.version(2).unwrap();
    let old_digest = v2.header.bundle_digest;
    // The attacker weakens the device rule inside seq 2's stored bundle…
    let weakened = original.replacen("os_patch_age_days <= 30", "os_patch_age_days <= 9999", 2);
    let verify = |text: &str| {
        std::fs::write(ws.file("ledger.l"), text).unwrap();
        ws.run(&["--json", "ledger", "verify", "ledger.l"])
            .fails()
            .json()
    };
    // …genesis's bundle is the first record; the second occurrence is seq 2's.
    let out = verify(&weakened.replacen("os_patch_age_days <= 9999", "os_patch_age_days <= 30", 1));
    assert_eq!(out["seq"], 2, "{out}");
    // …then also fixes up the bundle record's digest…
    let mut bundle = chain.bundle_at(2).unwrap().clone();
    let text = bundle
        .get("guardrails.cedar")
        .unwrap()
        .replace("<= 30", "<= 9999");
    bundle = rebuild(&bundle, "guardrails.cedar", &text);
    let new_digest = bundle.digest();
    let fixed_record = weakened
        .replacen("os_patch_age_days <= 9999", "os_patch_age_days <= 30", 1)
        .replacen(
            &format!("\"digest\":\"{old_digest}\""),
            &format!("\"digest\":\"{new_digest}\""),
            1,
        );
    let out = verify(&fixed_record);
    assert_eq!(out["seq"], 2, "{out}");
    // …and the version's signed digest: now the signatures no longer verify.
    let fixed_version = fixed_record.replacen(
        &format!("\"bundle_digest\":\"{old_digest}\""),
        &format!("\"bundle_digest\":\"{new_digest}\""),
        1,
    );
    let out = verify(&fixed_version);
    assert_eq!(
        (out["seq"].as_u64(), out["error"].as_str()),
        (Some(2), Some("bad_signature")),
        "{out}"
    );
}

fn rebuild(bundle: &BundleFiles, path: &str, content: &str) -> BundleFiles {
    let mut out = BundleFiles::default();
    for (p, c) in bundle.files() {
        out.insert(
            p.to_string(),
            if p == path {
                content.to_string()
            } else {
                c.to_string()
            },
        )
        .unwrap();
    }
    out
}

#[test]
fn attack_replay_an_old_signed_version() {
    let ws = Workspace::new();
    ws.genesis();
    ws.bundle_variant("v2", |text| format!("{text}\n// v2\n"));
    ws.run(&[
        "proposal", "new", "--author", "a", "--ledger", "ledger.l", "--bundle", "v2", "-m", "v2",
        "--out", "v2.json",
    ])
    .ok();
    ws.run(&[
        "proposal", "sign", "v2.json", "--ledger", "ledger.l", "--key", "a", "--key", "b",
    ])
    .ok();
    // A second proposal on the same parent, signed but not yet appended.
    ws.bundle_variant("v2b", |text| format!("{text}\n// v2b\n"));
    ws.run(&[
        "proposal", "new", "--author", "a", "--ledger", "ledger.l", "--bundle", "v2b", "-m", "v2b",
        "--out", "v2b.json",
    ])
    .ok();
    ws.run(&[
        "proposal", "sign", "v2b.json", "--ledger", "ledger.l", "--key", "a", "--key", "b",
    ])
    .ok();
    ws.run(&["ledger", "append", "ledger.l", "--proposal", "v2.json"])
        .ok();
    ws.append_update("v3");
    let before = ws.read("ledger.l");
    let replay = ws
        .run(&[
            "--json",
            "ledger",
            "append",
            "ledger.l",
            "--proposal",
            "v2.json",
        ])
        .ok()
        .json();
    assert_eq!(replay, json!({"status": "already_committed", "seq": 2}));
    let stale = ws
        .run(&[
            "--json",
            "ledger",
            "append",
            "ledger.l",
            "--proposal",
            "v2b.json",
        ])
        .fails()
        .json();
    assert_eq!(stale["error"], "stale_parent");
    assert_eq!(ws.read("ledger.l"), before);
}

#[test]
fn attack_roll_back_to_a_weaker_version() {
    let ws = Workspace::new();
    ws.genesis();
    ws.append_update("v2");
    let chain = ledger(&ws);
    // Re-submitting seq 1 does not move the head back.
    let genesis = chain.version(1).unwrap().clone();
    let out = try_append(&ws, genesis, chain.bundle_at(1).unwrap().clone());
    assert_eq!(out, json!({"status": "already_committed", "seq": 1}));
    assert_eq!(ledger(&ws).head(), chain.head());
    // A "rollback" that smuggles in a weaker bundle than its target.
    let weak = permit_all(&ws);
    let mut version = Version::unsigned(next_header(&chain, &weak, Kind::Rollback { to_seq: 1 }));
    version.sign(&secret(&ws, "a"));
    version.sign(&secret(&ws, "b"));
    assert_eq!(
        try_append(&ws, version, weak)["error"],
        "rollback_digest_differs"
    );
    // The legitimate way: a new, signed version, visible in the log.
    ws.run(&[
        "ledger", "rollback", "ledger.l", "--to", "1", "-m", "restore", "--key", "a", "--key", "b",
    ])
    .ok();
    let log = ws
        .run(&["--json", "ledger", "log", "ledger.l"])
        .ok()
        .json_lines();
    assert_eq!(log.len(), 3);
    assert_eq!(
        (log[2]["kind"].as_str(), log[2]["to_seq"].as_u64()),
        (Some("rollback"), Some(1))
    );
}

#[test]
fn attack_forged_or_missing_approvals() {
    let ws = Workspace::new();
    ws.genesis();
    ws.run(&["keygen", "--out", "mallory"]).ok();
    let chain = ledger(&ws);
    let weak = permit_all(&ws);
    let unsigned = Version::unsigned(next_header(&chain, &weak, Kind::Update));
    let (a, mallory) = (secret(&ws, "a"), secret(&ws, "mallory"));

    let mut outsider = unsigned.clone();
    outsider.sign(&a);
    outsider.sign(&mallory);
    assert_eq!(
        try_append(&ws, outsider, weak.clone())["error"],
        "unknown_key"
    );

    let mut forged = unsigned.clone();
    forged.sign(&a);
    let mut fake = forged.signatures[0];
    fake.key = secret(&ws, "b").public_key();
    fake.signature = Signature([0x5a; 64]);
    forged.signatures.push(fake);
    assert_eq!(
        try_append(&ws, forged, weak.clone())["error"],
        "bad_signature"
    );

    let mut lifted = unsigned.clone();
    lifted.sign(&a);
    let mut elsewhere = chain.version(1).unwrap().signatures.clone();
    elsewhere.retain(|s| s.key != a.public_key());
    lifted.signatures.extend(elsewhere);
    assert_eq!(
        try_append(&ws, lifted, weak.clone())["error"],
        "bad_signature"
    );

    // One approver counted twice: files refuse a repeated signer outright
    // (and admission counts each key once, see crates/ledger/tests).
    let mut doubled = unsigned.clone();
    doubled.sign(&a);
    doubled.signatures.push(doubled.signatures[0]);
    assert_eq!(
        try_append(&ws, doubled, weak.clone())["error"],
        "bad_proposal"
    );

    assert_eq!(try_append(&ws, unsigned, weak)["error"], "below_threshold");
}

#[test]
fn attack_fast_forward_gap() {
    let ws = Workspace::new();
    ws.genesis();
    let chain = ledger(&ws);
    let bundle = chain.bundle_at(1).unwrap().clone();
    let mut header = next_header(&chain, &bundle, Kind::Update);
    header.seq += 5;
    let mut version = Version::unsigned(header);
    version.sign(&secret(&ws, "a"));
    version.sign(&secret(&ws, "b"));
    let out = try_append(&ws, version, bundle);
    assert_eq!(out["error"], "gap");
}

#[test]
fn attack_compromised_single_operator_key() {
    let ws = Workspace::new();
    ws.genesis();
    ws.run(&["keygen", "--out", "mallory"]).ok();
    let chain = ledger(&ws);
    let stolen = secret(&ws, "a");
    // The stolen key alone cannot change policy…
    let weak = permit_all(&ws);
    let mut update = Version::unsigned(next_header(&chain, &weak, Kind::Update));
    update.sign(&stolen);
    assert_eq!(try_append(&ws, update, weak)["error"], "below_threshold");
    // …nor hand the ledger to the attacker's own key.
    let head_bundle = chain.bundle_at(1).unwrap().clone();
    let mut header = next_header(&chain, &head_bundle, Kind::Rotate);
    let mallory = secret(&ws, "mallory");
    let mallorys = vec![(
        mallory.public_key(),
        stele_ledger::Approver::named("mallory"),
    )];
    header.trust = Some(stele_ledger::TrustSet::named(mallorys, 1).unwrap());
    let mut rotate = Version::unsigned(header);
    rotate.sign(&stolen);
    rotate.sign(&mallory);
    assert_eq!(
        try_append(&ws, rotate, head_bundle)["error"],
        "rotation_not_co_signed"
    );
}

#[test]
fn attack_substituted_ledger_or_hijacked_bootstrap() {
    let ws = Workspace::new();
    let real = ws.genesis();
    let pin = real["hash"].as_str().unwrap();
    ws.run(&["keygen", "--out", "mallory"]).ok();
    ws.run(&[
        "ledger",
        "new",
        "fake.l",
        "--bundle",
        "bundle",
        "--approver",
        "mallory.pub",
        "--threshold",
        "1",
        "--key",
        "mallory",
    ])
    .ok();
    ws.run(&["ledger", "verify", "ledger.l", "--genesis", pin])
        .ok();
    let out = ws
        .run(&["--json", "ledger", "verify", "fake.l", "--genesis", pin])
        .fails()
        .json();
    assert_eq!(
        (out["error"].as_str(), out["seq"].as_u64()),
        (Some("genesis_mismatch"), Some(1))
    );
}

#[test]
fn attack_endless_data() {
    let ws = Workspace::new();
    ws.genesis();
    let long_message = "x".repeat(stele_ledger::limits::MAX_MESSAGE_BYTES + 1);
    ws.bundle_variant("v2", |text| format!("{text}\n// v2\n"));
    let before = ws.read("ledger.l");
    let out = ws
        .run(&[
            "--json",
            "ledger",
            "append",
            "ledger.l",
            "--bundle",
            "v2",
            "-m",
            &long_message,
            "--key",
            "a",
            "--key",
            "b",
        ])
        .fails()
        .json();
    assert_eq!(out["error"], "over_size_limit");
    assert_eq!(ws.read("ledger.l"), before);
    let huge = ws.file("v2/huge.cedar");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(stele_ledger::limits::MAX_BUNDLE_BYTES as u64 + 1)
        .unwrap();
    let out = ws.run(&["--json", "bundle", "digest", "v2"]).fails().json();
    assert_eq!(out["error"], "over_size_limit", "{out}");
    // A request line over the limit is answered with an error, and the next
    // line is still evaluated.
    let huge_line = format!("{{\"principal\":\"{}\"}}", "p".repeat(2 * 1024 * 1024));
    let good = r#"{"principal":{"type":"User","id":"dave"},"action":{"type":"Action","id":"db:read"},"resource":{"type":"Database","id":"prod-catalog"},"context":{"network_zone":"corp"}}"#;
    let input = format!("{huge_line}\n{good}\n");
    let run = stele_with_stdin(
        &example_bundle(),
        &["--json", "check", "--bundle", ".", "--requests", "-"],
        &input,
    )
    .fails();
    let lines = run.json_lines();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0]["error"]
            .as_str()
            .unwrap()
            .contains("over the limit"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1]["decision"], "Deny");
}
