//! Size limits on what a node accepts over the network.

use stele_ledger::limits::MAX_BUNDLE_BYTES;

pub use stele_proto::MAX_API_MESSAGE_BYTES;
const _: () = assert!(MAX_API_MESSAGE_BYTES >= 2 * MAX_BUNDLE_BYTES + 1024 * 1024);
/// Largest Decision message: a batch of requests, each with its context
/// and entities, not bundles.
pub const MAX_DECISION_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Most calls (gRPC streams) one connection may have in flight.
pub const MAX_CONCURRENT_CALLS_PER_CONNECTION: usize = 256;
/// Longest an HTTP request may take to arrive, headers and body.
pub const HTTP_HEADER_READ_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);
/// Longest an HTTP request may take, from its headers to its answer.
pub const HTTP_REQUEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
/// Largest Raft message (AppendEntries may carry a few proposals).
pub const MAX_RAFT_MESSAGE_BYTES: usize = 4 * MAX_BUNDLE_BYTES;
/// What one AppendEntries should carry at most (unless one entry is bigger):
/// a batch that encodes, crosses the network and decodes well within the
/// replication timeouts, so that heartbeats, which share the stream, keep
/// flowing while a peer catches up on large bundles.
pub const RAFT_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Largest snapshot a node accepts from a peer.
pub const MAX_SNAPSHOT_BYTES: usize = 4 * 1024 * 1024 * 1024;
/// Longest a snapshot stream may go without a chunk before it is cut off.
pub const SNAPSHOT_IDLE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);
/// Longest a whole snapshot may take to arrive (4 GiB at 40 MB/s): the
/// receive slot is never held longer.
pub const SNAPSHOT_TOTAL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);
/// Snapshot chunk size on the wire.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
/// Most requests in one CheckBatch, or evaluations in one AuthZEN request.
pub const MAX_BATCH_REQUESTS: usize = 10_000;
/// Largest HTTP request body (an AuthZEN batch of many evaluations fits).
pub const MAX_HTTP_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Most bytes a batch of AuthZEN evaluations may take once each evaluation
/// has copied the batch's defaults it leaves out (subject, resource,
/// context): a small body must not become gigabytes of requests.
pub const MAX_EXPANDED_BATCH_BYTES: usize = 4 * MAX_HTTP_BODY_BYTES;
