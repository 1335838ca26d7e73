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
    let timed_out = stele_client::timed_out(&status);
    let endpoint = client.endpoint();
    let message = match status.code() {
        _ if timed_out => format!(
            "{endpoint}: no answer within {} (is the node frozen or unreachable?)",
            humantime::format_duration(client.timeout())
        ),
        tonic::Code::Unavailable if reason.is_none() => format!(
            "{endpoint}: unavailable: {} (is a node running there? Set --endpoint or STELE_ENDPOINT)",
            status.message()
        ),
        _ => format!("{endpoint}: {}", status.message()),
    };
    let code = match (reason, status.code()) {
        (Some(reason), _) => reason,
        (None, _) if timed_out => "timeout".into(),
        (None, tonic::Code::Unavailable) => "unavailable".into(),
        (None, tonic::Code::NotFound) => "not_found".into(),
        (None, tonic::Code::AlreadyExists) => "already_exists".into(),
        (None, tonic::Code::InvalidArgument) => "invalid_argument".into(),
        (None, _) => "node_error".into(),
    };
    Failure::new(code, message)
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
                if tried < ATTEMPTS
                    && matches!(failure.code.as_ref(), "unavailable" | "no_leader") =>
            {
                std::thread::sleep(std::time::Duration::from_millis(200 * tried));
                tried += 1;
            }
            Err(mut failure) if failure.code == "timeout" => {
                failure.message.push_str(
                    "; the write may still have committed: check `stele log` before proposing again (sending the same proposal file again with `stele submit` is safe)",
                );
                return Err(failure);
            }
            result => return result,
        }
    }
}
