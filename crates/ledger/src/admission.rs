//! Admission: the pure, deterministic rule deciding whether a candidate
//! version may extend the chain (DESIGN.md, invariant 2). Every node and every
//! offline verifier runs this same function on the same inputs.

use std::collections::HashMap;

use serde::Serialize;
use stele_reason::Reason;
use thiserror::Error;

use crate::bundle::BundleFiles;
use crate::hash::Hash;
use crate::keys::PublicKey;
use crate::limits::{MAX_AUTHOR_BYTES, MAX_MESSAGE_BYTES, MAX_SIGNATURES};
use crate::member_set::MemberSet;
use crate::trust::TrustSet;
use crate::version::{Kind, Version};

/// The newest version of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Head {
    pub seq: u64,
    pub hash: Hash,
}

/// Checks what the ledger cannot: that a bundle compiles, validates against
/// its schema and passes its own scenarios. The policy crate provides it; it
/// must be deterministic.
pub trait BundleCheck {
    /// Why a bundle fails; its message becomes the `bundle_invalid`
    /// rejection's.
    type Error: std::fmt::Display;
    fn check(&self, bundle: &BundleFiles) -> Result<(), Self::Error>;
}

impl<F, E> BundleCheck for F
where
    F: Fn(&BundleFiles) -> Result<(), E>,
    E: std::fmt::Display,
{
    type Error = E;
    fn check(&self, bundle: &BundleFiles) -> Result<(), E> {
        self(bundle)
    }
}

/// What admission needs to know about a chain: its head, the trust set and
/// member set in force, every bundle digest by seq and every seq by version
/// hash.
#[derive(Clone, Debug, Default)]
pub struct ChainState {
    head: Option<Head>,
    trust: Option<TrustSet>,
    members: Option<MemberSet>,
    digests: Vec<Hash>,
    seqs_by_hash: HashMap<Hash, u64>,
    pinned_genesis: Option<Hash>,
}

/// A candidate that admission accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admitted {
    /// The candidate extends the chain at `seq`.
    Appended { seq: u64, hash: Hash },
    /// The candidate is already in the chain at `seq` (whatever signatures it
    /// carries this time); nothing changes.
    AlreadyCommitted { seq: u64 },
}

/// Why a candidate was refused: one variant per admission rule.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Rejection {
    #[error("{what} is {actual}, over the limit of {limit} (size limit)")]
    OverSizeLimit {
        what: &'static str,
        limit: u64,
        actual: u64,
    },
    #[error("malformed version: {reason}")]
    Malformed { reason: String },
    #[error(
        "parent_hash {parent_hash} is not the head {expected} (the chain moved on, or the version belongs to another chain)"
    )]
    StaleParent { expected: Hash, parent_hash: Hash },
    #[error("seq {seq} does not follow the head: the next seq is {expected}")]
    Gap { expected: u64, seq: u64 },
    #[error("genesis {actual} is not the pinned genesis {pinned}")]
    GenesisMismatch { pinned: Hash, actual: Hash },
    #[error("signature by {key}, which is not in the trust set in force")]
    UnknownKey { key: PublicKey },
    #[error("signature by {key} does not verify for this version")]
    BadSignature { key: PublicKey },
    #[error("{valid} distinct approver signature(s), {threshold} required")]
    BelowThreshold { valid: u32, threshold: u32 },
    #[error(
        "author {author:?} is not the name of an approver who signed this version (the trust set names its approvers; a version's author must be one of its signers)"
    )]
    AuthorNotASigner { author: String },
    #[error("bundle digest is {actual}, but the header declares {declared}")]
    DigestMismatch { declared: Hash, actual: Hash },
    #[error("bundle is invalid: {message}")]
    BundleInvalid { message: String },
    #[error("rollback target seq {to_seq} does not exist (head is {head_seq})")]
    RollbackTargetMissing { to_seq: u64, head_seq: u64 },
    #[error("rollback bundle {bundle_digest} differs from seq {to_seq}'s bundle {target_digest}")]
    RollbackDigestDiffers {
        to_seq: u64,
        target_digest: Hash,
        bundle_digest: Hash,
    },
    #[error(
        "rotation needs {old_threshold} signature(s) of the old trust set (has {old_signers}) and {new_threshold} of the new one (has {new_signers})"
    )]
    RotationNotCoSigned {
        old_signers: u32,
        old_threshold: u32,
        new_signers: u32,
        new_threshold: u32,
    },
}

impl Rejection {
    /// The stable reason, for machines (its message is for people).
    pub fn reason(&self) -> Reason {
        match self {
            Rejection::OverSizeLimit { .. } => Reason::OverSizeLimit,
            Rejection::Malformed { .. } => Reason::Malformed,
            Rejection::StaleParent { .. } => Reason::StaleParent,
            Rejection::Gap { .. } => Reason::Gap,
            Rejection::GenesisMismatch { .. } => Reason::GenesisMismatch,
            Rejection::UnknownKey { .. } => Reason::UnknownKey,
            Rejection::BadSignature { .. } => Reason::BadSignature,
            Rejection::BelowThreshold { .. } => Reason::BelowThreshold,
            Rejection::AuthorNotASigner { .. } => Reason::AuthorNotASigner,
            Rejection::DigestMismatch { .. } => Reason::DigestMismatch,
            Rejection::BundleInvalid { .. } => Reason::BundleInvalid,
            Rejection::RollbackTargetMissing { .. } => Reason::RollbackTargetMissing,
            Rejection::RollbackDigestDiffers { .. } => Reason::RollbackDigestDiffers,
            Rejection::RotationNotCoSigned { .. } => Reason::RotationNotCoSigned,
        }
    }
}

fn malformed(reason: &str) -> Rejection {
    Rejection::Malformed {
        reason: reason.to_string(),
    }
}

impl ChainState {
    /// An empty chain that will accept only the genesis with this hash.
    pub fn pinned_to(genesis: Hash) -> ChainState {
        ChainState {
            pinned_genesis: Some(genesis),
            ..ChainState::default()
        }
    }

    pub fn head(&self) -> Option<Head> {
        self.head
    }

    /// The trust set in force (the one the next version must satisfy).
    pub fn trust(&self) -> Option<&TrustSet> {
        self.trust.as_ref()
    }

    /// The member set in force: the one the last genesis or membership
    /// version declared (none on a chain that never declared one).
    pub fn members(&self) -> Option<&MemberSet> {
        self.members.as_ref()
    }

    pub fn digest_at(&self, seq: u64) -> Option<Hash> {
        let index = usize::try_from(seq.checked_sub(1)?).ok()?;
        self.digests.get(index).copied()
    }

    pub fn seq_of(&self, hash: &Hash) -> Option<u64> {
        self.seqs_by_hash.get(hash).copied()
    }

    /// Decides whether `candidate`, carrying `bundle`, may extend this chain:
    /// every rule, in FORMAT.md's order (the threshold before Cedar).
    pub fn admit(
        &self,
        candidate: &Version,
        bundle: &BundleFiles,
        bundle_check: &impl BundleCheck,
    ) -> Result<Admitted, Rejection> {
        match self.check_rules(candidate, bundle, bundle_check, false)? {
            Review::AlreadyCommitted { seq } => Ok(Admitted::AlreadyCommitted { seq }),
            Review::Valid { seq, hash, .. } => Ok(Admitted::Appended { seq, hash }),
        }
    }

    /// Every admission rule, except that a candidate short of signatures
    /// (but carrying at least one valid one) is not refused for it: what a
    /// cluster checks before it holds a proposal that is still collecting
    /// approvals. `approvals` says whether the signatures suffice.
    pub fn review(
        &self,
        candidate: &Version,
        bundle: &BundleFiles,
        bundle_check: &impl BundleCheck,
    ) -> Result<Review, Rejection> {
        self.check_rules(candidate, bundle, bundle_check, true)
    }

    fn check_rules(
        &self,
        candidate: &Version,
        bundle: &BundleFiles,
        bundle_check: &impl BundleCheck,
        may_be_short: bool,
    ) -> Result<Review, Rejection> {
        let header = &candidate.header;
        check_limits(candidate)?;
        let hash = header.hash();
        if let Some(seq) = self.seq_of(&hash) {
            return Ok(Review::AlreadyCommitted { seq });
        }
        self.check_position(candidate, hash)?;
        self.check_kind(candidate)?;
        self.check_signatures(candidate, &hash)?;
        let approvals = self.approvals(candidate);
        // Before Cedar, so that nobody outside the trust set can make a
        // verifier compile a bundle.
        if let Some(shortfall) = &approvals.shortfall
            && (!may_be_short || candidate.signatures.is_empty())
        {
            return Err(shortfall.clone());
        }
        self.check_author(candidate)?;
        let actual = bundle.digest();
        if actual != header.bundle_digest {
            return Err(Rejection::DigestMismatch {
                declared: header.bundle_digest,
                actual,
            });
        }
        bundle_check
            .check(bundle)
            .map_err(|error| Rejection::BundleInvalid {
                message: error.to_string(),
            })?;
        Ok(Review::Valid {
            seq: header.seq,
            hash,
            approvals,
        })
    }

    /// Appends a version that `admit` accepted. Only position is re-checked
    /// here, as an assertion: appending anything else is a bug in the caller.
    pub fn append(&mut self, version: &Version) {
        let header = &version.header;
        let hash = header.hash();
        let (expected_seq, expected_parent) = self.next_position();
        assert_eq!(header.seq, expected_seq, "append out of order: admit first");
        #[cfg(stele_sim)]
        let skip_parent_check = crate::defects::active(crate::defects::Defect::SkipParentCheck);
        #[cfg(not(stele_sim))]
        let skip_parent_check = false;
        assert!(
            header.parent_hash == expected_parent || skip_parent_check,
            "append off the head: admit first"
        );
        if let Some(trust) = &header.trust {
            self.trust = Some(trust.clone());
        }
        if let Some(members) = &header.members {
            self.members = Some(members.clone());
        }
        self.digests.push(header.bundle_digest);
        self.seqs_by_hash.insert(hash, header.seq);
        self.head = Some(Head {
            seq: header.seq,
            hash,
        });
    }

    /// The seq and parent hash the next version must have.
    fn next_position(&self) -> (u64, Hash) {
        match self.head {
            None => (1, Hash::ZERO),
            Some(head) => (head.seq + 1, head.hash),
        }
    }

    fn check_position(&self, candidate: &Version, hash: Hash) -> Result<(), Rejection> {
        let header = &candidate.header;
        let (expected_seq, expected_parent) = self.next_position();
        #[cfg(stele_sim)]
        let skip_parent_check = crate::defects::active(crate::defects::Defect::SkipParentCheck);
        #[cfg(not(stele_sim))]
        let skip_parent_check = false;
        if header.parent_hash != expected_parent && !skip_parent_check {
            return Err(Rejection::StaleParent {
                expected: expected_parent,
                parent_hash: header.parent_hash,
            });
        }
        if header.seq != expected_seq {
            return Err(Rejection::Gap {
                expected: expected_seq,
                seq: header.seq,
            });
        }
        let is_genesis = header.kind == Kind::Genesis;
        if self.head.is_none() && !is_genesis {
            return Err(malformed("the first version of a chain must be a genesis"));
        }
        if self.head.is_some() && is_genesis {
            return Err(malformed("a genesis can only be the first version"));
        }
        if let Some(pinned) = self.pinned_genesis
            && is_genesis
            && hash != pinned
        {
            return Err(Rejection::GenesisMismatch {
                pinned,
                actual: hash,
            });
        }
        Ok(())
    }

    fn check_kind(&self, candidate: &Version) -> Result<(), Rejection> {
        let header = &candidate.header;
        if header.kind.declares_trust() != header.trust.is_some() {
            return Err(malformed(if header.trust.is_some() {
                "only genesis and rotate versions may declare a trust set"
            } else {
                "genesis and rotate versions must declare a trust set"
            }));
        }
        if header.members.is_some() && !header.kind.may_declare_members() {
            return Err(malformed(
                "only genesis and membership versions may declare a member set",
            ));
        }
        let head_seq = self.head.map_or(0, |head| head.seq);
        match header.kind {
            Kind::Rollback { to_seq } => {
                let Some(target_digest) = self.digest_at(to_seq) else {
                    return Err(Rejection::RollbackTargetMissing { to_seq, head_seq });
                };
                if target_digest != header.bundle_digest {
                    return Err(Rejection::RollbackDigestDiffers {
                        to_seq,
                        target_digest,
                        bundle_digest: header.bundle_digest,
                    });
                }
            }
            Kind::Rotate => {
                if self.digest_at(head_seq) != Some(header.bundle_digest) {
                    return Err(malformed(
                        "a rotate must carry the head's bundle digest unchanged",
                    ));
                }
                // Names, once given, stay: a rotation to an unnamed set
                // would switch the author rule off for good.
                let named = |set: Option<&TrustSet>| set.is_some_and(|s| s.approvers().is_some());
                if named(self.trust.as_ref()) && !named(header.trust.as_ref()) {
                    return Err(malformed(
                        "the trust set in force names its approvers, so a rotation must name the approvers of the set it declares",
                    ));
                }
            }
            Kind::Membership => {
                let Some(members) = &header.members else {
                    return Err(malformed(
                        "a membership version must declare the complete new member set",
                    ));
                };
                if self.digest_at(head_seq) != Some(header.bundle_digest) {
                    return Err(malformed(
                        "a membership version must carry the head's bundle digest unchanged",
                    ));
                }
                if self.members.as_ref() == Some(members) {
                    return Err(malformed(
                        "the membership version declares the member set already in force: it changes nothing",
                    ));
                }
            }
            Kind::Genesis | Kind::Update => {}
        }
        Ok(())
    }

    /// Every signature present must be by a key that counts and must verify,
    /// even when the valid ones already reach the threshold.
    fn check_signatures(&self, candidate: &Version, hash: &Hash) -> Result<(), Rejection> {
        let in_force = self.trust.as_ref();
        let declared = candidate.header.trust.as_ref();
        for approval in &candidate.signatures {
            let counts = in_force.is_some_and(|set| set.contains(&approval.key))
                || declared.is_some_and(|set| set.contains(&approval.key));
            if !counts {
                return Err(Rejection::UnknownKey { key: approval.key });
            }
            if !approval.key.verifies(hash, &approval.signature) {
                return Err(Rejection::BadSignature { key: approval.key });
            }
        }
        Ok(())
    }

    /// When the trust set names its approvers, the author is one of them
    /// who signed: a version's author is never a free-text claim. (The
    /// set in force names them, or, for a genesis or rotation, the set it
    /// declares.) Sets from before names existed name nobody, and the
    /// rule does not apply to them.
    fn check_author(&self, candidate: &Version) -> Result<(), Rejection> {
        let header = &candidate.header;
        let named = || {
            [self.trust.as_ref(), header.trust.as_ref()]
                .into_iter()
                .flatten()
                .filter(|set| set.approvers().is_some())
        };
        if named().next().is_none() {
            return Ok(());
        }
        let author = header.author.as_str();
        let signed_by_author = candidate
            .signatures
            .iter()
            .any(|approval| named().any(|set| set.name_of(&approval.key) == Some(author)));
        if signed_by_author {
            Ok(())
        } else {
            Err(Rejection::AuthorNotASigner {
                author: author.to_string(),
            })
        }
    }

    /// How the candidate's distinct signers measure against the threshold:
    /// genesis needs M of the set it declares, update, rollback and
    /// membership M of the set in force, rotate M of the set in force and M' of the one it
    /// declares.
    pub fn approvals(&self, candidate: &Version) -> Approvals {
        let header = &candidate.header;
        let signers = || candidate.signers();
        match (header.kind, self.trust.as_ref(), header.trust.as_ref()) {
            (Kind::Genesis, _, Some(new)) => {
                Approvals::against(new, new.distinct_signers(signers()))
            }
            (Kind::Rotate, Some(old), Some(new)) => {
                let old_signers = old.distinct_signers(signers());
                let new_signers = new.distinct_signers(signers());
                let short = old_signers < old.threshold() || new_signers < new.threshold();
                Approvals {
                    signers: old_signers,
                    threshold: old.threshold(),
                    shortfall: short.then_some(Rejection::RotationNotCoSigned {
                        old_signers,
                        old_threshold: old.threshold(),
                        new_signers,
                        new_threshold: new.threshold(),
                    }),
                }
            }
            (Kind::Update | Kind::Rollback { .. } | Kind::Membership, Some(set), None) => {
                Approvals::against(set, set.distinct_signers(signers()))
            }
            // Ruled out by the position and kind checks, which run first.
            _ => Approvals {
                signers: 0,
                threshold: 0,
                shortfall: Some(malformed("trust set missing for this kind of version")),
            },
        }
    }
}

/// Where a candidate stands when every rule but the threshold holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Review {
    /// Already in the chain at `seq`.
    AlreadyCommitted { seq: u64 },
    /// Valid at `seq`; `approvals` says whether its signatures suffice.
    Valid {
        seq: u64,
        hash: Hash,
        approvals: Approvals,
    },
}

/// A candidate's distinct valid signers against the threshold they must
/// reach (for a rotation, the set in force; both sets must be met).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approvals {
    pub signers: u32,
    pub threshold: u32,
    /// Why the signatures do not suffice yet, if they do not.
    pub shortfall: Option<Rejection>,
}

impl Approvals {
    fn against(set: &TrustSet, signers: u32) -> Approvals {
        Approvals {
            signers,
            threshold: set.threshold(),
            shortfall: (signers < set.threshold()).then_some(Rejection::BelowThreshold {
                valid: signers,
                threshold: set.threshold(),
            }),
        }
    }
}

fn check_limits(candidate: &Version) -> Result<(), Rejection> {
    let header = &candidate.header;
    let over = |what, limit: usize, actual: usize| {
        (actual > limit).then_some(Rejection::OverSizeLimit {
            what,
            limit: limit as u64,
            actual: actual as u64,
        })
    };
    let first_over = over(
        "message length in bytes",
        MAX_MESSAGE_BYTES,
        header.message.len(),
    )
    .or_else(|| {
        over(
            "author length in bytes",
            MAX_AUTHOR_BYTES,
            header.author.len(),
        )
    })
    .or_else(|| {
        over(
            "number of signatures",
            MAX_SIGNATURES,
            candidate.signatures.len(),
        )
    });
    match first_over {
        Some(rejection) => Err(rejection),
        None => Ok(()),
    }
}
