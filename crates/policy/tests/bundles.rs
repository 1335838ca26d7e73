//! Bundles: loading, policy ids, compilation, evaluation against raw Cedar,
//! scenarios, the admission check and diffs.

use std::path::Path;
use std::str::FromStr;

use cedar_policy::{Authorizer, Entities, PolicySet, Schema};
use stele_ledger::BundleFiles;
use stele_policy::{
    BundleError, Outcome, Query, Snapshot, admission_check, diff, load_dir, parse_policies,
    run_scenarios,
};

const SCHEMA: &str =
    "entity User; entity Doc; action read, write appliesTo { principal: User, resource: Doc };";

fn bundle(files: &[(&str, &str)]) -> BundleFiles {
    let mut bundle = BundleFiles::default();
    bundle
        .insert("schema.cedarschema".into(), SCHEMA.into())
        .unwrap();
    for (path, content) in files {
        bundle
            .insert(path.to_string(), content.to_string())
            .unwrap();
    }
    bundle
}

fn example() -> BundleFiles {
    load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/zero-trust")).unwrap()
}

fn ids(bundle: &BundleFiles) -> Vec<String> {
    parse_policies(bundle)
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect()
}

#[test]
fn a_one_file_bundle_keeps_cedars_ids() {
    let b = bundle(&[(
        "p.cedar",
        "permit(principal, action, resource);\nforbid(principal, action, resource);",
    )]);
    assert_eq!(ids(&b), ["policy0", "policy1"]);
}

#[test]
fn several_files_prefix_the_file_stem_and_id_annotations_win() {
    let b = bundle(&[
        (
            "a.cedar",
            "permit(principal, action, resource);\n@id(\"named\") forbid(principal, action, resource);",
        ),
        ("b.cedar", "permit(principal, action, resource);"),
    ]);
    assert_eq!(ids(&b), ["a/policy0", "named", "b/policy0"]);
}

#[test]
fn more_than_ten_policies_keep_source_order() {
    let text = "permit(principal, action, resource);\n".repeat(12);
    let b = bundle(&[("p.cedar", &text)]);
    let expected: Vec<String> = (0..12).map(|n| format!("policy{n}")).collect();
    assert_eq!(ids(&b), expected);
}

#[test]
fn an_annotation_colliding_with_a_positional_id_is_an_error() {
    let b = bundle(&[(
        "p.cedar",
        "permit(principal, action, resource);\n@id(\"policy0\") forbid(principal, action, resource);",
    )]);
    let error = parse_policies(&b).unwrap_err().to_string();
    assert!(error.contains("\"policy0\" is already used"), "{error}");
}

#[test]
fn templates_and_empty_ids_are_refused() {
    let template = bundle(&[(
        "p.cedar",
        "permit(principal == ?principal, action, resource);",
    )]);
    let error = parse_policies(&template).unwrap_err().to_string();
    assert!(error.contains("templates are not supported"), "{error}");
    let empty = bundle(&[("p.cedar", "@id(\"\") permit(principal, action, resource);")]);
    let error = parse_policies(&empty).unwrap_err().to_string();
    assert!(error.contains("empty @id"), "{error}");
}

#[test]
fn validation_is_strict_against_the_schema() {
    let b = bundle(&[(
        "p.cedar",
        "permit(principal, action == Action::\"delete\", resource);",
    )]);
    let error = Snapshot::compile(&b).err().unwrap();
    assert!(
        matches!(&error, BundleError::Invalid(lines) if lines[0].starts_with("p.cedar:1:")),
        "{error}"
    );
}

#[test]
fn evaluation_equals_cedars_authorizer_on_the_example() {
    let b = example();
    let snapshot = Snapshot::compile(&b).unwrap();
    // Raw Cedar over the same files, independently of the snapshot.
    let schema = Schema::from_cedarschema_str(b.get("schema.cedarschema").unwrap())
        .unwrap()
        .0;
    let mut policies = String::new();
    for (path, text) in b.files() {
        if path.ends_with(".cedar") {
            policies.push_str(text);
            policies.push('\n');
        }
    }
    let policies = PolicySet::from_str(&policies).unwrap();
    let entities = Entities::from_json_str(b.get("entities.json").unwrap(), Some(&schema)).unwrap();
    let mut compared = 0;
    for (path, text) in b.files().filter(|(p, _)| p.starts_with("tests/")) {
        let file: serde_json::Value = serde_json::from_str(text).unwrap();
        for query in file["queries"].as_array().unwrap() {
            let mut query = query.clone();
            for expectation in ["decision", "reasons", "errors"] {
                query.as_object_mut().unwrap().remove(expectation);
            }
            let query = Query::from_json(&query.to_string()).unwrap();
            let ours = snapshot.evaluate(&query).unwrap();
            let request = query.to_request(&schema).unwrap();
            let theirs = Authorizer::new().is_authorized(&request, &policies, &entities);
            let expected = match theirs.decision() {
                cedar_policy::Decision::Allow => Outcome::Allow,
                cedar_policy::Decision::Deny => Outcome::Deny,
            };
            assert_eq!(ours.decision, expected, "{path}: {query:?}");
            // Raw Cedar names the policies by position; map ours back to annotations.
            let mut reasons: Vec<String> = theirs
                .diagnostics()
                .reason()
                .map(|id| {
                    policies
                        .policy(id)
                        .unwrap()
                        .annotation("id")
                        .unwrap()
                        .to_string()
                })
                .collect();
            reasons.sort();
            assert_eq!(ours.reasons, reasons, "{path}: {query:?}");
            compared += 1;
        }
    }
    assert!(compared >= 40);
}

#[test]
fn evaluation_errors_are_reported_and_sorted() {
    let b = bundle(&[(
        "p.cedar",
        "@id(\"z\") permit(principal, action, resource) when { context.n + 9223372036854775807 > 0 };\n\
         @id(\"a\") permit(principal, action, resource) when { context.n * 9223372036854775807 > 0 };",
    )]);
    let mut b2 = BundleFiles::default();
    for (p, c) in b.files() {
        let c = if p == "schema.cedarschema" {
            "entity User; entity Doc; action read appliesTo { principal: User, resource: Doc, context: { n: Long } };"
        } else {
            c
        };
        b2.insert(p.into(), c.into()).unwrap();
    }
    let snapshot = Snapshot::compile(&b2).unwrap();
    let query = Query::parse(
        "User::\"u\"",
        "Action::\"read\"",
        "Doc::\"d\"",
        Some("{\"n\": 2}"),
    )
    .unwrap();
    let decision = snapshot.evaluate(&query).unwrap();
    assert_eq!(decision.decision, Outcome::Deny);
    assert_eq!(decision.errors.len(), 2);
    assert!(
        decision.errors[0].contains("`a`") && decision.errors[1].contains("`z`"),
        "{:?}",
        decision.errors
    );
}

#[test]
fn the_admission_check_runs_the_scenarios() {
    let good = bundle(&[
        (
            "p.cedar",
            "@id(\"readers\") permit(principal, action == Action::\"read\", resource);",
        ),
        (
            "tests/read.json",
            r#"{"queries":[{"description":"reads","principal":{"type":"User","id":"u"},"action":{"type":"Action","id":"read"},"resource":{"type":"Doc","id":"d"},"decision":"Allow","reasons":["readers"]}]}"#,
        ),
    ]);
    assert_eq!(admission_check(&good), Ok(()));
    let report = run_scenarios(&Snapshot::compile(&good).unwrap(), &good).unwrap();
    assert_eq!((report.files, report.passed), (1, 1));
    let wrong = bundle(&[
        (
            "p.cedar",
            "@id(\"readers\") permit(principal, action == Action::\"read\", resource);",
        ),
        (
            "tests/read.json",
            r#"{"queries":[{"description":"writes","principal":{"type":"User","id":"u"},"action":{"type":"Action","id":"write"},"resource":{"type":"Doc","id":"d"},"decision":"Allow"}]}"#,
        ),
    ]);
    let error = admission_check(&wrong).unwrap_err();
    assert!(matches!(error, BundleError::Scenarios(_)), "{error}");
    assert!(
        error
            .to_string()
            .contains("tests/read.json query 1 (\"writes\"): expected Allow, got Deny"),
        "{error}"
    );
    let typo = bundle(&[
        ("p.cedar", "permit(principal, action, resource);"),
        (
            "tests/read.json",
            r#"{"queries":[{"description":"x","principle":{"type":"User","id":"u"}}]}"#,
        ),
    ]);
    let error = admission_check(&typo).unwrap_err().to_string();
    assert!(
        error.contains("tests/read.json:1:") && error.contains("principle"),
        "{error}"
    );
}

#[test]
fn scenarios_can_expect_evaluation_errors() {
    let with_errors = |expected: &str| {
        let mut b = BundleFiles::default();
        b.insert(
            "schema.cedarschema".into(),
            "entity User; entity Doc; action read appliesTo { principal: User, resource: Doc, context: { n: Long } };".into(),
        )
        .unwrap();
        b.insert(
            "p.cedar".into(),
            "@id(\"overflow\") permit(principal, action, resource) when { context.n + 9223372036854775807 > 0 };".into(),
        )
        .unwrap();
        let scenario = format!(
            r#"{{"queries":[{{"description":"overflows","principal":{{"type":"User","id":"u"}},"action":{{"type":"Action","id":"read"}},"resource":{{"type":"Doc","id":"d"}},"context":{{"n":2}},"decision":"Deny","reasons":[],"errors":{expected}}}]}}"#
        );
        b.insert("tests/e.json".into(), scenario).unwrap();
        admission_check(&b)
    };
    assert_eq!(with_errors(r#"["overflow"]"#), Ok(()));
    let error = with_errors("[]").unwrap_err();
    assert!(matches!(error, BundleError::Scenarios(_)), "{error}");
    assert!(
        error
            .to_string()
            .contains("expected errors in {}, got errors in {\"overflow\"}"),
        "{error}"
    );
}

#[test]
fn diff_compares_meaning_not_spacing() {
    let old = bundle(&[(
        "p.cedar",
        "@id(\"a\") permit(principal, action, resource);\n@id(\"b\") forbid(principal, action, resource);",
    )]);
    let new = bundle(&[(
        "p.cedar",
        "@id(\"a\")\npermit(\n  principal,\n  action,\n  resource\n);\n@id(\"c\") permit(principal, action == Action::\"read\", resource);",
    )]);
    let changes = diff(&old, &new).unwrap();
    assert_eq!(changes.policies_added, ["c"]);
    assert_eq!(changes.policies_removed, ["b"]);
    assert!(changes.policies_changed.is_empty());
    assert_eq!(changes.files_changed, ["p.cedar"]);
    let edited = bundle(&[(
        "p.cedar",
        "@id(\"a\") permit(principal, action == Action::\"write\", resource);\n@id(\"b\") forbid(principal, action, resource);",
    )]);
    assert_eq!(diff(&old, &edited).unwrap().policies_changed, ["a"]);
}

#[test]
fn load_dir_refuses_symlinks_nested_dirs_and_non_utf8() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.cedarschema"), SCHEMA).unwrap();
    std::fs::write(
        dir.path().join("p.cedar"),
        "permit(principal, action, resource);",
    )
    .unwrap();
    assert!(load_dir(dir.path()).is_ok());
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("x.cedar")).unwrap();
    assert!(
        load_dir(dir.path())
            .unwrap_err()
            .to_string()
            .contains("symbolic link")
    );
    std::fs::remove_file(dir.path().join("x.cedar")).unwrap();
    std::fs::create_dir_all(dir.path().join("tests/deeper")).unwrap();
    assert!(
        load_dir(dir.path())
            .unwrap_err()
            .to_string()
            .contains("tests/deeper")
    );
    std::fs::remove_dir(dir.path().join("tests/deeper")).unwrap();
    std::fs::write(dir.path().join("bad.cedar"), [0xff, 0xfe]).unwrap();
    assert!(
        load_dir(dir.path())
            .unwrap_err()
            .to_string()
            .contains("not valid UTF-8")
    );
}
