//! The newest requests a log holds, for replaying against a proposed
//! bundle (`stele proposal impact`): read from the newest segment back, no
//! more than asked for and no more bytes than allowed. Read as written, not
//! verified: an impact is advice to an approver, not evidence (`stele audit
//! verify` is).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::Value;

use crate::error::LogError;
use crate::record::Line;
use crate::segments::segments;
use crate::verify::MAX_LINE_BYTES;

/// What a log gave.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recent {
    /// The requests, oldest first (`request_json`'s form).
    pub requests: Vec<Value>,
    /// Decision records read.
    pub records: u64,
    /// Of those, records without their request (the node logged digests
    /// only, or the request was too large to log).
    pub without_request: u64,
}

/// The newest `limit` requests in the log at `dir`, reading at most
/// `max_bytes` of it.
pub fn recent_requests(dir: &Path, limit: usize, max_bytes: u64) -> Result<Recent, LogError> {
    let mut newest_first = segments(dir)?;
    newest_first.reverse();
    let mut recent = Recent::default();
    // Requests found so far, newest segments first, each in file order.
    let mut found: VecDeque<Value> = VecDeque::new();
    let mut budget = max_bytes;
    for (_, path) in newest_first {
        if found.len() >= limit || budget == 0 {
            break;
        }
        let file = std::fs::File::open(&path).map_err(LogError::io("reading", &path))?;
        let mut reader = BufReader::new(file.take(budget));
        let mut in_segment: VecDeque<Value> = VecDeque::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = (&mut reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(LogError::io("reading", &path))?;
            if read == 0 {
                break;
            }
            budget = budget.saturating_sub(read as u64);
            let Ok(Line::Decision(record)) = serde_json::from_slice::<Line>(&line) else {
                continue;
            };
            recent.records += 1;
            match record.request {
                Some(request) => {
                    in_segment.push_back(request);
                    if in_segment.len() + found.len() > limit {
                        in_segment.pop_front();
                    }
                }
                None => recent.without_request += 1,
            }
        }
        for request in in_segment.into_iter().rev() {
            found.push_front(request);
        }
    }
    recent.requests = found.into_iter().collect();
    Ok(recent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segments::segment_name;

    fn record(index: u64, request: Option<&str>) -> String {
        let mut line = serde_json::json!({
            "kind": "decision", "index": index, "decision_id": format!("d{index}"),
            "time_ms": 0, "node": 1, "seq": 1, "hash": "0".repeat(64),
            "request_digest": "0".repeat(64), "decision": "allow", "reasons": [],
            "errors": [], "prev": "0".repeat(64),
        });
        if let Some(principal) = request {
            line["request"] = serde_json::json!({ "principal": principal });
        }
        format!("{line}\n")
    }

    #[test]
    fn the_newest_requests_come_oldest_first_across_segments_and_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let old: String = (0..3).map(|i| record(i, Some(&format!("p{i}")))).collect();
        let new: String = [
            record(3, None),
            record(4, Some("p4")),
            record(5, Some("p5")),
        ]
        .concat();
        std::fs::write(dir.path().join(segment_name(0)), old).unwrap();
        std::fs::write(dir.path().join(segment_name(3)), new).unwrap();
        let principals = |recent: &Recent| -> Vec<String> {
            recent
                .requests
                .iter()
                .map(|r| r["principal"].as_str().unwrap().to_string())
                .collect()
        };
        let three = recent_requests(dir.path(), 3, u64::MAX).unwrap();
        assert_eq!(principals(&three), ["p2", "p4", "p5"]);
        let all = recent_requests(dir.path(), 100, u64::MAX).unwrap();
        assert_eq!(principals(&all), ["p0", "p1", "p2", "p4", "p5"]);
        assert_eq!((all.records, all.without_request), (6, 1));
        // A byte budget stops the reading, whatever the limit.
        let first_line = record(3, None).len() as u64;
        let bounded = recent_requests(dir.path(), 100, first_line).unwrap();
        assert!(bounded.requests.is_empty(), "{bounded:?}");
    }
}
