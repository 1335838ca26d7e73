//! `stele propose|approve|submit|rollback|rotate`: writes to a cluster. Each
//! builds and signs a version here (keys never leave this machine) and sends
//! it to one node, which forwards it to the leader.

use serde_json::json;
use stele_client::Client;
use stele_ledger::{
    BundleFiles, Head, Kind, Proposal, PublicKey, Reason, SecretKey, TrustSet, Version,
};
use stele_policy::load_dir;
use stele_proto::v1::{ApproveRequest, ProposalStatus, WithdrawRequest};

use super::cluster_view::{committed, find, parent_bundle, versions};
use super::ids::Typed;
use super::ledger::{header_on, signed, trust_set};
use super::review::{Below, InForce, Subject, confirm, confirm_to};
use crate::cli::{
    About, ApproveArgs, Confirm, ProposeArgs, RollbackArgs, RotateArgs, SubmitArgs, WithdrawArgs,
};
use crate::failure::{Code, Failure, Result};
use crate::files::load_secret_keys;
use crate::ledger_files::{author_for, load_proposal};
use crate::output::Output;
use crate::remote::{call, client, retrying_write};
use crate::terminal_text::terminal_safe;

pub fn propose(out: Output, args: ProposeArgs) -> Result<()> {
    let files = load_dir(&args.bundle)?;
    let keys = load_secret_keys(&args.signing.keys)?;
    let client = client(&args.remote)?;
    let head = head(&client)?;
    let author = author_here(&client, head, &keys, &args.about)?;
    let version = signed(
        header_on(head, &files, Kind::Update, &args.about, author),
        &keys,
    );
    send_new(out, &client, version, files, &args.signing.confirm)
}

pub fn rollback(out: Output, args: RollbackArgs) -> Result<()> {
    let keys = load_secret_keys(&args.signing.keys)?;
    let client = client(&args.remote)?;
    let head = head(&client)?;
    let (_, files) = committed(&client, args.to)?;
    let author = author_here(&client, head, &keys, &args.about)?;
    let version = signed(
        header_on(
            head,
            &files,
            Kind::Rollback { to_seq: args.to },
            &args.about,
            author,
        ),
        &keys,
    );
    send_new(out, &client, version, files, &args.signing.confirm)
}

pub fn rotate(out: Output, args: RotateArgs) -> Result<()> {
    let keys = load_secret_keys(&args.signing.keys)?;
    let declared = trust_set(
        &args.trust.approvers,
        &args.trust.contacts,
        Some(args.trust.threshold),
    )?;
    let client = client(&args.remote)?;
    let head = head(&client)?;
    let (_, files) = committed(&client, head.seq)?;
    let in_force = trust_in_force(&client, head)?;
    let sets: Vec<&TrustSet> = in_force.iter().chain([&declared]).collect();
    let public: Vec<PublicKey> = keys.iter().map(SecretKey::public_key).collect();
    let author = author_for(&sets, &public, args.about.author.as_deref())?;
    let header = header_on(head, &files, Kind::Rotate, &args.about, author).declaring(declared);
    send_new(
        out,
        &client,
        signed(header, &keys),
        files,
        &args.signing.confirm,
    )
}

pub fn submit(out: Output, args: SubmitArgs) -> Result<()> {
    let proposal = load_proposal(&args.proposal)?;
    let client = client(&args.remote)?;
    send(out, &client, proposal, true).map_err(|mut failure| {
        if failure.code == Code::Reason(Reason::UnknownKey) {
            failure.message.push_str(&format!(
                "; a signature by a key outside the trust set never counts and is not accepted: see `stele proposal show {} --ledger LEDGER`, and remove it with `stele proposal unsign {} --approver KEY`",
                args.proposal.display(),
                args.proposal.display()
            ));
        }
        failure
    })
}

pub fn approve(out: Output, args: ApproveArgs) -> Result<()> {
    let typed = proposal_id(&args.proposal_id, "approve")?;
    let keys = load_secret_keys(&args.signing.keys)?;
    let client = client(&args.remote)?;
    let versions = versions(&client, None)?;
    // Fetch what is being approved, checked to be what the id names: the
    // signature is over the hash, and the hash covers every byte.
    let read = find(&client, &versions, &typed).map_err(|mut failure| {
        if failure.code == Code::NodeError {
            failure.message.push_str("; not signing");
        }
        failure
    })?;
    let version = &read.version;
    let id = version.hash();
    if !read.pending {
        // A retried approval that made it: nothing left to do.
        out.result(
            &json!({ "proposal_id": id, "status": "already_committed", "seq": version.seq() }),
            || {
                format!(
                    "already committed at seq {} ({id}); nothing to approve",
                    version.seq()
                )
            },
        );
        return Ok(());
    }
    let parent = parent_bundle(&client, version)?;
    let below = Below::of(&versions, version);
    let subject = below.subject(version, &read.bundle, parent.as_ref());
    let fresh = unsigned_keys(&subject, &keys)?;
    if fresh.is_empty() {
        return already_signed(out, &subject);
    }
    let (_, review) = subject.render();
    confirm(&args.signing.confirm, version, &review, typed.is_prefix())?;
    let approvals = signed_by(fresh.iter().copied(), |key| key.sign(&id));
    let status = retrying_write(|| {
        client.approve(ApproveRequest {
            proposal_id: id.to_hex(),
            approvals: approvals.clone(),
        })
    })?;
    print_status(out, &status);
    Ok(())
}

pub fn withdraw(out: Output, args: WithdrawArgs) -> Result<()> {
    let typed = proposal_id(&args.proposal_id, "withdraw")?;
    let keys = load_secret_keys(&args.signing.keys)?;
    let client = client(&args.remote)?;
    let versions = versions(&client, None)?;
    let read = find(&client, &versions, &typed)?;
    let version = &read.version;
    let id = version.hash();
    if !read.pending {
        return Err(Failure::new(
            Code::Reason(Reason::UnknownProposal),
            format!(
                "{id} is committed, as seq {}: a committed version is never withdrawn; a new version (`stele rollback`) undoes it",
                version.seq()
            ),
        ));
    }
    let below = Below::of(&versions, version);
    if let Some(trust) = &below.in_force.trust {
        for key in &keys {
            let public = key.public_key();
            if !trust.contains(&public) {
                return Err(Failure::new(
                    Code::Reason(Reason::UnknownKey),
                    format!(
                        "your key {public} is not an approver of the trust set in force; the approvers are: {}",
                        approvers_text(&[trust])
                    ),
                ));
            }
        }
    }
    let summary = super::describe::version_text(version, &below.names);
    confirm_to(
        "Withdraw",
        &args.signing.confirm,
        version,
        &summary,
        typed.is_prefix(),
    )?;
    let approvals = signed_by(keys.iter(), |key| key.sign_withdrawal(&id));
    let status = retrying_write(|| {
        client.withdraw(WithdrawRequest {
            proposal_id: id.to_hex(),
            approvals: approvals.clone(),
        })
    })?;
    print_status(out, &status);
    Ok(())
}

/// A pending proposal's id as typed for `command`: a seq names a committed
/// version, never a proposal.
fn proposal_id(text: &str, command: &str) -> Result<Typed> {
    let typed = Typed::parse(text)?;
    if let Typed::Seq(seq) = typed {
        return Err(Failure::usage(format!(
            "{seq} is a seq; {command} takes a pending proposal's id (`stele proposals` lists them)"
        )));
    }
    Ok(typed)
}

/// Each key's signature, as a request carries it.
fn signed_by<'k>(
    keys: impl Iterator<Item = &'k SecretKey>,
    sign: impl Fn(&SecretKey) -> stele_ledger::Signature,
) -> Vec<stele_proto::v1::Approval> {
    keys.map(|key| stele_proto::v1::Approval {
        key: key.public_key().to_hex(),
        signature: sign(key).to_hex(),
    })
    .collect()
}

/// The keys that have not signed `subject` yet, each checked to be an
/// approver it answers to: a signature by any other key never counts, and
/// a version carrying one cannot be appended. Says which have signed.
pub(crate) fn unsigned_keys<'k>(
    subject: &Subject,
    keys: &'k [SecretKey],
) -> Result<Vec<&'k SecretKey>> {
    if let Some(sets) = &subject.approvers {
        for key in keys {
            let public = key.public_key();
            if !sets.iter().any(|set| set.contains(&public)) {
                return Err(Failure::new(
                    Code::Reason(Reason::UnknownKey),
                    format!(
                        "your key {public} is not an approver of the trust set in force, so its signature would never count; nothing signed. The approvers are: {}",
                        approvers_text(sets)
                    ),
                ));
            }
        }
    }
    let signed: Vec<&PublicKey> = subject.version.signers().collect();
    let mut fresh = Vec::new();
    for key in keys {
        let public = key.public_key();
        if signed.contains(&&public) {
            eprintln!(
                "already signed by {}",
                terminal_safe(&subject.names.name(&public))
            );
        } else {
            fresh.push(key);
        }
    }
    Ok(fresh)
}

/// Every approver of `sets`, named where the set names them.
fn approvers_text(sets: &[&TrustSet]) -> String {
    let mut named: Vec<String> = Vec::new();
    for set in sets {
        let approvers = set.approvers().unwrap_or_default();
        for (i, key) in set.keys().iter().enumerate() {
            let entry = match approvers.get(i) {
                Some(approver) => format!("{} {key}", approver.name),
                None => key.to_hex(),
            };
            if !named.contains(&entry) {
                named.push(entry);
            }
        }
    }
    named.join(", ")
}

/// Every key given has signed already: nothing is sent.
pub(crate) fn already_signed(out: Output, subject: &Subject) -> Result<()> {
    let version = subject.version;
    let signers: Vec<String> = version.signers().map(|k| subject.names.name(k)).collect();
    out.result(
        &json!({
            "proposal_id": version.hash(),
            "status": "already_signed",
            "signed_by": signers,
        }),
        || {
            format!(
                "already signed: {} carries your signature (signed by {}); nothing sent",
                version.hash(),
                signers.join(", ")
            )
        },
    );
    Ok(())
}

/// The author of a version the holder of `keys` proposes to the cluster:
/// their name in the cluster's trust set in force.
pub(crate) fn author_here(
    client: &Client,
    head: Head,
    keys: &[SecretKey],
    about: &About,
) -> Result<String> {
    let trust = trust_in_force(client, head)?;
    let keys: Vec<PublicKey> = keys.iter().map(SecretKey::public_key).collect();
    author_for(
        &trust.iter().collect::<Vec<_>>(),
        &keys,
        about.author.as_deref(),
    )
}

/// The trust set in force at `head`.
fn trust_in_force(client: &Client, head: Head) -> Result<Option<TrustSet>> {
    in_force(client, head).map(|in_force| in_force.trust)
}

/// What is in force at `head` (the leader's), read from the node no
/// further than `head`.
pub(crate) fn in_force(client: &Client, head: Head) -> Result<InForce> {
    Ok(InForce::after(&versions(client, Some(head.seq))?, head.seq))
}

/// The head, read through the leader: a new version's parent must be the
/// cluster's head, not a lagging node's.
pub(crate) fn head(client: &Client) -> Result<Head> {
    call(client.cluster_head())?.ok_or_else(|| {
        Failure::new(
            Code::EmptyLedger,
            "the cluster has no genesis yet; start it with `stele cluster init --genesis-file FILE`",
        )
    })
}

/// Proposes a version built here: committed at once with M signatures,
/// pending with fewer.
pub(crate) fn send_new(
    out: Output,
    client: &Client,
    version: Version,
    bundle: BundleFiles,
    asked: &Confirm,
) -> Result<()> {
    let versions = versions(client, Some(version.seq().saturating_sub(1)))?;
    let (_, parent) = committed(client, version.seq().saturating_sub(1))?;
    let below = Below::of(&versions, &version);
    let (_, review) = below.subject(&version, &bundle, Some(&parent)).render();
    confirm(asked, &version, &review, false)?;
    send(out, client, Proposal { version, bundle }, false)
}

fn send(out: Output, client: &Client, proposal: Proposal, commit_only: bool) -> Result<()> {
    let status = retrying_write(|| client.submit(&proposal, commit_only))?;
    print_status(out, &status);
    Ok(())
}

pub(crate) fn state_name(status: &ProposalStatus) -> &'static str {
    match stele_proto::v1::ProposalState::try_from(status.state) {
        Ok(stele_proto::v1::ProposalState::Pending) => "pending",
        Ok(stele_proto::v1::ProposalState::Committed) => "committed",
        Ok(stele_proto::v1::ProposalState::AlreadyCommitted) => "already_committed",
        Ok(stele_proto::v1::ProposalState::Withdrawn) => "withdrawn",
        _ => "unknown",
    }
}

pub fn print_status(out: Output, status: &ProposalStatus) {
    let state = state_name(status);
    let mut value = json!({
        "proposal_id": status.proposal_id,
        "status": state,
        "signatures": status.signatures,
        "threshold": status.threshold,
    });
    if let Some(seq) = status.seq {
        value["seq"] = seq.into();
    }
    if let Some(expires) = status.expires_at_ms {
        value["expires_at_ms"] = expires.into();
    }
    out.result(&value, || match state {
        "pending" => format!(
            "pending: {} of {} signatures; approvers run `stele approve {}`",
            status.signatures, status.threshold, status.proposal_id
        ),
        "committed" => format!(
            "committed as seq {} ({})",
            status.seq.unwrap_or_default(),
            status.proposal_id
        ),
        "withdrawn" => format!(
            "withdrawn: {} can no longer commit; `stele proposals` lists it as withdrawn until it would have lapsed",
            status.proposal_id
        ),
        _ => format!(
            "already committed at seq {}; nothing changed",
            status.seq.unwrap_or_default()
        ),
    });
}
