//! What changed between two bundles: policies by id, and files.

use std::collections::BTreeMap;

use serde::Serialize;
use stele_ledger::BundleFiles;

use crate::compile::parse_policies;
use crate::error::BundleError;

/// Policies and files added, removed and changed, each list sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BundleDiff {
    pub policies_added: Vec<String>,
    pub policies_removed: Vec<String>,
    pub policies_changed: Vec<String>,
    pub files_added: Vec<String>,
    pub files_removed: Vec<String>,
    pub files_changed: Vec<String>,
}

impl BundleDiff {
    pub fn is_empty(&self) -> bool {
        *self == BundleDiff::default()
    }
}

/// Compares two bundles. A policy has changed when its meaning has (its
/// Cedar AST, annotations included), not when only its spacing has.
pub fn diff(old: &BundleFiles, new: &BundleFiles) -> Result<BundleDiff, BundleError> {
    let (policies_added, policies_removed, policies_changed) =
        compare(&policy_forms(old)?, &policy_forms(new)?);
    let files = |b: &BundleFiles| -> BTreeMap<String, String> {
        b.files()
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect()
    };
    let (files_added, files_removed, files_changed) = compare(&files(old), &files(new));
    Ok(BundleDiff {
        policies_added,
        policies_removed,
        policies_changed,
        files_added,
        files_removed,
        files_changed,
    })
}

fn policy_forms(bundle: &BundleFiles) -> Result<BTreeMap<String, String>, BundleError> {
    Ok(parse_policies(bundle)?
        .into_iter()
        .map(|named| (named.id, policy_form(&named.policy)))
        .collect())
}

/// What a policy means, spacing and comments aside: Cedar's JSON form.
pub(crate) fn policy_form(policy: &cedar_policy::Policy) -> String {
    policy
        .to_json()
        .map(|json| json.to_string())
        .unwrap_or_else(|_| policy.to_string())
}

type Changes = (Vec<String>, Vec<String>, Vec<String>);

fn compare<V: PartialEq>(old: &BTreeMap<String, V>, new: &BTreeMap<String, V>) -> Changes {
    let added = new
        .keys()
        .filter(|k| !old.contains_key(*k))
        .cloned()
        .collect();
    let removed = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    let changed = new
        .iter()
        .filter(|(k, v)| old.get(*k).is_some_and(|before| before != *v))
        .map(|(k, _)| k.clone())
        .collect();
    (added, removed, changed)
}
