//! Parsing a bundle's policies (with stele's policy ids), its schema and
//! entities, and validating the policies strictly against the schema.

use std::collections::BTreeMap;
use std::str::FromStr;

use cedar_policy::{Entities, Policy, PolicyId, PolicySet, Schema, ValidationMode, Validator};
use stele_ledger::BundleFiles;

use crate::diagnostics::{render, render_syntax};
use crate::error::BundleError;
use crate::layout::{ENTITIES_FILE, FileRole, SCHEMA_FILE, check_layout, role_of};

/// A policy with the id stele gives it and the file it came from.
#[derive(Clone, Debug)]
pub struct NamedPolicy {
    pub id: String,
    pub file: String,
    pub policy: Policy,
}

/// Everything a snapshot is made of, checked.
pub(crate) struct Compiled {
    pub schema: Schema,
    pub policies: Vec<NamedPolicy>,
    pub policy_set: PolicySet,
    pub entities: Entities,
}

pub(crate) fn compile(bundle: &BundleFiles) -> Result<Compiled, BundleError> {
    check_layout(bundle)?;
    let schema_text = bundle
        .get(SCHEMA_FILE)
        .expect("check_layout ensures a schema");
    let (schema, _warnings) = Schema::from_cedarschema_str(schema_text)
        .map_err(|e| BundleError::Invalid(render(SCHEMA_FILE, schema_text, &e)))?;
    let policies = parse_policies(bundle)?;
    let policy_set = PolicySet::from_policies(policies.iter().map(|p| p.policy.clone()))
        .map_err(|e| BundleError::Invalid(vec![format!("policies: {e}")]))?;
    validate(bundle, &schema, &policies, &policy_set)?;
    let entities = match bundle.get(ENTITIES_FILE) {
        Some(text) => Entities::from_json_str(text, Some(&schema))
            .map_err(|e| BundleError::Invalid(render(ENTITIES_FILE, text, &e)))?,
        // Still built through the schema, which adds the action entities
        // (and so the action groups) that `action in …` needs.
        None => Entities::from_json_str("[]", Some(&schema))
            .map_err(|e| BundleError::Invalid(vec![format!("{SCHEMA_FILE}: {e}")]))?,
    };
    Ok(Compiled {
        schema,
        policies,
        policy_set,
        entities,
    })
}

/// Parses every `*.cedar` file and names each policy: its `@id("…")`
/// annotation when present; otherwise Cedar's `policyN` in a one-file
/// bundle, `<file stem>/policyN` with several files. Ids must be unique and
/// templates are refused.
pub fn parse_policies(bundle: &BundleFiles) -> Result<Vec<NamedPolicy>, BundleError> {
    let files: Vec<(&str, &str)> = bundle
        .files()
        .filter(|(path, _)| role_of(path) == Some(FileRole::Policies))
        .collect();
    let prefix_with_stem = files.len() > 1;
    let mut errors = Vec::new();
    let mut policies = Vec::new();
    for (file, text) in files {
        let set = match PolicySet::from_str(text) {
            Ok(set) => set,
            Err(e) => {
                errors.extend(e.iter().flat_map(|error| render_syntax(file, text, error)));
                continue;
            }
        };
        if let Some(template) = set.templates().next() {
            errors.push(format!(
                "{file}: {} is a template (it uses ?principal or ?resource); templates are not supported",
                template.id()
            ));
            continue;
        }
        let mut in_source_order: Vec<&Policy> = set.policies().collect();
        in_source_order.sort_by_key(|policy| cedar_position(policy.id()));
        for policy in in_source_order {
            let id = match policy.annotation("id") {
                Some(annotated) => annotated.to_string(),
                None if prefix_with_stem => {
                    let stem = file.strip_suffix(".cedar").unwrap_or(file);
                    format!("{stem}/{}", policy.id())
                }
                None => policy.id().to_string(),
            };
            policies.push(NamedPolicy {
                policy: policy.new_id(PolicyId::new(&id)),
                id,
                file: file.to_string(),
            });
        }
    }
    let mut first_file_by_id: BTreeMap<&str, &str> = BTreeMap::new();
    for policy in &policies {
        if policy.id.is_empty() {
            errors.push(format!("{}: a policy has an empty @id", policy.file));
        } else if let Some(other) = first_file_by_id.insert(&policy.id, &policy.file) {
            errors.push(format!(
                "{}: policy id {:?} is already used in {other}; policy ids must be unique",
                policy.file, policy.id
            ));
        }
    }
    if errors.is_empty() {
        Ok(policies)
    } else {
        Err(BundleError::Invalid(errors))
    }
}

/// The N of Cedar's default id `policyN`, which numbers policies in source
/// order.
fn cedar_position(id: &PolicyId) -> u64 {
    id.to_string()
        .strip_prefix("policy")
        .and_then(|n| n.parse().ok())
        .expect("PolicySet::from_str names policies policy0, policy1, …")
}

fn validate(
    bundle: &BundleFiles,
    schema: &Schema,
    policies: &[NamedPolicy],
    policy_set: &PolicySet,
) -> Result<(), BundleError> {
    let result = Validator::new(schema.clone()).validate(policy_set, ValidationMode::Strict);
    if result.validation_passed() {
        return Ok(());
    }
    let file_by_id: BTreeMap<&str, &str> = policies
        .iter()
        .map(|p| (p.id.as_str(), p.file.as_str()))
        .collect();
    let errors = result
        .validation_errors()
        .flat_map(|error| {
            let file = file_by_id
                .get(error.policy_id().to_string().as_str())
                .copied()
                .unwrap_or("policies");
            let text = bundle.get(file).unwrap_or_default();
            render(file, text, error)
        })
        .collect();
    Err(BundleError::Invalid(errors))
}
