//! `stele bundle test|digest|fmt|init`.

use std::path::Path;

use cedar_policy_formatter::{Config, policies_str_to_pretty};
use serde_json::json;
use stele_policy::layout::{FileRole, SCHEMA_FILE, TESTS_DIR, role_of};
use stele_policy::{check_bundle, load_dir};

use crate::cli::BundleCommand;
use crate::failure::{Code, Failure, Result};
use crate::files::{create_new, replace};
use crate::output::Output;

pub fn run(out: Output, command: BundleCommand) -> Result<()> {
    match command {
        BundleCommand::Test { dir } => test(out, &dir),
        BundleCommand::Digest { dir } => {
            let digest = load_dir(&dir)?.digest();
            out.result(&json!({ "digest": digest }), || digest.to_hex());
            Ok(())
        }
        BundleCommand::Fmt { dir, check } => fmt(out, &dir, check),
        BundleCommand::Init { dir } => init(out, &dir),
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

/// Formats every policy file with Cedar's own formatter (comments kept);
/// with `check`, changes nothing and fails if any file would change.
fn fmt(out: Output, dir: &Path, check: bool) -> Result<()> {
    let bundle = load_dir(dir)?;
    let mut changed = Vec::new();
    for (path, text) in bundle.files() {
        if role_of(path) != Some(FileRole::Policies) {
            continue;
        }
        let formatted = policies_str_to_pretty(text, &Config::default()).map_err(|e| {
            Failure::new(
                Code::Reason(stele_ledger::Reason::BundleInvalid),
                format!("{path}: cannot be formatted: {e:?}; `stele bundle test` shows where"),
            )
        })?;
        if formatted != text {
            if !check {
                replace(&dir.join(path), formatted.as_bytes(), 0o644)?;
            }
            changed.push(path.to_string());
        }
    }
    let status = match (check, changed.is_empty()) {
        (_, true) => "formatted",
        (true, false) => "unformatted",
        (false, false) => "reformatted",
    };
    out.result(&json!({ "status": status, "files": changed }), || {
        match (check, changed.is_empty()) {
            (_, true) => "every policy file is formatted".to_string(),
            (true, false) => format!(
                "not formatted (run `stele bundle fmt {}`): {}",
                dir.display(),
                changed.join(", ")
            ),
            (false, false) => format!("reformatted: {}", changed.join(", ")),
        }
    });
    if check && !changed.is_empty() {
        return Err(Failure::new(
            Code::Unformatted,
            format!("{} policy file(s) are not formatted", changed.len()),
        )
        .told_by_results());
    }
    Ok(())
}

const INIT_SCHEMA: &str = r#"// The entity types and actions the policies may use; every policy is
// validated against this schema.
entity User = { department: String };
entity Document = { owner: User };

action read appliesTo {
  principal: User,
  resource: Document,
};
"#;

const INIT_POLICY: &str = r#"// Owners read their own documents.
@id("owners-read")
permit (
  principal,
  action == Action::"read",
  resource
)
when { resource.owner == principal };
"#;

const INIT_ENTITIES: &str = r#"[
  { "uid": { "type": "User", "id": "alice" }, "attrs": { "department": "eng" }, "parents": [] },
  { "uid": { "type": "User", "id": "bob" }, "attrs": { "department": "sales" }, "parents": [] },
  {
    "uid": { "type": "Document", "id": "plan" },
    "attrs": { "owner": { "__entity": { "type": "User", "id": "alice" } } },
    "parents": []
  }
]
"#;

const INIT_SCENARIOS: &str = r#"{
  "queries": [
    {
      "description": "the owner reads her document",
      "principal": { "type": "User", "id": "alice" },
      "action": { "type": "Action", "id": "read" },
      "resource": { "type": "Document", "id": "plan" },
      "decision": "Allow",
      "reasons": ["owners-read"]
    },
    {
      "description": "someone else does not",
      "principal": { "type": "User", "id": "bob" },
      "action": { "type": "Action", "id": "read" },
      "resource": { "type": "Document", "id": "plan" },
      "decision": "Deny"
    }
  ]
}
"#;

/// A minimal bundle that passes `stele bundle test`: a schema, one policy,
/// entities and two scenarios. Never writes into a non-empty directory.
fn init(out: Output, dir: &Path) -> Result<()> {
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(Failure::new(
            Code::Exists,
            format!(
                "{} is not empty; `stele bundle init` writes only into a new or empty directory",
                dir.display()
            ),
        ));
    }
    let tests = dir.join(TESTS_DIR);
    std::fs::create_dir_all(&tests).map_err(|e| Failure::io(&tests, e))?;
    // Written as the formatter writes it, so `bundle fmt --check` passes.
    let policy = policies_str_to_pretty(INIT_POLICY, &Config::default())
        .expect("the built-in policy is valid Cedar");
    let files = [
        (SCHEMA_FILE, INIT_SCHEMA),
        ("policies.cedar", policy.as_str()),
        (stele_policy::layout::ENTITIES_FILE, INIT_ENTITIES),
        ("tests/owners.json", INIT_SCENARIOS),
    ];
    for (path, text) in files {
        create_new(&dir.join(path), text.as_bytes(), 0o644)?;
    }
    let digest = load_dir(dir)?.digest();
    out.result(
        &json!({ "dir": dir, "digest": digest, "files": files.map(|(path, _)| path) }),
        || {
            format!(
                "wrote a bundle to {}: {}; test it with `stele bundle test {}`",
                dir.display(),
                files.map(|(path, _)| path).join(", "),
                dir.display()
            )
        },
    );
    Ok(())
}
