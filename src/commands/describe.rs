//! How versions are printed, shared by `ledger log|show` and `proposal show`.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use stele_ledger::{Kind, Member, MemberChange, MemberSet, PublicKey, TrustSet, Version};

/// What the ledger calls each approver key: the name the latest genesis
/// or rotation that named it signed in. A key the ledger does not name is
/// shown by its first 16 hex digits.
#[derive(Default)]
pub struct Names(BTreeMap<PublicKey, String>);

impl Names {
    pub fn of<'a>(
        versions: impl IntoIterator<Item = &'a Version, IntoIter: DoubleEndedIterator>,
    ) -> Names {
        let mut names = Names::default();
        for version in versions.into_iter().rev() {
            if let Some(trust) = &version.header.trust {
                names.learn(trust);
            }
        }
        names
    }

    /// Adds the names `trust` declares for keys not named yet.
    fn learn(&mut self, trust: &TrustSet) {
        let approvers = trust.approvers().unwrap_or_default();
        for (key, approver) in trust.keys().iter().zip(approvers) {
            self.0.entry(*key).or_insert_with(|| approver.name.clone());
        }
    }

    /// Adds the names a proposal under review declares. It cannot rename a
    /// key the ledger names, and a new key given a name the ledger already
    /// uses is shown as new, so "signed by alice" means the ledger's alice.
    pub fn learn_proposed(&mut self, trust: &TrustSet) {
        let approvers = trust.approvers().unwrap_or_default();
        for (key, approver) in trust.keys().iter().zip(approvers) {
            if self.0.contains_key(key) {
                continue;
            }
            let taken = self.0.values().any(|name| *name == approver.name);
            let name = match taken {
                true => format!(
                    "{} (a new key, not the ledger's {})",
                    approver.name, approver.name
                ),
                false => approver.name.clone(),
            };
            self.0.insert(*key, name);
        }
    }

    pub fn name(&self, key: &PublicKey) -> String {
        match self.0.get(key) {
            Some(name) => name.clone(),
            None => key.short(),
        }
    }

    fn signers(&self, version: &Version) -> Vec<String> {
        version.signers().map(|key| self.name(key)).collect()
    }
}

/// A version's header and signers as JSON.
pub fn version_json(version: &Version, names: &Names) -> Value {
    let header = &version.header;
    let mut value = json!({
        "seq": header.seq,
        "hash": version.hash(),
        "parent_hash": header.parent_hash,
        "bundle_digest": header.bundle_digest,
        "kind": header.kind.name(),
        "message": header.message,
        "author": header.author,
        "created_at": header.created_at,
        "signers": version.signers().collect::<Vec<_>>(),
        "signed_by": names.signers(version),
    });
    if let Kind::Rollback { to_seq } = header.kind {
        value["to_seq"] = to_seq.into();
    }
    if let Some(trust) = &header.trust {
        value["trust"] = json!({ "threshold": trust.threshold(), "keys": trust.keys() });
        if let Some(approvers) = trust.approvers() {
            value["trust"]["approvers"] = trust
                .keys()
                .iter()
                .zip(approvers)
                .map(|(key, who)| json!({ "key": key, "name": who.name, "contact": who.contact }))
                .collect();
        }
    }
    if let Some(at) = header.expires_at {
        value["expires_at"] = at.into();
    }
    if let Some(members) = &header.members {
        value["members"] = json!(members);
    }
    value
}

/// What a version's member set changes, one line per node ("add node 4:
/// learner …", "node 4: learner → voter", "remove node 3"); every node is
/// new when `before` is `None`.
pub fn member_changes(before: Option<&MemberSet>, after: &MemberSet) -> Vec<String> {
    let describe = |m: &Member| {
        let region = match m.region.as_str() {
            "" => String::new(),
            region => format!(", region {region}"),
        };
        format!(
            "{} at {} (peers {}){region}, key {}",
            m.role.name(),
            m.client,
            m.peer,
            m.spki_sha256
        )
    };
    let Some(before) = before else {
        return after
            .members()
            .iter()
            .map(|m| format!("node {}: {}", m.id, describe(m)))
            .collect();
    };
    after
        .changes_from(before)
        .into_iter()
        .map(|change| match change {
            MemberChange::Added(m) => format!("add node {}: {}", m.id, describe(m)),
            MemberChange::Removed(m) => format!("remove node {}", m.id),
            MemberChange::Changed { before, after } if before.role != after.role => format!(
                "node {}: {} -> {}",
                after.id,
                before.role.name(),
                after.role.name()
            ),
            MemberChange::Changed { after, .. } => {
                format!("node {} now: {}", after.id, describe(after))
            }
        })
        .collect()
}

/// One line per version, for `ledger log`.
pub fn version_line(version: &Version, names: &Names) -> String {
    let header = &version.header;
    format!(
        "{:>5}  {}  {:<14} by {:<12} signed by {}  {}",
        header.seq,
        version.hash().short(),
        header.kind.to_string(),
        header.author,
        names.signers(version).join(", "),
        header.message.lines().next().unwrap_or_default()
    )
}

/// A full description, for `ledger show` and `proposal show`.
pub fn version_text(version: &Version, names: &Names) -> String {
    let header = &version.header;
    let mut text = format!(
        "seq:           {}\nhash:          {}\nparent:        {}\nbundle digest: {}\nkind:          {}\nauthor:        {}\ncreated at:    {} (Unix seconds, the author's claim)\n",
        header.seq,
        version.hash(),
        header.parent_hash,
        header.bundle_digest,
        header.kind,
        header.author,
        header.created_at,
    );
    if let Some(at) = header.expires_at {
        text.push_str(&format!(
            "expires at:    {at} (Unix seconds: from then on it cannot commit)\n"
        ));
    }
    if let Some(trust) = &header.trust {
        text.push_str(&format!(
            "trust set:     {} of {} approvers\n",
            trust.threshold(),
            trust.keys().len()
        ));
        let approvers = trust.approvers().unwrap_or_default();
        for (i, key) in trust.keys().iter().enumerate() {
            match approvers.get(i) {
                Some(who) if who.contact.is_empty() => {
                    text.push_str(&format!("  approver     {} {key}\n", who.name));
                }
                Some(who) => text.push_str(&format!(
                    "  approver     {} <{}> {key}\n",
                    who.name, who.contact
                )),
                None => text.push_str(&format!("  approver     {key}\n")),
            }
        }
    }
    if let Some(members) = &header.members {
        text.push_str(&format!("members:       {}\n", members.members().len()));
        for member in members.members() {
            let region = match member.region.as_str() {
                "" => String::new(),
                region => format!(" region {region}"),
            };
            text.push_str(&format!(
                "  node {:<7} {:<8} client {} peer {}{region} key {}\n",
                member.id,
                member.role.name(),
                member.client,
                member.peer,
                member.spki_sha256
            ));
        }
    }
    text.push_str(&format!("signatures:    {}\n", version.signatures.len()));
    let hash = version.hash();
    for approval in &version.signatures {
        let verdict = if approval.key.verifies(&hash, &approval.signature) {
            "valid"
        } else {
            "INVALID: does not verify"
        };
        text.push_str(&format!(
            "  signed by    {} {} ({verdict})\n",
            names.name(&approval.key),
            approval.key
        ));
    }
    text.push_str(&format!(
        "message:\n  {}",
        header.message.replace('\n', "\n  ")
    ));
    text
}

/// The bundle's files with their sizes and digests.
pub fn files_json(bundle: &stele_ledger::BundleFiles) -> Value {
    bundle
        .files()
        .map(|(path, content)| {
            json!({
                "path": path,
                "bytes": content.len(),
                "sha256": stele_ledger::Hash::of_bytes(content.as_bytes()),
            })
        })
        .collect()
}
