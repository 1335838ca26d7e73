//! `stele cluster add-learner|promote|remove --key K`: a membership change as
//! a signed `membership` version. It lists the complete new member set (the
//! one in force, changed), carries the head's bundle unchanged, and is
//! proposed like any version: committed at M signatures, pending below. The
//! leader then makes Raft's membership follow it.

use std::collections::BTreeMap;

use stele_ledger::{Hash, Kind, Member, MemberSet, PublicKey, Role, SecretKey};
use stele_proto::v1::StatusRequest;

use super::ledger::{header_on, signed};
use super::writes::{head, in_force, send_new};
use crate::cli::{About, MembershipChange, Remote};
use crate::failure::{Failure, Result};
use crate::files::load_secret_keys;
use crate::ledger_files::author_for;
use crate::output::Output;
use crate::remote::{call, client};

/// What changes, node by node.
pub enum Edit {
    AddLearner {
        id: u64,
        client: String,
        peer: String,
        region: String,
    },
    Promote(u64),
    Remove(u64),
}

impl Edit {
    fn describe(&self) -> String {
        match self {
            Edit::AddLearner { id, .. } => format!("add learner {id}"),
            Edit::Promote(id) => format!("promote {id} to voter"),
            Edit::Remove(id) => format!("remove {id}"),
        }
    }
}

pub fn propose(out: Output, remote: &Remote, change: MembershipChange, edit: Edit) -> Result<()> {
    let keys = load_secret_keys(&change.keys)?;
    let fingerprints = read_certificates(&change.certs)?;
    let client = client(remote)?;
    let head = head(&client)?;
    let in_force = in_force(&client, head)?;
    let members = match &in_force.members {
        Some(set) => set.members().to_vec(),
        None => members_from_raft(&client, &fingerprints)?,
    };
    let first = in_force.members.is_none();
    let members = apply(members, &edit, &fingerprints)?;
    let set = MemberSet::new(members).map_err(|e| Failure::usage(e.to_string()))?;
    let (_, files) = call(client.version(head.seq))?;
    let public: Vec<PublicKey> = keys.iter().map(SecretKey::public_key).collect();
    let author = author_for(
        &in_force.trust.iter().collect::<Vec<_>>(),
        &public,
        change.author.as_deref(),
    )?;
    let about = About {
        message: change.message.unwrap_or_else(|| match first {
            true => format!("{}; the first member set the ledger names", edit.describe()),
            false => edit.describe(),
        }),
        author: change.author,
        expires_in: Some(change.expires_in),
    };
    let header = header_on(head, &files, Kind::Membership, &about, author).listing(set);
    send_new(out, &client, signed(header, &keys), files)
}

/// The node id and key fingerprint each certificate names.
fn read_certificates(paths: &[std::path::PathBuf]) -> Result<BTreeMap<u64, Hash>> {
    let mut fingerprints = BTreeMap::new();
    for path in paths {
        let pem = std::fs::read_to_string(path).map_err(|e| {
            Failure::usage(format!("cannot read certificate {}: {e}", path.display()))
        })?;
        let names = stele_tls::issue::names(&pem)
            .map_err(|e| Failure::usage(format!("certificate {}: {e}", path.display())))?;
        let Some(id) = names.node else {
            return Err(Failure::usage(format!(
                "certificate {} is not a node's (it names no stele://node/N)",
                path.display()
            )));
        };
        let fingerprint: Hash = names
            .spki_sha256
            .parse()
            .map_err(|e| Failure::usage(format!("certificate {}: {e}", path.display())))?;
        if fingerprints.insert(id, fingerprint).is_some() {
            return Err(Failure::usage(format!("two --cert files name node {id}")));
        }
    }
    Ok(fingerprints)
}

/// The first member set of a ledger that names none: Raft's members as the
/// cluster reports them, each with the key its certificate (--cert) holds.
fn members_from_raft(
    client: &stele_client::Client,
    fingerprints: &BTreeMap<u64, Hash>,
) -> Result<Vec<Member>> {
    let status = call(client.status(StatusRequest { local_only: false }))?;
    status
        .members
        .iter()
        .map(|member| {
            let spki_sha256 = *fingerprints.get(&member.id).ok_or_else(|| {
                Failure::usage(format!(
                    "the ledger names no members yet, so this first membership version lists every node, each with its key: give node {}'s certificate with --cert",
                    member.id
                ))
            })?;
            Ok(Member {
                id: member.id,
                role: if member.voter { Role::Voter } else { Role::Learner },
                client: member.addr.clone(),
                peer: member.peer_addr.clone(),
                region: String::new(),
                spki_sha256,
            })
        })
        .collect()
}

/// `members` with `edit` applied, and every key a --cert gives.
fn apply(
    mut members: Vec<Member>,
    edit: &Edit,
    fingerprints: &BTreeMap<u64, Hash>,
) -> Result<Vec<Member>> {
    let position = |members: &[Member], id: u64| members.iter().position(|m| m.id == id);
    match edit {
        Edit::AddLearner {
            id,
            client,
            peer,
            region,
        } => {
            if position(&members, *id).is_some() {
                return Err(Failure::usage(format!(
                    "node {id} is already a member; to move it, remove it and add it again"
                )));
            }
            let spki_sha256 = *fingerprints.get(id).ok_or_else(|| {
                Failure::usage(format!(
                    "give node {id}'s certificate with --cert: the ledger lists the key each node holds"
                ))
            })?;
            members.push(Member {
                id: *id,
                role: Role::Learner,
                client: client.clone(),
                peer: peer.clone(),
                region: region.clone(),
                spki_sha256,
            });
        }
        Edit::Promote(id) => {
            let index = position(&members, *id)
                .ok_or_else(|| Failure::usage(format!("node {id} is not a member")))?;
            if members[index].role == Role::Voter {
                return Err(Failure::usage(format!("node {id} is already a voter")));
            }
            members[index].role = Role::Voter;
        }
        Edit::Remove(id) => {
            let index = position(&members, *id)
                .ok_or_else(|| Failure::usage(format!("node {id} is not a member")))?;
            members.remove(index);
        }
    }
    // A certificate for a node listed already must hold the listed key: a
    // change signed as "promote 4" must not quietly re-key node 1.
    for member in &members {
        if let Some(fingerprint) = fingerprints.get(&member.id)
            && *fingerprint != member.spki_sha256
        {
            return Err(Failure::usage(format!(
                "the certificate given for node {} holds key {fingerprint}, but the ledger lists {} for it; this command does not re-key a node (remove it and add it again)",
                member.id, member.spki_sha256
            )));
        }
    }
    Ok(members)
}
