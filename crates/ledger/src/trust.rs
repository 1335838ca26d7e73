//! Trust sets: the approvers' keys and how many of them must sign (M of N).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::keys::PublicKey;
use crate::limits::{MAX_APPROVER_CONTACT_BYTES, MAX_APPROVER_NAME_BYTES, MAX_TRUST_KEYS};

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
    #[error("the trust set names {names} approvers for {keys} keys: name every key or none")]
    NamesDoNotMatchKeys { names: usize, keys: usize },
    #[error("approver name {name:?}: {why}")]
    BadName { name: String, why: &'static str },
    #[error("approver contact {contact:?}: {why}")]
    BadContact { contact: String, why: &'static str },
    #[error("two approvers are both named {0:?}: names must tell approvers apart")]
    DuplicateName(String),
}

/// Who holds a trust-set key, as the ledger names them: signed into the
/// genesis or rotation that declares the set, so `log`, `show` and a
/// version's author can say "alice" instead of a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approver {
    pub name: String,
    /// How to reach them (an address, a team); may be empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub contact: String,
}

impl Approver {
    pub fn named(name: impl Into<String>) -> Approver {
        Approver {
            name: name.into(),
            contact: String::new(),
        }
    }

    fn check(&self) -> Result<(), TrustSetError> {
        let bad_name = |why| TrustSetError::BadName {
            name: self.name.clone(),
            why,
        };
        if self.name.is_empty() {
            return Err(bad_name("a name cannot be empty"));
        }
        if self.name.len() > MAX_APPROVER_NAME_BYTES {
            return Err(bad_name("longer than 64 bytes"));
        }
        if self.name.trim() != self.name || self.name.chars().any(hides_text) {
            return Err(bad_name(
                "no control, invisible or text-direction characters, and no spaces at either end",
            ));
        }
        if self.contact.len() > MAX_APPROVER_CONTACT_BYTES {
            return Err(TrustSetError::BadContact {
                contact: self.contact.clone(),
                why: "longer than 256 bytes",
            });
        }
        if self.contact.chars().any(hides_text) {
            return Err(TrustSetError::BadContact {
                contact: self.contact.clone(),
                why: "no control characters",
            });
        }
        Ok(())
    }
}

/// A character that could make a name read as another on a reviewer's
/// screen: control characters, zero-width ones, and text-direction
/// overrides.
pub(crate) fn hides_text(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// The approvers whose signatures count, and the threshold M. Keys are kept
/// sorted and distinct, so a trust set has exactly one encoding. A set
/// made since approvers have names names every key (`approvers[i]` holds
/// `keys[i]`); one from before names none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "TrustSetFields")]
pub struct TrustSet {
    threshold: u32,
    keys: Vec<PublicKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    approvers: Option<Vec<Approver>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustSetFields {
    threshold: u32,
    keys: Vec<PublicKey>,
    #[serde(default)]
    approvers: Option<Vec<Approver>>,
}

impl TryFrom<TrustSetFields> for TrustSet {
    type Error = TrustSetError;
    fn try_from(fields: TrustSetFields) -> Result<Self, Self::Error> {
        if !fields.keys.windows(2).all(|pair| pair[0] < pair[1]) {
            return Err(TrustSetError::Unsorted);
        }
        let set = TrustSet::new(fields.keys, fields.threshold)?;
        match fields.approvers {
            None => Ok(set),
            Some(approvers) => set.naming(approvers),
        }
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
            approvers: None,
        })
    }

    /// A trust set whose every key is named, in any order of entries.
    pub fn named(
        entries: Vec<(PublicKey, Approver)>,
        threshold: u32,
    ) -> Result<TrustSet, TrustSetError> {
        let mut entries = entries;
        entries.sort_by_key(|(key, _)| *key);
        let keys = entries.iter().map(|(key, _)| *key).collect();
        let set = TrustSet::new(keys, threshold)?;
        set.naming(entries.into_iter().map(|(_, who)| who).collect())
    }

    /// This set with `approvers[i]` naming `keys[i]`.
    fn naming(self, approvers: Vec<Approver>) -> Result<TrustSet, TrustSetError> {
        if approvers.len() != self.keys.len() {
            return Err(TrustSetError::NamesDoNotMatchKeys {
                names: approvers.len(),
                keys: self.keys.len(),
            });
        }
        let mut names = BTreeSet::new();
        for approver in &approvers {
            approver.check()?;
            if !names.insert(approver.name.as_str()) {
                return Err(TrustSetError::DuplicateName(approver.name.clone()));
            }
        }
        Ok(TrustSet {
            approvers: Some(approvers),
            ..self
        })
    }

    /// The approvers, in key order, when the set names them.
    pub fn approvers(&self) -> Option<&[Approver]> {
        self.approvers.as_deref()
    }

    /// What the set calls `key`, when it names its keys and holds this one.
    pub fn name_of(&self, key: &PublicKey) -> Option<&str> {
        let index = self.keys.binary_search(key).ok()?;
        Some(self.approvers.as_ref()?[index].name.as_str())
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
    fn a_named_set_names_every_key_once_and_round_trips() {
        let set = TrustSet::named(
            vec![
                (key(3), Approver::named("carol")),
                (key(1), Approver::named("alice")),
                (
                    key(2),
                    Approver {
                        name: "bob".into(),
                        contact: "bob@example.com".into(),
                    },
                ),
            ],
            2,
        )
        .unwrap();
        assert_eq!(set.name_of(&key(1)), Some("alice"));
        assert_eq!(set.name_of(&key(2)), Some("bob"));
        assert_eq!(set.name_of(&key(9)), None);
        let json = serde_json::to_value(&set).unwrap();
        assert_eq!(
            serde_json::from_value::<TrustSet>(json.clone()).unwrap(),
            set
        );
        // Names must match the keys one for one, and tell approvers apart.
        let mut short = json.clone();
        short["approvers"].as_array_mut().unwrap().pop();
        assert!(serde_json::from_value::<TrustSet>(short).is_err());
        let twice = TrustSet::named(
            vec![
                (key(1), Approver::named("al")),
                (key(2), Approver::named("al")),
            ],
            1,
        );
        assert_eq!(twice, Err(TrustSetError::DuplicateName("al".into())));
        for bad in [
            "",
            " alice",
            "al\nice",
            "ali\u{202E}ecila",
            "al\u{200B}ice",
            &"x".repeat(65),
        ] {
            let named = TrustSet::named(vec![(key(1), Approver::named(bad))], 1);
            assert!(
                matches!(named, Err(TrustSetError::BadName { .. })),
                "{bad:?}"
            );
        }
        // An unnamed set names nobody.
        let unnamed = TrustSet::new(vec![key(1)], 1).unwrap();
        assert_eq!(unnamed.name_of(&key(1)), None);
        assert!(
            serde_json::to_value(&unnamed)
                .unwrap()
                .get("approvers")
                .is_none()
        );
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
