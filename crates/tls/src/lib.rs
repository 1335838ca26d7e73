//! # stele-tls
//!
//! Who a stele certificate says its holder is, and the TLS that proves it.
//! Every certificate is issued by the cluster's CA and names, as SAN URIs,
//! either a node (`stele://node/3`) or the roles of a client
//! (`stele://role/operator`, one URI per role). This crate reads those
//! names ([`identity`]), builds the rustls configurations that check them
//! ([`config`]: a node's server, a node dialling a peer by node id, a
//! client dialling a node by host name), and issues the certificates
//! ([`issue`], for `stele certs` and `stele dev`).
//!
//! rustls runs on ring only ([`install_ring`]); nothing here does I/O
//! beyond reading and writing PEM files.

pub mod config;
mod der;
pub mod identity;
pub mod issue;
mod verify;

pub use config::{ClientAuth, Loaded, TlsError, TlsFiles};
pub use identity::{Caller, CertError, Certified, Role};

/// Makes ring the process's rustls provider. Call once at start, before
/// any TLS; later calls do nothing.
pub fn install_ring() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
