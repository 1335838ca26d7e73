//! gRPC errors with typed details (google.rpc.ErrorInfo, domain
//! `stele.dev`): clients branch on the reason, people read the message.
//! Each reason's gRPC code is chosen here, in one `match`.

use std::collections::HashMap;

use stele_client::DOMAIN;
use stele_decision::Undecided;
use stele_ledger::Reason;
use stele_store::Refusal;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The gRPC code a refusal for `reason` carries.
pub fn code(reason: Reason) -> Code {
    match reason {
        Reason::StaleParent
        | Reason::Gap
        | Reason::UnknownProposal
        | Reason::RollbackTargetMissing
        | Reason::BehindMinVersion
        | Reason::TlsRequired
        | Reason::ProposalExpired
        | Reason::ChainExists
        | Reason::MembershipUnsafe => Code::FailedPrecondition,
        Reason::TooManyPending => Code::ResourceExhausted,
        Reason::PermissionDenied => Code::PermissionDenied,
        Reason::NoLeader
        | Reason::NoPolicy
        | Reason::Stale
        | Reason::DecisionLogUnavailable
        | Reason::Removed => Code::Unavailable,
        Reason::OverSizeLimit
        | Reason::Malformed
        | Reason::GenesisMismatch
        | Reason::UnknownKey
        | Reason::BadSignature
        | Reason::BelowThreshold
        | Reason::AuthorNotASigner
        | Reason::DigestMismatch
        | Reason::BundleInvalid
        | Reason::RollbackDigestDiffers
        | Reason::RotationNotCoSigned
        | Reason::BadProposal
        | Reason::BadApproval => Code::InvalidArgument,
    }
}

/// A refusal for `reason`: its code, the reason as typed detail, and the
/// message for people.
pub fn with_reason(reason: Reason, message: String, metadata: HashMap<String, String>) -> Status {
    Status::with_error_details(
        code(reason),
        message,
        ErrorDetails::with_error_info(reason.as_str(), DOMAIN, metadata),
    )
}

/// A state-machine refusal (an admission rejection and the like).
pub fn refused(refusal: &Refusal) -> Status {
    with_reason(
        refusal.reason,
        format!(
            "rejected ({}): {}",
            refusal.reason.as_str(),
            refusal.message
        ),
        HashMap::new(),
    )
}

/// A write this node refuses before it reaches Raft (a proposal or an
/// approval that does not decode, or is too large).
pub fn refuse(reason: Reason, message: impl Into<String>) -> Status {
    refused(&Refusal::new(reason, message))
}

pub fn no_leader() -> Status {
    with_reason(
        Reason::NoLeader,
        "no leader is known right now (an election may be under way); retry shortly".into(),
        HashMap::new(),
    )
}

/// Why the decision path made no decision, as gRPC says it: a refusal with
/// its reason and the numbers a client acts on, or INVALID_ARGUMENT.
pub fn undecided(undecided: &Undecided) -> Status {
    let Some(reason) = undecided.reason() else {
        return Status::invalid_argument(undecided.to_string());
    };
    let metadata = match undecided {
        Undecided::Stale { stale, served_seq } => {
            let mut metadata = HashMap::from([
                ("served_seq".to_string(), served_seq.to_string()),
                (
                    "max_staleness_ms".to_string(),
                    stale.max_staleness.as_millis().to_string(),
                ),
            ]);
            if let Some(age) = stale.age {
                metadata.insert("staleness_ms".into(), age.as_millis().to_string());
            }
            metadata
        }
        Undecided::BehindMinVersion {
            served_seq,
            min_version,
        } => HashMap::from([
            ("served_seq".to_string(), served_seq.to_string()),
            ("min_version".to_string(), min_version.to_string()),
        ]),
        Undecided::NoPolicy
        | Undecided::Unlogged(_)
        | Undecided::Removed
        | Undecided::Invalid(_) => HashMap::new(),
    };
    with_reason(reason, undecided.to_string(), metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_the_code_clients_expect() {
        assert_eq!(code(Reason::Stale), Code::Unavailable);
        assert_eq!(code(Reason::BehindMinVersion), Code::FailedPrecondition);
        assert_eq!(code(Reason::StaleParent), Code::FailedPrecondition);
        assert_eq!(code(Reason::TooManyPending), Code::ResourceExhausted);
        assert_eq!(code(Reason::BelowThreshold), Code::InvalidArgument);
        let status = refused(&Refusal::new(Reason::Gap, "seq 5 does not follow"));
        assert_eq!(status.message(), "rejected (gap): seq 5 does not follow");
        let info = status.get_error_details().error_info().unwrap().clone();
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("gap", DOMAIN)
        );
    }
}
