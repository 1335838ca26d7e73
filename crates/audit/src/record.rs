//! The decision log's lines: what each holds, how each is hashed and
//! chained, and what a checkpoint signs.
//!
//! A segment is JSON lines. Records (`decision`, and `dropped` when the
//! queue overflowed and the node was told to drop) carry an `index`, counting
//! from 0 across segments, and `prev`, the hash of the record before (zeros
//! for the first). A record's hash is SHA-256, tagged, over the line's bytes
//! as written. A `checkpoint` line is not chained: it signs, with the node's
//! own key, how many records came before it and the last one's hash.

use std::fmt::Display;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use stele_ledger::hash::tagged_sha256;
use stele_ledger::{Hash, PublicKey, SecretKey, Signature};

const RECORD_TAG: &str = "stele/decision-log/record/v1";
const CHECKPOINT_TAG: &str = "stele/decision-log/checkpoint/v1";
const REQUEST_TAG: &str = "stele/decision-log/request/v1";

/// One line of a segment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Line {
    Decision(DecisionRecord),
    Dropped(DroppedRecord),
    Checkpoint(Checkpoint),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRecord {
    pub index: u64,
    pub decision_id: String,
    pub time_ms: u64,
    pub node: u64,
    /// The policy version that made the decision.
    pub seq: u64,
    pub hash: Hash,
    /// [`request_digest`] of the request.
    pub request_digest: Hash,
    /// The request itself, when the node logs full requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    /// Why the request is not here although the node logs full requests
    /// (too large): the digest still binds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_omitted: Option<String>,
    /// `allow` or `deny`.
    pub decision: String,
    pub reasons: Vec<String>,
    pub errors: Vec<String>,
    pub prev: Hash,
}

/// Decisions the node made but could not log (its queue was full and it
/// was configured to drop rather than wait): said, not hidden.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DroppedRecord {
    pub index: u64,
    pub count: u64,
    pub time_ms: u64,
    pub prev: Hash,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Records before this checkpoint.
    pub count: u64,
    /// The hash of record `count - 1` (zeros when there is none).
    pub head_hash: Hash,
    pub time_ms: u64,
    /// One decision in this many is logged (1: all).
    pub sample_every: u64,
    pub signature: Signature,
}

impl Line {
    /// The record's index and the hash it chains to (`None` for a
    /// checkpoint).
    pub fn chained(&self) -> Option<(u64, Hash)> {
        match self {
            Line::Decision(r) => Some((r.index, r.prev)),
            Line::Dropped(r) => Some((r.index, r.prev)),
            Line::Checkpoint(_) => None,
        }
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("log lines serialize")
    }
}

/// A record's hash: over its line, as written.
pub fn record_hash(line: &[u8]) -> Hash {
    tagged_sha256(RECORD_TAG, line)
}

/// A request as the log sees it, whatever evaluated it: principal, action
/// and resource as they print in Cedar's form (`User::"alice"`), the
/// context, and the entities the request described (AuthZEN `properties`).
pub trait LoggedRequest {
    fn principal(&self) -> &dyn Display;
    fn action(&self) -> &dyn Display;
    fn resource(&self) -> &dyn Display;
    fn context(&self) -> &Value;
    /// How many entities the request described.
    fn described(&self) -> usize;
    /// Entity `n` of those: its uid and its attributes.
    fn entity(&self, n: usize) -> (&dyn Display, &Map<String, Value>);
}

/// The digest of a request: principal, action and resource in Cedar's form
/// (`User::"alice"`), the context JSON, then for each entity the request
/// described its uid and its attributes' JSON, each followed by a newline
/// (Cedar's form of an entity escapes newlines, and compact JSON has none).
pub fn request_digest(request: &dyn LoggedRequest) -> Hash {
    use std::fmt::Write;
    let mut body = String::with_capacity(256);
    let mut part = |text: &dyn Display| {
        writeln!(body, "{text}").expect("writing to a String cannot fail");
    };
    part(request.principal());
    part(request.action());
    part(request.resource());
    part(request.context());
    for n in 0..request.described() {
        let (uid, attributes) = request.entity(n);
        part(uid);
        part(&serde_json::to_string(attributes).expect("JSON maps serialize"));
    }
    tagged_sha256(REQUEST_TAG, body.as_bytes())
}

/// The whole request, as `--decision-log-requests` logs it.
pub fn request_json(request: &dyn LoggedRequest) -> Value {
    let mut json = json!({
        "principal": request.principal().to_string(),
        "action": request.action().to_string(),
        "resource": request.resource().to_string(),
        "context": request.context(),
    });
    if request.described() > 0 {
        json["entities"] = (0..request.described())
            .map(|n| {
                let (uid, attributes) = request.entity(n);
                json!({"uid": uid.to_string(), "attrs": attributes})
            })
            .collect();
    }
    json
}

fn checkpoint_hash(count: u64, head_hash: &Hash, time_ms: u64, sample_every: u64) -> Hash {
    let mut body = Vec::with_capacity(56);
    body.extend_from_slice(&count.to_be_bytes());
    body.extend_from_slice(head_hash.as_bytes());
    body.extend_from_slice(&time_ms.to_be_bytes());
    body.extend_from_slice(&sample_every.to_be_bytes());
    tagged_sha256(CHECKPOINT_TAG, &body)
}

impl Checkpoint {
    pub fn signed(
        key: &SecretKey,
        count: u64,
        head_hash: Hash,
        time_ms: u64,
        sample_every: u64,
    ) -> Checkpoint {
        let signature = key.sign(&checkpoint_hash(count, &head_hash, time_ms, sample_every));
        Checkpoint {
            count,
            head_hash,
            time_ms,
            sample_every,
            signature,
        }
    }

    pub fn verifies(&self, key: &PublicKey) -> bool {
        let hash = checkpoint_hash(self.count, &self.head_hash, self.time_ms, self.sample_every);
        key.verifies(&hash, &self.signature)
    }
}
