//! Member sets: who runs the cluster, as the ledger records it. A genesis
//! declares the first one and every `membership` version the next, signed by
//! M of the trust set in force like any version: nobody changes who runs the
//! cluster alone, and every change is a version anyone can audit.

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::hash::Hash;
use crate::limits::{MAX_ADDRESS_BYTES, MAX_MEMBERS, MAX_REGION_BYTES};
use crate::trust::hides_text;

/// What a node does in Raft.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Votes, and counts towards every quorum.
    Voter,
    /// Receives the log and serves decisions, but never votes.
    Learner,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Voter => "voter",
            Role::Learner => "learner",
        }
    }

    /// The byte that stands for the role in a canonical header.
    pub(crate) fn code(self) -> u8 {
        match self {
            Role::Voter => 1,
            Role::Learner => 2,
        }
    }
}

/// One node, as the ledger lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// The Raft node id; its certificate names it (`stele://node/ID`).
    pub id: u64,
    pub role: Role,
    /// Where clients reach it (`HOST:PORT`).
    pub client: String,
    /// Where peers reach it (`HOST:PORT`), the Raft transport.
    pub peer: String,
    /// Free text (`eu-west-1`), empty when the cluster has no regions.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    /// SHA-256 of the node's TLS public key (its certificate's
    /// SubjectPublicKeyInfo, DER): a peer is the node only with this key, so
    /// a certificate from the cluster CA alone does not make a member.
    pub spki_sha256: Hash,
}

/// A list of nodes that is not a member set.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MemberSetError {
    #[error("a member set needs at least one node")]
    Empty,
    #[error("a member set holds at most {MAX_MEMBERS} nodes, got {count}")]
    TooMany { count: usize },
    #[error("node {0} is listed more than once")]
    DuplicateId(u64),
    #[error("members must be sorted by node id, each id once")]
    Unsorted,
    #[error("a member set needs at least one voter: without one the cluster cannot commit")]
    NoVoter,
    #[error("node {id}'s {which} address {address:?}: {why}")]
    BadAddress {
        id: u64,
        which: &'static str,
        address: String,
        why: &'static str,
    },
    #[error("address {0} is listed twice: every client and peer address belongs to one node")]
    DuplicateAddress(String),
    #[error("node {id}'s region {region:?}: {why}")]
    BadRegion {
        id: u64,
        region: String,
        why: &'static str,
    },
    #[error(
        "nodes {first} and {second} list the same TLS key fingerprint: one key cannot be two nodes"
    )]
    DuplicateFingerprint { first: u64, second: u64 },
}

/// The nodes that run the cluster, sorted by id, with at least one voter.
/// It has exactly one encoding, like a trust set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSet {
    members: Vec<Member>,
}

impl MemberSet {
    /// Builds a member set from any order of nodes.
    pub fn new(mut members: Vec<Member>) -> Result<MemberSet, MemberSetError> {
        members.sort_by_key(|member| member.id);
        if let Some(pair) = members.windows(2).find(|pair| pair[0].id == pair[1].id) {
            return Err(MemberSetError::DuplicateId(pair[0].id));
        }
        MemberSet::sorted(members)
    }

    /// Checks a list that must already be sorted by id (as a file's is).
    fn sorted(members: Vec<Member>) -> Result<MemberSet, MemberSetError> {
        if members.is_empty() {
            return Err(MemberSetError::Empty);
        }
        if members.len() > MAX_MEMBERS {
            return Err(MemberSetError::TooMany {
                count: members.len(),
            });
        }
        if !members.windows(2).all(|pair| pair[0].id < pair[1].id) {
            return Err(MemberSetError::Unsorted);
        }
        if !members.iter().any(|member| member.role == Role::Voter) {
            return Err(MemberSetError::NoVoter);
        }
        let mut addresses = BTreeSet::new();
        let mut fingerprints = std::collections::BTreeMap::new();
        for member in &members {
            for (which, address) in [("client", &member.client), ("peer", &member.peer)] {
                check_address(address).map_err(|why| MemberSetError::BadAddress {
                    id: member.id,
                    which,
                    address: address.clone(),
                    why,
                })?;
                if !addresses.insert(address.as_str()) {
                    return Err(MemberSetError::DuplicateAddress(address.clone()));
                }
            }
            check_region(&member.region).map_err(|why| MemberSetError::BadRegion {
                id: member.id,
                region: member.region.clone(),
                why,
            })?;
            if let Some(first) = fingerprints.insert(member.spki_sha256, member.id) {
                return Err(MemberSetError::DuplicateFingerprint {
                    first,
                    second: member.id,
                });
            }
        }
        Ok(MemberSet { members })
    }

    /// The nodes, sorted by id.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn get(&self, id: u64) -> Option<&Member> {
        self.members
            .binary_search_by_key(&id, |member| member.id)
            .ok()
            .map(|index| &self.members[index])
    }

    /// The voters' ids, ascending.
    pub fn voter_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.members
            .iter()
            .filter(|member| member.role == Role::Voter)
            .map(|member| member.id)
    }

    /// What changes from `before` to this set, node by node in id order.
    pub fn changes_from<'a>(&'a self, before: &'a MemberSet) -> Vec<MemberChange<'a>> {
        let mut changes = Vec::new();
        for member in &before.members {
            if self.get(member.id).is_none() {
                changes.push(MemberChange::Removed(member));
            }
        }
        for member in &self.members {
            match before.get(member.id) {
                None => changes.push(MemberChange::Added(member)),
                Some(old) if old != member => changes.push(MemberChange::Changed {
                    before: old,
                    after: member,
                }),
                Some(_) => {}
            }
        }
        changes.sort_by_key(MemberChange::id);
        changes
    }
}

/// One node's difference between two member sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberChange<'a> {
    Added(&'a Member),
    Removed(&'a Member),
    /// A new role, address, region or key.
    Changed {
        before: &'a Member,
        after: &'a Member,
    },
}

impl MemberChange<'_> {
    pub fn id(&self) -> u64 {
        match self {
            MemberChange::Added(member) | MemberChange::Removed(member) => member.id,
            MemberChange::Changed { after, .. } => after.id,
        }
    }
}

/// `HOST:PORT`, one spelling: a host without spaces (an IPv6 one in
/// brackets) and a decimal port from 1 to 65535 with no sign or leading
/// zero.
fn check_address(address: &str) -> Result<(), &'static str> {
    const FORM: &str = "expected HOST:PORT (an IPv6 host in brackets), a port from 1 to 65535";
    if address.len() > MAX_ADDRESS_BYTES {
        return Err("longer than 256 bytes");
    }
    if address
        .chars()
        .any(|c| c.is_whitespace() || hides_text(c) || c == '/')
    {
        return Err("no spaces, control characters or slashes (no scheme, no path)");
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(FORM);
    };
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        // An IPv6 host, in brackets.
        Some(inner) => inner.contains(':') && !inner.contains(['[', ']']),
        None => !host.is_empty() && !host.contains([':', '[', ']']),
    };
    if !host_ok {
        return Err(FORM);
    }
    let digits_only = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || port.starts_with('0') || port.parse::<u16>().is_err() {
        return Err(FORM);
    }
    Ok(())
}

fn check_region(region: &str) -> Result<(), &'static str> {
    if region.len() > MAX_REGION_BYTES {
        return Err("longer than 64 bytes");
    }
    if region.trim() != region || region.chars().any(hides_text) {
        return Err(
            "no control, invisible or text-direction characters, and no spaces at either end",
        );
    }
    Ok(())
}

impl Serialize for MemberSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.members.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for MemberSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let members = Vec::<Member>::deserialize(deserializer)?;
        MemberSet::sorted(members).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u64, role: Role) -> Member {
        Member {
            id,
            role,
            client: format!("10.0.0.{id}:7000"),
            peer: format!("10.0.0.{id}:7100"),
            region: String::new(),
            spki_sha256: Hash::of_bytes(&id.to_be_bytes()),
        }
    }

    #[test]
    fn a_member_set_is_sorted_and_round_trips() {
        let set = MemberSet::new(vec![node(3, Role::Learner), node(1, Role::Voter)]).unwrap();
        assert_eq!(
            set.members().iter().map(|m| m.id).collect::<Vec<_>>(),
            [1, 3]
        );
        assert_eq!(set.voter_ids().collect::<Vec<_>>(), [1]);
        let json = serde_json::to_value(&set).unwrap();
        assert_eq!(json[0]["role"], "voter");
        assert!(
            json[0].get("region").is_none(),
            "an empty region is left out"
        );
        assert_eq!(
            serde_json::from_value::<MemberSet>(json.clone()).unwrap(),
            set
        );
        // A file has one spelling: sorted by id.
        let mut reversed = json.clone();
        reversed.as_array_mut().unwrap().reverse();
        assert!(serde_json::from_value::<MemberSet>(reversed).is_err());
    }

    #[test]
    fn sets_that_could_not_run_a_cluster_are_refused() {
        use MemberSetError::*;
        assert_eq!(MemberSet::new(vec![]), Err(Empty));
        assert_eq!(MemberSet::new(vec![node(1, Role::Learner)]), Err(NoVoter));
        assert_eq!(
            MemberSet::new(vec![node(1, Role::Voter), node(1, Role::Learner)]),
            Err(DuplicateId(1))
        );
        let too_many = (1..=MAX_MEMBERS as u64 + 1)
            .map(|id| Member {
                client: format!("n{id}:7000"),
                peer: format!("n{id}:7100"),
                ..node(id, Role::Voter)
            })
            .collect();
        assert_eq!(
            MemberSet::new(too_many),
            Err(TooMany {
                count: MAX_MEMBERS + 1
            })
        );
        let mut same_key = node(2, Role::Voter);
        same_key.spki_sha256 = node(1, Role::Voter).spki_sha256;
        assert_eq!(
            MemberSet::new(vec![node(1, Role::Voter), same_key]),
            Err(DuplicateFingerprint {
                first: 1,
                second: 2
            })
        );
        let mut same_address = node(2, Role::Voter);
        same_address.peer = node(1, Role::Voter).client;
        assert_eq!(
            MemberSet::new(vec![node(1, Role::Voter), same_address]),
            Err(DuplicateAddress("10.0.0.1:7000".into()))
        );
        let mut bad_region = node(1, Role::Voter);
        bad_region.region = "eu\u{202E}".into();
        assert!(matches!(
            MemberSet::new(vec![bad_region]),
            Err(BadRegion { id: 1, .. })
        ));
    }

    #[test]
    fn addresses_are_host_and_port_with_one_spelling() {
        for good in ["10.0.0.1:7000", "node-1.example:1", "[::1]:65535"] {
            assert_eq!(check_address(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "10.0.0.1",
            ":7000",
            "10.0.0.1:",
            "10.0.0.1:0",
            "10.0.0.1:07000",
            "10.0.0.1:+7000",
            "10.0.0.1:65536",
            "::1:7000",
            "http://10.0.0.1:7000",
            "10.0.0.1 :7000",
            "[]:7000",
            "[10.0.0.1]:7000",
            "[::1:7000",
        ] {
            assert!(check_address(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(check_address(&format!("{}:1", "a".repeat(MAX_ADDRESS_BYTES))).is_err());
    }

    #[test]
    fn changes_name_each_node_added_removed_or_changed() {
        let before = MemberSet::new(vec![node(1, Role::Voter), node(2, Role::Learner)]).unwrap();
        let after = MemberSet::new(vec![node(2, Role::Voter), node(3, Role::Learner)]).unwrap();
        let changes = after.changes_from(&before);
        assert_eq!(changes.len(), 3);
        assert!(matches!(changes[0], MemberChange::Removed(m) if m.id == 1));
        assert!(
            matches!(changes[1], MemberChange::Changed { before, after } if before.role == Role::Learner && after.role == Role::Voter)
        );
        assert!(matches!(changes[2], MemberChange::Added(m) if m.id == 3));
        assert!(after.changes_from(&after).is_empty());
    }
}
