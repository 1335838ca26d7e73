//! Segment files: `decisions-<index of the first record, 20 digits>.jsonl`.

use std::path::{Path, PathBuf};

const PREFIX: &str = "decisions-";
const SUFFIX: &str = ".jsonl";

pub fn segment_name(first_index: u64) -> String {
    format!("{PREFIX}{first_index:020}{SUFFIX}")
}

/// The segments in `dir`, in order, with the index each name gives.
pub fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, String> {
    let unreadable = |e: std::io::Error| format!("reading the directory {}: {e}", dir.display());
    let entries = std::fs::read_dir(dir).map_err(unreadable)?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(unreadable)?;
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
