//! # stele-node
//!
//! A stele node: openraft wired to the store, Raft RPCs over tonic, and the
//! public services: decisions from the node's own compiled snapshot (one
//! atomic load, no lock, no Raft round trip), ledger writes through the
//! leader (followers forward them), reads from local state, membership, and
//! the freshness bound that makes a cut-off node fail closed.

// The deliberate defects of simulation builds must never reach a node that
// stores on RocksDB, that is, the product.
#[cfg(all(stele_sim, feature = "rocksdb"))]
compile_error!(
    "--cfg stele_sim is for simulation builds (scripts/sim), which run nodes without RocksDB"
);

mod admin_service;
mod authzen;
pub mod config;
pub mod decision_log;
mod decision_service;
pub mod dial;
mod errors;
pub mod freshness;
mod http_api;
mod ledger_service;
pub mod limits;
pub mod members;
pub mod metrics;
mod network;
mod raft_service;
mod server;
mod state;

pub use config::{NodeConfig, OnStale};
pub use errors::DOMAIN;
#[cfg(feature = "rocksdb")]
pub use server::run;
pub use server::{Node, NodeError};
pub use state::{FORWARDED, NodeState, WallClock, system_clock};
