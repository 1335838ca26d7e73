//! Size limits on what a node accepts over the network.

use stele_ledger::limits::{MAX_BUNDLE_BYTES, MAX_RESTORE_LEDGER_BYTES};

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
// A restore's ledger travels as one request and, escaped in JSON (at most
// twice its size), as one Raft entry.
const _: () = assert!(MAX_API_MESSAGE_BYTES >= MAX_RESTORE_LEDGER_BYTES + 1024 * 1024);
const _: () = assert!(MAX_RAFT_MESSAGE_BYTES >= 2 * MAX_RESTORE_LEDGER_BYTES + 1024 * 1024);
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

/// How many connections one port holds, and how many of them callers who
/// proved nothing may take. A caller without a certificate holds a
/// connection only while it handshakes or as an anonymous one, each with
/// its own cap below the total, so such callers together never hold more
/// than `handshaking + anonymous` connections: certified callers always
/// have the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once, in every state.
    pub total: usize,
    /// Connections still sending their first byte or their TLS handshake.
    pub handshaking: usize,
    /// Finished handshakes without a client certificate (probes, and
    /// enforcement points under `--decide-without-certificate`).
    pub anonymous: usize,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            total: 4096,
            handshaking: 512,
            anonymous: 512,
        }
    }
}

impl ConnectionLimits {
    /// Why these limits leave certified callers no room, if they do.
    pub fn problem(&self) -> Option<String> {
        if self.total > MAX_CONNECTIONS_PER_PORT {
            return Some(format!(
                "--max-connections {} is more than a port can hold: at most {MAX_CONNECTIONS_PER_PORT}",
                self.total
            ));
        }
        if self.handshaking == 0 || self.anonymous == 0 {
            return Some(
                "--max-handshakes and --max-anonymous-connections must be at least 1".into(),
            );
        }
        if self.handshaking.saturating_add(self.anonymous) >= self.total {
            return Some(format!(
                "--max-handshakes ({}) and --max-anonymous-connections ({}) must add up to less than --max-connections ({}), so that callers without a certificate can never take every connection",
                self.handshaking, self.anonymous, self.total
            ));
        }
        None
    }
}

/// The most `--max-connections` may say (each connection is a file
/// descriptor, and far more than any open-file limit).
pub const MAX_CONNECTIONS_PER_PORT: usize = 1 << 20;

/// Longest an anonymous connection stays open, busy or not: a probe needs
/// milliseconds, and an enforcement point without a certificate simply
/// reconnects. A caller who proved nothing cannot keep a slot for ever.
pub const ANONYMOUS_CONNECTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_without_a_certificate_must_leave_certified_ones_room() {
        assert_eq!(ConnectionLimits::default().problem(), None);
        let at_the_total = ConnectionLimits {
            total: 64,
            handshaking: 32,
            anonymous: 32,
        };
        assert!(at_the_total.problem().unwrap().contains("less than"));
        let near_overflow = ConnectionLimits {
            total: 64,
            handshaking: usize::MAX,
            anonymous: 1,
        };
        assert!(near_overflow.problem().is_some());
        let too_many = ConnectionLimits {
            total: usize::MAX,
            ..ConnectionLimits::default()
        };
        assert!(too_many.problem().unwrap().contains("at most"));
        let none_anonymous = ConnectionLimits {
            anonymous: 0,
            ..ConnectionLimits::default()
        };
        assert!(none_anonymous.problem().is_some());
    }
}
