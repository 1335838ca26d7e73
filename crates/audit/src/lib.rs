//! # stele-audit
//!
//! The decision log: one record per decision (its id, time, node, the
//! version that made it, a digest of the request, the outcome and reasons),
//! hash-chained, in size-rotated segments, with checkpoints signed by the
//! node's own key; the writer a node runs, off its decision path; and the
//! offline verifier an auditor runs (`stele audit verify`), which is a pure
//! function of the segments' bytes and the node's public key.
//!
//! What it does not do: decide, evaluate Cedar, or talk to a network. An
//! auditor links this crate and `stele-ledger` alone; no openraft, tonic,
//! axum or RocksDB is in its dependency tree. The format is specified in
//! `docs/AUDIT.md`.

mod error;
mod key;
mod recent;
mod record;
mod segments;
mod verify;
mod writer;

pub use error::{LogError, Unlogged};
pub use key::{LOG_KEY_FILE, node_key};
pub use recent::{Recent, recent_requests};
pub use record::{
    Checkpoint, DecisionRecord, DroppedRecord, Line, LoggedRequest, record_hash, request_digest,
    request_json,
};
pub use segments::{Segment, SegmentFile, segment_name};
pub use verify::{
    Break, Broken, CheckpointFault, Disagreement, Expected, MAX_LINE_BYTES, Verified,
    read_segments, verify, verify_segments,
};
pub use writer::{
    Blocking, DecisionLog, LogConfig, MAX_LOGGED_REQUEST_BYTES, MAX_QUEUED_REQUEST_BYTES,
    SignedHead, ToLog, WhenFull,
};
