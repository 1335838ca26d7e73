//! Calling a node from the command line: a runtime, a client pinned to one
//! endpoint, and writes sent again while no leader can take them.

use std::future::Future;
use std::sync::OnceLock;

use stele_client::Client;
use tokio::runtime::Runtime;

use crate::cli::Remote;
use crate::failure::{Code, Failure, Result};

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

/// Runs one call to a node to completion; its error becomes a failure that
/// names the node.
pub fn call<T>(work: impl Future<Output = Result<T, stele_client::Error>>) -> Result<T> {
    runtime().block_on(work).map_err(Failure::from)
}

pub fn client(remote: &Remote) -> Result<Client> {
    connect(&remote.endpoint, remote.timeout)
}

pub fn connect(endpoint: &str, timeout: std::time::Duration) -> Result<Client> {
    let _inside = runtime().enter();
    Ok(Client::new(endpoint, timeout)?)
}

/// Runs a write, sending it again while no leader can take it (an election
/// in progress). Writes are idempotent, so this is safe: the same version
/// again answers `already_committed`, the same approval adds nothing.
pub fn retrying_write<T, F>(mut attempt: impl FnMut() -> F) -> Result<T>
where
    F: Future<Output = Result<T, stele_client::Error>>,
{
    const ATTEMPTS: u64 = 5;
    let mut tried = 1;
    loop {
        match runtime().block_on(attempt()) {
            Err(error) if tried < ATTEMPTS && error.is_retryable() => {
                std::thread::sleep(std::time::Duration::from_millis(200 * tried));
                tried += 1;
            }
            Err(error) => {
                let mut failure = Failure::from(error);
                if failure.code == Code::Timeout {
                    failure.message.push_str(
                        "; the write may still have committed: check `stele log` before proposing again (sending the same proposal file again with `stele submit` is safe)",
                    );
                }
                return Err(failure);
            }
            Ok(result) => return Ok(result),
        }
    }
}
