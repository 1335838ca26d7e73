//! `stele cluster add-learner|promote|remove --key K`: a membership change as
//! a signed `membership` version. It lists the complete new member set (the
//! one in force, changed), carries the head's bundle unchanged, and is
//! proposed like any version: committed at M signatures, pending below. The
//! leader then makes Raft's membership follow it.

use std::collections::BTreeMap;

use stele_ledger::{Hash, Kind, Member, MemberSet, PublicKey, Role, SecretKey};

use super::cluster_view::committed;
use super::ledger::{header_on, signed};
use super::writes::{head, in_force, send_new};
use crate::cli::{About, GenesisMembers, MembershipChange, Remote};
use crate::failure::{Failure, Result};
use crate::files::load_secret_keys;
use crate::ledger_files::author_for;
use crate::output::Output;
use crate::remote::client;

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
    let members = in_force
        .members
        .as_ref()
        .ok_or_else(|| {
            Failure::usage(
                "the cluster's ledger names no members, so there is no member set to change: a cluster starts from a genesis that lists its members (`stele ledger new ... --member ... --cert ...`, then `stele cluster init`)",
            )
        })?
        .members()
        .to_vec();
    let members = apply(members, &edit, &fingerprints)?;
    let set = MemberSet::new(members).map_err(|e| Failure::usage(e.to_string()))?;
    let (_, files) = committed(&client, head.seq)?;
    let public: Vec<PublicKey> = keys.iter().map(SecretKey::public_key).collect();
    let author = author_for(
        &in_force.trust.iter().collect::<Vec<_>>(),
        &public,
        change.author.as_deref(),
    )?;
    let about = About {
        message: change.message.unwrap_or_else(|| edit.describe()),
        author: change.author,
        expires_in: Some(change.expires_in),
    };
    let header = header_on(head, &files, Kind::Membership, &about, author).listing(set);
    send_new(out, &client, signed(header, &keys), files, &change.confirm)
}

/// A node as `--member` or `add-learner` gives it.
pub struct NewMember {
    pub id: u64,
    pub client: String,
    pub peer: String,
}

/// `ID=HOST:PORT,PEER_HOST:PEER_PORT`.
pub fn parse_member(text: &str) -> Result<NewMember> {
    let shape =
        "a member is ID=HOST:PORT,PEER_HOST:PEER_PORT (its client address, then its peer address)";
    let (id, addrs) = text
        .split_once('=')
        .ok_or_else(|| Failure::usage(format!("{text:?}: {shape}")))?;
    let (client, peer) = addrs
        .split_once(',')
        .ok_or_else(|| Failure::usage(format!("{text:?}: {shape}")))?;
    let id: u64 =
        id.parse().ok().filter(|id| *id > 0).ok_or_else(|| {
            Failure::usage(format!("{text:?}: the id must be a positive integer"))
        })?;
    stele_node::members::check_member(id, client, peer)
        .map_err(|e| Failure::usage(e.to_string()))?;
    Ok(NewMember {
        id,
        client: client.to_string(),
        peer: peer.to_string(),
    })
}

/// The member set a genesis declares (`--member`, `--cert`, `--region`):
/// every member a voter, with its certificate's key. `None` without
/// `--member`.
pub fn genesis_members(args: &GenesisMembers) -> Result<Option<MemberSet>> {
    if args.members.is_empty() {
        if !args.certs.is_empty() || !args.regions.is_empty() {
            return Err(Failure::usage(
                "--cert and --region describe members: list each with --member ID=ADDR,PEER",
            ));
        }
        return Ok(None);
    }
    let fingerprints = read_certificates(&args.certs)?;
    let mut regions = BTreeMap::new();
    for text in &args.regions {
        let (id, region) = text
            .split_once('=')
            .and_then(|(id, region)| Some((id.parse::<u64>().ok()?, region)))
            .ok_or_else(|| Failure::usage(format!("--region {text:?}: expected ID=TEXT")))?;
        regions.insert(id, region.to_string());
    }
    let mut members = Vec::new();
    for text in &args.members {
        let member = parse_member(text)?;
        let spki_sha256 = *fingerprints.get(&member.id).ok_or_else(|| {
            Failure::usage(format!(
                "give node {}'s certificate with --cert: a member set lists the key each node holds",
                member.id
            ))
        })?;
        members.push(Member {
            id: member.id,
            role: Role::Voter,
            client: member.client,
            peer: member.peer,
            region: regions.remove(&member.id).unwrap_or_default(),
            spki_sha256,
        });
    }
    if let Some(id) = fingerprints
        .keys()
        .find(|id| !members.iter().any(|m| m.id == **id))
    {
        return Err(Failure::usage(format!(
            "--cert names node {id}, which no --member lists"
        )));
    }
    if let Some(id) = regions.keys().next() {
        return Err(Failure::usage(format!(
            "--region names node {id}, which no --member lists"
        )));
    }
    MemberSet::new(members)
        .map(Some)
        .map_err(|e| Failure::usage(e.to_string()))
}

/// The node id and key fingerprint each certificate names.
pub fn read_certificates(paths: &[std::path::PathBuf]) -> Result<BTreeMap<u64, Hash>> {
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
