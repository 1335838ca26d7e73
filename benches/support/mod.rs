//! Pieces the benchmarks share: the example bundle, and the raw-Cedar
//! baseline they are compared with.
#![allow(dead_code)]

use std::path::Path;

use cedar_policy::{Entities, PolicySet, Schema, ValidationMode, Validator};
use stele_ledger::BundleFiles;
use stele_policy::load_dir;

pub fn example() -> BundleFiles {
    load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/zero-trust")).unwrap()
}

/// What any Cedar deployment does to load a bundle: parse the schema and
/// the policies (as one set), validate strictly, load the entities.
pub fn raw_cedar_load(bundle: &BundleFiles) -> (Schema, PolicySet, Entities) {
    let schema = Schema::from_cedarschema_str(bundle.get("schema.cedarschema").unwrap())
        .unwrap()
        .0;
    let mut text = String::new();
    for (_, content) in bundle.files().filter(|(p, _)| p.ends_with(".cedar")) {
        text.push_str(content);
        text.push('\n');
    }
    let policies: PolicySet = text.parse().unwrap();
    let validation = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
    assert!(validation.validation_passed());
    let entities =
        Entities::from_json_str(bundle.get("entities.json").unwrap(), Some(&schema)).unwrap();
    (schema, policies, entities)
}
