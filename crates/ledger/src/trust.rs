//! Trust sets: the approvers' keys and how many of them must sign (M of N).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::keys::PublicKey;
use crate::limits::MAX_TRUST_KEYS;

/// Keys and a threshold that do not make a trust set.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TrustSetError {
    #[error("a key appears more than once in the trust set")]
    DuplicateKey,
    #[error("a trust set needs at least one approver key")]
    Empty,
    #[error("a trust set holds at most {MAX_TRUST_KEYS} keys, got {count}")]
    TooManyKeys { count: usize },
    #[error("threshold must be between 1 and the number of keys ({keys}), got {threshold}")]
    Threshold { threshold: u32, keys: usize },
    #[error("trust set keys must be sorted ascending and distinct")]
    Unsorted,
}

/// The approvers whose signatures count, and the threshold M. Keys are kept
/// sorted and distinct, so a trust set has exactly one encoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "TrustSetFields")]
pub struct TrustSet {
    threshold: u32,
    keys: Vec<PublicKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustSetFields {
    threshold: u32,
    keys: Vec<PublicKey>,
}

impl TryFrom<TrustSetFields> for TrustSet {
    type Error = TrustSetError;
    fn try_from(fields: TrustSetFields) -> Result<Self, Self::Error> {
        if !fields.keys.windows(2).all(|pair| pair[0] < pair[1]) {
            return Err(TrustSetError::Unsorted);
        }
        TrustSet::new(fields.keys, fields.threshold)
    }
}

impl TrustSet {
    /// Builds a trust set from any order of keys. Duplicates, an empty set, a
    /// threshold of 0 or above the number of keys are errors.
    pub fn new(keys: Vec<PublicKey>, threshold: u32) -> Result<TrustSet, TrustSetError> {
        let distinct: BTreeSet<PublicKey> = keys.iter().copied().collect();
        if distinct.len() != keys.len() {
            return Err(TrustSetError::DuplicateKey);
        }
        if keys.is_empty() {
            return Err(TrustSetError::Empty);
        }
        if keys.len() > MAX_TRUST_KEYS {
            return Err(TrustSetError::TooManyKeys { count: keys.len() });
        }
        if threshold == 0 || threshold as usize > keys.len() {
            return Err(TrustSetError::Threshold {
                threshold,
                keys: keys.len(),
            });
        }
        Ok(TrustSet {
            threshold,
            keys: distinct.into_iter().collect(),
        })
    }

    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// The keys, sorted ascending.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    pub fn contains(&self, key: &PublicKey) -> bool {
        self.keys.binary_search(key).is_ok()
    }

    /// How many distinct keys of this set appear among `signers`. A key that
    /// signs twice counts once: that is the whole point of M-of-N.
    pub fn distinct_signers<'a>(&self, signers: impl IntoIterator<Item = &'a PublicKey>) -> u32 {
        #[cfg(stele_sim)]
        if crate::defects::active(crate::defects::Defect::DoubleCountSigner) {
            return signers.into_iter().filter(|key| self.contains(key)).count() as u32;
        }
        let distinct: BTreeSet<&PublicKey> = signers
            .into_iter()
            .filter(|key| self.contains(key))
            .collect();
        distinct.len() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SecretKey;

    fn key(n: u8) -> PublicKey {
        SecretKey::from_seed([n; 32]).public_key()
    }

    #[test]
    fn threshold_counts_distinct_keys_only() {
        let set = TrustSet::new(vec![key(1), key(2), key(3)], 2).unwrap();
        assert_eq!(set.distinct_signers(&[key(1), key(1)]), 1);
        assert_eq!(set.distinct_signers(&[key(1), key(2)]), 2);
        assert_eq!(set.distinct_signers(&[key(1), key(9)]), 1);
    }

    #[test]
    fn invalid_sets_are_refused() {
        assert!(TrustSet::new(vec![], 1).is_err());
        assert!(TrustSet::new(vec![key(1)], 0).is_err());
        assert!(TrustSet::new(vec![key(1)], 2).is_err());
        assert!(TrustSet::new(vec![key(1), key(1)], 1).is_err());
    }

    #[test]
    fn keys_are_sorted_and_unsorted_json_is_refused() {
        let set = TrustSet::new(vec![key(3), key(1), key(2)], 2).unwrap();
        assert!(set.keys().windows(2).all(|p| p[0] < p[1]));
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(serde_json::from_str::<TrustSet>(&json).unwrap(), set);
        let mut reversed: Vec<PublicKey> = set.keys().to_vec();
        reversed.reverse();
        let unsorted = serde_json::json!({"threshold": 2, "keys": reversed});
        assert!(serde_json::from_value::<TrustSet>(unsorted).is_err());
    }
}
