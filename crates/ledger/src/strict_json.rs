//! Strict decoding of stele's JSON files: a document is accepted only in its
//! one canonical spelling (compact, fields in order, no unknown or missing
//! fields, lowercase hex, serde_json's escapes). Any edit to a byte that is
//! not a pure re-spelling is therefore a decoding error, not a silent change.

use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) fn decode<T: DeserializeOwned + Serialize>(text: &str) -> Result<T, String> {
    let value: T = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let canonical = encode(&value);
    if canonical != text {
        return Err(
            "not in canonical form (spacing, field order, escapes or number spelling differ)"
                .into(),
        );
    }
    Ok(value)
}

pub(crate) fn encode<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("stele's file records always serialize")
}
