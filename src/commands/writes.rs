//! `stele propose|approve|submit|rollback|rotate`: writes to a cluster. Each
//! builds and signs a version here (keys never leave this machine) and sends
//! it to one node, which forwards it to the leader.

use serde_json::json;
use stele_client::Client;
use stele_ledger::{
    BundleFiles, Hash, Head, Kind, MemberSet, Proposal, PublicKey, SecretKey, TrustSet, Version,
};
use stele_policy::load_dir;
use stele_proto::v1::{ApproveRequest, ListVersionsRequest, ProposalStatus};

use super::ledger::{header_on, signed, trust_set};
use crate::cli::{About, ApproveArgs, ProposeArgs, RollbackArgs, RotateArgs, SubmitArgs};
use crate::failure::{Code, Failure, Result};
use crate::files::load_secret_keys;
use crate::ledger_files::{author_for, load_proposal};
use crate::output::Output;
use crate::remote::{call, client, retrying_write};

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
    send_new(out, &client, version, files)
}

pub fn rollback(out: Output, args: RollbackArgs) -> Result<()> {
    let keys = load_secret_keys(&args.signing.keys)?;
    let client = client(&args.remote)?;
    let head = head(&client)?;
    let (_, files) = call(client.version(args.to))?;
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
    send_new(out, &client, version, files)
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
    let (_, files) = call(client.version(head.seq))?;
    let in_force = trust_in_force(&client, head)?;
    let sets: Vec<&TrustSet> = in_force.iter().chain([&declared]).collect();
    let public: Vec<PublicKey> = keys.iter().map(SecretKey::public_key).collect();
    let author = author_for(&sets, &public, args.about.author.as_deref())?;
    let header = header_on(head, &files, Kind::Rotate, &args.about, author).declaring(declared);
    send_new(out, &client, signed(header, &keys), files)
}

pub fn submit(out: Output, args: SubmitArgs) -> Result<()> {
    let proposal = load_proposal(&args.proposal)?;
    let client = client(&args.remote)?;
    send(out, &client, proposal, true)
}

pub fn approve(out: Output, args: ApproveArgs) -> Result<()> {
    let id: Hash = args
        .proposal_id
        .parse()
        .map_err(|e| Failure::usage(format!("{:?} is not a proposal id: {e}", args.proposal_id)))?;
    let keys = load_secret_keys(&args.signing.keys)?;
    let client = client(&args.remote)?;
    // Fetch what is being approved, checked to be what the id names: the
    // signature is over the hash, and the hash covers every byte.
    let proposal = call(client.proposal(&id)).map_err(|mut failure| {
        if failure.code == Code::NodeError {
            failure.message.push_str("; not signing");
        }
        failure
    })?;
    eprintln!(
        "approving seq {} ({}): {:?} by {}",
        proposal.version.seq(),
        proposal.version.header.kind,
        proposal.version.header.message,
        proposal.version.header.author
    );
    let approvals: Vec<_> = keys
        .iter()
        .map(|key| stele_proto::v1::Approval {
            key: key.public_key().to_hex(),
            signature: key.sign(&id).to_hex(),
        })
        .collect();
    let status = retrying_write(|| {
        client.approve(ApproveRequest {
            proposal_id: id.to_hex(),
            approvals: approvals.clone(),
        })
    })?;
    print_status(out, &status);
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

/// What is in force at `head` (the leader's): the trust set the last
/// genesis or rotation up to it declared, and the member set the last
/// genesis or membership version declared.
#[derive(Default)]
pub(crate) struct InForce {
    pub trust: Option<TrustSet>,
    pub members: Option<MemberSet>,
}

/// The trust set in force at `head`.
fn trust_in_force(client: &Client, head: Head) -> Result<Option<TrustSet>> {
    in_force(client, head).map(|in_force| in_force.trust)
}

/// What is in force at `head`, read a page at a time from the node, no
/// further than `head`.
pub(crate) fn in_force(client: &Client, head: Head) -> Result<InForce> {
    const PAGE: u32 = 1000;
    let mut in_force = InForce::default();
    let mut from_seq = 1;
    while from_seq <= head.seq {
        let page = call(client.list_versions(ListVersionsRequest {
            from_seq,
            limit: PAGE,
        }))?;
        let asked = from_seq;
        for version in page {
            if version.seq() > head.seq {
                break;
            }
            from_seq = version.seq() + 1;
            if let Some(declared) = version.header.trust {
                in_force.trust = Some(declared);
            }
            if let Some(declared) = version.header.members {
                in_force.members = Some(declared);
            }
        }
        // An empty page, or one that did not move on: no further to read.
        if from_seq == asked {
            break;
        }
    }
    Ok(in_force)
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
) -> Result<()> {
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
        _ => format!(
            "already committed at seq {}; nothing changed",
            status.seq.unwrap_or_default()
        ),
    });
}
