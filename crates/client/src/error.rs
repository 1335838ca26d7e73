//! What a call to a node can end in, other than its answer.

use std::time::Duration;

use stele_ledger::Reason;
use thiserror::Error;
use tonic::Code;
use tonic_types::StatusExt;

/// The domain of stele's `google.rpc.ErrorInfo` details.
pub const DOMAIN: &str = "stele.dev";

#[derive(Debug, Error)]
pub enum Error {
    #[error("{endpoint:?} is not an endpoint (host:port or http://host:port): {why}")]
    Endpoint { endpoint: String, why: String },
    /// No answer within the call's deadline: the node may be frozen,
    /// unreachable, or still working (a write's outcome is then unknown).
    #[error("{endpoint}: no answer within {}", humantime::format_duration(*timeout))]
    TimedOut {
        endpoint: String,
        timeout: Duration,
        status: tonic::Status,
    },
    /// Nothing answered, or the node could not serve the call and gave no
    /// reason (no connection, a node that is stopping, a leader that lost
    /// its leadership mid-write).
    #[error("{endpoint}: unavailable: {}{cause}", status.message())]
    Unavailable {
        endpoint: String,
        status: tonic::Status,
        /// What the transport said underneath (a refused connection, a
        /// failed TLS handshake), when anything.
        cause: String,
    },
    /// The node answered with an error: its typed reason when it gave one.
    #[error("{endpoint}: {}", status.message())]
    Node {
        endpoint: String,
        reason: Option<Reason>,
        status: tonic::Status,
    },
    /// The node sent another proposal than the one asked for.
    #[error("{endpoint}: the node sent proposal {sent} when asked for {asked}")]
    WrongProposal {
        endpoint: String,
        asked: stele_ledger::Hash,
        sent: stele_ledger::Hash,
    },
    /// The node's answer does not decode.
    #[error("{endpoint}: the node sent {what} that does not decode: {why}")]
    Malformed {
        endpoint: String,
        what: &'static str,
        why: String,
    },
}

/// Whether the transport under a status gave up waiting: a connection or
/// a TLS handshake that got no answer within the deadline (a frozen node
/// accepts connections and says nothing).
fn timed_out_underneath(status: &tonic::Status) -> bool {
    let mut next = std::error::Error::source(status);
    while let Some(error) = next {
        let io_timeout = error
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut);
        if io_timeout || error.is::<tonic::TimeoutExpired>() {
            return true;
        }
        next = error.source();
    }
    false
}

/// The chain of errors under a status, as `: a: b`.
fn causes(status: &tonic::Status) -> String {
    let mut out = String::new();
    let mut next = std::error::Error::source(status);
    while let Some(error) = next {
        let text = error.to_string();
        if !out.contains(&text) && !status.message().contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = error.source();
    }
    out
}

impl Error {
    pub(crate) fn from_status(endpoint: &str, timeout: Duration, status: tonic::Status) -> Error {
        let endpoint = endpoint.to_string();
        let reason = status
            .get_error_details()
            .error_info()
            .and_then(|info| info.reason.parse().ok());
        // tonic reports its own client-side deadline as `Cancelled`,
        // "Timeout expired".
        let timed_out = status.code() == Code::DeadlineExceeded
            || (status.code() == Code::Cancelled && status.message().contains("Timeout expired"))
            || timed_out_underneath(&status);
        match (reason, status.code()) {
            (None, _) if timed_out => Error::TimedOut {
                endpoint,
                timeout,
                status,
            },
            (None, Code::Unavailable) => Error::Unavailable {
                endpoint,
                cause: causes(&status),
                status,
            },
            (reason, _) => Error::Node {
                endpoint,
                reason,
                status,
            },
        }
    }

    /// The node's typed reason, when it gave one.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Error::Node { reason, .. } => *reason,
            _ => None,
        }
    }

    /// The gRPC status the call ended with, when it got that far.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            Error::TimedOut { status, .. }
            | Error::Unavailable { status, .. }
            | Error::Node { status, .. } => Some(status),
            Error::Endpoint { .. } | Error::WrongProposal { .. } | Error::Malformed { .. } => None,
        }
    }

    /// The gRPC status the call ended with, owned.
    pub fn into_status(self) -> Result<tonic::Status, Error> {
        match self {
            Error::TimedOut { status, .. }
            | Error::Unavailable { status, .. }
            | Error::Node { status, .. } => Ok(status),
            other => Err(other),
        }
    }

    /// The gRPC code the call ended with, when it got that far.
    pub fn code(&self) -> Option<Code> {
        self.status().map(tonic::Status::code)
    }

    /// What the node said, without the endpoint.
    pub fn message(&self) -> String {
        match self.status() {
            Some(status) => status.message().to_string(),
            None => self.to_string(),
        }
    }

    /// A metadata field of the error's typed detail.
    pub fn detail(&self, key: &str) -> Option<String> {
        self.status()?
            .get_error_details()
            .error_info()
            .and_then(|info| info.metadata.get(key).cloned())
    }

    /// Worth sending again as it is: no leader could take it, or the node
    /// could not serve it now (writes are idempotent, so this is safe).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable { .. }) || self.reason() == Some(Reason::NoLeader)
    }
}
