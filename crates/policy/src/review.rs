//! What an approver reads before signing: every change between two bundles
//! as text. Policies by id (the Cedar source of each, as written), the
//! schema, entities by uid and attribute, scenarios, and any text of a
//! policy file that lies outside its policies, so that no byte that changed
//! goes unshown.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use similar::TextDiff;
use stele_ledger::BundleFiles;

use crate::compile::parse_policies;
use crate::diff::policy_form;
use crate::error::BundleError;
use crate::layout::{ENTITIES_FILE, FileRole, SCHEMA_FILE, role_of};

/// Lines of context around each change in a unified diff.
const CONTEXT_LINES: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

/// One piece of text, before and after, with its unified diff (every line of
/// an added or removed text, prefixed `+` or `-`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TextChange {
    pub change: ChangeKind,
    pub before: Option<String>,
    pub after: Option<String>,
    pub diff: String,
}

impl TextChange {
    fn between(before: Option<&str>, after: Option<&str>) -> Option<TextChange> {
        let change = match (before, after) {
            (None, None) => return None,
            (Some(b), Some(a)) if b == a => return None,
            (None, Some(_)) => ChangeKind::Added,
            (Some(_), None) => ChangeKind::Removed,
            (Some(_), Some(_)) => ChangeKind::Changed,
        };
        let diff = TextDiff::from_lines(before.unwrap_or(""), after.unwrap_or(""))
            .unified_diff()
            .context_radius(CONTEXT_LINES)
            .missing_newline_hint(false)
            .to_string();
        Some(TextChange {
            change,
            before: before.map(str::to_string),
            after: after.map(str::to_string),
            diff,
        })
    }
}

/// A policy's change, by its stele id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyChange {
    pub id: String,
    /// The file it is in (after the change, or before a removal).
    pub file: String,
    /// False when only the text changed (spacing, comments), not what the
    /// policy means.
    pub meaning_changed: bool,
    #[serde(flatten)]
    pub text: TextChange,
}

/// A file's change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileChange {
    pub path: String,
    #[serde(flatten)]
    pub text: TextChange,
}

/// An entity's change, by uid (`Type::"id"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntityChange {
    pub uid: String,
    pub change: ChangeKind,
    /// Attributes (and tags, as `tag NAME`) added, removed or changed.
    pub attributes: Vec<ValueChange>,
    pub parents_added: Vec<String>,
    pub parents_removed: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ValueChange {
    pub name: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Everything that differs between two bundles.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Review {
    pub policies: Vec<PolicyChange>,
    pub schema: Option<TextChange>,
    pub entities: Vec<EntityChange>,
    /// Set when an `entities.json` is not an array of entities (a bundle
    /// that does not compile): its change is then in `files`.
    pub entities_unreadable: bool,
    pub scenarios: Vec<FileChange>,
    /// Policy files whose text outside their policies changed (comments
    /// between policies), and files the other parts could not read.
    pub files: Vec<FileChange>,
}

impl Review {
    pub fn is_empty(&self) -> bool {
        *self == Review::default()
    }
}

/// The review of `new` against `old` (`None`: everything in `new` is new,
/// as for a genesis). Bundles whose policies do not parse are compared file
/// by file: the approver still sees every changed byte.
pub fn review(old: Option<&BundleFiles>, new: &BundleFiles) -> Review {
    let empty = BundleFiles::default();
    let old = old.unwrap_or(&empty);
    let mut review = Review {
        schema: TextChange::between(old.get(SCHEMA_FILE), new.get(SCHEMA_FILE)),
        ..Review::default()
    };
    match (policy_texts(old), policy_texts(new)) {
        (Ok(before), Ok(after)) => {
            review.policies = policy_changes(&before, &after);
            review
                .files
                .extend(outside_policy_changes(old, new, &before, &after));
        }
        _ => review
            .files
            .extend(file_changes(old, new, FileRole::Policies)),
    }
    match (
        entities(old.get(ENTITIES_FILE)),
        entities(new.get(ENTITIES_FILE)),
    ) {
        (Some(before), Some(after)) => review.entities = entity_changes(&before, &after),
        _ => {
            review.entities_unreadable = true;
            review
                .files
                .extend(file_changes(old, new, FileRole::Entities));
        }
    }
    review.scenarios = file_changes(old, new, FileRole::Scenarios);
    review
}

struct PolicyText {
    file: String,
    text: String,
    /// Cedar's JSON form: equal forms mean equal policies.
    form: String,
}

fn policy_texts(bundle: &BundleFiles) -> Result<BTreeMap<String, PolicyText>, BundleError> {
    // Where the last policy of each file ended: policies come in source
    // order, so each is found after the one before it.
    let mut cursors: BTreeMap<String, usize> = BTreeMap::new();
    Ok(parse_policies(bundle)?
        .into_iter()
        .map(|named| {
            let form = policy_form(&named.policy);
            // Cedar keeps the source text of a parsed policy: the policy as
            // its author wrote it, with the comment lines just above it.
            let source = named.policy.to_string();
            let file_text = bundle.get(&named.file).unwrap_or_default();
            let cursor = cursors.entry(named.file.clone()).or_default();
            let text = match file_text[*cursor..].find(&source) {
                Some(found) => {
                    let start = *cursor + found;
                    let end = start + source.len();
                    *cursor = end;
                    let with_comments = leading_comments_start(&file_text[..start]);
                    file_text[with_comments..end].to_string()
                }
                None => source,
            };
            let text = PolicyText {
                file: named.file,
                text,
                form,
            };
            (named.id, text)
        })
        .collect())
}

/// Where the comment lines directly above a policy starting at the end of
/// `before` begin (the policy's own start when there are none).
fn leading_comments_start(before: &str) -> usize {
    let mut start = before.len();
    // The policy's own line, up to where it starts, must be blank.
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    if !before[line_start..].trim().is_empty() {
        return start;
    }
    start = line_start;
    while start > 0 {
        let above_end = start - 1;
        let above_start = before[..above_end].rfind('\n').map_or(0, |i| i + 1);
        if !before[above_start..above_end]
            .trim_start()
            .starts_with("//")
        {
            break;
        }
        start = above_start;
    }
    start
}

fn policy_changes(
    before: &BTreeMap<String, PolicyText>,
    after: &BTreeMap<String, PolicyText>,
) -> Vec<PolicyChange> {
    let ids: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    ids.into_iter()
        .filter_map(|id| {
            let (old, new) = (before.get(id), after.get(id));
            let text =
                TextChange::between(old.map(|p| p.text.as_str()), new.map(|p| p.text.as_str()));
            let moved = matches!((old, new), (Some(o), Some(n)) if o.file != n.file);
            let text = match text {
                Some(text) => text,
                // Same text in another file: shown, so a move is not silent.
                None if moved => TextChange {
                    change: ChangeKind::Changed,
                    before: old.map(|p| p.text.clone()),
                    after: new.map(|p| p.text.clone()),
                    diff: String::new(),
                },
                None => return None,
            };
            let meaning_changed = match (old, new) {
                (Some(o), Some(n)) => o.form != n.form,
                _ => true,
            };
            Some(PolicyChange {
                id: id.clone(),
                file: new.or(old).map(|p| p.file.clone()).unwrap_or_default(),
                meaning_changed,
                text,
            })
        })
        .collect()
}

/// Each policy file with its policies' text taken out: what is left is
/// comments and spacing between policies, compared file by file.
fn outside_policy_changes(
    old: &BundleFiles,
    new: &BundleFiles,
    before: &BTreeMap<String, PolicyText>,
    after: &BTreeMap<String, PolicyText>,
) -> Vec<FileChange> {
    fn residue<'a>(
        bundle: &'a BundleFiles,
        policies: &BTreeMap<String, PolicyText>,
    ) -> BTreeMap<&'a str, String> {
        let mut files: BTreeMap<&str, String> = bundle
            .files()
            .filter(|(path, _)| role_of(path) == Some(FileRole::Policies))
            .map(|(path, text)| (path, text.to_string()))
            .collect();
        for policy in policies.values() {
            if let Some(text) = files.get_mut(policy.file.as_str()) {
                *text = text.replacen(&policy.text, "", 1);
            }
        }
        files
    }
    let (old_rest, new_rest) = (residue(old, before), residue(new, after));
    let paths: std::collections::BTreeSet<&str> =
        old_rest.keys().chain(new_rest.keys()).copied().collect();
    paths
        .into_iter()
        .filter(|path| {
            let kept =
                |rest: &BTreeMap<&str, String>| rest.get(path).map(|text| text.trim().to_string());
            kept(&old_rest) != kept(&new_rest)
        })
        .filter_map(|path| {
            TextChange::between(old.get(path), new.get(path)).map(|text| FileChange {
                path: path.to_string(),
                text,
            })
        })
        .collect()
}

fn file_changes(old: &BundleFiles, new: &BundleFiles, role: FileRole) -> Vec<FileChange> {
    let paths: std::collections::BTreeSet<&str> = old
        .files()
        .chain(new.files())
        .map(|(path, _)| path)
        .filter(|path| role_of(path) == Some(role))
        .collect();
    paths
        .into_iter()
        .filter_map(|path| {
            TextChange::between(old.get(path), new.get(path)).map(|text| FileChange {
                path: path.to_string(),
                text,
            })
        })
        .collect()
}

struct Entity {
    attributes: BTreeMap<String, Value>,
    parents: std::collections::BTreeSet<String>,
}

/// `entities.json` by uid; `None` when it is not an array of entities.
/// A bundle without the file has no entities.
fn entities(text: Option<&str>) -> Option<BTreeMap<String, Entity>> {
    let Some(text) = text else {
        return Some(BTreeMap::new());
    };
    let Value::Array(items) = serde_json::from_str(text).ok()? else {
        return None;
    };
    let mut out = BTreeMap::new();
    for item in items {
        let uid = uid_text(item.get("uid")?)?;
        let mut attributes: BTreeMap<String, Value> = match item.get("attrs") {
            Some(Value::Object(attrs)) => attrs.clone().into_iter().collect(),
            None => BTreeMap::new(),
            Some(_) => return None,
        };
        if let Some(Value::Object(tags)) = item.get("tags") {
            for (name, value) in tags {
                attributes.insert(format!("tag {name}"), value.clone());
            }
        }
        let parents = match item.get("parents") {
            Some(Value::Array(parents)) => parents.iter().map(uid_text).collect::<Option<_>>()?,
            None => Default::default(),
            Some(_) => return None,
        };
        out.insert(
            uid,
            Entity {
                attributes,
                parents,
            },
        );
    }
    Some(out)
}

/// `Type::"id"` from `{"type","id"}` or `{"__entity":{"type","id"}}`.
fn uid_text(uid: &Value) -> Option<String> {
    let uid = uid.get("__entity").unwrap_or(uid);
    let kind = uid.get("type")?.as_str()?;
    let id = uid.get("id")?.as_str()?;
    Some(format!("{kind}::{}", Value::String(id.to_string())))
}

fn entity_changes(
    before: &BTreeMap<String, Entity>,
    after: &BTreeMap<String, Entity>,
) -> Vec<EntityChange> {
    let empty = Entity {
        attributes: BTreeMap::new(),
        parents: Default::default(),
    };
    let uids: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    uids.into_iter()
        .filter_map(|uid| {
            let change = match (before.get(uid), after.get(uid)) {
                (None, _) => ChangeKind::Added,
                (_, None) => ChangeKind::Removed,
                _ => ChangeKind::Changed,
            };
            let old = before.get(uid).unwrap_or(&empty);
            let new = after.get(uid).unwrap_or(&empty);
            let names: std::collections::BTreeSet<&String> =
                old.attributes.keys().chain(new.attributes.keys()).collect();
            let attributes: Vec<ValueChange> = names
                .into_iter()
                .filter(|name| old.attributes.get(*name) != new.attributes.get(*name))
                .map(|name| ValueChange {
                    name: name.clone(),
                    before: old.attributes.get(name).cloned(),
                    after: new.attributes.get(name).cloned(),
                })
                .collect();
            let parents_added: Vec<String> =
                new.parents.difference(&old.parents).cloned().collect();
            let parents_removed: Vec<String> =
                old.parents.difference(&new.parents).cloned().collect();
            let unchanged = change == ChangeKind::Changed
                && attributes.is_empty()
                && parents_added.is_empty()
                && parents_removed.is_empty();
            (!unchanged).then(|| EntityChange {
                uid: uid.clone(),
                change,
                attributes,
                parents_added,
                parents_removed,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(files: &[(&str, &str)]) -> BundleFiles {
        let mut bundle = BundleFiles::default();
        for (path, text) in files {
            bundle.insert(path.to_string(), text.to_string()).unwrap();
        }
        bundle
    }

    const SCHEMA: &str =
        "entity User; entity Doc; action read appliesTo { principal: User, resource: Doc };";

    #[test]
    fn a_changed_policy_shows_its_changed_cedar_line() {
        let old = bundle(&[
            (SCHEMA_FILE, SCHEMA),
            (
                "a.cedar",
                "@id(\"read\")\npermit (\n  principal,\n  action == Action::\"read\",\n  resource\n);\n",
            ),
        ]);
        let new = bundle(&[
            (SCHEMA_FILE, SCHEMA),
            (
                "a.cedar",
                "@id(\"read\")\npermit (\n  principal == User::\"alice\",\n  action == Action::\"read\",\n  resource\n);\n",
            ),
        ]);
        let review = review(Some(&old), &new);
        assert_eq!(review.policies.len(), 1, "{review:?}");
        let change = &review.policies[0];
        assert_eq!(change.id, "read");
        assert!(change.meaning_changed);
        assert!(
            change.text.diff.contains("-  principal,\n"),
            "{}",
            change.text.diff
        );
        assert!(
            change
                .text
                .diff
                .contains("+  principal == User::\"alice\",\n"),
            "{}",
            change.text.diff
        );
        assert!(
            review.files.is_empty() && review.schema.is_none(),
            "{review:?}"
        );
    }

    #[test]
    fn a_comment_above_a_policy_is_its_own_and_one_apart_is_the_files() {
        let policy = "@id(\"read\")\npermit (principal, action, resource);\n";
        let old = bundle(&[(SCHEMA_FILE, SCHEMA), ("a.cedar", policy)]);
        let above = bundle(&[
            (SCHEMA_FILE, SCHEMA),
            ("a.cedar", &format!("// a note\n{policy}")),
        ]);
        let review_above = review(Some(&old), &above);
        assert_eq!(review_above.policies.len(), 1, "{review_above:?}");
        assert!(!review_above.policies[0].meaning_changed);
        assert!(review_above.policies[0].text.diff.contains("+// a note\n"));
        assert!(review_above.files.is_empty(), "{review_above:?}");
        let apart = bundle(&[
            (SCHEMA_FILE, SCHEMA),
            ("a.cedar", &format!("// a note\n\n{policy}")),
        ]);
        let review_apart = review(Some(&old), &apart);
        assert!(review_apart.policies.is_empty(), "{review_apart:?}");
        assert_eq!(review_apart.files.len(), 1, "{review_apart:?}");
        assert!(review_apart.files[0].text.diff.contains("+// a note"));
    }

    #[test]
    fn entities_are_compared_by_uid_and_attribute() {
        let old = bundle(&[(
            ENTITIES_FILE,
            r#"[{"uid":{"type":"User","id":"alice"},"attrs":{"level":1},"parents":[]},
                {"uid":{"type":"User","id":"bob"},"attrs":{},"parents":[]}]"#,
        )]);
        let new = bundle(&[(
            ENTITIES_FILE,
            r#"[{"uid":{"__entity":{"type":"User","id":"alice"}},"attrs":{"level":2},"parents":[{"type":"Group","id":"admins"}]},
                {"uid":{"type":"User","id":"carol"},"attrs":{"level":1},"parents":[]}]"#,
        )]);
        let review = review(Some(&old), &new);
        let by_uid: BTreeMap<&str, &EntityChange> = review
            .entities
            .iter()
            .map(|e| (e.uid.as_str(), e))
            .collect();
        let alice = by_uid[r#"User::"alice""#];
        assert_eq!(alice.change, ChangeKind::Changed);
        assert_eq!(alice.attributes[0].name, "level");
        assert_eq!(alice.attributes[0].before, Some(1.into()));
        assert_eq!(alice.attributes[0].after, Some(2.into()));
        assert_eq!(alice.parents_added, [r#"Group::"admins""#]);
        assert_eq!(by_uid[r#"User::"bob""#].change, ChangeKind::Removed);
        assert_eq!(by_uid[r#"User::"carol""#].change, ChangeKind::Added);
        assert!(!review.entities_unreadable);
    }

    #[test]
    fn policies_that_do_not_parse_are_compared_as_files() {
        let old = bundle(&[
            (SCHEMA_FILE, SCHEMA),
            ("a.cedar", "permit (principal, action, resource);"),
        ]);
        let new = bundle(&[
            (SCHEMA_FILE, SCHEMA),
            ("a.cedar", "permit (principal, action, resource;"),
        ]);
        let review = review(Some(&old), &new);
        assert!(review.policies.is_empty());
        assert_eq!(review.files[0].path, "a.cedar");
        assert!(
            review.files[0]
                .text
                .diff
                .contains("+permit (principal, action, resource;")
        );
    }

    #[test]
    fn the_same_bundle_reviews_empty() {
        let same = bundle(&[
            (SCHEMA_FILE, SCHEMA),
            ("a.cedar", "permit (principal, action, resource);"),
        ]);
        assert!(review(Some(&same), &same).is_empty());
        assert!(!review(None, &same).is_empty());
    }
}
