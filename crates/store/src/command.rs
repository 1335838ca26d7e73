//! What Raft log entries carry, and what applying one answers.

use serde::{Deserialize, Serialize};
use stele_ledger::{Approval, Hash, Proposal, Reason, Rejection};

/// One state-machine command, stamped by the leader with its clock. Apply
/// reads no clock of its own: `time_ms` is the only time it knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Leader time, Unix milliseconds. Apply never lets time go backwards:
    /// it uses the largest time seen so far.
    pub time_ms: u64,
    pub command: Command,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// A version with its bundle. Committed when its signatures reach the
    /// threshold; otherwise held as a pending proposal until it does, its
    /// parent stops being the head, or `pending_ttl_ms` passes; or refused
    /// outright when `commit_only`.
    Propose {
        /// Boxed: a proposal is far larger than an approval.
        proposal: Box<Proposal>,
        commit_only: bool,
        pending_ttl_ms: u64,
    },
    /// More signatures for a pending proposal (its id is the version hash).
    Approve {
        proposal_id: Hash,
        approvals: Vec<Approval>,
    },
    /// An existing chain, continued in a new cluster (`cluster init
    /// --ledger`): a whole ledger file whose head is a signed `membership`
    /// version naming this cluster's members. Appended at once, on an
    /// empty chain only, so that no node ever serves a version below the
    /// head it restores.
    Restore { ledger: String },
    /// A pending proposal taken back: signed (over the domain-separated
    /// withdrawal message, `stele_ledger::keys::WITHDRAW_TAG`) by its
    /// proposer, or by M approvers of the trust set in force, so that one
    /// approver cannot veto alone when M < N.
    Withdraw {
        proposal_id: Hash,
        approvals: Vec<Approval>,
    },
}

/// Where a proposal stands after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalState {
    Pending,
    Committed,
    AlreadyCommitted,
    Withdrawn,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalStatus {
    pub proposal_id: Hash,
    pub state: ProposalState,
    /// Distinct valid approvers so far (for a rotation: of the set in force).
    pub signatures: u32,
    pub threshold: u32,
    pub seq: Option<u64>,
    /// Pending only: when it lapses, leader time in Unix milliseconds.
    pub expires_at_ms: Option<u64>,
}

/// A refused command: a stable reason and a message for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub reason: Reason,
    pub message: String,
}

impl Refusal {
    pub fn new(reason: Reason, message: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            message: message.into(),
        }
    }
}

impl From<Rejection> for Refusal {
    fn from(rejection: Rejection) -> Refusal {
        Refusal::new(rejection.reason(), rejection.to_string())
    }
}

/// What applying an entry answers. Membership and blank entries answer
/// `Done`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    #[default]
    Done,
    Accepted(ProposalStatus),
    Refused(Refusal),
}
