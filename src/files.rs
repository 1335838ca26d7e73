//! Files the offline commands read and write. Writes are atomic (temporary
//! file, fsync, rename, fsync of the directory); updates of an existing file
//! hold an exclusive lock so two concurrent appends cannot lose one another.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use stele_ledger::{PublicKey, SecretKey};

use crate::failure::{Code, Failure, Result};

/// Largest key file we read, in bytes.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// Reads a whole file, refusing one larger than `limit_bytes`.
pub fn read_limited(path: &Path, limit_bytes: u64) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| Failure::io(path, e))?;
    read_to_limit(path, file, limit_bytes)
}

fn read_to_limit(path: &Path, file: File, limit_bytes: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(limit_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::io(path, e))?;
    if bytes.len() as u64 > limit_bytes {
        return Err(Failure::new(
            Code::Reason(stele_ledger::Reason::OverSizeLimit),
            format!(
                "{}: larger than the limit of {limit_bytes} bytes",
                path.display()
            ),
        ));
    }
    Ok(bytes)
}

/// Creates `path` with `bytes`, atomically, failing if it already exists.
pub fn create_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let temp = write_temp(path, bytes, mode)?;
    temp.persist_noclobber(path).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            already_exists(path)
        } else {
            Failure::io(path, e.error)
        }
    })?;
    sync_parent(path)
}

/// Refuses early, before any work, to write over `path` (`create_new`
/// checks again, atomically).
pub fn refuse_existing(path: &Path) -> Result<()> {
    if path.exists() {
        return Err(already_exists(path));
    }
    Ok(())
}

fn already_exists(path: &Path) -> Failure {
    Failure::new(
        Code::Exists,
        format!("{} already exists; not overwriting it", path.display()),
    )
}

/// Replaces `path` with `bytes`, atomically.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let temp = write_temp(path, bytes, mode)?;
    temp.persist(path).map_err(|e| Failure::io(path, e.error))?;
    sync_parent(path)
}

fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> Result<tempfile::NamedTempFile> {
    let dir = parent_of(path);
    let mut temp = tempfile::Builder::new()
        .prefix(".stele-")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(|e| Failure::io(dir, e))?;
    temp.write_all(bytes).map_err(|e| Failure::io(path, e))?;
    temp.as_file()
        .sync_all()
        .map_err(|e| Failure::io(path, e))?;
    Ok(temp)
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

fn sync_parent(path: &Path) -> Result<()> {
    let dir = parent_of(path);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Failure::io(dir, e))
}

/// Reads `path` under an exclusive lock and lets `change` decide: `Some`
/// bytes replace the file (atomically, still under the lock), `None` leaves
/// it byte-for-byte as it was.
pub fn update_locked<T>(
    path: &Path,
    limit_bytes: u64,
    change: impl FnOnce(&[u8]) -> Result<(Option<Vec<u8>>, T)>,
) -> Result<T> {
    loop {
        let file = File::open(path).map_err(|e| Failure::io(path, e))?;
        file.lock().map_err(|e| Failure::io(path, e))?;
        // Another writer may have replaced the file while we waited for the
        // lock; we then hold a lock on the old copy, so start again.
        let locked = file.metadata().map_err(|e| Failure::io(path, e))?;
        let current = fs::metadata(path).map_err(|e| Failure::io(path, e))?;
        if (locked.dev(), locked.ino()) != (current.dev(), current.ino()) {
            continue;
        }
        let bytes = read_to_limit(
            path,
            file.try_clone().map_err(|e| Failure::io(path, e))?,
            limit_bytes,
        )?;
        let (replacement, result) = change(&bytes)?;
        if let Some(new_bytes) = replacement {
            replace(path, &new_bytes, locked.mode() & 0o777)?;
        }
        return Ok(result);
    }
}

pub fn load_public_key(path: &Path) -> Result<PublicKey> {
    let bytes = read_limited(path, MAX_KEY_FILE_BYTES)?;
    let text = String::from_utf8_lossy(&bytes);
    PublicKey::from_key_file(&text).map_err(|e| {
        Failure::new(
            Code::BadKey,
            format!("{}: not an approver public key: {e}", path.display()),
        )
    })
}

pub fn load_secret_key(path: &Path) -> Result<SecretKey> {
    let bytes = read_limited(path, MAX_KEY_FILE_BYTES)?;
    if let Ok(metadata) = fs::metadata(path)
        && metadata.mode() & 0o077 != 0
    {
        eprintln!(
            "warning: {} is readable by other users (mode {:o}); run `chmod 600` on it",
            path.display(),
            metadata.mode() & 0o777
        );
    }
    let text = String::from_utf8_lossy(&bytes);
    SecretKey::from_key_file(&text)
        .map_err(|e| Failure::new(Code::BadKey, format!("{}: {e}", path.display())))
}

pub fn load_secret_keys(paths: &[std::path::PathBuf]) -> Result<Vec<SecretKey>> {
    paths.iter().map(|p| load_secret_key(p)).collect()
}
