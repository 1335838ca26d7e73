//! # stele-decision
//!
//! The one decision path of a node. Every API (gRPC `Decision`, AuthZEN
//! over HTTP, and whatever comes next) parses its request, calls
//! [`DecisionPath`], and maps the typed answer to its wire: a [`Decided`]
//! decision, or [`Undecided`] saying why none was made. Here, once and in
//! this order, happen: waiting for a requested `min_version`, loading the
//! served snapshot (one atomic load), the freshness bound (invariant 6),
//! Cedar through the policy index, the decision log's record, and the
//! counters. [`DecisionPath::readiness`] is the one answer to "would this
//! node decide now?" for probes, metrics and gRPC health.
//!
//! What it does not hold: any transport type (no tonic, axum or HTTP), the
//! Raft wiring that feeds [`Freshness`], or the log's format (stele-audit).

mod counters;
mod freshness;
mod ids;
mod logged;
mod outcome;
mod path;
mod readiness;

pub use counters::{Counted, DecisionCounters, LATENCY_BUCKETS};
pub use freshness::{Freshness, Stale};
pub use logged::block_in_place;
pub use outcome::{Decided, Question, Undecided};
pub use path::{Ask, DecisionPath, OnStale, Session, Settings, StaleAnswers};
pub use readiness::{NotReady, Ready};
