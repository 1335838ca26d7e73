//! What a signer reads before signing, and the question they answer. The
//! review is built here, from bytes this command checked (the proposal's
//! hash is its id, each bundle matches its digest, the parent is the
//! version the proposal names): a node's own account of a change is never
//! shown.

use std::io::{BufRead, IsTerminal, Write};

use serde_json::{Value, json};
use stele_ledger::{BundleFiles, Kind, MemberSet, PublicKey, TrustSet, Version};
use stele_policy::{ChangeKind, Review, TextChange, check_bundle, review};

use super::describe::{Names, member_changes, version_json, version_text};
use crate::cli::Confirm;
use crate::failure::{Code, Failure, Result};
use crate::terminal_text::terminal_safe;

/// What is in force after a seq: the trust set the last genesis or
/// rotation up to it declared, and the member set the last genesis or
/// membership version declared.
#[derive(Default)]
pub struct InForce {
    pub trust: Option<TrustSet>,
    pub members: Option<MemberSet>,
}

impl InForce {
    /// After `versions` (oldest first), up to and including `seq`.
    pub fn after(versions: &[Version], seq: u64) -> InForce {
        let mut in_force = InForce::default();
        for version in versions.iter().take_while(|v| v.seq() <= seq) {
            if let Some(declared) = &version.header.trust {
                in_force.trust = Some(declared.clone());
            }
            if let Some(declared) = &version.header.members {
                in_force.members = Some(declared.clone());
            }
        }
        in_force
    }
}

/// What a version is reviewed with: the sets in force below it, and the
/// names of every key the chain (and the version itself) names.
pub struct Below {
    pub in_force: InForce,
    pub names: Names,
    /// The chain below is not at hand (a proposal file read without its
    /// ledger): which keys are approvers is unknown.
    pub unknown_trust: bool,
}

impl Below {
    /// Below `version`, on `versions` (oldest first).
    pub fn of(versions: &[Version], version: &Version) -> Below {
        let mut names = Names::of(versions);
        if let Some(declared) = &version.header.trust {
            names.learn_proposed(declared);
        }
        Below {
            in_force: InForce::after(versions, version.seq().saturating_sub(1)),
            names,
            unknown_trust: false,
        }
    }

    pub fn subject<'a>(
        &'a self,
        version: &'a Version,
        bundle: &'a BundleFiles,
        parent: Option<&'a BundleFiles>,
    ) -> Subject<'a> {
        Subject {
            version,
            bundle,
            parent,
            members_before: self.in_force.members.as_ref(),
            names: &self.names,
            approvers: (!self.unknown_trust).then(|| {
                self.in_force
                    .trust
                    .iter()
                    .chain(version.header.trust.iter())
                    .collect()
            }),
        }
    }
}

/// A version to review, with what it is compared against.
pub struct Subject<'a> {
    pub version: &'a Version,
    pub bundle: &'a BundleFiles,
    /// The parent's bundle; `None` for a genesis (everything is new).
    pub parent: Option<&'a BundleFiles>,
    /// The member set in force at the parent, for a version that lists one.
    pub members_before: Option<&'a MemberSet>,
    pub names: &'a Names,
    /// The trust sets a signature on this version counts in (the set in
    /// force, and the one a genesis or rotation declares); `None` when not
    /// known here (a proposal file read without its ledger).
    pub approvers: Option<Vec<&'a TrustSet>>,
}

impl Subject<'_> {
    /// Signatures by keys of no trust set this version answers to.
    pub fn strangers(&self) -> Vec<PublicKey> {
        let Some(sets) = &self.approvers else {
            return Vec::new();
        };
        self.version
            .signers()
            .filter(|key| !sets.iter().any(|set| set.contains(key)))
            .copied()
            .collect()
    }

    /// The review as data and as text.
    pub fn render(&self) -> (Value, String) {
        let mut value = version_json(self.version, self.names);
        let mut text = version_text(self.version, self.names);
        let strangers = self.strangers();
        if !strangers.is_empty() {
            value["unknown_signers"] = json!(strangers);
            for key in &strangers {
                text.push_str(&format!(
                    "\nUNKNOWN SIGNER {key}: not an approver of the trust set in force, so it never counts, and the version cannot be appended while it carries it; remove it with `stele proposal unsign FILE --approver {key}`"
                ));
            }
        }
        if let (Some(before), Some(after)) = (self.members_before, &self.version.header.members) {
            let changes = member_changes(Some(before), after);
            value["member_changes"] = json!(changes);
            text.push_str("\nmember changes:");
            for change in changes {
                text.push_str(&format!("\n  {change}"));
            }
        }
        let (check, check_text) = bundle_check(self.bundle);
        value["bundle_check"] = check;
        text.push_str(&format!("\nbundle check:  {check_text}"));
        let changes = review(self.parent, self.bundle);
        let against = match self.parent {
            Some(_) => "the parent",
            None => "nothing (a genesis: everything is new)",
        };
        text.push_str(&format!(
            "\nchanges against {against}:\n{}",
            review_text(&changes)
        ));
        value["review"] = serde_json::to_value(&changes).expect("a review serializes");
        (value, text)
    }
}

fn bundle_check(bundle: &BundleFiles) -> (Value, String) {
    match check_bundle(bundle) {
        Ok(_) => (
            json!({ "ok": true }),
            "ok (compiles, validates, every scenario passes)".into(),
        ),
        Err(error) => (
            json!({ "ok": false, "message": error.to_string() }),
            format!("FAILS\n  {}", error.to_string().replace('\n', "\n  ")),
        ),
    }
}

/// Every change, as an approver reads it: the Cedar of each changed policy
/// as a unified diff, added and removed policies in full, the schema's
/// diff, entities attribute by attribute, scenarios and other text.
pub fn review_text(review: &Review) -> String {
    if review.is_empty() {
        return "  none: the bundle is the parent's".into();
    }
    let mut text = String::new();
    for policy in &review.policies {
        let what = match (policy.text.change, policy.meaning_changed) {
            (ChangeKind::Changed, false) => "text changed, meaning unchanged",
            (kind, _) => change_name(kind),
        };
        text.push_str(&format!(
            "  policy {:?} ({}): {what}\n",
            policy.id, policy.file
        ));
        push_diff(&mut text, &policy.text);
    }
    if let Some(schema) = &review.schema {
        text.push_str(&format!(
            "  schema ({}): {}\n",
            stele_policy::layout::SCHEMA_FILE,
            change_name(schema.change)
        ));
        push_diff(&mut text, schema);
    }
    for entity in &review.entities {
        text.push_str(&format!(
            "  entity {}: {}\n",
            entity.uid,
            change_name(entity.change)
        ));
        for attribute in &entity.attributes {
            let show = |value: &Option<Value>| {
                value
                    .as_ref()
                    .map_or_else(|| "(none)".to_string(), Value::to_string)
            };
            text.push_str(&format!(
                "    {}: {} -> {}\n",
                attribute.name,
                show(&attribute.before),
                show(&attribute.after)
            ));
        }
        for parent in &entity.parents_added {
            text.push_str(&format!("    parent added: {parent}\n"));
        }
        for parent in &entity.parents_removed {
            text.push_str(&format!("    parent removed: {parent}\n"));
        }
    }
    for scenario in &review.scenarios {
        text.push_str(&format!(
            "  scenario file {}: {}\n",
            scenario.path,
            change_name(scenario.text.change)
        ));
        push_diff(&mut text, &scenario.text);
    }
    for file in &review.files {
        text.push_str(&format!(
            "  file {} (text outside its policies, or unreadable): {}\n",
            file.path,
            change_name(file.text.change)
        ));
        push_diff(&mut text, &file.text);
    }
    text.trim_end().to_string()
}

fn change_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Added => "added",
        ChangeKind::Removed => "removed",
        ChangeKind::Changed => "changed",
    }
}

fn push_diff(text: &mut String, change: &TextChange) {
    for line in change.diff.lines() {
        text.push_str(&format!("    {line}\n"));
    }
}

/// The parent's bundle, checked against what the proposal names: `parent`
/// must hash to the proposal's parent hash and `bundle` must match the
/// parent's digest, or a node could show the approver a diff against a
/// bundle that is not the one being replaced.
pub fn checked_parent<'a>(
    proposal: &Version,
    parent: &Version,
    bundle: &'a BundleFiles,
) -> Result<&'a BundleFiles> {
    if parent.hash() != proposal.header.parent_hash {
        return Err(Failure::new(
            Code::NodeError,
            format!(
                "the node sent version {} as seq {}, but the proposal's parent is {}; not trusting its answer",
                parent.hash(),
                parent.seq(),
                proposal.header.parent_hash
            ),
        ));
    }
    if bundle.digest() != parent.header.bundle_digest {
        return Err(Failure::new(
            Code::NodeError,
            format!(
                "the node sent a bundle for seq {} that digests to {}, not the {} its header names; not trusting its answer",
                parent.seq(),
                bundle.digest(),
                parent.header.bundle_digest
            ),
        ));
    }
    Ok(bundle)
}

/// Asks the signer to confirm, after showing them `review` on a terminal;
/// `--yes` answers for them. Without a terminal, and without `--yes`,
/// nothing is signed: a script must say that it means it. An id given as
/// a prefix is signed only after a person has seen the full id.
pub fn confirm(confirm: &Confirm, version: &Version, review: &str, by_prefix: bool) -> Result<()> {
    confirm_to("Sign", confirm, version, review, by_prefix)
}

/// [`confirm`], asking to `verb` (Sign, Withdraw) the version.
pub fn confirm_to(
    verb: &str,
    confirm: &Confirm,
    version: &Version,
    review: &str,
    by_prefix: bool,
) -> Result<()> {
    let id = version.hash();
    let what = format!(
        "seq {} ({}), id {id}",
        version.seq(),
        kind_text(&version.header.kind)
    );
    if confirm.yes {
        if by_prefix {
            return Err(Failure::usage(format!(
                "with --yes, give the full 64-hex-digit id ({id}?): a prefix is accepted only when a person reads the full id and the review before signing (8 hex digits can be ground in minutes)"
            )));
        }
        return Ok(());
    }
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if !interactive {
        return Err(Failure::usage(format!(
            "not done: {verb} {what}? There is no terminal to show you what you sign and ask. Read it first (`stele show`, `stele proposal show`), then run this again with --yes"
        )));
    }
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{}\n", terminal_safe(review));
    let _ = write!(
        stderr,
        "{verb} {what}? Type yes to {}: ",
        verb.to_lowercase()
    );
    let _ = stderr.flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::new(Code::Io, format!("reading your answer: {e}")))?;
    match answer.trim() {
        "y" | "yes" => Ok(()),
        _ => Err(Failure::new(
            Code::Declined,
            format!("nothing signed: you did not answer yes ({verb} {what})"),
        )),
    }
}

fn kind_text(kind: &Kind) -> String {
    kind.to_string()
}

#[cfg(test)]
mod tests {
    use stele_ledger::{Authorship, Head, Header, SecretKey};

    use super::*;

    fn bundle(policy: &str) -> BundleFiles {
        let mut bundle = BundleFiles::default();
        bundle.insert("p.cedar".into(), policy.into()).unwrap();
        bundle
    }

    fn by() -> Authorship {
        Authorship {
            message: "m".into(),
            author: "a".into(),
            created_at: 0,
        }
    }

    #[test]
    fn a_parent_is_used_only_if_it_is_the_one_the_proposal_names_with_its_own_bundle() {
        let key = SecretKey::from_seed([7; 32]);
        let trust = TrustSet::new(vec![key.public_key()], 1).unwrap();
        let (first, other) = (bundle("permit (principal, action, resource);"), bundle("x"));
        let parent = Version::unsigned(Header::genesis(first.digest(), trust.clone(), by()));
        let head = Head {
            seq: 1,
            hash: parent.hash(),
        };
        let child = Version::unsigned(Header::after(head, other.digest(), Kind::Update, by()));
        assert!(checked_parent(&child, &parent, &first).is_ok());
        // Another bundle under the right header: a node showing a diff
        // against something else than what is replaced.
        assert_eq!(
            checked_parent(&child, &parent, &other).unwrap_err().code,
            Code::NodeError
        );
        // Another version as the parent.
        let impostor = Version::unsigned(Header::genesis(other.digest(), trust, by()));
        assert_eq!(
            checked_parent(&child, &impostor, &other).unwrap_err().code,
            Code::NodeError
        );
    }
}
