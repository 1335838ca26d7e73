//! `stele cluster init|status|add-learner|promote|remove`.

use serde_json::json;
use stele_node::members::{check_member, check_members};
use stele_proto::v1::{
    AddLearnerRequest, ChangeMembershipRequest, InitRequest, Member, MemberStatus,
    MembershipResponse, StatusRequest, StatusResponse, change_membership_request,
};

use super::membership::{self, Edit};
use crate::cli::{ClusterCommand, MembershipChange, Remote};
use crate::failure::{Failure, Result};
use crate::output::Output;
use crate::remote::{call, client, connect};

pub fn run(out: Output, command: ClusterCommand) -> Result<()> {
    match command {
        ClusterCommand::Init {
            members,
            endpoint,
            timeout,
        } => {
            let members = members
                .iter()
                .map(|m| parse_member(m))
                .collect::<Result<Vec<_>>>()?;
            check_members(
                members
                    .iter()
                    .map(|m| (m.id, m.addr.as_str(), m.peer_addr.as_str())),
            )
            .map_err(|e| Failure::usage(e.to_string()))?;
            let endpoint = endpoint.unwrap_or_else(|| members[0].addr.clone());
            let client = connect(&endpoint, timeout)?;
            let reply = call(client.init(InitRequest { members }))?;
            print_membership(out, &reply, "initialized");
            Ok(())
        }
        ClusterCommand::Status { remote } => {
            let client = client(&remote)?;
            let status = call(client.status(StatusRequest { local_only: false }))?;
            out.result(&status_json(&status), || status_text(&status));
            Ok(())
        }
        ClusterCommand::AddLearner {
            member,
            region,
            change,
            remote,
        } => {
            let member = parse_member(&member)?;
            if !change.keys.is_empty() {
                let edit = Edit::AddLearner {
                    id: member.id,
                    client: member.addr,
                    peer: member.peer_addr,
                    region,
                };
                return membership::propose(out, &remote, change, edit);
            }
            if !region.is_empty() {
                return Err(Failure::usage(
                    "--region is recorded in the ledger: it needs --key (a signed membership version)",
                ));
            }
            unsigned_only(&change)?;
            let client = client(&remote)?;
            let reply = call(client.add_learner(AddLearnerRequest {
                member: Some(member),
            }))?;
            print_membership(out, &reply, "learner added");
            Ok(())
        }
        ClusterCommand::Promote { id, change, remote } => voter_change(
            out,
            &remote,
            change,
            Edit::Promote(id),
            change_membership_request::Change::Promote(id),
            "promoted",
        ),
        ClusterCommand::Remove { id, change, remote } => voter_change(
            out,
            &remote,
            change,
            Edit::Remove(id),
            change_membership_request::Change::Remove(id),
            "removed",
        ),
    }
}

/// `promote` or `remove`: a signed membership version with --key, the
/// unsigned Admin call without.
fn voter_change(
    out: Output,
    remote: &Remote,
    signing: MembershipChange,
    edit: Edit,
    unsigned: change_membership_request::Change,
    what: &str,
) -> Result<()> {
    if !signing.keys.is_empty() {
        return membership::propose(out, remote, signing, edit);
    }
    unsigned_only(&signing)?;
    change(out, remote, unsigned, what)
}

/// Refuses the flags of a signed membership version on the unsigned Admin
/// call, rather than dropping them.
fn unsigned_only(change: &MembershipChange) -> Result<()> {
    if !change.certs.is_empty() || change.message.is_some() || change.author.is_some() {
        return Err(Failure::usage(
            "--cert, --message and --author belong to a signed membership version: add --key",
        ));
    }
    Ok(())
}

fn status_json(status: &StatusResponse) -> serde_json::Value {
    let present = |text: &String| (!text.is_empty()).then(|| text.clone());
    let members: Vec<_> = status
        .members
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "addr": m.addr,
                "peer_addr": m.peer_addr,
                "role": m.role,
                "voter": m.voter,
                "applied_seq": m.applied_seq,
                "stale": m.stale,
                "log_key": present(&m.log_key),
                "log_signed_count": m.log_signed_count,
                "log_signed_head": present(&m.log_signed_head),
                "log_error": present(&m.log_error),
                "spki_sha256": present(&m.spki_sha256),
            })
        })
        .collect();
    json!({ "leader": status.leader, "term": status.term, "members": members })
}

fn status_text(status: &StatusResponse) -> String {
    let mut text = format!(
        "leader: {}   term: {}\n",
        status.leader.map_or("none".into(), |l| l.to_string()),
        status.term
    );
    for member in &status.members {
        text.push_str(&member_text(member));
    }
    text.trim_end().to_string()
}

fn member_text(m: &MemberStatus) -> String {
    let mut text = format!(
        "  node {:<3} {:<22} {:<12} {:<7} seq {:<6} {:<6} log key {}\n",
        m.id,
        m.addr,
        m.role,
        if m.voter { "voter" } else { "learner" },
        m.applied_seq.map_or("-".into(), |s| s.to_string()),
        if m.stale { "STALE" } else { "fresh" },
        if m.log_key.is_empty() {
            "-"
        } else {
            &m.log_key
        },
    );
    if let Some(count) = m.log_signed_count {
        text.push_str(&format!(
            "           log signed: {count} records, head {}\n",
            m.log_signed_head
        ));
    }
    if !m.log_error.is_empty() {
        text.push_str(&format!(
            "           LOG FAILED (decisions refused): {}\n",
            m.log_error
        ));
    }
    text
}

fn change(
    out: Output,
    remote: &Remote,
    change: change_membership_request::Change,
    what: &str,
) -> Result<()> {
    let client = client(remote)?;
    let reply = call(client.change_membership(ChangeMembershipRequest {
        change: Some(change),
    }))?;
    print_membership(out, &reply, what);
    Ok(())
}

fn parse_member(text: &str) -> Result<Member> {
    let shape =
        "a member is ID=HOST:PORT,PEER_HOST:PEER_PORT (its client address, then its peer address)";
    let (id, addrs) = text
        .split_once('=')
        .ok_or_else(|| Failure::usage(format!("{text:?}: {shape}")))?;
    let (addr, peer_addr) = addrs
        .split_once(',')
        .ok_or_else(|| Failure::usage(format!("{text:?}: {shape}")))?;
    let id: u64 =
        id.parse().ok().filter(|id| *id > 0).ok_or_else(|| {
            Failure::usage(format!("{text:?}: the id must be a positive integer"))
        })?;
    check_member(id, addr, peer_addr).map_err(|e| Failure::usage(e.to_string()))?;
    Ok(Member {
        id,
        addr: addr.to_string(),
        peer_addr: peer_addr.to_string(),
    })
}

fn print_membership(out: Output, membership: &MembershipResponse, what: &str) {
    let list = |members: &[Member]| -> Vec<serde_json::Value> {
        members
            .iter()
            .map(|m| json!({"id": m.id, "addr": m.addr, "peer_addr": m.peer_addr}))
            .collect()
    };
    let value =
        json!({ "voters": list(&membership.voters), "learners": list(&membership.learners) });
    out.result(&value, || {
        let names = |members: &[Member]| {
            members
                .iter()
                .map(|m| format!("{}={},{}", m.id, m.addr, m.peer_addr))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "{what}; voters: {}; learners: {}",
            names(&membership.voters),
            if membership.learners.is_empty() {
                "none".into()
            } else {
                names(&membership.learners)
            }
        )
    });
}
