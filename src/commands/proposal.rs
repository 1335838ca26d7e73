//! `stele proposal new|sign|show`: versions collecting approvals, as files
//! that travel between approvers' machines.

use std::path::Path;

use clap::ValueEnum;
use serde_json::{Value, json};
use stele_ledger::{
    Admitted, BundleFiles, Kind, Ledger, Proposal, PublicKey, Reason, Rejection, TrustSet, Version,
};
use stele_policy::{admission_check, diff, load_dir};

use super::describe::files_json;
use super::ids::Typed;
use super::impact::add_to_review;
use super::ledger::{genesis_header, head_bundle, next_header, rollback_bundle, trust_set};
use super::reads::show_on_node;
use super::review::{Below, confirm};
use super::writes::{already_signed, unsigned_keys};
use crate::cli::{ProposalCommand, ProposalKind, ProposalNewArgs, Remote, SigningKeys};
use crate::failure::{Code, Failure, Result};
use crate::files::{create_new, load_public_key, load_secret_keys, update_locked};
use crate::ledger_files::{MAX_PROPOSAL_FILE_BYTES, decode_proposal, load_ledger, load_proposal};
use crate::output::Output;

pub fn run(out: Output, command: ProposalCommand) -> Result<()> {
    match command {
        ProposalCommand::New(args) => new(out, *args),
        ProposalCommand::Sign {
            proposal,
            ledger,
            signing,
        } => sign(out, &proposal, ledger.as_deref(), &signing),
        ProposalCommand::Unsign { proposal, approver } => unsign(out, &proposal, &approver),
        ProposalCommand::Show {
            proposal,
            ledger,
            requests,
            remote,
        } => show(
            out,
            &proposal,
            ledger.as_deref(),
            requests.as_deref(),
            &remote,
        ),
        ProposalCommand::Impact {
            proposal,
            requests,
            from_log,
            limit,
            ledger,
            remote,
        } => {
            let source = match (requests, from_log) {
                (Some(file), _) => super::impact::Requests::File(file),
                (None, _) => super::impact::Requests::Logged { limit },
            };
            super::impact::run(out, &proposal, &source, ledger.as_deref(), &remote)
        }
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
                "wrote {} (seq {}, {}, hash {}); approvers review and sign it with `stele proposal sign {}{} --key KEY`",
                args.out.display(),
                version.seq(),
                version.header.kind,
                version.hash(),
                args.out.display(),
                args.ledger
                    .as_ref()
                    .map_or_else(String::new, |l| format!(" --ledger {}", l.display()))
            )
        },
    );
    Ok(())
}

fn sign(out: Output, path: &Path, ledger_path: Option<&Path>, signing: &SigningKeys) -> Result<()> {
    let keys = load_secret_keys(&signing.keys)?;
    let proposal = load_proposal(path)?;
    let chain = ledger_path.map(load_ledger).transpose()?;
    let is_genesis = proposal.version.header.kind == Kind::Genesis;
    if chain.is_none() && !is_genesis {
        return Err(Failure::usage(format!(
            "give --ledger LEDGER, the ledger {} extends: the change is shown against its parent before you sign, and your key is checked against the trust set in force",
            path.display()
        )));
    }
    let parent = parent_in(chain.as_ref(), &proposal)?;
    let below = below_in(chain.as_ref(), &proposal.version);
    let subject = below.subject(&proposal.version, &proposal.bundle, parent);
    if let Some(stranger) = subject.strangers().first() {
        return Err(Failure::new(
            Code::Reason(Reason::UnknownKey),
            format!(
                "{} carries a signature by {stranger}, which is not an approver of the trust set in force: the proposal cannot be appended while it does. Remove it first with `stele proposal unsign {} --approver {stranger}`",
                path.display(),
                path.display()
            ),
        ));
    }
    let fresh = unsigned_keys(&subject, &keys)?;
    if fresh.is_empty() {
        return already_signed(out, &subject);
    }
    let (_, review) = subject.render();
    confirm(&signing.confirm, &proposal.version, &review, false)?;
    let reviewed = proposal.version.hash();
    let (version, added) = update_locked(path, MAX_PROPOSAL_FILE_BYTES, |bytes| {
        let mut now = decode_proposal(path, bytes)?;
        // The hash covers the bundle's digest: the same hash is the same
        // change as the one reviewed.
        if now.version.hash() != reviewed {
            return Err(Failure::new(
                Code::Exists,
                format!(
                    "{} changed while you reviewed it (it is now {}); nothing signed, review it again",
                    path.display(),
                    now.version.hash()
                ),
            ));
        }
        let added = fresh.iter().filter(|key| now.version.sign(key)).count();
        let replacement = (added > 0).then(|| now.encode().into_bytes());
        Ok((replacement, (now.version, added)))
    })?;
    let names = &below.names;
    out.result(
        &json!({
            "status": "signed",
            "hash": version.hash(),
            "added": added,
            "signatures": version.signatures.len(),
            "signers": version.signers().collect::<Vec<_>>(),
        }),
        || {
            format!(
                "signed: {} now carries {} signature(s): {}",
                path.display(),
                version.signatures.len(),
                version
                    .signers()
                    .map(|key| names.name(key))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    );
    Ok(())
}

/// Removes every signature by one key.
fn unsign(out: Output, path: &Path, approver: &str) -> Result<()> {
    let key = public_key_arg(approver)?;
    let (version, removed) = update_locked(path, MAX_PROPOSAL_FILE_BYTES, |bytes| {
        let mut proposal = decode_proposal(path, bytes)?;
        let before = proposal.version.signatures.len();
        proposal
            .version
            .signatures
            .retain(|approval| approval.key != key);
        let removed = before - proposal.version.signatures.len();
        if removed == 0 {
            return Err(Failure::new(
                Code::NotFound,
                format!(
                    "{} carries no signature by {key}; nothing changed",
                    path.display()
                ),
            ));
        }
        Ok((
            Some(proposal.encode().into_bytes()),
            (proposal.version, removed),
        ))
    })?;
    out.result(
        &json!({
            "status": "unsigned",
            "hash": version.hash(),
            "removed": removed,
            "key": key,
            "signatures": version.signatures.len(),
        }),
        || {
            format!(
                "removed the signature by {key}: {} now carries {} signature(s)",
                path.display(),
                version.signatures.len()
            )
        },
    );
    Ok(())
}

/// A public key as 64 hex digits, or a `.pub` file.
fn public_key_arg(text: &str) -> Result<PublicKey> {
    let path = Path::new(text);
    if path.is_file() {
        return load_public_key(path);
    }
    text.parse().map_err(|e| {
        Failure::new(
            Code::BadKey,
            format!("--approver {text:?} is neither a public key file nor 64 hex digits: {e}"),
        )
    })
}

/// The proposal's parent's bundle in `chain`. A proposal whose parent the
/// ledger does not hold cannot be reviewed against it.
pub(crate) fn parent_in<'a>(
    chain: Option<&'a Ledger>,
    proposal: &Proposal,
) -> Result<Option<&'a BundleFiles>> {
    let Some(chain) = chain else {
        return Ok(None);
    };
    if proposal.version.header.kind == Kind::Genesis {
        return Ok(None);
    }
    let parent = &proposal.version.header.parent_hash;
    chain
        .state()
        .seq_of(parent)
        .and_then(|seq| chain.bundle_at(seq))
        .map(Some)
        .ok_or_else(|| {
            Failure::new(
                Code::MissingVersion,
                format!(
                    "the proposal's parent {parent} is not in the ledger given: it extends another ledger, or one this copy has not caught up with"
                ),
            )
        })
}

/// Names and sets in force below the proposal, from the ledger it
/// extends (none: only what the proposal itself declares).
fn below_in(chain: Option<&Ledger>, version: &Version) -> Below {
    let versions = chain.map_or(&[][..], Ledger::versions);
    let mut below = Below::of(versions, version);
    if chain.is_none() && version.header.kind != Kind::Genesis {
        below.unknown_trust = true;
    }
    below
}

fn show(
    out: Output,
    target: &str,
    ledger_path: Option<&Path>,
    requests: Option<&Path>,
    remote: &Remote,
) -> Result<()> {
    let path = Path::new(target);
    if !path.exists() {
        if Typed::parse(target).is_err() {
            return Err(Failure::new(
                Code::Io,
                format!(
                    "{target}: no such proposal file (nor a proposal id: give a file, or at least 8 hex digits of a pending proposal's id)"
                ),
            ));
        }
        if ledger_path.is_some() {
            return Err(Failure::usage(format!(
                "{target} is no file: --ledger is for a proposal file; a pending proposal is read from the node"
            )));
        }
        return show_on_node(out, remote, target, requests);
    }
    let proposal = load_proposal(path)?;
    let chain = ledger_path.map(load_ledger).transpose()?;
    let parent = match parent_in(chain.as_ref(), &proposal) {
        Ok(parent) => parent,
        Err(failure) => {
            eprintln!("warning: {}", failure.message);
            None
        }
    };
    let below = below_in(chain.as_ref(), &proposal.version);
    let subject = below.subject(&proposal.version, &proposal.bundle, parent);
    let (mut value, mut text) = subject.render();
    let hash = proposal.version.hash();
    value["signatures"] = proposal
        .version
        .signatures
        .iter()
        .map(|a| json!({ "key": a.key, "valid": a.key.verifies(&hash, &a.signature) }))
        .collect();
    value["files"] = files_json(&proposal.bundle);
    if let Some(chain) = &chain {
        let (admission, admission_text) = admission_preview(chain, &proposal);
        value["admission"] = admission;
        text.push_str(&format!("\nadmission:     {admission_text}"));
        if let Some(parent) = parent {
            value["changes"] = diff(parent, &proposal.bundle)
                .ok()
                .and_then(|changes| serde_json::to_value(changes).ok())
                .unwrap_or_default();
        }
    }
    if let Some(requests) = requests {
        add_to_review(&mut value, &mut text, requests, parent, &proposal.bundle)?;
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
        Err(rejection) => {
            let text = match &rejection {
                Rejection::BelowThreshold { .. } => format!("not admissible yet: {rejection}"),
                Rejection::UnknownKey { key } => format!(
                    "not admissible: {rejection}; more signatures will not help: remove it with `stele proposal unsign FILE --approver {key}`"
                ),
                _ => format!("not admissible: {rejection}"),
            };
            (
                json!({ "status": "not_admissible", "reason": rejection.reason().code(), "message": rejection.to_string() }),
                text,
            )
        }
    }
}
