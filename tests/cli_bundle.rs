//! `stele keygen`, `bundle test|digest` and `check`, through the real binary.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use serde_json::json;

#[test]
fn keygen_writes_a_private_secret_and_a_public_key_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let out = stele(dir.path(), &["--json", "keygen", "--out", "alice"])
        .ok()
        .json();
    let secret = dir.path().join("alice");
    let public = std::fs::read_to_string(dir.path().join("alice.pub")).unwrap();
    assert_eq!(
        std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(public.trim(), out["key"].as_str().unwrap());
    assert_eq!(public.trim().len(), 64);
    let before = std::fs::read(&secret).unwrap();
    let again = stele(dir.path(), &["--json", "keygen", "--out", "alice"]).fails();
    assert_eq!(again.json()["error"], "exists");
    assert_eq!(std::fs::read(&secret).unwrap(), before);
}

#[test]
fn bundle_digest_prints_the_hex_digest_alone_and_follows_content() {
    let ws = Workspace::new();
    let digest = ws.run(&["bundle", "digest", "bundle"]).ok().stdout;
    assert_eq!(digest.len(), 65, "{digest:?}");
    assert!(
        digest
            .trim_end()
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    let json = ws
        .run(&["--json", "bundle", "digest", "bundle"])
        .ok()
        .json();
    assert_eq!(json["digest"], digest.trim_end());
    std::fs::write(ws.file("bundle/access.cedar"), "// emptied\n").unwrap();
    assert_ne!(ws.run(&["bundle", "digest", "bundle"]).ok().stdout, digest);
}

#[test]
fn bundle_test_passes_the_example_and_reports_its_size() {
    let out = stele(&example_bundle(), &["--json", "bundle", "test", "."])
        .ok()
        .json();
    assert_eq!(out["ok"], true);
    assert_eq!(out["policies"], 15);
    assert_eq!(out["scenario_files"], 6);
    assert!(out["scenarios_passed"].as_u64().unwrap() >= 40);
}

#[test]
fn bundle_test_names_the_failing_scenario_and_what_differed() {
    let ws = Workspace::new();
    ws.bundle_variant("weak", |text| {
        text.replace("os_patch_age_days <= 30", "os_patch_age_days <= 365")
    });
    let run = ws.run(&["--json", "bundle", "test", "weak"]).fails();
    let out = run.json();
    assert_eq!(out["error"], "scenarios_failed");
    let failures = out["failures"].as_array().unwrap();
    assert!(failures.iter().any(|f| {
        f["description"] == "patched 31 days ago is not"
            && f["file"] == "tests/engineers.json"
            && f["problem"]
                .as_str()
                .unwrap()
                .contains("expected Deny, got Allow")
    }));
}

#[test]
fn bundle_test_reports_cedar_errors_with_file_and_line() {
    let ws = Workspace::new();
    std::fs::write(
        ws.file("bundle/broken.cedar"),
        "permit(principal, action, resource)\nwhen { principal.nope };\n",
    )
    .unwrap();
    let run = ws.run(&["bundle", "test", "bundle"]).fails();
    assert!(run.stderr.contains("broken.cedar:2:8:"), "{}", run.stderr);
    assert!(run.stderr.contains("nope"), "{}", run.stderr);
    std::fs::write(
        ws.file("bundle/broken.cedar"),
        "permit(principal,\naction resource);",
    )
    .unwrap();
    let run = ws.run(&["bundle", "test", "bundle"]).fails();
    assert!(run.stderr.contains("broken.cedar:2:"), "{}", run.stderr);
    // A `)` missing at the end of line 4 is said to be there, not at the
    // `when` on line 5 where the parser noticed it.
    std::fs::write(
        ws.file("bundle/broken.cedar"),
        "permit (\n  principal,\n  action,\n  resource\nwhen { true };\n",
    )
    .unwrap();
    let run = ws.run(&["bundle", "test", "bundle"]).fails();
    assert!(run.stderr.contains("broken.cedar:4:11:"), "{}", run.stderr);
}

#[test]
fn an_entity_error_names_the_entity_and_the_attribute() {
    let ws = Workspace::new();
    ws.run(&["bundle", "init", "fresh"]).ok();
    let path = ws.file("fresh/entities.json");
    let entities = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        entities.replace(r#""department": "eng""#, r#""department": 5"#),
    )
    .unwrap();
    let run = ws.run(&["bundle", "test", "fresh"]).fails();
    assert!(
        run.stderr
            .contains(r#"in attribute `department` on `User::"alice"`"#),
        "{}",
        run.stderr
    );
}

#[test]
fn unknown_files_and_missing_schemas_are_errors() {
    let ws = Workspace::new();
    std::fs::write(ws.file("bundle/notes.txt"), "hello").unwrap();
    let run = ws.run(&["bundle", "test", "bundle"]).fails();
    assert!(
        run.stderr.contains("notes.txt: unknown file"),
        "{}",
        run.stderr
    );
    std::fs::remove_file(ws.file("bundle/notes.txt")).unwrap();
    std::fs::remove_file(ws.file("bundle/schema.cedarschema")).unwrap();
    let run = ws.run(&["bundle", "digest", "bundle"]).fails();
    assert!(
        run.stderr.contains("schema.cedarschema is missing"),
        "{}",
        run.stderr
    );
}

#[test]
fn duplicate_policy_ids_and_templates_are_refused() {
    let ws = Workspace::new();
    std::fs::write(
        ws.file("bundle/extra.cedar"),
        "@id(\"break-glass\")\npermit(principal, action, resource is Server);\n",
    )
    .unwrap();
    let run = ws.run(&["bundle", "test", "bundle"]).fails();
    assert!(
        run.stderr.contains("\"break-glass\" is already used"),
        "{}",
        run.stderr
    );
    std::fs::write(
        ws.file("bundle/extra.cedar"),
        "permit(principal == ?principal, action, resource);\n",
    )
    .unwrap();
    let run = ws.run(&["bundle", "test", "bundle"]).fails();
    assert!(
        run.stderr.contains("templates are not supported"),
        "{}",
        run.stderr
    );
}

fn good_context() -> &'static str {
    r#"{"network_zone":"corp","device":{"managed":true,"disk_encrypted":true,"os_patch_age_days":2},"mfa_age_seconds":60}"#
}

#[test]
fn check_answers_one_request_with_decision_reasons_and_errors() {
    let dir = example_bundle();
    let allow = stele(
        &dir,
        &[
            "--json",
            "check",
            "--bundle",
            ".",
            "--principal",
            r#"User::"alice""#,
            "--action",
            r#"Action::"db:read""#,
            "--resource",
            r#"Database::"staging-payments""#,
            "--context",
            good_context(),
        ],
    )
    .ok()
    .json();
    assert_eq!(
        allow,
        json!({"decision": "Allow", "reasons": ["engineers-read-staging"], "errors": []})
    );
    let deny = stele(
        &dir,
        &[
            "--json",
            "check",
            "--bundle",
            ".",
            "--principal",
            r#"User::"gina""#,
            "--action",
            r#"Action::"db:write""#,
            "--resource",
            r#"Database::"prod-catalog""#,
            "--context",
            good_context(),
        ],
    )
    .ok()
    .json();
    assert_eq!(
        deny,
        json!({"decision": "Deny", "reasons": ["contractors-never-production"], "errors": []})
    );
}

#[test]
fn check_refuses_requests_that_do_not_fit_the_schema() {
    let dir = example_bundle();
    let run = stele(
        &dir,
        &[
            "--json",
            "check",
            "--bundle",
            ".",
            "--principal",
            r#"User::"alice""#,
            "--action",
            r#"Action::"db:read""#,
            "--resource",
            r#"Database::"staging-payments""#,
            "--context",
            r#"{"network_zone":7}"#,
        ],
    )
    .fails();
    assert_eq!(run.json()["error"], "invalid_request");
    let run = stele(
        &dir,
        &[
            "check",
            "--bundle",
            ".",
            "--principal",
            "alice",
            "--action",
            "x",
            "--resource",
            "y",
        ],
    )
    .fails();
    assert!(
        run.stderr.contains("principal \"alice\" is not an entity"),
        "{}",
        run.stderr
    );
}

#[test]
fn check_requests_answers_each_line_in_order_and_flags_bad_ones() {
    let context: serde_json::Value = serde_json::from_str(good_context()).unwrap();
    let request = |principal: &str, action: &str, resource_type: &str, resource: &str| {
        json!({
            "principal": {"type": "User", "id": principal},
            "action": {"type": "Action", "id": action},
            "resource": {"type": resource_type, "id": resource},
            "context": context,
        })
        .to_string()
    };
    let input = [
        request("alice", "db:read", "Database", "staging-payments"),
        "{not json".to_string(),
        request("dave", "db:read", "Database", "prod-catalog"),
        String::new(),
        request("bob", "ssh", "Server", "prod-web-1"),
    ]
    .join("\n");
    let run = stele_with_stdin(
        &example_bundle(),
        &["--json", "check", "--bundle", ".", "--requests", "-"],
        &input,
    )
    .fails();
    let lines = run.json_lines();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["decision"], "Allow");
    assert!(lines[1]["error"].as_str().unwrap().starts_with("line 2:"));
    assert_eq!(lines[2]["reasons"], json!(["contractors-never-production"]));
    assert_eq!(
        lines[3]["reasons"],
        json!(["oncall-change-production", "sre-operate-production"])
    );
}
