//! `stele keygen`: a new approver key pair.

use std::path::{Path, PathBuf};

use serde_json::json;
use stele_ledger::{PublicKey, SecretKey};

use crate::failure::{Code, Failure, Result};
use crate::files::create_new;
use crate::output::Output;

pub fn run(out: Output, secret_path: &Path) -> Result<()> {
    let (public_path, public) = write_key_pair(secret_path)?;
    out.result(
        &json!({
            "secret_key": secret_path,
            "public_key": public_path,
            "key": public.to_hex(),
        }),
        || {
            format!(
                "secret key: {} (keep it private)\npublic key: {} ({})",
                secret_path.display(),
                public_path.display(),
                public
            )
        },
    );
    Ok(())
}

/// `PATH.pub` for a secret key at `PATH`.
pub fn public_path(secret_path: &Path) -> PathBuf {
    let mut path = secret_path.as_os_str().to_owned();
    path.push(".pub");
    PathBuf::from(path)
}

/// Writes a new key pair: the secret key at `secret_path` (mode 0600) and the
/// public key beside it. Never overwrites either.
pub fn write_key_pair(secret_path: &Path) -> Result<(PathBuf, PublicKey)> {
    let public_path = public_path(secret_path);
    for path in [secret_path, public_path.as_path()] {
        if path.exists() {
            return Err(Failure::new(
                Code::Exists,
                format!("{} already exists; not overwriting a key", path.display()),
            ));
        }
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| Failure::new(Code::Io, format!("no randomness from the OS: {e}")))?;
    let secret = SecretKey::from_seed(seed);
    let public = secret.public_key();
    create_new(secret_path, secret.to_key_file().as_bytes(), 0o600)?;
    if let Err(failure) = create_new(&public_path, public.to_key_file().as_bytes(), 0o644) {
        // Leave no secret key without its public half behind.
        let _ = std::fs::remove_file(secret_path);
        return Err(failure);
    }
    Ok((public_path, public))
}
