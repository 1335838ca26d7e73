//! Calling a node from the command line: a runtime, a client pinned to one
//! endpoint, and writes sent again while no leader can take them.

use std::future::Future;
use std::sync::OnceLock;

use stele_client::{Client, Transport};
use tokio::runtime::Runtime;

use crate::cli::{Remote, TlsArgs};
use crate::failure::{Code, Failure, Result};

/// The process's TLS flags, set once by `main` before any command runs.
static TLS: OnceLock<TlsArgs> = OnceLock::new();

pub fn set_tls(args: TlsArgs) {
    let _ = TLS.set(args);
}

pub fn tls_args() -> TlsArgs {
    TLS.get().cloned().unwrap_or_default()
}

/// The TLS files the flags name: all three, none (with
/// --insecure-plaintext), or a usage error that says what is missing.
pub fn tls_files(args: &TlsArgs) -> Result<Option<stele_tls::TlsFiles>> {
    match (
        &args.tls_ca,
        &args.tls_cert,
        &args.tls_key,
        args.insecure_plaintext,
    ) {
        (Some(ca), Some(cert), Some(key), false) => Ok(Some(stele_tls::TlsFiles {
            ca: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
        })),
        (None, None, None, true) => Ok(None),
        (_, _, _, true) => Err(Failure::usage(
            "--insecure-plaintext and --tls-ca/--tls-cert/--tls-key (or STELE_TLS_*) are both given: drop one of them",
        )),
        _ => Err(Failure::usage(
            "TLS is on by default: give --tls-ca, --tls-cert and --tls-key (or STELE_TLS_CA, STELE_TLS_CERT and STELE_TLS_KEY; after `stele dev`, `source DIR/stele.env` sets them), or --insecure-plaintext for a node that serves none",
        )),
    }
}

/// The client TLS configuration the flags give (`None` with
/// --insecure-plaintext), for protocols beside gRPC (the HTTP load).
pub fn client_tls() -> Result<Option<std::sync::Arc<rustls::ClientConfig>>> {
    Ok(match transport()? {
        Transport::Tls(config) => Some(config),
        Transport::InsecurePlaintext => None,
    })
}

/// How this command's clients reach nodes, built once.
fn transport() -> Result<Transport> {
    static TRANSPORT: OnceLock<std::result::Result<Transport, Failure>> = OnceLock::new();
    TRANSPORT
        .get_or_init(|| {
            let Some(files) = tls_files(&tls_args())? else {
                eprintln!(
                    "warning: --insecure-plaintext: this client sends and receives without TLS"
                );
                return Ok(Transport::InsecurePlaintext);
            };
            stele_tls::install_ring();
            let loaded = files
                .load()
                .map_err(|e| Failure::new(Code::Usage, e.to_string()))?;
            let config = loaded
                .client_config()
                .map_err(|e| Failure::new(Code::Usage, e.to_string()))?;
            Ok(Transport::Tls(config))
        })
        .clone()
}

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

/// A client over a transport of the caller's own (`stele dev`'s operator).
pub fn connect_with(
    endpoint: &str,
    transport: &Transport,
    timeout: std::time::Duration,
) -> Result<Client> {
    let _inside = runtime().enter();
    Ok(Client::connect(endpoint, transport, timeout)?)
}

pub fn connect(endpoint: &str, timeout: std::time::Duration) -> Result<Client> {
    let transport = transport()?;
    let _inside = runtime().enter();
    Ok(Client::connect(endpoint, &transport, timeout)?)
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
