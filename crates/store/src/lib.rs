//! # stele-store
//!
//! The replicated state of a stele node, behind openraft 0.9's storage
//! traits: the Raft log, and the policy state machine that applies proposals
//! and approvals through the ledger's admission, deterministically (no clock
//! or randomness in apply: the leader's time travels inside each entry).
//! Snapshots carry everything apply reads and are checked against the local
//! chain before they are installed. At open, the stored chain is verified
//! from genesis; a tampered store refuses to start, naming the bad seq.
//!
//! Two storages: RocksDB (feature `rocksdb`, the product) and memory (for
//! simulation), with the same state machine over both.
//!
//! What it does not do: talk to the network, decide access (it publishes
//! the compiled snapshot; the decision path reads it), or read a clock.

mod backend;
mod command;
mod machine;
pub mod mem;
mod published;
#[cfg(feature = "rocksdb")]
pub mod rocks;
mod runtime;
pub mod snapshot;
mod state_machine;
mod types;

pub use backend::{Backend, BundleSource, StoreError};
pub use command::{Command, ProposalState, ProposalStatus, Refusal, Request, Response};
pub use machine::{Change, Closed, MAX_CLOSED, MAX_PENDING, Machine, Pending};
pub use published::{Published, Served, ServedGuard};
pub use runtime::{SteleRuntime, ThreadRng, offload, seed_thread_rng};
pub use snapshot::SnapshotError;
pub use state_machine::{OpenError, PolicyStateMachine, SnapshotBuilder, verify_stored};
pub use types::*;
