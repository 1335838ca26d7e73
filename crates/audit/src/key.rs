//! The node's own log key, which signs its checkpoints.

use std::io::Write;
use std::path::Path;

use stele_ledger::SecretKey;

use crate::error::LogError;

/// The node's log key in its data directory: created at first start.
pub const LOG_KEY_FILE: &str = "log.key";

/// Reads the node's log key in `data_dir`, creating it the first time
/// (readable by its owner only).
pub fn node_key(data_dir: &Path) -> Result<SecretKey, LogError> {
    let path = data_dir.join(LOG_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => SecretKey::from_key_file(&text).map_err(|source| LogError::Key {
            path: path.clone(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir).map_err(LogError::io("creating", data_dir))?;
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| LogError::Io {
                action: "drawing a key for",
                path: path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
            let key = SecretKey::from_seed(seed);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(&path)
                .map_err(LogError::io("creating", &path))?;
            file.write_all(key.to_key_file().as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(LogError::io("writing", &path))?;
            Ok(key)
        }
        Err(e) => Err(LogError::io("reading", &path)(e)),
    }
}
