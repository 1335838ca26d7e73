//! Segment files: `decisions-<index of the first record, 20 digits>.jsonl`.

use std::path::{Path, PathBuf};

use crate::error::LogError;

const PREFIX: &str = "decisions-";
const SUFFIX: &str = ".jsonl";

pub fn segment_name(first_index: u64) -> String {
    format!("{PREFIX}{first_index:020}{SUFFIX}")
}

/// One segment as the verifier reads it: the index its name gives, its
/// name (to point at), and its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    pub first_index: u64,
    pub name: &'a str,
    pub bytes: &'a [u8],
}

/// A segment read whole from its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentFile {
    pub first_index: u64,
    pub name: String,
    pub bytes: Vec<u8>,
}

impl SegmentFile {
    pub fn as_segment(&self) -> Segment<'_> {
        Segment {
            first_index: self.first_index,
            name: &self.name,
            bytes: &self.bytes,
        }
    }
}

/// The segments in `dir`, in order, with the index each name gives.
pub(crate) fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let unreadable = LogError::io("reading the directory", dir);
    let entries = std::fs::read_dir(dir).map_err(unreadable)?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(LogError::io("reading the directory", dir))?;
        let name = entry.file_name();
        let Some(index) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|n| n.strip_suffix(SUFFIX))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        found.push((index, entry.path()));
    }
    found.sort();
    Ok(found)
}
