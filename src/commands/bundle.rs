//! `stele bundle test|digest`.

use std::path::Path;

use serde_json::json;
use stele_policy::{Snapshot, load_dir, run_scenarios};

use crate::cli::BundleCommand;
use crate::failure::{Failure, Result};
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
    let snapshot = Snapshot::compile(&bundle)?;
    let report = run_scenarios(&snapshot, &bundle)?;
    if !report.failures.is_empty() {
        let lines: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
        let failures: Vec<_> = report
            .failures
            .iter()
            .map(|f| json!({"file": f.file, "query": f.number, "description": f.description, "problem": f.problem}))
            .collect();
        return Err(Failure::new(
            "scenarios_failed",
            format!(
                "{} of {} scenario(s) failed:\n{}",
                report.failures.len(),
                report.failures.len() + report.passed,
                lines.join("\n")
            ),
        )
        .with("failures", failures));
    }
    let policies = snapshot.policies().len();
    out.result(
        &json!({
            "ok": true,
            "digest": bundle.digest(),
            "policies": policies,
            "scenario_files": report.files,
            "scenarios_passed": report.passed,
        }),
        || {
            format!(
                "ok: {policies} policies valid against the schema, {} scenario(s) in {} file(s) passed\ndigest {}",
                report.passed,
                report.files,
                bundle.digest()
            )
        },
    );
    Ok(())
}
