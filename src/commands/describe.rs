//! How versions are printed, shared by `ledger log|show` and `proposal show`.

use serde_json::{Value, json};
use stele_ledger::{Kind, Ledger, Version};
use stele_policy::BundleDiff;

/// A version's header and signers as JSON.
pub fn version_json(version: &Version) -> Value {
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
    });
    if let Kind::Rollback { to_seq } = header.kind {
        value["to_seq"] = to_seq.into();
    }
    if let Some(trust) = &header.trust {
        value["trust"] = json!({ "threshold": trust.threshold(), "keys": trust.keys() });
    }
    value
}

/// One line per version, for `ledger log`.
pub fn version_line(version: &Version) -> String {
    let header = &version.header;
    format!(
        "{:>5}  {}  {:<14} {} signer(s)  {}  {}",
        header.seq,
        version.hash().short(),
        header.kind.to_string(),
        version.distinct_signers(),
        header.author,
        header.message.lines().next().unwrap_or_default()
    )
}

/// A full description, for `ledger show` and `proposal show`.
pub fn version_text(version: &Version) -> String {
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
    if let Some(trust) = &header.trust {
        text.push_str(&format!(
            "trust set:     {} of {} approvers\n",
            trust.threshold(),
            trust.keys().len()
        ));
        for key in trust.keys() {
            text.push_str(&format!("  approver     {key}\n"));
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
        text.push_str(&format!("  signed by    {} ({verdict})\n", approval.key));
    }
    text.push_str(&format!(
        "message:\n  {}",
        header.message.replace('\n', "\n  ")
    ));
    text
}

/// The bundle's files with their sizes and digests.
pub fn bundle_files_json(ledger: &Ledger, version: &Version) -> Value {
    let Some(bundle) = ledger.bundle(&version.header.bundle_digest) else {
        return Value::Null;
    };
    files_json(bundle)
}

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

/// What changed between two bundles, one line each ("added policy: ID").
pub fn diff_lines(changes: &BundleDiff) -> Vec<String> {
    [
        ("added policy", &changes.policies_added),
        ("removed policy", &changes.policies_removed),
        ("changed policy", &changes.policies_changed),
        ("added file", &changes.files_added),
        ("removed file", &changes.files_removed),
        ("changed file", &changes.files_changed),
    ]
    .into_iter()
    .flat_map(|(label, items)| items.iter().map(move |item| format!("{label}: {item}")))
    .collect()
}
