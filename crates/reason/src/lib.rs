//! # stele-reason
//!
//! Why stele refused something, as one enum: the ledger's admission
//! rejections, the state machine's refusals, a node's refusals to decide or
//! to route a write, and a request a node could not read. Every crate that
//! refuses, and every crate that reads a refusal (the client, the command
//! line, the simulator), uses these variants; nobody matches a reason as a
//! string.
//!
//! Each reason has one wire form, [`Reason::as_str`]: what a node puts in a
//! gRPC error's `google.rpc.ErrorInfo.reason` (domain `stele.dev`) and what
//! the state machine records. The refusals of the decision path and of
//! routing are upper case (`STALE`), as gRPC's own reasons are; the others
//! are the ledger's snake_case codes (`stale_parent`). [`Reason::code`] is
//! the snake_case form the `stele` command prints with `--json`.
//!
//! What this crate does not hold: messages (each refusal carries its own,
//! written for the person reading it) and transport failures (a timeout or
//! an unreachable node is the client's to report).

use std::fmt;
use std::str::FromStr;

macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal,)*) => {
        /// A stable reason for a refusal. See the crate's documentation.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $($(#[$doc])* $variant,)*
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            /// The wire form: the gRPC `ErrorInfo.reason`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $wire,)*
                }
            }
        }
    };
}

reasons! {
    // Admission: the ledger's rules for a candidate version.
    /// A field or the bundle is over its size limit.
    OverSizeLimit = "over_size_limit",
    /// The version does not decode or breaks a structural rule.
    Malformed = "malformed",
    /// Its parent is not the head (the chain moved on).
    StaleParent = "stale_parent",
    /// Its seq does not follow the head's.
    Gap = "gap",
    /// Its genesis is not the one this node or verifier pins.
    GenesisMismatch = "genesis_mismatch",
    /// A signature by a key outside the trust set in force.
    UnknownKey = "unknown_key",
    /// A signature that does not verify.
    BadSignature = "bad_signature",
    /// Fewer distinct valid signatures than the threshold.
    BelowThreshold = "below_threshold",
    /// The trust set names its approvers and the author is none who signed.
    AuthorNotASigner = "author_not_a_signer",
    /// The bundle's digest is not the one the header declares.
    DigestMismatch = "digest_mismatch",
    /// The bundle does not compile, validate or pass its scenarios.
    BundleInvalid = "bundle_invalid",
    /// A rollback to a seq that does not exist.
    RollbackTargetMissing = "rollback_target_missing",
    /// A rollback whose bundle is not its target's.
    RollbackDigestDiffers = "rollback_digest_differs",
    /// A rotation not signed by both the old and the new trust set.
    RotationNotCoSigned = "rotation_not_co_signed",

    // The cluster's state machine.
    /// An approval for a proposal that is not pending.
    UnknownProposal = "unknown_proposal",
    /// The pending proposals are at their limit.
    TooManyPending = "too_many_pending",
    /// A restore (`cluster init --ledger`) reached a cluster that holds
    /// another chain already: a restore starts an empty one only.
    ChainExists = "chain_exists",
    /// The version's own `expires_at` has passed on the leader's clock.
    ProposalExpired = "proposal_expired",

    // A write the node could not read.
    /// The proposal does not decode.
    BadProposal = "bad_proposal",
    /// The approval's keys or signatures do not decode, or there are none.
    BadApproval = "bad_approval",

    // Who may call.
    /// The caller's certificate does not grant the role the call needs
    /// (or the caller presented none).
    PermissionDenied = "PERMISSION_DENIED",
    /// A plaintext client at a port that speaks TLS only.
    TlsRequired = "TLS_REQUIRED",

    // Changing membership.
    /// The change would leave voters that cannot form a quorum, or
    /// promote a learner that does not answer or has not caught up.
    MembershipUnsafe = "MEMBERSHIP_UNSAFE",
    /// The node was removed from the cluster: the membership it applied
    /// does not list it, or most of its last members refuse it as none of
    /// theirs. It decides nothing and stands for no election.
    Removed = "REMOVED",

    // Routing writes to the leader.
    /// No leader is known (an election may be under way).
    NoLeader = "NO_LEADER",

    // The decision path.
    /// The node has no policy version yet.
    NoPolicy = "NO_POLICY",
    /// The node cannot show it serves current policy (invariant 6).
    Stale = "STALE",
    /// The node does not reach the version the caller asked for in time.
    BehindMinVersion = "BEHIND_MIN_VERSION",
    /// The node's decision log cannot take the decision.
    DecisionLogUnavailable = "DECISION_LOG_UNAVAILABLE",
}

impl Reason {
    /// The snake_case form (`stale`, `stale_parent`), as the `stele`
    /// command prints it.
    pub fn code(self) -> String {
        self.as_str().to_ascii_lowercase()
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reason string that is none of stele's (from a newer node, say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownReason(pub String);

impl fmt::Display for UnknownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a stele reason", self.0)
    }
}

impl std::error::Error for UnknownReason {}

impl FromStr for Reason {
    type Err = UnknownReason;

    /// The wire form only: reasons are exact, never guessed from case.
    fn from_str(text: &str) -> Result<Reason, UnknownReason> {
        Reason::ALL
            .iter()
            .copied()
            .find(|reason| reason.as_str() == text)
            .ok_or_else(|| UnknownReason(text.to_string()))
    }
}

impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Reason {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Reason, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_reads_back_from_its_wire_form() {
        for reason in Reason::ALL {
            assert_eq!(reason.as_str().parse::<Reason>(), Ok(*reason));
            let json = serde_json::to_string(reason).unwrap();
            assert_eq!(serde_json::from_str::<Reason>(&json).unwrap(), *reason);
        }
    }

    #[test]
    fn wire_forms_are_distinct_and_codes_are_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for reason in Reason::ALL {
            assert!(seen.insert(reason.code()), "{reason} twice");
            assert!(
                reason
                    .code()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_')
            );
        }
    }

    #[test]
    fn the_wire_form_is_exact() {
        assert_eq!("STALE".parse::<Reason>(), Ok(Reason::Stale));
        assert!("stale".parse::<Reason>().is_err());
        assert!("STALE_PARENT".parse::<Reason>().is_err());
        assert_eq!(Reason::Stale.code(), "stale");
        assert_eq!(Reason::StaleParent.code(), "stale_parent");
    }
}
