//! Strict decoding of stele's JSON files: a document is accepted only in its
//! one canonical spelling (compact, fields in order, no unknown or missing
//! fields, lowercase hex, serde_json's escapes). Any edit to a byte that is
//! not a pure re-spelling is therefore a decoding error, not a silent change.

use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

/// A document that is not one of stele's, or not in its canonical spelling.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum StrictJsonError {
    /// It does not decode (serde_json's message).
    #[error("{0}")]
    Decode(String),
    #[error("not in canonical form (spacing, field order, escapes or number spelling differ)")]
    NotCanonical,
}

pub(crate) fn decode<T: DeserializeOwned + Serialize>(text: &str) -> Result<T, StrictJsonError> {
    let value: T =
        serde_json::from_str(text).map_err(|e| StrictJsonError::Decode(e.to_string()))?;
    if encode(&value) != text {
        return Err(StrictJsonError::NotCanonical);
    }
    Ok(value)
}

pub(crate) fn encode<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("stele's file records always serialize")
}
