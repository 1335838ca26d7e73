//! How a command fails: a stable code for scripts, a message for people, and
//! optional details. Every failure exits non-zero.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Value};
use stele_ledger::{LedgerFileError, Rejection};
use stele_policy::BundleError;

#[derive(Debug)]
pub struct Failure {
    /// snake_case, stable: `stale_parent`, `bundle_invalid`, `io`, …
    pub code: Cow<'static, str>,
    pub message: String,
    /// Extra fields for the JSON form (e.g. the bad seq, failed scenarios).
    /// Boxed: a `Failure` travels in every `Result` and stays small.
    pub details: Box<Map<String, Value>>,
    /// Whether the results printed already say what failed, so no JSON error
    /// line follows them (`check --requests` prints one line per request).
    pub results_tell: bool,
}

impl Failure {
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Failure {
        Failure {
            code: code.into(),
            message: message.into(),
            details: Box::default(),
            results_tell: false,
        }
    }

    pub fn told_by_results(mut self) -> Failure {
        self.results_tell = true;
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Failure {
        self.details.insert(key.to_string(), value.into());
        self
    }

    /// A command line that makes sense to clap but not to stele.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new("usage", message)
    }

    pub fn io(path: &std::path::Path, error: std::io::Error) -> Failure {
        Failure::new("io", format!("{}: {error}", path.display()))
    }

    /// `{"error": code, "message": …, details…}`
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("error".into(), self.code.as_ref().into());
        object.insert("message".into(), self.message.clone().into());
        object.extend(self.details.as_ref().clone());
        Value::Object(object)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Rejection> for Failure {
    fn from(rejection: Rejection) -> Failure {
        Failure::new(
            rejection.code(),
            format!("rejected ({}): {rejection}", rejection.code()),
        )
        .with("status", "rejected")
    }
}

impl From<BundleError> for Failure {
    fn from(error: BundleError) -> Failure {
        let code = match &error {
            BundleError::Io { .. } => "io",
            BundleError::TooLarge(_) => "over_size_limit",
            BundleError::Scenarios(_) => "scenarios_failed",
            BundleError::Layout(_) | BundleError::Invalid(_) => "bundle_invalid",
        };
        let failure = Failure::new(code, error.to_string());
        match &error {
            BundleError::Scenarios(failures) => failure.with(
                "failures",
                failures
                    .iter()
                    .map(|f| {
                        serde_json::json!({
                            "file": f.file,
                            "query": f.number,
                            "description": f.description,
                            "problem": f.problem,
                        })
                    })
                    .collect::<Vec<_>>(),
            ),
            _ => failure,
        }
    }
}

impl From<LedgerFileError> for Failure {
    fn from(error: LedgerFileError) -> Failure {
        Failure::new(error.code(), format!("ledger does not verify: {error}"))
            .with("seq", error.seq())
    }
}

pub type Result<T, E = Failure> = std::result::Result<T, E>;
