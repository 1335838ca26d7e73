//! The synthetic bundles the benchmarks and load tests use: valid, their
//! requests answerable, some allowed, and the index agreeing with Cedar over
//! the whole set on each.

use stele_policy::synthetic::{self, Shape};
use stele_policy::{Outcome, Query, Snapshot};

fn exercise(shape: Shape, policies: usize) -> usize {
    let snapshot = Snapshot::compile(&synthetic::bundle(shape, policies)).unwrap();
    assert_eq!(snapshot.policies().len(), policies);
    let mut allowed = 0;
    for line in synthetic::requests(shape, policies, 400) {
        let query = Query::from_json(&line).unwrap();
        let indexed = snapshot.evaluate(&query).unwrap();
        assert_eq!(
            indexed,
            snapshot.evaluate_unindexed(&query).unwrap(),
            "{line}"
        );
        assert!(indexed.errors.is_empty(), "{line}: {:?}", indexed.errors);
        allowed += usize::from(indexed.decision == Outcome::Allow);
    }
    allowed
}

#[test]
fn rbac_bundles_compile_and_allow_what_their_roles_grant() {
    let allowed = exercise(Shape::Rbac, 300);
    // Half the requests ask for a document of the user's first role, whose
    // policy grants at least `read`.
    assert!(allowed >= 40, "only {allowed} of 400 allowed");
}

#[test]
fn abac_bundles_compile_and_answer_without_errors() {
    exercise(Shape::Abac, 300);
}

#[test]
fn the_same_arguments_give_the_same_bundle() {
    let a = synthetic::bundle(Shape::Rbac, 50).digest();
    assert_eq!(a, synthetic::bundle(Shape::Rbac, 50).digest());
    assert_ne!(a, synthetic::bundle(Shape::Rbac, 51).digest());
    assert_eq!(
        synthetic::requests(Shape::Abac, 50, 10),
        synthetic::requests(Shape::Abac, 50, 10)
    );
}
