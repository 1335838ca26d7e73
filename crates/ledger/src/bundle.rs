//! Bundle contents as the ledger sees them: a set of text files addressed by
//! their digest. What the files mean (Cedar) is the policy crate's business.

use std::collections::BTreeMap;

use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};
use thiserror::Error;

use crate::hash::{Hash, tagged_sha256};
use crate::limits::{MAX_BUNDLE_BYTES, MAX_BUNDLE_FILES, MAX_BUNDLE_PATH_BYTES};

/// Domain tag of a bundle digest (docs/FORMAT.md, "Bundle digest").
pub const BUNDLE_TAG: &str = "stele/bundle/v1";

/// A file that cannot be part of a bundle, or a bundle over its limits.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum BundleFilesError {
    #[error("{path:?}: a bundle path must be 1 to {MAX_BUNDLE_PATH_BYTES} bytes")]
    PathLength { path: String },
    #[error("{path:?}: a bundle path may not contain backslashes or control characters")]
    PathCharacters { path: String },
    #[error("{path:?}: a bundle path must be relative with no empty, `.` or `..` parts")]
    PathParts { path: String },
    #[error("{path}: appears twice in the bundle")]
    Duplicate { path: String },
    #[error("a bundle holds at most {MAX_BUNDLE_FILES} files (size limit)")]
    TooManyFiles,
    #[error("a bundle holds at most {MAX_BUNDLE_BYTES} bytes of content (size limit)")]
    TooManyBytes,
    #[error("bundle files must be sorted by path, each path once")]
    Unsorted,
}

impl BundleFilesError {
    /// Over a size limit, rather than malformed.
    pub fn is_size_limit(&self) -> bool {
        matches!(
            self,
            BundleFilesError::TooManyFiles | BundleFilesError::TooManyBytes
        )
    }
}

/// The files of a bundle: relative `/`-separated paths to UTF-8 contents,
/// sorted by path bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<BundleFile>")]
pub struct BundleFiles {
    files: BTreeMap<String, String>,
}

/// One file as it appears in JSON: `{"path": ..., "content": ...}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleFile {
    path: String,
    content: String,
}

#[derive(Serialize)]
struct BundleFileRef<'a> {
    path: &'a str,
    content: &'a str,
}

/// Serialized as a list of files in path order, without copying contents.
impl Serialize for BundleFiles {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.files.len()))?;
        for (path, content) in self.files() {
            seq.serialize_element(&BundleFileRef { path, content })?;
        }
        seq.end()
    }
}

impl TryFrom<Vec<BundleFile>> for BundleFiles {
    type Error = BundleFilesError;
    fn try_from(files: Vec<BundleFile>) -> Result<Self, Self::Error> {
        if !files.windows(2).all(|pair| pair[0].path < pair[1].path) {
            return Err(BundleFilesError::Unsorted);
        }
        let mut bundle = BundleFiles::default();
        for file in files {
            bundle.insert(file.path, file.content)?;
        }
        Ok(bundle)
    }
}

impl BundleFiles {
    /// Adds one file, checking its path and the bundle's size limits.
    pub fn insert(&mut self, path: String, content: String) -> Result<(), BundleFilesError> {
        check_path(&path)?;
        if self.files.contains_key(&path) {
            return Err(BundleFilesError::Duplicate { path });
        }
        if self.files.len() + 1 > MAX_BUNDLE_FILES {
            return Err(BundleFilesError::TooManyFiles);
        }
        if self.total_bytes() + content.len() > MAX_BUNDLE_BYTES {
            return Err(BundleFilesError::TooManyBytes);
        }
        self.files.insert(path, content);
        Ok(())
    }

    /// The files, sorted by path.
    pub fn files(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files.iter().map(|(p, c)| (p.as_str(), c.as_str()))
    }

    pub fn get(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn total_bytes(&self) -> usize {
        self.files.values().map(String::len).sum()
    }

    /// sha256 over the canonical listing: the number of files, then for each
    /// file in path order its length-prefixed path and its content's sha256.
    pub fn digest(&self) -> Hash {
        let mut body = Vec::with_capacity(8 + self.files.len() * 80);
        body.extend_from_slice(&(self.files.len() as u64).to_be_bytes());
        for (path, content) in &self.files {
            body.extend_from_slice(&(path.len() as u64).to_be_bytes());
            body.extend_from_slice(path.as_bytes());
            body.extend_from_slice(Hash::of_bytes(content.as_bytes()).as_bytes());
        }
        tagged_sha256(BUNDLE_TAG, &body)
    }
}

/// A bundle path is relative, `/`-separated, with no empty, `.` or `..`
/// component, so it can never name a file outside the bundle.
fn check_path(path: &str) -> Result<(), BundleFilesError> {
    let path_owned = || path.to_string();
    if path.is_empty() || path.len() > MAX_BUNDLE_PATH_BYTES {
        return Err(BundleFilesError::PathLength { path: path_owned() });
    }
    if path.contains('\\') || path.chars().any(char::is_control) {
        return Err(BundleFilesError::PathCharacters { path: path_owned() });
    }
    if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(BundleFilesError::PathParts { path: path_owned() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(files: &[(&str, &str)]) -> BundleFiles {
        let mut bundle = BundleFiles::default();
        for (path, content) in files {
            bundle
                .insert(path.to_string(), content.to_string())
                .unwrap();
        }
        bundle
    }

    #[test]
    fn digest_depends_on_every_path_and_content_but_not_insert_order() {
        let a = bundle(&[("a.cedar", "x"), ("b.cedar", "y")]);
        let b = bundle(&[("b.cedar", "y"), ("a.cedar", "x")]);
        assert_eq!(a.digest(), b.digest());
        assert_ne!(
            a.digest(),
            bundle(&[("a.cedar", "x"), ("b.cedar", "z")]).digest()
        );
        assert_ne!(
            a.digest(),
            bundle(&[("a.cedar", "x"), ("c.cedar", "y")]).digest()
        );
        assert_ne!(a.digest(), bundle(&[("a.cedar", "x")]).digest());
    }

    #[test]
    fn paths_that_escape_the_bundle_are_refused() {
        let mut b = BundleFiles::default();
        for bad in ["", "/etc/passwd", "../x", "a//b", "a/./b", "a\\b", "a\0b"] {
            assert!(b.insert(bad.to_string(), String::new()).is_err(), "{bad:?}");
        }
        assert!(b.insert("tests/ok.json".into(), String::new()).is_ok());
    }

    #[test]
    fn size_limits_are_enforced() {
        let mut b = BundleFiles::default();
        let big = "x".repeat(MAX_BUNDLE_BYTES);
        b.insert("a.cedar".into(), big).unwrap();
        let error = b.insert("b.cedar".into(), "y".into()).unwrap_err();
        assert_eq!(error, BundleFilesError::TooManyBytes);
        assert!(error.is_size_limit() && error.to_string().contains("size limit"));
    }

    #[test]
    fn json_requires_sorted_paths() {
        let b = bundle(&[("a.cedar", "x"), ("b.cedar", "y")]);
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<BundleFiles>(&json).unwrap(), b);
        let unsorted = r#"[{"path":"b.cedar","content":"y"},{"path":"a.cedar","content":"x"}]"#;
        assert!(serde_json::from_str::<BundleFiles>(unsorted).is_err());
    }
}
