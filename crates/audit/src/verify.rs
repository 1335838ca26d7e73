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

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use stele_ledger::{Hash, PublicKey};
use thiserror::Error;

use crate::record::{Checkpoint, DecisionRecord, Line, record_hash};
use crate::segments::{Segment, SegmentFile, segments};

/// The longest line a decision log holds. Records and checkpoints are far
/// shorter (a request is logged whole only up to 64 KiB); a longer line is
/// not one of the log's, and is refused rather than read whole.
pub const MAX_LINE_BYTES: usize = 64 << 20;

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
    /// The line, from 1; 0 for the whole file or the whole log.
    pub line: usize,
    /// The record's index, when the line names one.
    pub index: Option<u64>,
    pub decision_id: Option<String>,
    pub reason: Break,
}

/// Why a checkpoint does not stand where it is.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CheckpointFault {
    #[error("a checkpoint whose signature is not the node key's")]
    Signature,
    #[error(
        "a checkpoint signed for {} records (head {}) follows {} records (head {}): records before it were removed, added or changed",
        .0.count, .0.signed_head.short(), .0.records, .0.head.short()
    )]
    Disagrees(Box<Disagreement>),
}

/// What a checkpoint signed, and what the records before it are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disagreement {
    pub count: u64,
    pub signed_head: Hash,
    pub records: u64,
    pub head: Hash,
}

/// What is wrong with a copy of a log, at the place [`Broken`] names.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Break {
    #[error("no decision log segments (decisions-*.jsonl) here")]
    NoSegments,
    #[error("{0}")]
    Unreadable(String),
    #[error(
        "the last line is cut short (truncated; a copy of a log being written ends so, and verifies with --allow-unsigned)"
    )]
    TornLine,
    #[error("not a decision log line: {0}")]
    NotALine(String),
    #[error(
        "a line over {MAX_LINE_BYTES} bytes: no record or checkpoint is that long, so this is not a decision log (or it was tampered with)"
    )]
    LineTooLong,
    /// A checkpoint that does not stand where it is, records around it
    /// being as they are.
    #[error("{0}")]
    Checkpoint(CheckpointFault),
    /// The record named was changed: the checkpoint after it disagrees.
    #[error("changed: {0}")]
    ChangedBefore(CheckpointFault),
    /// Record `index` is missing before this checkpoint.
    #[error("record {index} is missing: {fault}")]
    MissingBefore { index: u64, fault: CheckpointFault },
    #[error("the segment is named for record {named} but starts at record {starts}")]
    MisnamedSegment { named: u64, starts: u64 },
    #[error(
        "expected record {expected} here, found record {found}: records are missing, added or out of order"
    )]
    OutOfOrder { expected: u64, found: u64 },
    /// The record named was changed: the next one chains to another hash.
    #[error("changed: record {next} chains to a different hash for it")]
    Changed { next: u64 },
    #[error(
        "a record index past the last a log can hold (2^64 - 1): the log was tampered with or is not a stele decision log"
    )]
    IndexOverflow,
    #[error("no signed checkpoint: nothing in this log is proven")]
    NoCheckpoint,
    #[error(
        "the copy starts at record {first}: records 0 to {} are not in it (segments removed from the start); pass --allow-pruned to verify from where it starts",
        .first - 1
    )]
    Pruned { first: u64 },
    #[error(
        "the copy ends after record {} but the node signed {count} records: records {next} to {} were cut from its end",
        *.next as i128 - 1, .count - 1
    )]
    CutFromEnd { next: u64, count: u64 },
    #[error(
        "record {} is not the one the node signed (head {}): the log was rewritten",
        .count - 1, .head.short()
    )]
    Rewritten { count: u64, head: Hash },
    #[error(
        "this record and the {after} after it follow the last signed checkpoint: nothing proves them, or that none were cut after them; pass --allow-unsigned to accept them (a running node signs at least every 5 s, and on stopping)"
    )]
    Unsigned { after: u64 },
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

impl std::error::Error for Broken {}

/// Verifies the whole log in `dir` against the node's key and what the
/// auditor `expected`, as [`verify_segments`] does, reading one segment at
/// a time: a log of any length is checked in the memory of its largest
/// segment.
pub fn verify(
    dir: &Path,
    key: &PublicKey,
    expected: &Expected,
    found: impl FnMut(&DecisionRecord),
) -> Result<Verified, Broken> {
    let whole = dir.display().to_string();
    let paths = segments(dir).map_err(|e| broken(&whole, 0, Break::Unreadable(e.to_string())))?;
    let Some(first) = paths.first() else {
        return Err(broken(&whole, 0, Break::NoSegments));
    };
    let first_name = file_name(&first.1);
    let mut verifier = Verifier::new(key, expected, found, paths.len());
    for (n, (first_index, path)) in paths.iter().enumerate() {
        verifier.segment_file(*first_index, path, n + 1 == paths.len())?;
    }
    verifier.finish(&whole, &first_name)
}

/// The segments in `dir`, oldest first, read whole.
pub fn read_segments(dir: &Path) -> Result<Vec<SegmentFile>, Broken> {
    let whole = dir.display().to_string();
    let paths = segments(dir).map_err(|e| broken(&whole, 0, Break::Unreadable(e.to_string())))?;
    paths
        .iter()
        .map(|(first_index, path)| read_segment(*first_index, path))
        .collect()
}

fn read_segment(first_index: u64, path: &Path) -> Result<SegmentFile, Broken> {
    let name = file_name(path);
    let bytes =
        std::fs::read(path).map_err(|e| broken(&name, 0, Break::Unreadable(e.to_string())))?;
    Ok(SegmentFile {
        first_index,
        name,
        bytes,
    })
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Verifies a log given as its segments, oldest first (`whole` names the
/// log in errors about all of it), against the node's key and what the
/// auditor `expected`; `found` sees every decision record, in order, once
/// it has been checked. A pure function of its inputs.
pub fn verify_segments(
    whole: &str,
    segments: &[Segment<'_>],
    key: &PublicKey,
    expected: &Expected,
    found: impl FnMut(&DecisionRecord),
) -> Result<Verified, Broken> {
    if segments.is_empty() {
        return Err(broken(whole, 0, Break::NoSegments));
    }
    let mut verifier = Verifier::new(key, expected, found, segments.len());
    for (n, segment) in segments.iter().enumerate() {
        verifier.segment(segment, n + 1 == segments.len())?;
    }
    verifier.finish(whole, segments[0].name)
}

fn broken(file: &str, line: usize, reason: Break) -> Broken {
    Broken {
        file: file.to_string(),
        line,
        index: None,
        decision_id: None,
        reason,
    }
}

/// The state of a verification, carried from line to line.
struct Verifier<'a, F> {
    key: &'a PublicKey,
    expected: &'a Expected,
    found: F,
    verified: Verified,
    /// The hash of the last record.
    prev: Hash,
    /// Where the last record is, to name it when the next line shows it
    /// was changed.
    previous: Option<Broken>,
    /// The first record after the last checkpoint, if any.
    first_unsigned: Option<Broken>,
    /// The hash of the record the auditor expects to end at.
    expected_head_found: Option<Hash>,
}

impl<'a, F: FnMut(&DecisionRecord)> Verifier<'a, F> {
    fn new(key: &'a PublicKey, expected: &'a Expected, found: F, segments: usize) -> Self {
        Verifier {
            key,
            expected,
            found,
            verified: Verified {
                segments,
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
            },
            prev: Hash::ZERO,
            previous: None,
            first_unsigned: None,
            expected_head_found: None,
        }
    }

    /// One segment held in memory, line by line.
    fn segment(&mut self, segment: &Segment<'_>, newest: bool) -> Result<(), Broken> {
        let mut at = LineAt::new(segment.name, segment.first_index);
        let mut rest = segment.bytes;
        while !rest.is_empty() {
            at.number += 1;
            let Some(end) = rest.iter().position(|b| *b == b'\n') else {
                return self.torn(&at, rest.len(), newest);
            };
            self.line(&mut at, &rest[..end])?;
            rest = &rest[end + 1..];
        }
        Ok(())
    }

    /// One segment file, read a line at a time: never more than
    /// [`MAX_LINE_BYTES`] of it in memory.
    fn segment_file(&mut self, first_index: u64, path: &Path, newest: bool) -> Result<(), Broken> {
        let name = file_name(path);
        let unreadable = |e: std::io::Error| broken(&name, 0, Break::Unreadable(e.to_string()));
        let mut reader = BufReader::new(File::open(path).map_err(unreadable)?);
        let mut at = LineAt::new(&name, first_index);
        let mut line = Vec::new();
        loop {
            line.clear();
            let limit = MAX_LINE_BYTES as u64 + 1;
            let read = (&mut reader)
                .take(limit)
                .read_until(b'\n', &mut line)
                .map_err(unreadable)?;
            if read == 0 {
                return Ok(());
            }
            at.number += 1;
            if line.pop_if(|b| *b == b'\n').is_none() {
                return self.torn(&at, line.len(), newest);
            }
            self.line(&mut at, &line)?;
        }
    }

    /// A segment's last bytes, not ended by a newline. Allowed only at the
    /// end of the newest segment, and only with `allow_unsigned`: the line
    /// the node was writing when the copy was taken, no record yet, like
    /// the unsigned ones before it.
    fn torn(&mut self, at: &LineAt<'_>, bytes: usize, newest: bool) -> Result<(), Broken> {
        if bytes > MAX_LINE_BYTES {
            return Err(broken(at.file, at.number, Break::LineTooLong));
        }
        if !(newest && self.expected.allow_unsigned) {
            return Err(broken(at.file, at.number, Break::TornLine));
        }
        self.verified.torn_tail = true;
        Ok(())
    }

    /// One whole line (without its newline).
    fn line(&mut self, at: &mut LineAt<'_>, text: &[u8]) -> Result<(), Broken> {
        if text.len() > MAX_LINE_BYTES {
            return Err(broken(at.file, at.number, Break::LineTooLong));
        }
        let parsed: Line = serde_json::from_slice(text)
            .map_err(|e| broken(at.file, at.number, Break::NotALine(e.to_string())))?;
        let place = Place {
            file: at.file,
            line: at.number,
            parsed: &parsed,
        };
        match &parsed {
            Line::Checkpoint(checkpoint) => self.checkpoint(checkpoint, &place),
            Line::Decision(_) | Line::Dropped(_) => {
                let named = (at.records_seen == 0).then_some(at.first_index);
                at.records_seen += 1;
                self.record(text, &place, named)
            }
        }
    }

    fn checkpoint(&mut self, checkpoint: &Checkpoint, at: &Place<'_>) -> Result<(), Broken> {
        let records = self.verified.next_index;
        if let Err(fault) = check_checkpoint(checkpoint, self.key, records, &self.prev) {
            // A checkpoint the key did not sign is itself what is wrong. One
            // that was signed but no longer matches the records before it
            // names the last of them as changed, unless records went missing.
            let signed = fault != CheckpointFault::Signature;
            return Err(match &self.previous {
                _ if !signed => at.broken(Break::Checkpoint(fault)),
                Some(last) if checkpoint.count == records => Broken {
                    reason: Break::ChangedBefore(fault),
                    ..last.clone()
                },
                _ if checkpoint.count > records => Broken {
                    index: Some(records),
                    ..at.broken(Break::MissingBefore {
                        index: records,
                        fault,
                    })
                },
                _ => at.broken(Break::Checkpoint(fault)),
            });
        }
        self.verified.checkpoints += 1;
        self.verified.signed = checkpoint.count;
        self.first_unsigned = None;
        self.verified.sample_every = checkpoint.sample_every;
        Ok(())
    }

    /// A record; `named` is the index its segment's name gives, when it is
    /// the segment's first.
    fn record(&mut self, text: &[u8], at: &Place<'_>, named: Option<u64>) -> Result<(), Broken> {
        let (index, chained_to) = at.parsed.chained().expect("a record");
        if let Some(named) = named {
            if index != named {
                return Err(at.broken(Break::MisnamedSegment {
                    named,
                    starts: index,
                }));
            }
            if self.verified.records == 0 {
                // The oldest record in this copy: where the chain starts (a
                // log from which old segments were removed starts past 0).
                self.verified.first_index = index;
                self.verified.next_index = index;
                self.prev = chained_to;
            }
        }
        if index != self.verified.next_index {
            return Err(at.broken(Break::OutOfOrder {
                expected: self.verified.next_index,
                found: index,
            }));
        }
        let Some(next_index) = index.checked_add(1) else {
            return Err(at.broken(Break::IndexOverflow));
        };
        if chained_to != self.prev {
            // The record before no longer hashes to what this one chains
            // to: it is the one changed (or this link is).
            let changed = Break::Changed { next: index };
            return Err(match &self.previous {
                Some(last) => Broken {
                    reason: changed,
                    ..last.clone()
                },
                None => at.broken(changed),
            });
        }
        self.prev = record_hash(text);
        let here = at.broken(Break::NoCheckpoint);
        if self.first_unsigned.is_none() {
            self.first_unsigned = Some(here.clone());
        }
        self.previous = Some(here);
        if self.expected.count == Some(next_index) {
            self.expected_head_found = Some(self.prev);
        }
        self.verified.records += 1;
        self.verified.next_index = next_index;
        match at.parsed {
            Line::Decision(record) => {
                self.verified.decisions += 1;
                (self.found)(record);
            }
            Line::Dropped(record) => self.verified.dropped += record.count,
            Line::Checkpoint(_) => unreachable!("a record"),
        }
        Ok(())
    }

    /// What the whole copy must satisfy once every line checked out.
    fn finish(mut self, whole: &str, first_segment: &str) -> Result<Verified, Broken> {
        let verified = &mut self.verified;
        let expected = self.expected;
        verified.head = self.prev;
        if verified.checkpoints == 0 {
            return Err(broken(whole, 0, Break::NoCheckpoint));
        }
        if verified.first_index != 0 && !expected.allow_pruned {
            return Err(broken(
                first_segment,
                1,
                Break::Pruned {
                    first: verified.first_index,
                },
            ));
        }
        if let Some(count) = expected.count
            && verified.next_index < count
        {
            return Err(broken(
                whole,
                0,
                Break::CutFromEnd {
                    next: verified.next_index,
                    count,
                },
            ));
        }
        if let (Some(count), Some(head)) = (expected.count, expected.head)
            && count > 0
            && self.expected_head_found != Some(head)
        {
            return Err(broken(whole, 0, Break::Rewritten { count, head }));
        }
        if let Some(unsigned) = self.first_unsigned
            && !expected.allow_unsigned
        {
            return Err(Broken {
                reason: Break::Unsigned {
                    after: verified.next_index - verified.signed - 1,
                },
                ..unsigned
            });
        }
        Ok(self.verified)
    }
}

/// Where a segment is being read: its name, the index its name gives, the
/// line number, and how many records came before in it.
struct LineAt<'a> {
    file: &'a str,
    first_index: u64,
    number: usize,
    records_seen: u64,
}

impl<'a> LineAt<'a> {
    fn new(file: &'a str, first_index: u64) -> LineAt<'a> {
        LineAt {
            file,
            first_index,
            number: 0,
            records_seen: 0,
        }
    }
}

/// A line being checked: where it is and what it says.
struct Place<'a> {
    file: &'a str,
    line: usize,
    parsed: &'a Line,
}

impl Place<'_> {
    /// This line named as broken for `reason`, with its record's index and
    /// decision id.
    fn broken(&self, reason: Break) -> Broken {
        Broken {
            file: self.file.to_string(),
            line: self.line,
            index: self.parsed.chained().map(|(index, _)| index),
            decision_id: match self.parsed {
                Line::Decision(r) => Some(r.decision_id.clone()),
                _ => None,
            },
            reason,
        }
    }
}

fn check_checkpoint(
    checkpoint: &Checkpoint,
    key: &PublicKey,
    records: u64,
    head: &Hash,
) -> Result<(), CheckpointFault> {
    if !checkpoint.verifies(key) {
        return Err(CheckpointFault::Signature);
    }
    if checkpoint.count != records || checkpoint.head_hash != *head {
        return Err(CheckpointFault::Disagrees(Box::new(Disagreement {
            count: checkpoint.count,
            signed_head: checkpoint.head_hash,
            records,
            head: *head,
        })));
    }
    Ok(())
}
