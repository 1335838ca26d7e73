//! examples/zero-trust, carried inside the binary so `stele dev` works from
//! any directory.

use stele_ledger::BundleFiles;

const FILES: [(&str, &str); 11] = [
    (
        "access.cedar",
        include_str!("../examples/zero-trust/access.cedar"),
    ),
    (
        "break_glass.cedar",
        include_str!("../examples/zero-trust/break_glass.cedar"),
    ),
    (
        "entities.json",
        include_str!("../examples/zero-trust/entities.json"),
    ),
    (
        "guardrails.cedar",
        include_str!("../examples/zero-trust/guardrails.cedar"),
    ),
    (
        "schema.cedarschema",
        include_str!("../examples/zero-trust/schema.cedarschema"),
    ),
    (
        "tests/break_glass.json",
        include_str!("../examples/zero-trust/tests/break_glass.json"),
    ),
    (
        "tests/contractors.json",
        include_str!("../examples/zero-trust/tests/contractors.json"),
    ),
    (
        "tests/dba.json",
        include_str!("../examples/zero-trust/tests/dba.json"),
    ),
    (
        "tests/engineers.json",
        include_str!("../examples/zero-trust/tests/engineers.json"),
    ),
    (
        "tests/sre.json",
        include_str!("../examples/zero-trust/tests/sre.json"),
    ),
    (
        "tests/workloads.json",
        include_str!("../examples/zero-trust/tests/workloads.json"),
    ),
];

pub fn zero_trust() -> BundleFiles {
    let mut bundle = BundleFiles::default();
    for (path, content) in FILES {
        bundle
            .insert(path.to_string(), content.to_string())
            .expect("the example bundle is within every limit");
    }
    bundle
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_example_is_the_one_on_disk() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/zero-trust");
        let on_disk = stele_policy::load_dir(&dir).unwrap();
        assert_eq!(
            super::zero_trust(),
            on_disk,
            "update src/example_bundle.rs with the example's files"
        );
    }
}
