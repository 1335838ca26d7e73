//! # stele-node
//!
//! A stele node: openraft wired to the store, the Raft transport over
//! tonic (and the freshness evidence it carries), and the adapters that put
//! the node on the network: gRPC `Decision`, `Ledger` and `Admin`, AuthZEN
//! and metrics over HTTP, health. Writes go through the leader (followers
//! forward them with the client crate); reads come from local state.
//!
//! What it does not do itself: decide (the decision path, stele-decision,
//! does; the adapters here parse and map), or define the decision log
//! (stele-audit).

pub mod access;
mod admin_service;
mod authzen;
pub mod check_wire;
pub mod config;
mod current_members;
mod decision_service;
pub mod dial;
mod errors;
pub mod export_stream;
mod http_api;
#[cfg(feature = "rocksdb")]
mod http_serve;
mod ledger_service;
pub mod limits;
pub mod listener;
pub mod member_set_check;
pub mod members;
pub mod metrics;
mod network;
mod not_tls;
pub mod raft_guard;
mod raft_service;
pub mod reconcile;
mod removal;
mod server;
mod slots;
mod state;

pub use config::{ConfigError, NodeConfig, OnStale, TlsFiles, Transport};
#[cfg(feature = "rocksdb")]
pub use server::run;
pub use server::{Node, NodeError};
pub use state::{FORWARDED, NodeState, system_clock};
