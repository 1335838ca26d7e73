//! Named limits on everything the ledger accepts. A value over a limit is a
//! typed rejection (`over_size_limit`), never truncated or silently accepted.

/// Longest version message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// Longest author name, in bytes.
pub const MAX_AUTHOR_BYTES: usize = 256;
/// Most approvers in one trust set.
pub const MAX_TRUST_KEYS: usize = 64;
/// Most signatures on one version.
pub const MAX_SIGNATURES: usize = 64;
/// Most files in one bundle.
pub const MAX_BUNDLE_FILES: usize = 1024;
/// Longest relative path of a bundle file, in bytes.
pub const MAX_BUNDLE_PATH_BYTES: usize = 256;
/// Largest bundle, all file contents together, in bytes. Sized for bundles of
/// 100,000 simple policies.
pub const MAX_BUNDLE_BYTES: usize = 64 * 1024 * 1024;
