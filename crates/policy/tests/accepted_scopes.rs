//! A request without a context skips Cedar's schema check when its scope
//! is known accepted (`scopes.rs`). Every answer, errors included, must
//! equal Cedar's own reading of the same request against the schema.

use stele_ledger::BundleFiles;
use stele_policy::{Query, Snapshot};

fn bundle(schema: &str, policies: &str) -> Snapshot {
    let mut files = BundleFiles::default();
    files
        .insert("schema.cedarschema".into(), schema.into())
        .unwrap();
    files
        .insert("policies.cedar".into(), policies.into())
        .unwrap();
    Snapshot::compile(&files).unwrap()
}

/// Every combination of the given types and actions, without a context,
/// answered as Cedar answers it; returns how many Cedar accepted.
fn agrees_with_cedar(
    snapshot: &Snapshot,
    principals: &[&str],
    actions: &[&str],
    resources: &[&str],
) -> usize {
    let mut accepted = 0;
    for principal in principals {
        for action in actions {
            for resource in resources {
                let query = Query::parse(principal, &format!("Action::{action:?}"), resource, None)
                    .unwrap();
                let ours = snapshot.evaluate(&query);
                let cedar = snapshot.evaluate_unindexed(&query);
                assert_eq!(ours, cedar, "{principal} {action} {resource}");
                accepted += usize::from(cedar.is_ok());
            }
        }
    }
    accepted
}

#[test]
fn scopes_without_context_are_checked_as_cedar_checks_them() {
    let snapshot = bundle(
        r#"
        entity Group;
        entity User in [Group];
        entity Doc in [Group];
        action read appliesTo { principal: [User], resource: [Doc] };
        action manage appliesTo { principal: [User, Group], resource: [Doc, Group] };
        action share appliesTo { principal: [User], resource: [Doc], context: { reason: String } };
        action audit;
        "#,
        r#"
        permit(principal, action == Action::"read", resource);
        permit(principal is Group, action == Action::"manage", resource is Group);
        "#,
    );
    let accepted = agrees_with_cedar(
        &snapshot,
        &[
            r#"User::"u""#,
            r#"Group::"g""#,
            r#"Doc::"d""#,
            r#"Nope::"n""#,
        ],
        &["read", "manage", "share", "audit", "undeclared"],
        &[
            r#"Doc::"d""#,
            r#"Group::"g""#,
            r#"User::"u""#,
            r#"Nope::"n""#,
        ],
    );
    // read: User × Doc; manage: {User, Group} × {Doc, Group}. `share` needs
    // a context and `audit` applies to nothing, so Cedar refuses them.
    assert_eq!(accepted, 1 + 4);
}

#[test]
fn an_enumerated_type_is_checked_by_cedar_every_time() {
    // `""` among the values: the placeholder id the scopes are tried with
    // passes, and only the `enum` rule keeps `Color::"blue"` from Cedar.
    let snapshot = bundle(
        r#"
        entity User;
        entity Color enum ["", "red"];
        action paint appliesTo { principal: [User], resource: [Color] };
        "#,
        r#"permit(principal, action, resource);"#,
    );
    let accepted = agrees_with_cedar(
        &snapshot,
        &[r#"User::"u""#],
        &["paint"],
        &[r#"Color::"red""#, r#"Color::"blue""#],
    );
    assert_eq!(accepted, 1, "Color::\"blue\" is not one of the enumeration");
}
