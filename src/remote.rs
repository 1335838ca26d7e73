//! Calling a node from the command line: a runtime, a client pinned to one
//! endpoint, and node errors turned into failures that name the problem.

use std::future::Future;
use std::sync::OnceLock;

use stele_client::Client;
use tokio::runtime::Runtime;

use crate::cli::Remote;
use crate::failure::{Failure, Result};

/// The command's async runtime, shared by every call so that connections
/// outlive a single call.
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("the OS lets a process start threads")
    })
}

/// Runs `work` to completion.
pub fn block_on<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    runtime().block_on(work)
}

pub fn client(remote: &Remote) -> Result<Client> {
    connect(&remote.endpoint, remote.timeout)
}

pub fn connect(endpoint: &str, timeout: std::time::Duration) -> Result<Client> {
    let _inside = runtime().enter();
    Client::new(endpoint, timeout).map_err(Failure::usage)
}

/// A node's error as a failure: the node's typed reason becomes the code
/// (lowercased), the message says which node answered.
pub fn failure(client: &Client, status: tonic::Status) -> Failure {
    let reason = stele_client::reason(&status).map(|r| r.to_lowercase());
    // tonic reports its own client-side deadline as Cancelled.
    let timed_out = status.code() == tonic::Code::DeadlineExceeded
        || (status.code() == tonic::Code::Cancelled
            && status.message().contains("Timeout expired"));
    let code: &'static str = match (reason.as_deref(), status.code()) {
        (Some(reason), _) => known_code(reason),
        (None, _) if timed_out => "timeout",
        (None, tonic::Code::Unavailable) => "unavailable",
        (None, tonic::Code::NotFound) => "not_found",
        (None, tonic::Code::AlreadyExists) => "already_exists",
        (None, tonic::Code::InvalidArgument) => "invalid_argument",
        (None, _) => "node_error",
    };
    let message = match status.code() {
        _ if timed_out => format!(
            "{}: no answer within {} (is the node frozen or unreachable?)",
            client.endpoint(),
            humantime::format_duration(client.timeout())
        ),
        tonic::Code::Unavailable if reason.is_none() => {
            format!("{}: unavailable: {}", client.endpoint(), status.message())
        }
        _ => format!("{}: {}", client.endpoint(), status.message()),
    };
    Failure::new(code, message)
}

/// Error codes are `&'static str`: the codes a node sends, or `node_error`.
fn known_code(reason: &str) -> &'static str {
    const KNOWN: [&str; 24] = [
        "stale",
        "behind_min_version",
        "no_policy",
        "no_leader",
        "stale_parent",
        "gap",
        "bad_signature",
        "unknown_key",
        "below_threshold",
        "digest_mismatch",
        "bundle_invalid",
        "rollback_target_missing",
        "rollback_digest_differs",
        "rotation_not_co_signed",
        "over_size_limit",
        "malformed",
        "genesis_mismatch",
        "unknown_proposal",
        "too_many_pending",
        "bad_proposal",
        "bad_approval",
        "already_committed",
        "invalid_argument",
        "not_found",
    ];
    KNOWN
        .iter()
        .find(|known| **known == reason)
        .copied()
        .unwrap_or("node_error")
}

/// Runs a write, sending it again while no leader can take it (an election
/// in progress). Writes are idempotent, so this is safe: the same version
/// again answers `already_committed`, the same approval adds nothing.
pub fn retrying_write<T>(mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    const ATTEMPTS: u64 = 5;
    let mut tried = 1;
    loop {
        match attempt() {
            Err(failure)
                if tried < ATTEMPTS && matches!(failure.code, "unavailable" | "no_leader") =>
            {
                std::thread::sleep(std::time::Duration::from_millis(200 * tried));
                tried += 1;
            }
            result => return result,
        }
    }
}
