//! Checking a copied decision log offline (`stele audit verify`), and
//! finding one decision in it (`stele audit show`).
//!
//! Every record must follow the one before: the next index, and `prev`
//! equal to its hash. Every checkpoint must be signed by the node's key and
//! name exactly the records before it. A change, deletion, reordering or
//! truncation of a record breaks one of these at the first record it
//! touches, which is the one named.
//!
//! What a copy cannot show by itself is what was cut from its ends: whole
//! records after the last checkpoint, whole segments at the start or the
//! end. So by default a copy must start at record 0 and end with a
//! checkpoint, and an auditor who knows a later checkpoint of the node
//! (`cluster status`, `/metrics`) states it ([`Expected::count`]): the
//! copy must reach it.

use std::path::Path;

use stele_ledger::{Hash, PublicKey};

use super::record::{Checkpoint, DecisionRecord, Line, record_hash};
use super::segments::segments;

/// What a verified log holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub segments: usize,
    /// The first record's index: 0 for a whole log; more when older
    /// segments were removed (their successor's link to them is trusted).
    pub first_index: u64,
    /// The index after the last record.
    pub next_index: u64,
    pub records: u64,
    pub decisions: u64,
    /// Decisions the node could not log (queue full, `--decision-log-when-full drop`).
    pub dropped: u64,
    pub checkpoints: u64,
    /// The index after the last record a checkpoint signs.
    pub signed: u64,
    /// One decision in this many was logged, per the last checkpoint.
    pub sample_every: u64,
    /// The hash of the last record.
    pub head: Hash,
    /// The newest segment ends in a line cut short: a copy taken while the
    /// node wrote it, accepted with `allow_unsigned` (the line is not
    /// counted).
    pub torn_tail: bool,
}

/// What the auditor requires of a copy, beyond its own consistency.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    /// The copy holds at least this many records: a checkpoint the node
    /// published since.
    pub count: Option<u64>,
    /// ...and record `count - 1` has this hash (that checkpoint's head).
    pub head: Option<Hash>,
    /// Accept a copy without its oldest segments, from the first record it
    /// holds (whose link to the removed ones is then taken on trust).
    pub allow_pruned: bool,
    /// Accept records after the last checkpoint (a copy of a running or
    /// crashed node's log): chained, but not signed.
    pub allow_unsigned: bool,
}

/// Where verification failed: the file, the line, the record, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    pub file: String,
    pub line: usize,
    /// The record's index, when the line names one.
    pub index: Option<u64>,
    pub decision_id: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)?;
        if let Some(index) = self.index {
            write!(f, " (record {index}")?;
            if let Some(id) = &self.decision_id {
                write!(f, ", decision {id}")?;
            }
            write!(f, ")")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Verifies the whole log in `dir` against the node's key and what the
/// auditor `expected`; `found` sees every decision record, in order, once
/// it has been checked.
pub fn verify(
    dir: &Path,
    key: &PublicKey,
    expected: &Expected,
    mut found: impl FnMut(&DecisionRecord),
) -> Result<Verified, Broken> {
    let broken = |file: &str, line: usize, reason: String| Broken {
        file: file.to_string(),
        line,
        index: None,
        decision_id: None,
        reason,
    };
    let files = segments(dir).map_err(|e| broken(&dir.display().to_string(), 0, e))?;
    if files.is_empty() {
        return Err(broken(
            &dir.display().to_string(),
            0,
            "no decision log segments (decisions-*.jsonl) here".into(),
        ));
    }
    let mut verified = Verified {
        segments: files.len(),
        first_index: 0,
        next_index: 0,
        records: 0,
        decisions: 0,
        dropped: 0,
        checkpoints: 0,
        signed: 0,
        sample_every: 1,
        head: Hash::ZERO,
        torn_tail: false,
    };
    let mut prev = Hash::ZERO;
    // Where the last record is, to name it when the next line shows it
    // was changed.
    let mut previous: Option<Broken> = None;
    // The first record after the last checkpoint, if any.
    let mut first_unsigned: Option<Broken> = None;
    // The hash of the record the auditor expects to end at.
    let mut expected_head_found: Option<Hash> = None;
    for (first_index, path) in &files {
        let file = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut bytes = std::fs::read(path).map_err(|e| broken(&file, 0, e.to_string()))?;
        if !bytes.is_empty() && bytes.last() != Some(&b'\n') {
            let newest = Some(path) == files.last().map(|(_, newest)| newest);
            if !(newest && expected.allow_unsigned) {
                let line = bytes.iter().filter(|b| **b == b'\n').count() + 1;
                return Err(broken(
                    &file,
                    line,
                    "the last line is cut short (truncated; a copy of a log being written ends so, and verifies with --allow-unsigned)".into(),
                ));
            }
            // The line the node was writing when the copy was taken: no
            // record yet, like the unsigned ones before it.
            let whole = bytes
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |at| at + 1);
            bytes.truncate(whole);
            verified.torn_tail = true;
        }
        let mut first_in_file = true;
        let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let lines = body.split(|b| *b == b'\n').filter(|_| !body.is_empty());
        for (n, text) in lines.enumerate() {
            let line_no = n + 1;
            let parsed: Line = serde_json::from_slice(text)
                .map_err(|e| broken(&file, line_no, format!("not a decision log line: {e}")))?;
            let named = |reason: String| Broken {
                file: file.clone(),
                line: line_no,
                index: parsed.chained().map(|(index, _)| index),
                decision_id: match &parsed {
                    Line::Decision(r) => Some(r.decision_id.clone()),
                    _ => None,
                },
                reason,
            };
            match &parsed {
                Line::Checkpoint(checkpoint) => {
                    if let Err(reason) =
                        check_checkpoint(checkpoint, key, verified.next_index, &prev)
                    {
                        // The last record before a checkpoint that no longer
                        // matches it was changed, unless records went missing.
                        return Err(match &previous {
                            Some(last) if checkpoint.count == verified.next_index => Broken {
                                reason: format!("changed: {reason}"),
                                ..last.clone()
                            },
                            _ if checkpoint.count > verified.next_index => Broken {
                                index: Some(verified.next_index),
                                reason: format!(
                                    "record {} is missing: {reason}",
                                    verified.next_index
                                ),
                                ..named(String::new())
                            },
                            _ => named(reason),
                        });
                    }
                    verified.checkpoints += 1;
                    verified.signed = checkpoint.count;
                    first_unsigned = None;
                    verified.sample_every = checkpoint.sample_every;
                }
                Line::Decision(_) | Line::Dropped(_) => {
                    let (index, chained_to) = parsed.chained().expect("a record");
                    if first_in_file && index != *first_index {
                        return Err(named(format!(
                            "the segment is named for record {first_index} but starts at record {index}"
                        )));
                    }
                    if verified.records == 0 && index == *first_index {
                        // The oldest record in this copy: where the chain
                        // starts (a log from which old segments were
                        // removed starts past 0).
                        verified.first_index = index;
                        verified.next_index = index;
                        prev = chained_to;
                    }
                    if index != verified.next_index {
                        return Err(named(format!(
                            "expected record {} here, found record {index}: records are missing, added or out of order",
                            verified.next_index
                        )));
                    }
                    if chained_to != prev {
                        // The record before no longer hashes to what this
                        // one chains to: it is the one changed (or this
                        // link is).
                        let mut changed = previous.clone().unwrap_or_else(|| named(String::new()));
                        changed.reason =
                            format!("changed: record {index} chains to a different hash for it",);
                        return Err(changed);
                    }
                    prev = record_hash(text);
                    previous = Some(named(String::new()));
                    if first_unsigned.is_none() {
                        first_unsigned = previous.clone();
                    }
                    if expected.count == Some(index + 1) {
                        expected_head_found = Some(prev);
                    }
                    verified.records += 1;
                    verified.next_index += 1;
                    match &parsed {
                        Line::Decision(record) => {
                            verified.decisions += 1;
                            found(record);
                        }
                        Line::Dropped(record) => verified.dropped += record.count,
                        Line::Checkpoint(_) => unreachable!(),
                    }
                    first_in_file = false;
                }
            }
        }
    }
    verified.head = prev;
    let whole = dir.display().to_string();
    if verified.checkpoints == 0 {
        return Err(broken(
            &whole,
            0,
            "no signed checkpoint: nothing in this log is proven".into(),
        ));
    }
    if verified.first_index != 0 && !expected.allow_pruned {
        let (_, first) = &files[0];
        return Err(broken(
            &first
                .file_name()
                .map_or(whole.clone(), |n| n.to_string_lossy().into_owned()),
            1,
            format!(
                "the copy starts at record {}: records 0 to {} are not in it (segments removed from the start); pass --allow-pruned to verify from where it starts",
                verified.first_index,
                verified.first_index - 1
            ),
        ));
    }
    if let Some(count) = expected.count
        && verified.next_index < count
    {
        return Err(broken(
            &whole,
            0,
            format!(
                "the copy ends after record {} but the node signed {count} records: records {} to {} were cut from its end",
                verified.next_index as i128 - 1,
                verified.next_index,
                count - 1
            ),
        ));
    }
    if let (Some(count), Some(head)) = (expected.count, expected.head)
        && count > 0
        && expected_head_found != Some(head)
    {
        return Err(broken(
            &whole,
            0,
            format!(
                "record {} is not the one the node signed (head {}): the log was rewritten",
                count - 1,
                head.short()
            ),
        ));
    }
    if let Some(unsigned) = first_unsigned
        && !expected.allow_unsigned
    {
        return Err(Broken {
            reason: format!(
                "this record and the {} after it follow the last signed checkpoint: nothing proves them, or that none were cut after them; pass --allow-unsigned to accept them (a running node signs at least every 5 s, and on stopping)",
                verified.next_index - verified.signed - 1
            ),
            ..unsigned
        });
    }
    Ok(verified)
}

fn check_checkpoint(
    checkpoint: &Checkpoint,
    key: &PublicKey,
    records: u64,
    head: &Hash,
) -> Result<(), String> {
    if !checkpoint.verifies(key) {
        return Err("a checkpoint whose signature is not the node key's".into());
    }
    if checkpoint.count != records || checkpoint.head_hash != *head {
        return Err(format!(
            "a checkpoint signed for {} records (head {}) follows {records} records (head {}): records before it were removed, added or changed",
            checkpoint.count,
            checkpoint.head_hash.short(),
            head.short()
        ));
    }
    Ok(())
}
