//! Why a bundle cannot be used. Every message names the file (and, for Cedar
//! errors, the line and column) so the author can fix it.

use thiserror::Error;

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum BundleError {
    /// The directory or file set is not a bundle: an unknown or missing file,
    /// a file that is not UTF-8, over a size limit.
    #[error("{0}")]
    Layout(String),
    /// Over a size limit (files, bytes).
    #[error("{0}")]
    TooLarge(String),
    /// A file could not be read.
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    /// Files that do not parse or validate: one `file:line:col: message` per
    /// problem, Cedar's own message where Cedar found it.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// Scenarios in `tests/` that did not give their expected answer.
    #[error("{} scenario(s) failed:\n{}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Scenarios(Vec<crate::scenario::ScenarioFailure>),
}
