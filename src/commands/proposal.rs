//! `stele proposal new|sign|show`: versions collecting approvals, as files
//! that travel between approvers' machines.

use std::path::Path;

use serde_json::{Value, json};
use stele_ledger::{Admitted, Hash, Header, Kind, Ledger, Proposal, Version};
use stele_policy::{admission_check, check_bundle, diff, load_dir};

use super::describe::{files_json, version_json, version_text};
use super::ledger::{next_header, trust_set};
use crate::cli::{ProposalCommand, ProposalKind, ProposalNewArgs};
use crate::failure::{Failure, Result};
use crate::files::{create_new, load_secret_keys, update_locked};
use crate::ledger_files::{
    MAX_PROPOSAL_FILE_BYTES, author_or_default, decode_proposal, load_ledger, load_proposal,
    now_unix_seconds,
};
use crate::output::Output;

pub fn run(out: Output, command: ProposalCommand) -> Result<()> {
    match command {
        ProposalCommand::New(args) => new(out, args),
        ProposalCommand::Sign { proposal, keys } => sign(out, &proposal, &keys),
        ProposalCommand::Show { proposal, ledger } => show(out, &proposal, ledger.as_deref()),
    }
}

fn new(out: Output, args: ProposalNewArgs) -> Result<()> {
    let needs = |present: bool, flag: &str| {
        if present {
            Ok(())
        } else {
            Err(Failure::usage(format!(
                "--kind {} needs {flag}",
                format!("{:?}", args.kind).to_lowercase()
            )))
        }
    };
    let refuses = |present: bool, flag: &str| {
        if present {
            Err(Failure::usage(format!(
                "--kind {} does not take {flag}",
                format!("{:?}", args.kind).to_lowercase()
            )))
        } else {
            Ok(())
        }
    };
    let declares_trust = matches!(args.kind, ProposalKind::Genesis | ProposalKind::Rotate);
    refuses(!declares_trust && !args.approvers.is_empty(), "--approver")?;
    refuses(!declares_trust && args.threshold.is_some(), "--threshold")?;
    refuses(
        args.kind != ProposalKind::Rollback && args.to.is_some(),
        "--to",
    )?;
    let proposal = match args.kind {
        ProposalKind::Genesis => {
            refuses(
                args.ledger.is_some(),
                "--ledger (a genesis starts a new ledger)",
            )?;
            needs(args.bundle.is_some(), "--bundle DIR")?;
            let files = load_dir(args.bundle.as_deref().unwrap_or(Path::new("")))?;
            let header = Header {
                seq: 1,
                parent_hash: Hash::ZERO,
                bundle_digest: files.digest(),
                kind: Kind::Genesis,
                message: args.about.message.clone(),
                author: author_or_default(args.about.author.clone()),
                created_at: now_unix_seconds(),
                trust: Some(trust_set(&args.approvers, args.threshold)?),
            };
            Proposal {
                version: Version::unsigned(header),
                bundle: files,
            }
        }
        kind => {
            needs(args.ledger.is_some(), "--ledger PATH")?;
            let chain = load_ledger(args.ledger.as_deref().unwrap_or(Path::new("")))?;
            let (kind, files, trust) = match kind {
                ProposalKind::Update => {
                    needs(args.bundle.is_some(), "--bundle DIR")?;
                    let files = load_dir(args.bundle.as_deref().unwrap_or(Path::new("")))?;
                    (Kind::Update, files, None)
                }
                ProposalKind::Rollback => {
                    refuses(
                        args.bundle.is_some(),
                        "--bundle (it restores --to SEQ's bundle)",
                    )?;
                    let to_seq = args
                        .to
                        .ok_or_else(|| Failure::usage("--kind rollback needs --to SEQ"))?;
                    let files = chain.bundle_at(to_seq).cloned().ok_or_else(|| {
                        Failure::new(
                            "rollback_target_missing",
                            format!("the ledger has no version {to_seq}"),
                        )
                    })?;
                    (Kind::Rollback { to_seq }, files, None)
                }
                ProposalKind::Rotate | ProposalKind::Genesis => {
                    refuses(
                        args.bundle.is_some(),
                        "--bundle (a rotation keeps the head's bundle)",
                    )?;
                    let head = chain.head().map_or(0, |h| h.seq);
                    let files = chain.bundle_at(head).cloned().unwrap_or_default();
                    (
                        Kind::Rotate,
                        files,
                        Some(trust_set(&args.approvers, args.threshold)?),
                    )
                }
            };
            let mut header = next_header(&chain, &files, kind, &args.about)?;
            header.trust = trust;
            Proposal {
                version: Version::unsigned(header),
                bundle: files,
            }
        }
    };
    create_new(&args.out, proposal.encode().as_bytes(), 0o644)?;
    let version = &proposal.version;
    out.result(
        &json!({
            "proposal": args.out,
            "hash": version.hash(),
            "seq": version.seq(),
            "kind": version.header.kind.name(),
            "signatures": 0,
        }),
        || {
            format!(
                "wrote {} (seq {}, {}, hash {}); approvers sign it with `stele proposal sign {} --key KEY`",
                args.out.display(),
                version.seq(),
                version.header.kind,
                version.hash(),
                args.out.display()
            )
        },
    );
    Ok(())
}

fn sign(out: Output, path: &Path, key_paths: &[std::path::PathBuf]) -> Result<()> {
    let keys = load_secret_keys(key_paths)?;
    let (version, added) = update_locked(path, MAX_PROPOSAL_FILE_BYTES, |bytes| {
        let mut proposal = decode_proposal(path, bytes)?;
        let added = keys.iter().filter(|key| proposal.version.sign(key)).count();
        let replacement = (added > 0).then(|| proposal.encode().into_bytes());
        Ok((replacement, (proposal.version, added)))
    })?;
    let status = if added > 0 {
        "signed"
    } else {
        "already_signed"
    };
    out.result(
        &json!({
            "status": status,
            "hash": version.hash(),
            "added": added,
            "signatures": version.signatures.len(),
            "signers": version.signers().collect::<Vec<_>>(),
        }),
        || {
            format!(
                "{status}: {} now carries {} signature(s)",
                path.display(),
                version.signatures.len()
            )
        },
    );
    Ok(())
}

fn show(out: Output, path: &Path, ledger_path: Option<&Path>) -> Result<()> {
    let proposal = load_proposal(path)?;
    let version = &proposal.version;
    let hash = version.hash();
    let mut value = version_json(version);
    value["signatures"] = version
        .signatures
        .iter()
        .map(|a| json!({ "key": a.key, "valid": a.key.verifies(&hash, &a.signature) }))
        .collect();
    value["files"] = files_json(&proposal.bundle);
    let mut text = version_text(version);
    match check_bundle(&proposal.bundle) {
        Ok(()) => {
            value["bundle_check"] = json!({ "ok": true });
            text.push_str("\nbundle check:  ok (compiles, validates, every scenario passes)");
        }
        Err(error) => {
            value["bundle_check"] = json!({ "ok": false, "message": error.to_string() });
            text.push_str(&format!(
                "\nbundle check:  FAILS\n  {}",
                error.to_string().replace('\n', "\n  ")
            ));
        }
    }
    if let Some(ledger_path) = ledger_path {
        let chain = load_ledger(ledger_path)?;
        let (admission, admission_text) = admission_preview(&chain, &proposal);
        value["admission"] = admission;
        text.push_str(&format!("\nadmission:     {admission_text}"));
        let (changes, changes_text) = changes_against_parent(&chain, &proposal);
        value["changes"] = changes;
        text.push_str(&format!("\nchanges against the parent:\n{changes_text}"));
    }
    out.result(&value, || text);
    Ok(())
}

/// What admission would say if the proposal were appended now, bundle check
/// included: an approver sees a broken bundle before signing it.
fn admission_preview(chain: &Ledger, proposal: &Proposal) -> (Value, String) {
    match chain
        .state()
        .admit(&proposal.version, &proposal.bundle, &admission_check)
    {
        Ok(Admitted::Appended { seq, .. }) => (
            json!({ "status": "would_append", "seq": seq }),
            format!("would append as seq {seq} (signatures reach the threshold)"),
        ),
        Ok(Admitted::AlreadyCommitted { seq }) => (
            json!({ "status": "already_committed", "seq": seq }),
            format!("already committed at seq {seq}"),
        ),
        Err(rejection) => (
            json!({ "status": "not_admissible", "reason": rejection.code(), "message": rejection.to_string() }),
            format!("not admissible yet: {rejection}"),
        ),
    }
}

fn changes_against_parent(chain: &Ledger, proposal: &Proposal) -> (Value, String) {
    let header = &proposal.version.header;
    let parent = chain
        .state()
        .seq_of(&header.parent_hash)
        .and_then(|seq| chain.bundle_at(seq));
    let Some(parent_bundle) = parent else {
        return (Value::Null, "  (the parent is not in this ledger)".into());
    };
    match diff(parent_bundle, &proposal.bundle) {
        Ok(changes) => {
            let mut text = String::new();
            for (label, ids) in [
                ("added policy", &changes.policies_added),
                ("removed policy", &changes.policies_removed),
                ("changed policy", &changes.policies_changed),
                ("added file", &changes.files_added),
                ("removed file", &changes.files_removed),
                ("changed file", &changes.files_changed),
            ] {
                for id in ids {
                    text.push_str(&format!("  {label}: {id}\n"));
                }
            }
            if changes.is_empty() {
                text.push_str("  none: the bundle is the parent's\n");
            }
            (
                serde_json::to_value(&changes).unwrap_or_default(),
                text.trim_end().to_string(),
            )
        }
        Err(error) => (Value::Null, format!("  cannot compare: {error}")),
    }
}
