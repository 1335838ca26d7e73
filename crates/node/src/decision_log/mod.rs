//! The decision log: one record per decision (its id, time, node, the
//! version that made it, a digest of the request, the outcome and reasons),
//! hash-chained, in size-rotated segments, with checkpoints signed by the
//! node's own key; and its offline verification.

mod record;
mod segments;
mod verify;
mod writer;

pub use record::{
    Checkpoint, DecisionRecord, DroppedRecord, Line, record_hash, request_digest, request_json,
};
pub use verify::{Broken, Expected, Verified, verify};
pub use writer::{
    DecisionLog, LogConfig, MAX_LOGGED_REQUEST_BYTES, MAX_QUEUED_REQUEST_BYTES, SignedHead, ToLog,
    Unlogged, WhenFull,
};

/// The node's log key in its data directory: created at first start.
pub const LOG_KEY_FILE: &str = "log.key";

/// Reads the node's log key in `data_dir`, creating it the first time.
pub fn node_key(data_dir: &std::path::Path) -> Result<stele_ledger::SecretKey, String> {
    use std::io::Write;
    let path = data_dir.join(LOG_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => stele_ledger::SecretKey::from_key_file(&text)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)
                .map_err(|e| format!("{}: {e}", data_dir.display()))?;
            let seed: [u8; 32] = rand::Rng::r#gen(&mut rand::rngs::OsRng);
            let key = stele_ledger::SecretKey::from_seed(seed);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            file.write_all(key.to_key_file().as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}
