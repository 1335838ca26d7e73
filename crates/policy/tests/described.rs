//! Entities a request describes (AuthZEN's `properties`): attributes for
//! entities the bundle does not hold, checked against the schema; the
//! bundle's own entities keep the bundle's attributes.

use serde_json::{Value, json};
use stele_ledger::BundleFiles;
use stele_policy::{Described, EntityRef, Outcome, Query, Snapshot};

fn snapshot() -> Snapshot {
    let mut files = BundleFiles::default();
    for (path, content) in [
        (
            "schema.cedarschema",
            "entity User { level: Long };\nentity Doc;\naction read appliesTo { principal: [User], resource: [Doc] };\n",
        ),
        (
            "policies.cedar",
            "permit(principal, action, resource) when { principal.level >= 5 };\n",
        ),
        (
            "entities.json",
            r#"[{"uid": {"type": "User", "id": "alice"}, "attrs": {"level": 1}, "parents": []}]"#,
        ),
    ] {
        files.insert(path.into(), content.into()).unwrap();
    }
    Snapshot::compile(&files).unwrap()
}

fn user(id: &str) -> EntityRef {
    EntityRef {
        type_name: "User".into(),
        id: id.into(),
    }
}

fn read(id: &str) -> Query {
    Query::from_parts(
        &user(id),
        &EntityRef {
            type_name: "Action".into(),
            id: "read".into(),
        },
        &EntityRef {
            type_name: "Doc".into(),
            id: "d".into(),
        },
        None,
    )
    .unwrap()
}

fn described(id: &str, attributes: Value) -> Vec<Described> {
    let Value::Object(attributes) = attributes else {
        panic!("attributes are an object")
    };
    vec![Described::new(&user(id), attributes).unwrap()]
}

#[test]
fn attributes_of_an_entity_the_bundle_lacks_are_used_for_this_request() {
    let snapshot = snapshot();
    let bob = snapshot
        .evaluate_described(&read("bob"), &described("bob", json!({"level": 7})))
        .unwrap();
    assert_eq!(bob.decision, Outcome::Allow);
    assert_eq!(bob.reasons, ["policy0"]);
    let low = snapshot
        .evaluate_described(&read("bob"), &described("bob", json!({"level": 2})))
        .unwrap();
    assert_eq!(low.decision, Outcome::Deny);
    // Without a description, bob has no attributes: an evaluation error.
    let unknown = snapshot.evaluate(&read("bob")).unwrap();
    assert_eq!(unknown.decision, Outcome::Deny);
    assert_eq!(unknown.errors.len(), 1, "{unknown:?}");
    // And nothing of one request stays for the next.
    let again = snapshot.evaluate_described(&read("bob"), &[]).unwrap();
    assert_eq!(again, unknown);
}

#[test]
fn the_bundle_s_own_entity_keeps_its_attributes() {
    let snapshot = snapshot();
    let alice = snapshot
        .evaluate_described(&read("alice"), &described("alice", json!({"level": 9})))
        .unwrap();
    assert_eq!(
        alice.decision,
        Outcome::Deny,
        "a caller raised alice's level"
    );
    assert!(alice.errors.is_empty());
}

#[test]
fn attributes_that_do_not_fit_the_schema_are_refused() {
    let snapshot = snapshot();
    for attributes in [
        json!({"level": "high"}),
        json!({}),
        json!({"level": 7, "extra": 1}),
    ] {
        let error = snapshot
            .evaluate_described(&read("bob"), &described("bob", attributes.clone()))
            .unwrap_err();
        assert!(
            error.0.starts_with("entity properties:"),
            "{attributes}: {error}"
        );
    }
}
