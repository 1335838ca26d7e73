//! Version and proposal ids as people type them: a seq, a full hash, or a
//! unique prefix of at least 8 hex digits (as git takes them). An ambiguous
//! prefix is refused with its candidates.

use stele_ledger::{Hash, Version};

use crate::failure::{Code, Failure, Result};

/// The shortest prefix taken.
pub const MIN_PREFIX: usize = 8;

/// What was typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Typed {
    Seq(u64),
    Full(Hash),
    Prefix(String),
}

impl Typed {
    /// A seq is a decimal number of fewer than 8 digits; 8 or more hex
    /// digits are a hash or a prefix of one.
    pub fn parse(text: &str) -> Result<Typed> {
        let text = text.trim().to_ascii_lowercase();
        let hex = !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit());
        if text.len() < MIN_PREFIX && !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return text
                .parse()
                .map(Typed::Seq)
                .map_err(|e| Failure::usage(format!("{text:?} is not a seq: {e}")));
        }
        match (hex, text.len()) {
            (true, 64) => {
                Ok(Typed::Full(text.parse().map_err(|e| {
                    Failure::usage(format!("{text:?} is not an id: {e}"))
                })?))
            }
            (true, n) if (MIN_PREFIX..64).contains(&n) => Ok(Typed::Prefix(text)),
            (true, n) if n > 64 => Err(Failure::usage(format!(
                "{text:?} is longer than an id (64 hex digits)"
            ))),
            (true, _) => Err(Failure::usage(format!(
                "{text:?} is too short to name a version or proposal: give a seq, or at least {MIN_PREFIX} hex digits of its id"
            ))),
            (false, _) => Err(Failure::usage(format!(
                "{text:?} is neither a seq nor an id (a version hash or a proposal id, or at least {MIN_PREFIX} of its hex digits)"
            ))),
        }
    }

    pub fn is_prefix(&self) -> bool {
        matches!(self, Typed::Prefix(_))
    }
}

/// What an id names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    Committed { seq: u64, hash: Hash },
    Pending(Hash),
}

/// Finds what `typed` names among committed `versions` and `pending`
/// proposal ids.
pub fn resolve(typed: &Typed, versions: &[Version], pending: &[Hash]) -> Result<Found> {
    let committed = versions
        .iter()
        .map(|v| Found::Committed {
            seq: v.seq(),
            hash: v.hash(),
        })
        .chain(pending.iter().map(|id| Found::Pending(*id)));
    let matches: Vec<Found> = match typed {
        Typed::Seq(seq) => committed
            .filter(|found| matches!(found, Found::Committed { seq: s, .. } if s == seq))
            .collect(),
        Typed::Full(id) => committed.filter(|found| hash_of(found) == *id).collect(),
        Typed::Prefix(prefix) => committed
            .filter(|found| hash_of(found).to_hex().starts_with(prefix.as_str()))
            .collect(),
    };
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => Err(Failure::new(
            Code::NotFound,
            match typed {
                Typed::Seq(seq) => format!(
                    "no version {seq} (head is {})",
                    versions.last().map_or(0, Version::seq)
                ),
                _ => format!(
                    "no committed version and no pending proposal has an id starting {}; `stele log` and `stele proposals` list them",
                    text_of(typed)
                ),
            },
        )),
        many => Err(Failure::new(
            Code::Ambiguous,
            format!(
                "{} names more than one: {}; give more of its hex digits",
                text_of(typed),
                many.iter().map(describe).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

fn hash_of(found: &Found) -> Hash {
    match found {
        Found::Committed { hash, .. } | Found::Pending(hash) => *hash,
    }
}

fn text_of(typed: &Typed) -> String {
    match typed {
        Typed::Seq(seq) => seq.to_string(),
        Typed::Full(hash) => hash.to_hex(),
        Typed::Prefix(prefix) => prefix.clone(),
    }
}

fn describe(found: &Found) -> String {
    match found {
        Found::Committed { seq, hash } => format!("version seq {seq} ({hash})"),
        Found::Pending(id) => format!("pending proposal {id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(hex_start: &str) -> Hash {
        format!("{hex_start:0<64}").parse().unwrap()
    }

    #[test]
    fn people_type_seqs_full_ids_and_prefixes() {
        assert_eq!(Typed::parse("12").unwrap(), Typed::Seq(12));
        assert_eq!(
            Typed::parse("ABCDEF12").unwrap(),
            Typed::Prefix("abcdef12".into())
        );
        assert!(Typed::parse("abc123").is_err(), "too short a prefix");
        assert!(Typed::parse("xyz").is_err());
        let full = "a".repeat(64);
        assert_eq!(
            Typed::parse(&full).unwrap(),
            Typed::Full(full.parse().unwrap())
        );
    }

    #[test]
    fn an_ambiguous_prefix_lists_its_candidates() {
        let pending = [hash("abcdef1201"), hash("abcdef1299"), hash("ffff")];
        let typed = Typed::parse("abcdef12").unwrap();
        let error = resolve(&typed, &[], &pending).unwrap_err();
        assert_eq!(error.code, Code::Ambiguous);
        assert!(error.message.contains(&pending[0].to_hex()));
        assert!(error.message.contains(&pending[1].to_hex()));
        let typed = Typed::parse("abcdef129").unwrap();
        assert_eq!(
            resolve(&typed, &[], &pending).unwrap(),
            Found::Pending(pending[1])
        );
        let typed = Typed::parse("eeeeeeee").unwrap();
        assert_eq!(
            resolve(&typed, &[], &pending).unwrap_err().code,
            Code::NotFound
        );
    }
}
