//! gRPC errors with typed details (google.rpc.ErrorInfo, domain
//! `stele.dev`): clients branch on the reason, people read the message.

use std::collections::HashMap;

use stele_store::Refusal;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::freshness::Stale;

pub const DOMAIN: &str = "stele.dev";

pub fn with_reason(
    code: Code,
    reason: &str,
    message: String,
    metadata: HashMap<String, String>,
) -> Status {
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, DOMAIN, metadata),
    )
}

/// The node cannot show it is current: fail closed.
pub fn stale(why: Stale, served_seq: u64) -> Status {
    let age = match why.age {
        Some(age) => format!(
            "its last evidence of being current is {} old",
            humantime::format_duration(round(age))
        ),
        None => "it has never heard from a leader with a quorum".into(),
    };
    let mut metadata = HashMap::from([
        ("served_seq".to_string(), served_seq.to_string()),
        (
            "max_staleness_ms".to_string(),
            why.max_staleness.as_millis().to_string(),
        ),
    ]);
    if let Some(age) = why.age {
        metadata.insert("staleness_ms".into(), age.as_millis().to_string());
    }
    with_reason(
        Code::Unavailable,
        "STALE",
        format!(
            "STALE: this node cannot show it serves current policy ({age}; the bound is {}); ask another node",
            humantime::format_duration(why.max_staleness)
        ),
        metadata,
    )
}

fn round(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_millis(d.as_millis() as u64)
}

pub fn behind_min_version(own: u64, min: u64) -> Status {
    with_reason(
        Code::FailedPrecondition,
        "BEHIND_MIN_VERSION",
        format!("this node serves seq {own}, behind the requested min_version {min}"),
        HashMap::from([
            ("served_seq".to_string(), own.to_string()),
            ("min_version".to_string(), min.to_string()),
        ]),
    )
}

/// The decision log cannot take the decision (its writer failed, or the
/// node is stopping): a node that logs does not answer unlogged.
pub fn unlogged(why: &str) -> Status {
    with_reason(
        Code::Unavailable,
        "DECISION_LOG_UNAVAILABLE",
        format!("{why}; this node refuses decisions it cannot log (ask another node)"),
        HashMap::new(),
    )
}

pub fn no_policy() -> Status {
    with_reason(
        Code::Unavailable,
        "NO_POLICY",
        "this node has no policy version yet (the cluster has no genesis, or the node has not caught up)".into(),
        HashMap::new(),
    )
}

/// A state-machine refusal (an admission rejection and the like).
pub fn refused(refusal: &Refusal) -> Status {
    let code = match refusal.code.as_str() {
        "stale_parent" | "gap" | "unknown_proposal" | "rollback_target_missing" => {
            Code::FailedPrecondition
        }
        "too_many_pending" => Code::ResourceExhausted,
        _ => Code::InvalidArgument,
    };
    with_reason(
        code,
        &refusal.code,
        format!("rejected ({}): {}", refusal.code, refusal.message),
        HashMap::new(),
    )
}

pub fn no_leader() -> Status {
    with_reason(
        Code::Unavailable,
        "NO_LEADER",
        "no leader is known right now (an election may be under way); retry shortly".into(),
        HashMap::new(),
    )
}
