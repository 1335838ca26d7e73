//! Named limits on everything the ledger accepts. A value over a limit is a
//! typed rejection (`over_size_limit`), never truncated or silently accepted.

/// Longest version message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// Longest author name, in bytes.
pub const MAX_AUTHOR_BYTES: usize = 256;
/// Most approvers in one trust set.
pub const MAX_TRUST_KEYS: usize = 64;
/// Longest approver name, in bytes.
pub const MAX_APPROVER_NAME_BYTES: usize = 64;
/// Longest approver contact, in bytes.
pub const MAX_APPROVER_CONTACT_BYTES: usize = 256;
/// Most signatures on one version.
pub const MAX_SIGNATURES: usize = 64;
/// Most files in one bundle.
pub const MAX_BUNDLE_FILES: usize = 1024;
/// Longest relative path of a bundle file, in bytes.
pub const MAX_BUNDLE_PATH_BYTES: usize = 256;
/// Largest bundle, all file contents together, in bytes. Sized for bundles of
/// 100,000 simple policies.
pub const MAX_BUNDLE_BYTES: usize = 64 * 1024 * 1024;
/// Largest ledger file read or exported, in bytes: a ledger is held in
/// memory while it is verified.
pub const MAX_LEDGER_FILE_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Largest ledger file `cluster init --ledger` restores: it travels in one
/// request and one Raft entry.
pub const MAX_RESTORE_LEDGER_BYTES: usize = 96 * 1024 * 1024;

/// Most nodes, voters and learners together, in one member set.
pub const MAX_MEMBERS: usize = 128;
/// Longest node address (`HOST:PORT`), in bytes.
pub const MAX_ADDRESS_BYTES: usize = 256;
/// Longest region name, in bytes.
pub const MAX_REGION_BYTES: usize = 64;

/// The length of `value` as compact JSON, counted without building the
/// text: how a request is weighed against a limit.
pub fn json_len<T: serde::Serialize + ?Sized>(value: &T) -> u64 {
    struct Counter(u64);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len() as u64;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, value).map_or(u64::MAX, |()| counter.0)
}
