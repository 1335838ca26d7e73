//! What an approver reads before signing, offline: the review of a proposal
//! file against its ledger, the requests it would answer differently, and
//! the signatures that can and cannot be put on it.

mod common;

use common::*;
use serde_json::Value;

/// A request from erin for a shell on prod-web-1, from a device patched
/// `patch_age_days` ago.
fn ssh_request(patch_age_days: i32) -> String {
    format!(
        r#"{{"principal":{{"type":"User","id":"erin"}},"action":{{"type":"Action","id":"ssh"}},"resource":{{"type":"Server","id":"prod-web-1"}},"context":{{"network_zone":"vpn","device":{{"managed":true,"disk_encrypted":true,"os_patch_age_days":{patch_age_days}}},"mfa_age_seconds":60}}}}"#
    )
}

/// The genesis, and `p.json`: a device's patch age must not be negative,
/// with an ANSI sequence (cursor up, erase line) planted in a comment
/// inside the changed policy.
fn tightened_patch_rule(ws: &Workspace) {
    ws.genesis();
    ws.bundle_variant("v2", |text| {
        text.replace(
            "  context.device.os_patch_age_days <= 30\n",
            "  context.device.os_patch_age_days <= 30 && // \u{1b}[1A\u{1b}[2Kharmless\n  context.device.os_patch_age_days >= 0\n",
        )
    });
    ws.run(&[
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
    .ok();
}

#[test]
fn the_review_shows_the_changed_cedar_line_and_escapes_what_a_comment_would_hide() {
    let ws = Workspace::new();
    tightened_patch_rule(&ws);
    let shown = ws
        .run(&["proposal", "show", "p.json", "--ledger", "ledger.l"])
        .ok();
    let text = &shown.stdout;
    assert!(
        text.contains("policy \"untrusted-device\" (guardrails.cedar): changed"),
        "{text}"
    );
    assert!(
        text.contains("-  context.device.os_patch_age_days <= 30\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "+  context.device.os_patch_age_days <= 30 && // \\u{1b}[1A\\u{1b}[2Kharmless\n"
        ),
        "{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "a raw ESC reached the terminal: {text:?}"
    );
    // The same content as data, the ESC escaped the JSON way.
    let json = ws
        .run(&[
            "--json", "proposal", "show", "p.json", "--ledger", "ledger.l",
        ])
        .ok();
    assert!(!json.stdout.contains('\u{1b}'));
    let review: Value = json.json();
    let policy = &review["review"]["policies"][0];
    assert_eq!(policy["id"], "untrusted-device", "{review}");
    assert_eq!(policy["meaning_changed"], true);
    assert!(
        policy["diff"]
            .as_str()
            .unwrap()
            .contains("+  context.device.os_patch_age_days <= 30 && // \u{1b}[1A"),
        "{policy}"
    );
    assert_eq!(review["bundle_check"]["ok"], true);
}

/// `proposal impact` of `p.json` on the requests in `requests`.
fn impact_of(ws: &Workspace, requests: &str) -> Run {
    ws.run(&[
        "--json",
        "proposal",
        "impact",
        "p.json",
        "--ledger",
        "ledger.l",
        "--requests",
        requests,
    ])
}

#[test]
fn impact_reports_exactly_the_requests_the_change_flips() {
    let ws = Workspace::new();
    tightened_patch_rule(&ws);
    // Lines 2 and 4 claim a negative patch age: allowed before, denied now.
    let requests = [3, -1, 40, -5, 7].map(ssh_request).join("\n");
    std::fs::write(ws.file("requests.jsonl"), format!("{requests}\n")).unwrap();
    let impact = impact_of(&ws, "requests.jsonl").ok().json();
    assert_eq!(
        (
            impact["requests"].as_u64(),
            impact["unchanged"].as_u64(),
            impact["allow_to_deny"].as_u64(),
            impact["deny_to_allow"].as_u64()
        ),
        (Some(5), Some(3), Some(2), Some(0)),
        "{impact}"
    );
    assert_eq!(flipped_lines(&impact), [2, 4]);
    assert_eq!(impact["by_policy"]["untrusted-device"]["allow_to_deny"], 2);
    // The review carries it too when given the requests.
    let shown = ws
        .run(&[
            "--json",
            "proposal",
            "show",
            "p.json",
            "--ledger",
            "ledger.l",
            "--requests",
            "requests.jsonl",
        ])
        .ok()
        .json();
    assert_eq!(shown["impact"]["allow_to_deny"], 2);
    // A line that is not a request is named, not skipped.
    std::fs::write(
        ws.file("bad.jsonl"),
        format!("{}\nnot json\n", ssh_request(3)),
    )
    .unwrap();
    let bad = impact_of(&ws, "bad.jsonl").fails();
    assert!(bad.stderr.contains("bad.jsonl:2:"), "{}", bad.stderr);
}

#[test]
fn signing_needs_a_terminal_or_yes_and_the_ledger_it_extends() {
    let ws = Workspace::new();
    tightened_patch_rule(&ws);
    let before = ws.read("p.json");
    let unasked = stele_unconfirmed(
        ws.path(),
        &[
            "--json", "proposal", "sign", "p.json", "--ledger", "ledger.l", "--key", "a",
        ],
    )
    .fails()
    .json();
    assert_eq!(unasked["error"], "usage", "{unasked}");
    let no_ledger = ws
        .run(&["--json", "proposal", "sign", "p.json", "--key", "a"])
        .fails()
        .json();
    assert_eq!(no_ledger["error"], "usage", "{no_ledger}");
    assert_eq!(
        ws.read("p.json"),
        before,
        "a refused signing changed the file"
    );
}

#[test]
fn a_stray_signature_is_refused_shown_and_removable_so_the_proposal_still_appends() {
    let ws = Workspace::new();
    tightened_patch_rule(&ws);
    ws.run(&["keygen", "--out", "mallory"]).ok();
    // `proposal sign` refuses a key outside the trust set, naming the set.
    let before = ws.read("p.json");
    let refused = ws
        .run(&[
            "proposal", "sign", "p.json", "--ledger", "ledger.l", "--key", "mallory",
        ])
        .fails();
    assert!(
        refused.stderr.contains("not an approver"),
        "{}",
        refused.stderr
    );
    assert_eq!(ws.read("p.json"), before);
    // A stray signature put there by other means (an older stele, a hand
    // edit) is shown as such, and keeps the proposal from being appended.
    let mut proposal =
        stele_ledger::Proposal::decode(&std::fs::read(ws.file("p.json")).unwrap()).unwrap();
    let mallory = stele_ledger::SecretKey::from_key_file(
        &std::fs::read_to_string(ws.file("mallory")).unwrap(),
    )
    .unwrap();
    proposal.version.sign(&mallory);
    std::fs::write(ws.file("p.json"), proposal.encode()).unwrap();
    ws.run(&[
        "proposal", "sign", "p.json", "--ledger", "ledger.l", "--key", "a", "--key", "b",
    ])
    .fails();
    let shown = ws
        .run(&[
            "--json", "proposal", "show", "p.json", "--ledger", "ledger.l",
        ])
        .ok()
        .json();
    assert_eq!(
        shown["unknown_signers"][0],
        mallory.public_key().to_hex(),
        "{shown}"
    );
    assert_eq!(shown["admission"]["reason"], "unknown_key");
    let mallory_pub = mallory.public_key().to_hex();
    // Removed, then signed by M approvers and appended.
    let unsigned = ws
        .run(&[
            "--json",
            "proposal",
            "unsign",
            "p.json",
            "--approver",
            "mallory.pub",
        ])
        .ok()
        .json();
    assert_eq!(
        (
            unsigned["removed"].as_u64(),
            unsigned["signatures"].as_u64()
        ),
        (Some(1), Some(0))
    );
    let again = ws
        .run(&[
            "--json",
            "proposal",
            "unsign",
            "p.json",
            "--approver",
            &mallory_pub,
        ])
        .fails()
        .json();
    assert_eq!(again["error"], "not_found");
    ws.run(&[
        "proposal", "sign", "p.json", "--ledger", "ledger.l", "--key", "a", "--key", "b",
    ])
    .ok();
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
    assert_eq!(appended["seq"], 2);
}

#[test]
fn bundle_init_makes_a_bundle_that_passes_and_fmt_formats_it_with_cedars_formatter() {
    let ws = Workspace::new();
    ws.run(&["bundle", "init", "fresh"]).ok();
    let tested = ws.run(&["--json", "bundle", "test", "fresh"]).ok().json();
    assert_eq!(
        (tested["ok"].as_bool(), tested["scenarios_passed"].as_u64()),
        (Some(true), Some(2))
    );
    ws.run(&["bundle", "init", "fresh"]).fails();
    let formatted = ws
        .run(&["--json", "bundle", "fmt", "fresh", "--check"])
        .ok()
        .json();
    assert_eq!(formatted["status"], "formatted", "{formatted}");
    // Squeezed onto one line: --check fails and changes nothing, fmt mends it.
    let policy = ws.file("fresh/policies.cedar");
    let squeezed = "// Owners read their own documents.\n@id(\"owners-read\") permit (principal, action == Action::\"read\", resource) when { resource.owner == principal };\n";
    std::fs::write(&policy, squeezed).unwrap();
    let check = ws
        .run(&["--json", "bundle", "fmt", "fresh", "--check"])
        .fails();
    assert_eq!(check.json()["files"][0], "policies.cedar");
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), squeezed);
    ws.run(&["bundle", "fmt", "fresh"]).ok();
    let mended = std::fs::read_to_string(&policy).unwrap();
    assert_ne!(mended, squeezed);
    assert!(
        mended.contains("// Owners read their own documents."),
        "{mended}"
    );
    ws.run(&["bundle", "fmt", "fresh", "--check"]).ok();
    ws.run(&["bundle", "test", "fresh"]).ok();
}
