//! 32-byte SHA-256 digests with domain separation, printed as lowercase hex.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// A SHA-256 digest: a version hash, a bundle digest or a file digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The all-zero hash: the `parent_hash` of a genesis version.
    pub const ZERO: Hash = Hash([0; 32]);

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex digits, for human output only.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }

    /// Plain SHA-256 of `bytes`, without a domain tag (file contents).
    pub fn of_bytes(bytes: &[u8]) -> Hash {
        Hash(Sha256::digest(bytes).into())
    }
}

/// SHA-256 over `tag ‖ 0x00 ‖ body`: the tag keeps a hash of one kind of
/// object from ever equalling a hash of another kind.
pub fn tagged_sha256(tag: &str, body: &[u8]) -> Hash {
    debug_assert!(
        !tag.as_bytes().contains(&0),
        "domain tags never contain NUL"
    );
    let mut hasher = Sha256::new();
    hasher.update(tag.as_bytes());
    hasher.update([0u8]);
    hasher.update(body);
    Hash(hasher.finalize().into())
}

/// Text that is not the lowercase hex of a fixed number of bytes.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum HexError {
    #[error("expected {expected} lowercase hex digits, got {actual} characters")]
    Length { expected: usize, actual: usize },
    #[error("{0:?} is not a lowercase hex digit")]
    Digit(char),
}

/// Parses exactly `N` bytes of lowercase hex. Uppercase is refused so that
/// every value has a single spelling (DESIGN.md, "Tamper evidence").
pub fn parse_lower_hex<const N: usize>(text: &str) -> Result<[u8; N], HexError> {
    if text.len() != N * 2 {
        return Err(HexError::Length {
            expected: N * 2,
            actual: text.len(),
        });
    }
    if let Some(bad) = text.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
        return Err(HexError::Digit(bad));
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).expect("checked: 2N lowercase hex digits");
    Ok(out)
}

impl FromStr for Hash {
    type Err = HexError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_lower_hex::<32>(text).map(Hash)
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_uppercase_and_wrong_length() {
        let hash = Hash::of_bytes(b"stele");
        assert_eq!(hash.to_hex().parse::<Hash>().unwrap(), hash);
        assert!(hash.to_hex().to_uppercase().parse::<Hash>().is_err());
        assert!(hash.to_hex()[..62].parse::<Hash>().is_err());
    }

    #[test]
    fn tags_separate_domains() {
        assert_ne!(tagged_sha256("a", b"b"), tagged_sha256("ab", b""));
        // The format in docs/FORMAT.md: sha256(tag ‖ 0x00 ‖ body).
        assert_eq!(tagged_sha256("a", b"b"), Hash::of_bytes(b"a\0b"));
    }
}
