//! Which files a bundle directory may hold, and loading one from disk.
//!
//! A bundle is `*.cedar` policy files and `schema.cedarschema` at its top,
//! optionally `entities.json` and `tests/*.json` scenarios. Anything else is
//! an error: a stray file is more likely a mistake than something to ignore.

use std::fs;
use std::path::Path;

use stele_ledger::BundleFiles;
use stele_ledger::limits::{MAX_BUNDLE_BYTES, MAX_BUNDLE_FILES};

use crate::error::BundleError;

pub const SCHEMA_FILE: &str = "schema.cedarschema";
pub const ENTITIES_FILE: &str = "entities.json";
pub const TESTS_DIR: &str = "tests";

const LAYOUT_HELP: &str = "a bundle holds *.cedar policy files, schema.cedarschema, and optionally entities.json and tests/*.json";

/// What a path in a bundle is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileRole {
    Policies,
    Schema,
    Entities,
    Scenarios,
}

pub fn role_of(path: &str) -> Option<FileRole> {
    match path.split_once('/') {
        None if path == SCHEMA_FILE => Some(FileRole::Schema),
        None if path == ENTITIES_FILE => Some(FileRole::Entities),
        None if is_visible_with_extension(path, ".cedar") => Some(FileRole::Policies),
        Some((TESTS_DIR, name))
            if !name.contains('/') && is_visible_with_extension(name, ".json") =>
        {
            Some(FileRole::Scenarios)
        }
        _ => None,
    }
}

fn is_visible_with_extension(name: &str, extension: &str) -> bool {
    !name.starts_with('.') && name.len() > extension.len() && name.ends_with(extension)
}

/// Checks that a file set has the bundle layout: every file known, the
/// schema and at least one policy file present.
pub fn check_layout(bundle: &BundleFiles) -> Result<(), BundleError> {
    for (path, _) in bundle.files() {
        if role_of(path).is_none() {
            return Err(BundleError::Layout(format!(
                "{path}: unknown file; {LAYOUT_HELP}"
            )));
        }
    }
    if bundle.get(SCHEMA_FILE).is_none() {
        return Err(BundleError::Layout(format!(
            "{SCHEMA_FILE} is missing; {LAYOUT_HELP}"
        )));
    }
    if !bundle
        .files()
        .any(|(path, _)| role_of(path) == Some(FileRole::Policies))
    {
        return Err(BundleError::Layout(format!(
            "no *.cedar policy file; {LAYOUT_HELP}"
        )));
    }
    Ok(())
}

/// Reads a bundle directory. Symbolic links, sub-directories other than
/// `tests/`, unknown files, non-UTF-8 files and oversized bundles are errors.
pub fn load_dir(dir: &Path) -> Result<BundleFiles, BundleError> {
    let mut bundle = BundleFiles::default();
    let mut total_bytes: u64 = 0;
    read_into(dir, dir, &mut bundle, &mut total_bytes)?;
    check_layout(&bundle)?;
    Ok(bundle)
}

fn read_into(
    root: &Path,
    dir: &Path,
    bundle: &mut BundleFiles,
    total_bytes: &mut u64,
) -> Result<(), BundleError> {
    let io_error = |path: &Path, error: std::io::Error| BundleError::Io {
        path: path.display().to_string(),
        message: error.to_string(),
    };
    let mut entries = fs::read_dir(dir)
        .map_err(|e| io_error(dir, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| io_error(dir, e))?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let relative = relative_path(root, &path)?;
        let metadata = fs::symlink_metadata(&path).map_err(|e| io_error(&path, e))?;
        if metadata.is_dir() && dir == root && relative == TESTS_DIR {
            read_into(root, &path, bundle, total_bytes)?;
            continue;
        }
        if !metadata.is_file() {
            let what = if metadata.is_symlink() {
                "a symbolic link"
            } else {
                "not a regular file"
            };
            return Err(BundleError::Layout(format!(
                "{relative}: {what}; {LAYOUT_HELP}"
            )));
        }
        if role_of(&relative).is_none() {
            return Err(BundleError::Layout(format!(
                "{relative}: unknown file; {LAYOUT_HELP}"
            )));
        }
        *total_bytes += metadata.len();
        if *total_bytes > MAX_BUNDLE_BYTES as u64 || bundle.len() >= MAX_BUNDLE_FILES {
            return Err(BundleError::TooLarge(format!(
                "{}: the bundle is over the size limit ({MAX_BUNDLE_FILES} files, {MAX_BUNDLE_BYTES} bytes)",
                root.display()
            )));
        }
        let bytes = fs::read(&path).map_err(|e| io_error(&path, e))?;
        let content = String::from_utf8(bytes)
            .map_err(|_| BundleError::Layout(format!("{relative}: not valid UTF-8 text")))?;
        bundle.insert(relative, content).map_err(|e| match e {
            e if e.is_size_limit() => BundleError::TooLarge(e.to_string()),
            e => BundleError::Layout(e.to_string()),
        })?;
    }
    Ok(())
}

fn relative_path(root: &Path, path: &Path) -> Result<String, BundleError> {
    let relative = path
        .strip_prefix(root)
        .expect("read_dir yields paths under root");
    let parts: Option<Vec<&str>> = relative
        .components()
        .map(|c| c.as_os_str().to_str())
        .collect();
    parts.map(|parts| parts.join("/")).ok_or_else(|| {
        BundleError::Layout(format!("{}: file names must be UTF-8", relative.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_follow_the_layout() {
        assert_eq!(role_of("a.cedar"), Some(FileRole::Policies));
        assert_eq!(role_of("schema.cedarschema"), Some(FileRole::Schema));
        assert_eq!(role_of("entities.json"), Some(FileRole::Entities));
        assert_eq!(role_of("tests/x.json"), Some(FileRole::Scenarios));
        for unknown in [
            ".cedar",
            ".hidden.cedar",
            "other.json",
            "tests/a/b.json",
            "sub/a.cedar",
            "tests/x.txt",
            "README.md",
        ] {
            assert_eq!(role_of(unknown), None, "{unknown}");
        }
    }
}
