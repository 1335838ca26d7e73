//! `stele proposal new|sign|show`: versions collecting approvals, as files
//! that travel between approvers' machines.

use std::path::Path;

use clap::ValueEnum;
use serde_json::{Value, json};
use stele_ledger::{Admitted, BundleFiles, Kind, Ledger, Proposal, TrustSet, Version};
use stele_policy::{admission_check, check_bundle, diff, load_dir};

use super::describe::{Names, diff_lines, files_json, version_json, version_text};
use super::ledger::{genesis_header, head_bundle, next_header, rollback_bundle, trust_set};
use crate::cli::{ProposalCommand, ProposalKind, ProposalNewArgs};
use crate::failure::{Failure, Result};
use crate::files::{create_new, load_secret_keys, update_locked};
use crate::ledger_files::{MAX_PROPOSAL_FILE_BYTES, decode_proposal, load_ledger, load_proposal};
use crate::output::Output;

pub fn run(out: Output, command: ProposalCommand) -> Result<()> {
    match command {
        ProposalCommand::New(args) => new(out, *args),
        ProposalCommand::Sign { proposal, signing } => sign(out, &proposal, &signing.keys),
        ProposalCommand::Show { proposal, ledger } => show(out, &proposal, ledger.as_deref()),
    }
}

fn new(out: Output, args: ProposalNewArgs) -> Result<()> {
    let kind_name = args
        .kind
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string());
    let refuse = |present: bool, flag: &str| {
        if present {
            Err(Failure::usage(format!(
                "--kind {kind_name} does not take {flag}"
            )))
        } else {
            Ok(())
        }
    };
    fn required<T>(value: Option<T>, kind_name: &str, flag: &str) -> Result<T> {
        value.ok_or_else(|| Failure::usage(format!("--kind {kind_name} needs {flag}")))
    }
    let declares_trust = matches!(args.kind, ProposalKind::Genesis | ProposalKind::Rotate);
    refuse(!declares_trust && !args.approvers.is_empty(), "--approver")?;
    refuse(!declares_trust && args.threshold.is_some(), "--threshold")?;
    let lists_members = matches!(args.kind, ProposalKind::Genesis | ProposalKind::Membership);
    refuse(
        !lists_members && !args.members.members.is_empty(),
        "--member (only a genesis or a membership version lists members; in a running cluster, `stele cluster add-learner`)",
    )?;
    refuse(
        args.kind != ProposalKind::Rollback && args.to.is_some(),
        "--to",
    )?;
    let ledger = || {
        load_ledger(required(
            args.ledger.as_deref(),
            &kind_name,
            "--ledger PATH",
        )?)
    };
    let bundle = || {
        load_dir(required(
            args.bundle.as_deref(),
            &kind_name,
            "--bundle DIR",
        )?)
        .map_err(Failure::from)
    };
    // Unsigned: `--author` names the approver who will sign first.
    let extend = |chain: &Ledger, files: BundleFiles, kind: Kind, trust: Option<TrustSet>| {
        let header = next_header(chain, &files, kind, trust, &args.about, &[])?;
        Ok::<_, Failure>(Proposal {
            version: Version::unsigned(header),
            bundle: files,
        })
    };
    let proposal = match args.kind {
        ProposalKind::Genesis => {
            refuse(
                args.ledger.is_some(),
                "--ledger (a genesis starts a new ledger)",
            )?;
            let files = bundle()?;
            let trust = trust_set(&args.approvers, &args.contacts, args.threshold)?;
            let members = super::membership::genesis_members(&args.members)?;
            let header = genesis_header(&files, trust, members, &args.about, &[])?;
            Proposal {
                version: Version::unsigned(header),
                bundle: files,
            }
        }
        ProposalKind::Update => extend(&ledger()?, bundle()?, Kind::Update, None)?,
        ProposalKind::Rollback => {
            refuse(
                args.bundle.is_some(),
                "--bundle (it restores --to SEQ's bundle)",
            )?;
            let chain = ledger()?;
            let to_seq = required(args.to, &kind_name, "--to SEQ")?;
            let files = rollback_bundle(&chain, to_seq)?;
            extend(&chain, files, Kind::Rollback { to_seq }, None)?
        }
        ProposalKind::Membership => {
            refuse(
                args.bundle.is_some(),
                "--bundle (a membership version keeps the head's bundle)",
            )?;
            let chain = ledger()?;
            let members = super::membership::genesis_members(&args.members)?
                .ok_or_else(|| {
                    Failure::usage(
                        "--kind membership needs the whole new member set: --member ID=ADDR,PEER and --cert for each",
                    )
                })?;
            let files = head_bundle(&chain)?;
            let header = next_header(&chain, &files, Kind::Membership, None, &args.about, &[])?;
            Proposal {
                version: Version::unsigned(header.listing(members)),
                bundle: files,
            }
        }
        ProposalKind::Rotate => {
            refuse(
                args.bundle.is_some(),
                "--bundle (a rotation keeps the head's bundle)",
            )?;
            let chain = ledger()?;
            let trust = trust_set(&args.approvers, &args.contacts, args.threshold)?;
            let files = head_bundle(&chain)?;
            extend(&chain, files, Kind::Rotate, Some(trust))?
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
    let chain = ledger_path.map(load_ledger).transpose()?;
    let mut names = Names::of(chain.iter().flat_map(Ledger::versions));
    if let Some(trust) = &version.header.trust {
        names.learn_proposed(trust);
    }
    let mut value = version_json(version, &names);
    value["signatures"] = version
        .signatures
        .iter()
        .map(|a| json!({ "key": a.key, "valid": a.key.verifies(&hash, &a.signature) }))
        .collect();
    value["files"] = files_json(&proposal.bundle);
    let mut text = version_text(version, &names);
    match check_bundle(&proposal.bundle) {
        Ok(_) => {
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
    if let Some(chain) = &chain {
        let (admission, admission_text) = admission_preview(chain, &proposal);
        value["admission"] = admission;
        text.push_str(&format!("\nadmission:     {admission_text}"));
        let (changes, changes_text) = changes_against_parent(chain, &proposal);
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
            json!({ "status": "not_admissible", "reason": rejection.reason().code(), "message": rejection.to_string() }),
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
            let mut lines = diff_lines(&changes);
            if lines.is_empty() {
                lines.push("none: the bundle is the parent's".into());
            }
            let text = lines
                .iter()
                .map(|line| format!("  {line}"))
                .collect::<Vec<_>>()
                .join("\n");
            (serde_json::to_value(&changes).unwrap_or_default(), text)
        }
        Err(error) => (Value::Null, format!("  cannot compare: {error}")),
    }
}
