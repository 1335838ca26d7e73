//! The ledger file: one file holding every version and every bundle, which
//! anyone can verify offline (docs/FORMAT.md, "Ledger file"). The offline
//! `stele ledger` commands keep ledgers in this format and a cluster's
//! `export` writes it.
//!
//! JSON Lines: a fixed first line, then records. A bundle record comes
//! immediately before the first version that uses its digest and never again,
//! so a ledger has exactly one encoding.

use serde::{Deserialize, Serialize};
use stele_reason::Reason;
use thiserror::Error;

use crate::admission::BundleCheck;
use crate::bundle::BundleFiles;
use crate::chain::{ChainError, Entries, Ledger};
use crate::hash::Hash;
use crate::strict_json;
use crate::version::Version;

/// The first line of every ledger file.
pub const LEDGER_FILE_HEADER: &str = r#"{"format":"stele-ledger","format_version":1}"#;

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Record {
    Bundle(BundleRecord),
    // Boxed: a version (with a member set) is far larger than a bundle record.
    Version(Box<Version>),
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct BundleRecord {
    digest: Hash,
    files: BundleFiles,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum RecordRef<'a> {
    Bundle {
        digest: Hash,
        files: &'a BundleFiles,
    },
    Version(&'a Version),
}

/// A ledger file that cannot be decoded: the line, and the seq that was
/// being read there.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("line {line} (at seq {seq}): {reason}")]
pub struct FormatError {
    pub line: usize,
    pub seq: u64,
    pub reason: String,
}

/// Why a ledger file does not verify.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum LedgerFileError {
    #[error("{0}")]
    Format(FormatError),
    #[error("{0}")]
    Chain(ChainError),
}

impl LedgerFileError {
    /// The first seq that is bad.
    pub fn seq(&self) -> u64 {
        match self {
            LedgerFileError::Format(error) => error.seq,
            LedgerFileError::Chain(error) => error.seq,
        }
    }

    /// The admission rejection's reason; `None` for a file that does not
    /// decode (a format error).
    pub fn reason(&self) -> Option<Reason> {
        match self {
            LedgerFileError::Format(_) => None,
            LedgerFileError::Chain(error) => Some(error.rejection.reason()),
        }
    }
}

/// Encodes a whole ledger.
pub fn encode(ledger: &Ledger) -> String {
    let bundle = |digest: &Hash| -> Result<BundleFiles, std::convert::Infallible> {
        Ok(ledger
            .bundle(digest)
            .expect("a ledger holds every bundle it uses")
            .clone())
    };
    match encode_with(ledger.versions(), bundle) {
        Ok(text) => text,
        Err(never) => match never {},
    }
}

/// Encodes versions in chain order, fetching each bundle when its digest
/// first appears.
pub fn encode_with<'a, E>(
    versions: impl IntoIterator<Item = &'a Version>,
    mut bundle: impl FnMut(&Hash) -> Result<BundleFiles, E>,
) -> Result<String, E> {
    let mut encoder = Encoder::default();
    let mut out = String::with_capacity(LEDGER_FILE_HEADER.len() + 1);
    encoder.header(&mut out);
    for version in versions {
        encoder.version(version, &mut bundle, &mut out)?;
    }
    Ok(out)
}

/// Writes a ledger file a record at a time, so that a node can stream its
/// ledger without holding the whole file: the header, then each version in
/// chain order. It remembers which bundles it has written, so each is
/// written once, just before the first version that uses it.
#[derive(Default)]
pub struct Encoder {
    written: std::collections::BTreeSet<Hash>,
}

impl Encoder {
    /// Appends the first line of the file.
    pub fn header(&mut self, out: &mut String) {
        out.push_str(LEDGER_FILE_HEADER);
        out.push('\n');
    }

    /// Appends the version's line, after its bundle's line if this is the
    /// first version to use that bundle (then `bundle` is asked for it).
    pub fn version<E>(
        &mut self,
        version: &Version,
        bundle: impl FnOnce(&Hash) -> Result<BundleFiles, E>,
        out: &mut String,
    ) -> Result<(), E> {
        let digest = version.header.bundle_digest;
        if !self.written.contains(&digest) {
            let files = bundle(&digest)?;
            out.push_str(&strict_json::encode(&RecordRef::Bundle {
                digest,
                files: &files,
            }));
            out.push('\n');
            self.written.insert(digest);
        }
        out.push_str(&strict_json::encode(&RecordRef::Version(version)));
        out.push('\n');
        Ok(())
    }
}

/// A ledger file cut into chunks as it is written: versions go in one at a
/// time and whole chunks come out, so the writer holds at most one chunk
/// and one record beyond it, however long the ledger.
pub struct Chunked {
    encoder: Encoder,
    chunk_bytes: usize,
    buffer: Vec<u8>,
    /// How much of `buffer` has been taken: it is compacted only once that
    /// is half of it, so a large record is not copied once per chunk.
    taken: usize,
}

impl Chunked {
    /// Starts a file (its header is the first bytes out).
    pub fn new(chunk_bytes: usize) -> Chunked {
        let mut encoder = Encoder::default();
        let mut header = String::new();
        encoder.header(&mut header);
        Chunked {
            encoder,
            chunk_bytes: chunk_bytes.max(1),
            buffer: header.into_bytes(),
            taken: 0,
        }
    }

    /// Writes one version (and its bundle, the first time it is used).
    pub fn push<E>(
        &mut self,
        version: &Version,
        bundle: impl FnOnce(&Hash) -> Result<BundleFiles, E>,
    ) -> Result<(), E> {
        let mut records = String::new();
        self.encoder.version(version, bundle, &mut records)?;
        self.buffer.extend_from_slice(records.as_bytes());
        Ok(())
    }

    /// A whole chunk, if that much has been written and not taken.
    pub fn take_full(&mut self) -> Option<Vec<u8>> {
        let end = self.taken + self.chunk_bytes;
        if self.buffer.len() < end {
            return None;
        }
        let chunk = self.buffer[self.taken..end].to_vec();
        self.taken = end;
        if self.taken * 2 >= self.buffer.len() {
            self.buffer.drain(..self.taken);
            self.taken = 0;
        }
        Some(chunk)
    }

    /// What is left once every version is in (empty if nothing is).
    pub fn finish(&mut self) -> Vec<u8> {
        let rest = self.buffer.split_off(self.taken);
        self.buffer.clear();
        self.taken = 0;
        rest
    }
}

/// Decodes the versions of a ledger file and the bundles they use, without
/// judging the chain (see [`read`]). Each bundle is held once, however many
/// versions use it.
pub fn decode(bytes: &[u8]) -> Result<Entries, FormatError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        FormatError {
            line,
            seq: 0,
            reason: "not valid UTF-8".into(),
        }
    })?;
    let Some(body) = text.strip_suffix('\n') else {
        return Err(FormatError {
            line: text.lines().count().max(1),
            seq: 0,
            reason: "the file must end with a newline (truncated?)".into(),
        });
    };
    let mut lines = body.split('\n').enumerate().map(|(i, line)| (i + 1, line));
    if lines.next().map(|(_, line)| line) != Some(LEDGER_FILE_HEADER) {
        return Err(FormatError {
            line: 1,
            seq: 0,
            reason: format!("not a stele ledger file: the first line must be {LEDGER_FILE_HEADER}"),
        });
    }
    let mut entries = Entries::default();
    let mut pending: Option<BundleRecord> = None;
    let mut last_line = 1;
    for (line, text) in lines {
        last_line = line;
        let seq = entries.versions.len() as u64 + 1;
        let fail = |reason: String| FormatError { line, seq, reason };
        match strict_json::decode::<Record>(text).map_err(|e| fail(e.to_string()))? {
            Record::Bundle(record) => {
                if pending.is_some() {
                    return Err(fail("two bundle records in a row".into()));
                }
                let actual = record.files.digest();
                if actual != record.digest {
                    return Err(fail(format!(
                        "bundle record says digest {} but its files digest to {actual}",
                        record.digest
                    )));
                }
                if entries.bundles.contains_key(&record.digest) {
                    return Err(fail(format!("bundle {} appears twice", record.digest)));
                }
                pending = Some(record);
            }
            Record::Version(version) => {
                let digest = version.header.bundle_digest;
                match pending.take() {
                    Some(record) if record.digest == digest => {
                        entries.bundles.insert(digest, record.files);
                    }
                    Some(record) => {
                        return Err(fail(format!(
                            "bundle record {} precedes a version with bundle {digest}",
                            record.digest
                        )));
                    }
                    None if entries.bundles.contains_key(&digest) => {}
                    None => {
                        return Err(fail(format!(
                            "bundle {digest} is used before it is included"
                        )));
                    }
                }
                entries.versions.push(*version);
            }
        }
    }
    if pending.is_some() {
        return Err(FormatError {
            line: last_line,
            seq: entries.versions.len() as u64 + 1,
            reason: "the file ends with a bundle record that no version uses (truncated?)".into(),
        });
    }
    Ok(entries)
}

/// Decodes and verifies a ledger file, replaying admission from genesis onto
/// `start` (an empty ledger, possibly pinned to a genesis hash).
pub fn read(
    bytes: &[u8],
    start: Ledger,
    bundle_check: &impl BundleCheck,
) -> Result<Ledger, LedgerFileError> {
    let entries = decode(bytes).map_err(LedgerFileError::Format)?;
    Ledger::verify(start, entries, bundle_check).map_err(LedgerFileError::Chain)
}
