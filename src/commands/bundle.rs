//! `stele bundle test|digest`.

use std::path::Path;

use serde_json::json;
use stele_policy::{check_bundle, load_dir};

use crate::cli::BundleCommand;
use crate::failure::Result;
use crate::output::Output;

pub fn run(out: Output, command: BundleCommand) -> Result<()> {
    match command {
        BundleCommand::Test { dir } => test(out, &dir),
        BundleCommand::Digest { dir } => {
            let digest = load_dir(&dir)?.digest();
            out.result(&json!({ "digest": digest }), || digest.to_hex());
            Ok(())
        }
    }
}

fn test(out: Output, dir: &Path) -> Result<()> {
    let bundle = load_dir(dir)?;
    let summary = check_bundle(&bundle)?;
    let scenarios = &summary.scenarios;
    out.result(
        &json!({
            "ok": true,
            "digest": bundle.digest(),
            "policies": summary.policies,
            "scenario_files": scenarios.files,
            "scenarios_passed": scenarios.passed,
        }),
        || {
            format!(
                "ok: {} policies valid against the schema, {} scenario(s) in {} file(s) passed\ndigest {}",
                summary.policies,
                scenarios.passed,
                scenarios.files,
                bundle.digest()
            )
        },
    );
    Ok(())
}
