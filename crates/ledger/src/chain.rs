//! A whole ledger held in memory: versions, their bundles, and the chain
//! state admission needs. Verification replays admission from genesis, so a
//! chain verifies exactly when every version in it would be admitted again.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::admission::{Admitted, BundleCheck, ChainState, Head, Rejection};
use crate::bundle::BundleFiles;
use crate::hash::Hash;
use crate::trust::TrustSet;
use crate::version::Version;

/// The chain of versions and every bundle they reference.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    state: ChainState,
    versions: Vec<Version>,
    bundles: BTreeMap<Hash, BundleFiles>,
}

/// Versions in chain order and the bundles they use, by digest: what a
/// ledger file holds, before it is verified.
#[derive(Clone, Debug, Default)]
pub struct Entries {
    pub versions: Vec<Version>,
    pub bundles: BTreeMap<Hash, BundleFiles>,
}

impl Entries {
    /// Adds a version, filing `bundle` under the digest the version declares
    /// (whether or not it matches: verification finds out).
    pub fn push(&mut self, version: Version, bundle: BundleFiles) {
        self.bundles.insert(version.header.bundle_digest, bundle);
        self.versions.push(version);
    }
}

/// The first version of a chain that fails verification, and why.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("seq {seq}: {rejection}")]
pub struct ChainError {
    pub seq: u64,
    pub rejection: Rejection,
}

impl ChainState {
    /// Replays admission for the next stored version: `version` must be
    /// admitted as new (a version that appears twice is malformed) with
    /// `bundle`, which must be there. Appends it, or names why not.
    pub fn append_verified(
        &mut self,
        version: &Version,
        bundle: Option<&BundleFiles>,
        bundle_check: &impl BundleCheck,
    ) -> Result<(), ChainError> {
        let seq = version.seq();
        let fail = |rejection| ChainError { seq, rejection };
        let digest = version.header.bundle_digest;
        let bundle = bundle.ok_or_else(|| {
            fail(Rejection::Malformed {
                reason: format!("its bundle {digest} is missing"),
            })
        })?;
        match self.admit(version, bundle, bundle_check) {
            Ok(Admitted::Appended { .. }) => {
                self.append(version);
                Ok(())
            }
            Ok(Admitted::AlreadyCommitted { seq: first }) => Err(fail(Rejection::Malformed {
                reason: format!("the version at seq {first} appears again"),
            })),
            Err(rejection) => Err(fail(rejection)),
        }
    }
}

/// A bundle check that accepts every bundle: for verifying hashes, signatures
/// and digests only, when the bundles were checked when they were admitted.
pub fn structural_only(_: &BundleFiles) -> Result<(), std::convert::Infallible> {
    Ok(())
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// An empty ledger that accepts only the genesis with this hash.
    pub fn pinned_to(genesis: Hash) -> Ledger {
        Ledger {
            state: ChainState::pinned_to(genesis),
            ..Ledger::default()
        }
    }

    /// Rebuilds a ledger from its versions in order, admitting each one as
    /// if it were new. Fails on the first version admission refuses, on a
    /// version that appears twice, and on one whose bundle is missing.
    pub fn verify(
        start: Ledger,
        entries: Entries,
        bundle_check: &impl BundleCheck,
    ) -> Result<Ledger, ChainError> {
        let mut ledger = start;
        for version in entries.versions {
            let bundle = entries.bundles.get(&version.header.bundle_digest);
            ledger
                .state
                .append_verified(&version, bundle, bundle_check)?;
            ledger.versions.push(version);
        }
        let used: std::collections::BTreeSet<Hash> = ledger
            .versions
            .iter()
            .map(|version| version.header.bundle_digest)
            .collect();
        ledger.bundles = entries
            .bundles
            .into_iter()
            .filter(|(digest, _)| used.contains(digest))
            .collect();
        Ok(ledger)
    }

    /// Admits `version` and appends it when it is new.
    pub fn submit(
        &mut self,
        version: Version,
        bundle: BundleFiles,
        bundle_check: &impl BundleCheck,
    ) -> Result<Admitted, Rejection> {
        let admitted = self.state.admit(&version, &bundle, bundle_check)?;
        if let Admitted::Appended { .. } = admitted {
            self.state.append(&version);
            self.bundles
                .entry(version.header.bundle_digest)
                .or_insert(bundle);
            self.versions.push(version);
        }
        Ok(admitted)
    }

    pub fn state(&self) -> &ChainState {
        &self.state
    }

    pub fn head(&self) -> Option<Head> {
        self.state.head()
    }

    pub fn trust(&self) -> Option<&TrustSet> {
        self.state.trust()
    }

    pub fn versions(&self) -> &[Version] {
        &self.versions
    }

    /// The chain state and the versions, without the bundles.
    pub fn into_parts(self) -> (ChainState, Vec<Version>) {
        (self.state, self.versions)
    }

    pub fn len(&self) -> usize {
        self.versions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    pub fn version(&self, seq: u64) -> Option<&Version> {
        let index = usize::try_from(seq.checked_sub(1)?).ok()?;
        self.versions.get(index)
    }

    pub fn head_version(&self) -> Option<&Version> {
        self.versions.last()
    }

    pub fn bundle(&self, digest: &Hash) -> Option<&BundleFiles> {
        self.bundles.get(digest)
    }

    /// The bundle in force at `seq`.
    pub fn bundle_at(&self, seq: u64) -> Option<&BundleFiles> {
        self.bundle(&self.version(seq)?.header.bundle_digest)
    }

    /// Every version with its bundle, in chain order.
    pub fn entries(&self) -> impl Iterator<Item = (&Version, &BundleFiles)> {
        self.versions.iter().map(|version| {
            let bundle = &self.bundles[&version.header.bundle_digest];
            (version, bundle)
        })
    }
}
