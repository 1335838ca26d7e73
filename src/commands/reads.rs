//! `stele log|show|diff|proposals|export`: reads from one node's own state.
//! What is shown of a change is computed here, from bytes checked against
//! the ids and digests that name them.

use serde_json::json;

use stele_ledger::Version;
use stele_policy::review;
use stele_proto::v1::ClosedProposal;
use stele_proto::v1::closed_proposal::Why;

use super::cluster_view::{Read, find, parent_bundle, versions};
use super::describe::{Names, member_changes, version_json, version_line};
use super::ids::Typed;
use super::impact::{add_logged_to_review, add_to_review};
use super::review::{Below, review_text};
use crate::cli::{DiffArgs, ExportArgs, LogArgs, ProposalsArgs, Remote, ShowArgs};
use crate::failure::{Code, Failure, Result};
use crate::files::{create_new, refuse_existing};
use crate::output::Output;
use crate::remote::{call, client};

pub fn log(out: Output, args: LogArgs) -> Result<()> {
    let client = client(&args.remote)?;
    let versions = versions(&client, None)?;
    let names = Names::of(&versions);
    let mut members = None;
    for version in &versions {
        let mut value = version_json(version, &names);
        let mut changes = Vec::new();
        if let Some(declared) = &version.header.members {
            changes = member_changes(members, declared);
            value["member_changes"] = json!(changes);
            members = Some(declared);
        }
        out.result(&value, || {
            let mut text = version_line(version, &names);
            for change in &changes {
                text.push_str(&format!("\n         {change}"));
            }
            text
        });
    }
    Ok(())
}

pub fn show(out: Output, args: ShowArgs) -> Result<()> {
    show_on_node(out, &args.remote, &args.id, None)
}

/// `stele show ID` and `stele proposal show ID`: a version or a pending
/// proposal, reviewed against its parent.
pub fn show_on_node(
    out: Output,
    remote: &Remote,
    id: &str,
    requests: Option<&std::path::Path>,
) -> Result<()> {
    let typed = Typed::parse(id)?;
    let client = client(remote)?;
    let versions = versions(&client, None)?;
    let read = find(&client, &versions, &typed)?;
    let parent = parent_bundle(&client, &read.version)?;
    let (mut value, mut text) = reviewed(&read, parent.as_ref(), &versions);
    match requests {
        Some(requests) => add_to_review(
            &mut value,
            &mut text,
            requests,
            parent.as_ref(),
            &read.bundle,
        )?,
        // A pending proposal's review says what it would flip, when this
        // node logs requests and lets this caller read them.
        None if read.pending => add_logged_to_review(
            &mut value,
            &mut text,
            &client,
            parent.as_ref(),
            &read.bundle,
        ),
        None => {}
    }
    out.result(&value, || text);
    Ok(())
}

/// The review of a version read from a node, with the names and sets in
/// force below it.
fn reviewed(
    read: &Read,
    parent: Option<&stele_ledger::BundleFiles>,
    versions: &[Version],
) -> (serde_json::Value, String) {
    let below = Below::of(versions, &read.version);
    let (mut value, mut text) = below.subject(&read.version, &read.bundle, parent).render();
    value["pending"] = read.pending.into();
    if read.pending {
        text.insert_str(0, "PENDING PROPOSAL (not committed)\n");
    }
    (value, text)
}

pub fn diff(out: Output, args: DiffArgs) -> Result<()> {
    let client = client(&args.remote)?;
    let versions = versions(&client, None)?;
    let a = find(&client, &versions, &Typed::parse(&args.a)?)?;
    let b = find(&client, &versions, &Typed::parse(&args.b)?)?;
    let changes = review(Some(&a.bundle), &b.bundle);
    let side = |read: &Read| {
        json!({
            "seq": read.version.seq(),
            "hash": read.version.hash(),
            "pending": read.pending,
        })
    };
    // Which policies and files changed, by meaning; then every line.
    let mut value =
        serde_json::to_value(stele_policy::diff(&a.bundle, &b.bundle)?).expect("a diff serializes");
    value["from"] = side(&a);
    value["to"] = side(&b);
    value["review"] = serde_json::to_value(&changes).expect("a review serializes");
    out.result(&value, || {
        let label = |read: &Read| match read.pending {
            true => format!("pending proposal {}", read.version.hash()),
            false => format!(
                "seq {} ({})",
                read.version.seq(),
                read.version.hash().short()
            ),
        };
        format!(
            "from {} to {}:\n{}",
            label(&a),
            label(&b),
            review_text(&changes)
        )
    });
    Ok(())
}

pub fn proposals(out: Output, args: ProposalsArgs) -> Result<()> {
    let client = client(&args.remote)?;
    let versions = versions(&client, None)?;
    let listed = call(client.list_proposals())?;
    if listed.proposals.is_empty() && listed.closed.is_empty() && !out.json {
        out.result(&json!({}), || "no pending proposals".into());
        return Ok(());
    }
    for status in listed.proposals {
        let id = status.proposal_id.parse().map_err(|e| {
            Failure::new(
                Code::NodeError,
                format!("the node listed a malformed proposal id: {e}"),
            )
        })?;
        // Checked: its hash is the id, its bundle matches its digest.
        let proposal = match call(client.proposal(&id)) {
            Ok(proposal) => proposal,
            // Committed or expired between the list and now.
            Err(failure) if failure.code == Code::NotFound => continue,
            Err(failure) => return Err(failure),
        };
        let version = &proposal.version;
        let mut proposal_names = Names::of(&versions);
        if let Some(declared) = &version.header.trust {
            proposal_names.learn_proposed(declared);
        }
        let signed_by: Vec<String> = version.signers().map(|k| proposal_names.name(k)).collect();
        let value = json!({
            "proposal_id": id,
            "state": "pending",
            "seq": version.seq(),
            "kind": version.header.kind.name(),
            "author": version.header.author,
            "message": version.header.message,
            "signatures": status.signatures,
            "threshold": status.threshold,
            "signers": version.signers().collect::<Vec<_>>(),
            "signed_by": signed_by,
            "expires_at_ms": status.expires_at_ms,
            "header_expires_at": version.header.expires_at,
        });
        out.result(&value, || {
            format!(
                "{}  seq {:<4} {:<12} by {:<10} {} of {} signed ({})  expires {}  {}",
                id.short(),
                version.seq(),
                version.header.kind.to_string(),
                version.header.author,
                status.signatures,
                status.threshold,
                signed_by.join(", "),
                expiry_text(status.expires_at_ms),
                version.header.message.lines().next().unwrap_or_default()
            )
        });
    }
    for closed in &listed.closed {
        closed_line(out, closed, &versions)?;
    }
    Ok(())
}

/// When a pending proposal is dropped, from now.
/// A proposal that closed without committing, as the node lists it: its
/// version is checked to be the one its id names.
fn closed_line(out: Output, closed: &ClosedProposal, versions: &[Version]) -> Result<()> {
    let malformed = |what: String| {
        Failure::new(
            Code::NodeError,
            format!("the node listed {what}; not trusting it"),
        )
    };
    let version: Version = serde_json::from_slice(&closed.version)
        .map_err(|e| malformed(format!("a closed proposal that does not decode ({e})")))?;
    if version.hash().to_hex() != closed.proposal_id {
        return Err(malformed(format!(
            "closed proposal {} with the version of {}",
            closed.proposal_id,
            version.hash()
        )));
    }
    let names = Below::of(versions, &version).names;
    let (state, detail, mut value) = match &closed.why {
        Some(Why::Superseded(superseded)) => (
            "superseded",
            format!("SUPERSEDED by seq {} ({})", superseded.seq, superseded.by),
            json!({ "superseded_by": superseded.by, "superseded_seq": superseded.seq }),
        ),
        Some(Why::Withdrawn(withdrawn)) => {
            let by: Vec<String> = withdrawn
                .by
                .iter()
                .map(|key| {
                    key.parse()
                        .map_or_else(|_| key.clone(), |key| names.name(&key))
                })
                .collect();
            (
                "withdrawn",
                format!("WITHDRAWN by {}", by.join(", ")),
                json!({ "withdrawn_by": withdrawn.by, "withdrawn_by_names": by }),
            )
        }
        None => ("closed", "CLOSED".to_string(), json!({})),
    };
    value["proposal_id"] = json!(closed.proposal_id);
    value["state"] = json!(state);
    value["seq"] = json!(version.seq());
    value["kind"] = json!(version.header.kind.name());
    value["author"] = json!(version.header.author);
    value["message"] = json!(version.header.message);
    value["listed_until_ms"] = json!(closed.expires_at_ms);
    out.result(&value, || {
        format!(
            "{}  seq {:<4} {:<12} by {:<10} {detail}; listed {}  {}",
            version.hash().short(),
            version.seq(),
            version.header.kind.to_string(),
            version.header.author,
            expiry_text(Some(closed.expires_at_ms)).replace("in ", "for "),
            version.header.message.lines().next().unwrap_or_default()
        )
    });
    Ok(())
}

fn expiry_text(at_ms: Option<u64>) -> String {
    let Some(at_ms) = at_ms else {
        return "never".into();
    };
    let now_ms = stele_node::system_clock()();
    match at_ms.checked_sub(now_ms) {
        Some(left) => format!(
            "in {}",
            humantime::format_duration(std::time::Duration::from_secs(left / 1000))
        ),
        None => "now".into(),
    }
}

pub fn export(out: Output, args: ExportArgs) -> Result<()> {
    refuse_existing(&args.out)?;
    let client = client(&args.remote)?;
    let bytes = call(client.export())?;
    create_new(&args.out, &bytes, 0o644)?;
    let versions = bytes.iter().filter(|b| **b == b'\n').count();
    out.result(&json!({ "out": args.out, "bytes": bytes.len() }), || {
        format!(
            "wrote {} ({} bytes, {} lines); check it with `stele ledger verify`",
            args.out.display(),
            bytes.len(),
            versions
        )
    });
    Ok(())
}
