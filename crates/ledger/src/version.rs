//! Versions: the header every approver signs, its canonical bytes and hash.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::admission::Head;
use crate::hash::{Hash, tagged_sha256};
use crate::keys::{Approval, PublicKey, SecretKey};
use crate::member_set::MemberSet;
use crate::trust::TrustSet;

/// Domain tag of a version hash: `sha256(tag ‖ 0x00 ‖ canonical header bytes)`.
pub const VERSION_TAG: &str = "stele/version/v1";

/// What a version does to the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Kind {
    /// The first version: declares the first trust set.
    Genesis,
    /// A new bundle, signed by M of the trust set in force.
    Update,
    /// Restores the bundle of an earlier version as a new version; the bundle
    /// digest must equal that version's.
    Rollback { to_seq: u64 },
    /// Replaces the trust set; signed by M of the old set and M' of the new.
    /// The bundle stays the head's.
    Rotate,
    /// Replaces the member set (who runs the cluster); signed by M of the
    /// trust set in force. The bundle stays the head's.
    Membership,
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Genesis => "genesis",
            Kind::Update => "update",
            Kind::Rollback { .. } => "rollback",
            Kind::Rotate => "rotate",
            Kind::Membership => "membership",
        }
    }

    fn code(&self) -> u8 {
        match self {
            Kind::Genesis => 1,
            Kind::Update => 2,
            Kind::Rollback { .. } => 3,
            Kind::Rotate => 4,
            Kind::Membership => 5,
        }
    }

    /// Whether this kind of version declares a trust set in its header.
    pub fn declares_trust(&self) -> bool {
        matches!(self, Kind::Genesis | Kind::Rotate)
    }

    /// Whether this kind of version may declare a member set in its header:
    /// a `membership` version must, a genesis may (the first member set;
    /// a genesis from before member sets declares none).
    pub fn may_declare_members(&self) -> bool {
        matches!(self, Kind::Genesis | Kind::Membership)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Rollback { to_seq } => write!(f, "rollback to {to_seq}"),
            other => f.write_str(other.name()),
        }
    }
}

/// Everything a version means. The hash covers every field; signatures are
/// over the hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub seq: u64,
    pub parent_hash: Hash,
    pub bundle_digest: Hash,
    pub kind: Kind,
    pub message: String,
    pub author: String,
    /// Unix seconds, as the proposer claims: informational, never trusted for
    /// ordering or expiry.
    pub created_at: u64,
    /// The trust set this version declares: present exactly on `genesis` and
    /// `rotate`.
    pub trust: Option<TrustSet>,
    /// Unix seconds after which this version can no longer commit (a
    /// cluster compares it with its leader's clock), so that signatures
    /// collected for a change nobody submitted do not stay good forever.
    /// Absent in versions made before it existed, which never expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// The member set this version declares: present on `membership`, and on
    /// a genesis that names the first members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<MemberSet>,
}

/// The tags of the canonical header's optional fields.
const EXPIRES_AT_FIELD: u8 = 1;
const APPROVER_NAMES_FIELD: u8 = 2;
const MEMBERS_FIELD: u8 = 3;

/// The proposer's own words on a version: what it is for, who wrote it,
/// and when (Unix seconds, a claim: never trusted for ordering or expiry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorship {
    pub message: String,
    pub author: String,
    pub created_at: u64,
}

impl Header {
    /// The first version: seq 1, no parent, declaring the first trust set.
    pub fn genesis(bundle_digest: Hash, trust: TrustSet, by: Authorship) -> Header {
        Header {
            seq: 1,
            parent_hash: Hash::ZERO,
            bundle_digest,
            kind: Kind::Genesis,
            message: by.message,
            author: by.author,
            created_at: by.created_at,
            trust: Some(trust),
            expires_at: None,
            members: None,
        }
    }

    /// The version after `head`: the next seq, `head` as its parent. A
    /// rotation also needs [`Header::declaring`] its new trust set.
    pub fn after(head: Head, bundle_digest: Hash, kind: Kind, by: Authorship) -> Header {
        Header {
            seq: head.seq + 1,
            parent_hash: head.hash,
            bundle_digest,
            kind,
            message: by.message,
            author: by.author,
            created_at: by.created_at,
            trust: None,
            expires_at: None,
            members: None,
        }
    }

    /// This header, unable to commit after Unix second `at`.
    pub fn expiring(self, at: u64) -> Header {
        Header {
            expires_at: Some(at),
            ..self
        }
    }

    /// Whether this version can no longer commit at `now_ms` (Unix
    /// milliseconds, a leader's clock).
    pub fn expired_at(&self, now_ms: u64) -> bool {
        self.expires_at
            .is_some_and(|at| now_ms >= at.saturating_mul(1000))
    }

    /// This header, declaring `members` (a membership version or a genesis
    /// does).
    pub fn listing(self, members: MemberSet) -> Header {
        Header {
            members: Some(members),
            ..self
        }
    }

    /// This header, declaring `trust` (a genesis or a rotation does).
    pub fn declaring(self, trust: TrustSet) -> Header {
        Header {
            trust: Some(trust),
            ..self
        }
    }

    /// The canonical, byte-exact encoding hashed into the version hash
    /// (docs/FORMAT.md, "Version header").
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.message.len() + self.author.len());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(self.parent_hash.as_bytes());
        out.extend_from_slice(self.bundle_digest.as_bytes());
        out.push(self.kind.code());
        if let Kind::Rollback { to_seq } = self.kind {
            out.extend_from_slice(&to_seq.to_be_bytes());
        }
        put_bytes(&mut out, self.message.as_bytes());
        put_bytes(&mut out, self.author.as_bytes());
        out.extend_from_slice(&self.created_at.to_be_bytes());
        match &self.trust {
            None => out.push(0),
            Some(trust) => {
                out.push(1);
                out.extend_from_slice(&trust.threshold().to_be_bytes());
                out.extend_from_slice(&(trust.keys().len() as u64).to_be_bytes());
                for key in trust.keys() {
                    out.extend_from_slice(key.as_bytes());
                }
            }
        }
        // Optional fields, each a tag and its value, in ascending tag order.
        // A header without them encodes as it did before they existed.
        if let Some(at) = self.expires_at {
            out.push(EXPIRES_AT_FIELD);
            out.extend_from_slice(&at.to_be_bytes());
        }
        // The declared trust set's names, one per key, in key order.
        if let Some(approvers) = self.trust.as_ref().and_then(TrustSet::approvers) {
            out.push(APPROVER_NAMES_FIELD);
            for approver in approvers {
                put_bytes(&mut out, approver.name.as_bytes());
                put_bytes(&mut out, approver.contact.as_bytes());
            }
        }
        if let Some(members) = &self.members {
            out.push(MEMBERS_FIELD);
            out.extend_from_slice(&(members.members().len() as u64).to_be_bytes());
            for member in members.members() {
                out.extend_from_slice(&member.id.to_be_bytes());
                out.push(member.role.code());
                put_bytes(&mut out, member.client.as_bytes());
                put_bytes(&mut out, member.peer.as_bytes());
                put_bytes(&mut out, member.region.as_bytes());
                out.extend_from_slice(member.spki_sha256.as_bytes());
            }
        }
        out
    }

    pub fn hash(&self) -> Hash {
        tagged_sha256(VERSION_TAG, &self.canonical_bytes())
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A header and the approvals collected for it. In files, approvals are
/// sorted by key, each key once, so a version has a single spelling; in
/// memory anything goes, and admission counts each key once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    pub header: Header,
    #[serde(deserialize_with = "sorted_distinct_approvals")]
    pub signatures: Vec<Approval>,
}

fn sorted_distinct_approvals<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Approval>, D::Error> {
    let approvals = Vec::<Approval>::deserialize(deserializer)?;
    if !approvals.windows(2).all(|pair| pair[0].key < pair[1].key) {
        return Err(serde::de::Error::custom(
            "signatures must be sorted by key, each key once",
        ));
    }
    Ok(approvals)
}

impl Version {
    pub fn unsigned(header: Header) -> Version {
        Version {
            header,
            signatures: Vec::new(),
        }
    }

    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    pub fn seq(&self) -> u64 {
        self.header.seq
    }

    pub fn signers(&self) -> impl Iterator<Item = &PublicKey> {
        self.signatures.iter().map(|approval| &approval.key)
    }

    /// Adds `key`'s signature, in key order, unless that key already signed.
    /// Returns whether a signature was added.
    pub fn sign(&mut self, key: &SecretKey) -> bool {
        let public = key.public_key();
        if self.signatures.iter().any(|a| a.key == public) {
            return false;
        }
        let signature = key.sign(&self.hash());
        self.add_approval(Approval {
            key: public,
            signature,
        })
    }

    /// Adds `approval`, in key order, unless its key already signed (the
    /// signature is not checked here; admission checks every one). Returns
    /// whether it was added.
    pub fn add_approval(&mut self, approval: Approval) -> bool {
        match self
            .signatures
            .binary_search_by_key(&approval.key, |a| a.key)
        {
            #[cfg(stele_sim)]
            Ok(position) if crate::defects::active(crate::defects::Defect::DoubleCountSigner) => {
                self.signatures.insert(position, approval);
                true
            }
            Ok(_) => false,
            Err(position) => {
                self.signatures.insert(position, approval);
                true
            }
        }
    }

    /// How many distinct keys signed (whether or not they count or verify).
    pub fn distinct_signers(&self) -> usize {
        self.signers()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    }
}
