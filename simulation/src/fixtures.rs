//! What the simulated clients sign and send: approver keys from the seed,
//! small policy bundles whose answers differ from version to version, and
//! versions of every kind built on a chain the client keeps track of.

use std::collections::HashMap;

use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use sha2::{Digest, Sha256};
use stele_ledger::{
    Authorship, BundleFiles, Hash, Head, Header, Kind, Member, MemberSet, Role, SecretKey,
    TrustSet, Version,
};

use crate::history::Probe;

/// Approvers: two sets of three, two signatures required; rotations move
/// the trust from one set to the other.
pub const SET_SIZE: usize = 3;
pub const THRESHOLD: u32 = 2;

pub struct Keys {
    seeds: Vec<[u8; 32]>,
}

impl Keys {
    pub fn from_seed(seed: u64) -> Keys {
        let seeds = (0..2 * SET_SIZE as u64)
            .map(|i| Sha256::digest(format!("stele-sim key {seed} {i}")).into())
            .collect();
        Keys { seeds }
    }

    /// The keys of set `set` (0 or 1).
    pub fn set(&self, set: usize) -> Vec<SecretKey> {
        self.seeds[set * SET_SIZE..(set + 1) * SET_SIZE]
            .iter()
            .map(|seed| SecretKey::from_seed(*seed))
            .collect()
    }

    pub fn trust(&self, set: usize) -> TrustSet {
        TrustSet::new(
            self.set(set).iter().map(SecretKey::public_key).collect(),
            THRESHOLD,
        )
        .expect("a valid trust set")
    }

    /// Which set `trust` is.
    pub fn set_of(&self, trust: &TrustSet) -> usize {
        usize::from(trust.keys() != self.trust(0).keys())
    }
}

const SCHEMA: &str = r#"entity User;
entity Doc;
action read appliesTo { principal: [User], resource: [Doc], context: { level: Long } };
action write appliesTo { principal: [User], resource: [Doc], context: { level: Long } };
"#;

/// A bundle whose thresholds come from `rng`: the same request gets
/// different answers under different versions.
pub fn bundle(rng: &mut StdRng) -> BundleFiles {
    let (read, write, unless) = (
        rng.gen_range(0..10),
        rng.gen_range(0..10),
        rng.gen_range(0..10),
    );
    let policies = format!(
        "permit(principal, action == Action::\"read\", resource) when {{ context.level >= {read} }};\n\
         permit(principal == User::\"alice\", action == Action::\"write\", resource) when {{ context.level >= {write} }};\n\
         forbid(principal == User::\"mallory\", action, resource) unless {{ context.level > {unless} }};\n"
    );
    let mut files = BundleFiles::default();
    files
        .insert("schema.cedarschema".into(), SCHEMA.into())
        .expect("a valid path");
    files
        .insert("access.cedar".into(), policies)
        .expect("a valid path");
    files
}

/// A random decision request.
pub fn probe(rng: &mut StdRng) -> Probe {
    const PRINCIPALS: [&str; 3] = ["alice", "bob", "mallory"];
    const ACTIONS: [&str; 2] = ["read", "write"];
    Probe {
        principal: PRINCIPALS[rng.gen_range(0..PRINCIPALS.len())],
        action: ACTIONS[rng.gen_range(0..ACTIONS.len())],
        level: rng.gen_range(0..10),
    }
}

/// The key node `id`'s certificate holds, as the ledger lists it.
pub fn node_key(id: u64) -> Hash {
    Hash::of_bytes(format!("stele-sim node key {id}").as_bytes())
}

/// Node `id` as a member set lists it.
pub fn member(id: u64, role: Role) -> Member {
    Member {
        id,
        role,
        client: crate::net::addr(id),
        peer: crate::net::peer_addr(id),
        region: String::new(),
        spki_sha256: node_key(id),
    }
}

/// The run's genesis, from its seed alone (every node is started pinned
/// to it): a bundle, approver set 0 (2 of 3) signing, and nodes
/// 1..=`voters` as the voters.
pub fn genesis(seed: u64, voters: u64) -> (Version, BundleFiles) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0067_656e_6573_6973);
    let bundle = bundle(&mut rng);
    let keys = Keys::from_seed(seed);
    let members = MemberSet::new((1..=voters).map(|id| member(id, Role::Voter)).collect())
        .expect("a valid member set");
    let mut version = header(None, &bundle, Kind::Genesis, Some(keys.trust(0)), "genesis");
    version.header = version.header.listing(members);
    (signed(version, &keys.set(0)[..2]), bundle)
}

/// An unsigned version following `parent` (a genesis without one).
pub fn header(
    parent: Option<(u64, Hash)>,
    bundle: &BundleFiles,
    kind: Kind,
    trust: Option<TrustSet>,
    note: &str,
) -> Version {
    let by = Authorship {
        message: note.into(),
        author: "stele-sim".into(),
        created_at: 0,
    };
    let header = match (parent, trust) {
        (None, trust) => {
            debug_assert_eq!(kind, Kind::Genesis, "only a genesis has no parent");
            let trust = trust.expect("a genesis declares its trust set");
            Header::genesis(bundle.digest(), trust, by)
        }
        (Some((seq, hash)), trust) => {
            let header = Header::after(Head { seq, hash }, bundle.digest(), kind, by);
            match trust {
                Some(trust) => header.declaring(trust),
                None => header,
            }
        }
    };
    Version::unsigned(header)
}

pub fn signed(mut version: Version, keys: &[SecretKey]) -> Version {
    for key in keys {
        version.sign(key);
    }
    version
}

/// The chain as a client knows it: every version it ever built (by hash),
/// and the committed sequence as far as it has learnt.
#[derive(Default)]
pub struct Book {
    built: HashMap<Hash, (Version, BundleFiles)>,
    chain: Vec<Hash>,
}

impl Book {
    pub fn remember(&mut self, version: &Version, bundle: &BundleFiles) {
        self.built
            .insert(version.hash(), (version.clone(), bundle.clone()));
    }

    /// A version following the known head, signed by `keys`.
    pub fn next(
        &self,
        bundle: &BundleFiles,
        kind: Kind,
        trust: Option<TrustSet>,
        note: &str,
        keys: &[SecretKey],
    ) -> Version {
        signed(header(self.head(), bundle, kind, trust, note), keys)
    }

    pub fn head(&self) -> Option<(u64, Hash)> {
        self.chain
            .last()
            .map(|hash| (self.chain.len() as u64, *hash))
    }

    /// How many versions are known committed.
    pub fn committed(&self) -> u64 {
        self.chain.len() as u64
    }

    pub fn at(&self, seq: u64) -> Option<&(Version, BundleFiles)> {
        let hash = self.chain.get(usize::try_from(seq).ok()?.checked_sub(1)?)?;
        self.built.get(hash)
    }

    pub fn versions(&self) -> impl Iterator<Item = &(Version, BundleFiles)> {
        self.chain.iter().map(|hash| &self.built[hash])
    }

    /// Moves the known head to `hash`, which this client built, unless the
    /// known chain holds it already; returns false when the client did not
    /// build it (then nothing changes).
    pub fn advance_to(&mut self, hash: Hash) -> bool {
        // A replay answered `already_committed` names an old version: the
        // head stays where it is.
        if self.chain.contains(&hash) {
            return true;
        }
        let mut path = Vec::new();
        let mut cursor = hash;
        loop {
            if cursor == Hash::ZERO {
                break;
            }
            if let Some(position) = self.chain.iter().position(|h| *h == cursor) {
                self.chain.truncate(position + 1);
                break;
            }
            let Some((version, _)) = self.built.get(&cursor) else {
                return false;
            };
            path.push(cursor);
            cursor = version.header.parent_hash;
        }
        if cursor == Hash::ZERO {
            self.chain.clear();
        }
        self.chain.extend(path.into_iter().rev());
        true
    }

    /// The member set in force at the head.
    pub fn members(&self) -> Option<MemberSet> {
        self.versions()
            .filter_map(|(version, _)| version.header.members.clone())
            .last()
    }

    /// The trust set in force at the head.
    pub fn trust(&self) -> Option<TrustSet> {
        self.versions()
            .filter_map(|(version, _)| version.header.trust.clone())
            .last()
    }

    pub fn bundle_of(&self, seq: u64) -> Option<&BundleFiles> {
        self.at(seq).map(|(_, bundle)| bundle)
    }
}
