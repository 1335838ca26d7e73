//! Approver keys (ed25519) and the signatures they put on version hashes.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::hash::{Hash, HexError, parse_lower_hex};

/// Domain tag of the message an approver signs: `tag ‖ 0x00 ‖ version hash`.
pub const APPROVAL_TAG: &str = "stele/approve/v1";

/// The domain of a withdrawal: a signature that takes a pending proposal
/// back (`stele withdraw`) can never pass for an approval of it, nor an
/// approval for a withdrawal.
pub const WITHDRAW_TAG: &str = "stele/withdraw/v1";

/// The first line of a secret key file, before the hex seed. It keeps a
/// secret key from being mistaken for a public one (or pasted as one).
const SECRET_KEY_PREFIX: &str = "stele-secret-key:";

/// A key, or a key file, that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error("{0}")]
    Hex(#[from] HexError),
    #[error("not a valid ed25519 public key")]
    NotAPoint,
    #[error("a weak (small-order) ed25519 public key is not allowed")]
    Weak,
    #[error(
        "not the canonical encoding of its ed25519 public key (the same key has another, shorter encoding); give the key as `stele keygen` wrote it"
    )]
    NotCanonical,
    #[error("this is a secret key file; give the matching .pub file")]
    SecretKeyFile,
    #[error(
        "not a stele secret key file (it must start with {SECRET_KEY_PREFIX:?}); create one with `stele keygen`"
    )]
    NotASecretKeyFile,
}

/// An approver's ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Accepts only a valid curve point that is not of small order (a weak
    /// key could "verify" signatures it never made), in its canonical
    /// encoding: a point has at most one, so one approver cannot be listed
    /// twice under two byte strings and counted twice.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<PublicKey, KeyError> {
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::NotAPoint)?;
        if key.is_weak() {
            return Err(KeyError::Weak);
        }
        if key.to_edwards().compress().to_bytes() != bytes {
            return Err(KeyError::NotCanonical);
        }
        Ok(PublicKey(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 16 hex digits, how a key the ledger does not name is shown.
    pub fn short(&self) -> String {
        format!("key {}", &self.to_hex()[..16])
    }

    /// Parses the contents of a `.pub` file: the hex key, optionally followed
    /// by a newline.
    pub fn from_key_file(text: &str) -> Result<PublicKey, KeyError> {
        let text = text.trim();
        if text.starts_with(SECRET_KEY_PREFIX) {
            return Err(KeyError::SecretKeyFile);
        }
        text.parse()
    }

    pub fn to_key_file(&self) -> String {
        format!("{}\n", self.to_hex())
    }

    /// Whether `signature` is this key's signature of the version `hash`.
    /// Strict verification: no malleable signature variants are accepted,
    /// so every node reaches the same verdict.
    pub fn verifies(&self, hash: &Hash, signature: &Signature) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify_strict(&approval_message(hash), &signature)
            .is_ok()
    }

    /// Whether `signature` is this key's withdrawal of the proposal `hash`.
    pub fn verifies_withdrawal(&self, hash: &Hash, signature: &Signature) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify_strict(&tagged_message(WITHDRAW_TAG, hash), &signature)
            .is_ok()
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        PublicKey::from_bytes(parse_lower_hex::<32>(text)?)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

/// An approver's secret signing key (the 32-byte ed25519 seed).
pub struct SecretKey(SigningKey);

impl SecretKey {
    pub fn from_seed(seed: [u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(&seed))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs the version `hash` (see [`APPROVAL_TAG`]).
    pub fn sign(&self, hash: &Hash) -> Signature {
        Signature(self.0.sign(&approval_message(hash)).to_bytes())
    }

    /// Signs the withdrawal of the pending proposal `hash` (see
    /// [`WITHDRAW_TAG`]).
    pub fn sign_withdrawal(&self, hash: &Hash) -> Signature {
        Signature(self.0.sign(&tagged_message(WITHDRAW_TAG, hash)).to_bytes())
    }

    pub fn from_key_file(text: &str) -> Result<SecretKey, KeyError> {
        let text = text.trim();
        let Some(seed_hex) = text.strip_prefix(SECRET_KEY_PREFIX) else {
            return Err(KeyError::NotASecretKeyFile);
        };
        Ok(SecretKey::from_seed(parse_lower_hex::<32>(seed_hex)?))
    }

    pub fn to_key_file(&self) -> String {
        format!("{SECRET_KEY_PREFIX}{}\n", hex::encode(self.0.to_bytes()))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public {})", self.public_key())
    }
}

/// An ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl FromStr for Signature {
    type Err = HexError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_lower_hex::<64>(text).map(Signature)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", self.to_hex())
    }
}

/// The bytes an approver signs for a version: `APPROVAL_TAG ‖ 0x00 ‖ hash`.
pub fn approval_message(hash: &Hash) -> Vec<u8> {
    tagged_message(APPROVAL_TAG, hash)
}

/// `tag ‖ 0x00 ‖ hash`.
fn tagged_message(tag: &str, hash: &Hash) -> Vec<u8> {
    let mut message = Vec::with_capacity(tag.len() + 1 + 32);
    message.extend_from_slice(tag.as_bytes());
    message.push(0);
    message.extend_from_slice(hash.as_bytes());
    message
}

/// One approval: who signed, and the signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub key: PublicKey,
    pub signature: Signature,
}

macro_rules! hex_serde {
    ($type:ty) => {
        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_serde!(PublicKey);
hex_serde!(Signature);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_key_and_hash() {
        let alice = SecretKey::from_seed([1; 32]);
        let bob = SecretKey::from_seed([2; 32]);
        let hash = Hash::of_bytes(b"version");
        let signature = alice.sign(&hash);
        assert!(alice.public_key().verifies(&hash, &signature));
        assert!(!bob.public_key().verifies(&hash, &signature));
        assert!(
            !alice
                .public_key()
                .verifies(&Hash::of_bytes(b"other"), &signature)
        );
    }

    #[test]
    fn key_files_round_trip_and_are_not_interchangeable() {
        let secret = SecretKey::from_seed([7; 32]);
        let public = secret.public_key();
        let secret_text = secret.to_key_file();
        assert_eq!(
            SecretKey::from_key_file(&secret_text).unwrap().public_key(),
            public
        );
        assert_eq!(
            PublicKey::from_key_file(&public.to_key_file()).unwrap(),
            public
        );
        assert!(PublicKey::from_key_file(&secret_text).is_err());
        assert!(SecretKey::from_key_file(&public.to_key_file()).is_err());
    }

    /// Encodings of points whose y is below 19 that are valid keys, with y
    /// written as y + p (2^255 - 19 + y): non-canonical, but ed25519
    /// decodes them to the same point as y itself.
    fn non_canonical_keys() -> Vec<([u8; 32], [u8; 32])> {
        let mut found = Vec::new();
        for y in 2u8..19 {
            let mut canonical = [0u8; 32];
            canonical[0] = y;
            let mut long = [0xffu8; 32];
            long[0] = 0xed + y;
            long[31] = 0x7f;
            let decodes = VerifyingKey::from_bytes(&long).is_ok_and(|k| !k.is_weak());
            if decodes {
                found.push((long, canonical));
            }
        }
        found
    }

    #[test]
    fn a_key_in_a_non_canonical_encoding_is_refused_and_its_canonical_one_is_not() {
        let keys = non_canonical_keys();
        assert!(!keys.is_empty(), "some small y gives a valid, strong point");
        for (long, canonical) in keys {
            assert_eq!(
                VerifyingKey::from_bytes(&long).unwrap().to_edwards(),
                VerifyingKey::from_bytes(&canonical).unwrap().to_edwards(),
                "the same point"
            );
            assert_eq!(PublicKey::from_bytes(long), Err(KeyError::NotCanonical));
            assert_eq!(
                hex::encode(long).parse::<PublicKey>(),
                Err(KeyError::NotCanonical)
            );
            assert!(PublicKey::from_bytes(canonical).is_ok());
        }
    }

    #[test]
    fn weak_keys_are_refused() {
        // The identity point: small order, verifies forged signatures.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(PublicKey::from_bytes(identity).is_err());
    }
}
