//! How a command fails: a stable code for scripts, a message for people, and
//! optional details. Every failure exits non-zero.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Value};
use stele_ledger::{LedgerFileError, Reason, Rejection};
use stele_policy::BundleError;

/// What kind of failure, as scripts read it (`"error"` with `--json`): a
/// node's or the ledger's [`Reason`], or one of the command's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// A refusal with its stable reason (`stale_parent`, `stale`, …).
    Reason(Reason),
    /// A command line that makes sense to clap but not to stele.
    Usage,
    /// A file could not be read or written.
    Io,
    BadKey,
    /// A file or directory is in the way; nothing is overwritten.
    Exists,
    /// A ledger or cluster without a genesis.
    EmptyLedger,
    /// A ledger file that does not decode.
    Format,
    /// A bundle's scenarios did not give their expected answers.
    ScenariosFailed,
    /// A decision request that cannot be evaluated.
    InvalidRequest,
    /// A decision log that does not verify.
    LogInvalid,
    /// A version the ledger was expected to hold is not in it.
    MissingVersion,
    NotFound,
    /// An id prefix that names more than one version or proposal.
    Ambiguous,
    /// The signer did not confirm.
    Declined,
    /// Policy files that `stele bundle fmt` would change.
    Unformatted,
    /// No answer within the deadline.
    Timeout,
    /// Nothing answered, or the node could not serve the call now.
    Unavailable,
    /// The node answered with an error it gave no reason for.
    NodeError,
    AlreadyExists,
    InvalidArgument,
    /// A node process of `stele dev` exited.
    NodeExited,
    /// `stele node` could not start or serve.
    Node,
    Internal,
}

impl Code {
    /// The stable snake_case name.
    pub fn name(self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Code::Reason(reason) => return Cow::Owned(reason.code()),
            Code::Usage => "usage",
            Code::Io => "io",
            Code::BadKey => "bad_key",
            Code::Exists => "exists",
            Code::EmptyLedger => "empty_ledger",
            Code::Format => "format",
            Code::ScenariosFailed => "scenarios_failed",
            Code::InvalidRequest => "invalid_request",
            Code::LogInvalid => "log_invalid",
            Code::MissingVersion => "missing_version",
            Code::NotFound => "not_found",
            Code::Ambiguous => "ambiguous",
            Code::Declined => "declined",
            Code::Unformatted => "unformatted",
            Code::Timeout => "timeout",
            Code::Unavailable => "unavailable",
            Code::NodeError => "node_error",
            Code::AlreadyExists => "already_exists",
            Code::InvalidArgument => "invalid_argument",
            Code::NodeExited => "node_exited",
            Code::Node => "node",
            Code::Internal => "internal",
        })
    }
}

#[derive(Clone, Debug)]
pub struct Failure {
    pub code: Code,
    pub message: String,
    /// Extra fields for the JSON form (e.g. the bad seq, failed scenarios).
    /// Boxed: a `Failure` travels in every `Result` and stays small.
    pub details: Box<Map<String, Value>>,
    /// Whether the results printed already say what failed, so no JSON error
    /// line follows them (`check --requests` prints one line per request).
    pub results_tell: bool,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Failure {
        Failure {
            code,
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
        Failure::new(Code::Usage, message)
    }

    pub fn io(path: &std::path::Path, error: std::io::Error) -> Failure {
        Failure::new(Code::Io, format!("{}: {error}", path.display()))
    }

    /// `{"error": code, "message": …, details…}`
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("error".into(), self.code.name().into());
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
        let reason = rejection.reason();
        Failure::new(
            Code::Reason(reason),
            format!("rejected ({}): {rejection}", reason.code()),
        )
        .with("status", "rejected")
    }
}

impl From<BundleError> for Failure {
    fn from(error: BundleError) -> Failure {
        let code = match &error {
            BundleError::Io { .. } => Code::Io,
            BundleError::TooLarge(_) => Code::Reason(Reason::OverSizeLimit),
            BundleError::Scenarios(_) => Code::ScenariosFailed,
            BundleError::Layout(_) | BundleError::Invalid(_) => Code::Reason(Reason::BundleInvalid),
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
        let code = error.reason().map_or(Code::Format, Code::Reason);
        Failure::new(code, format!("ledger does not verify: {error}")).with("seq", error.seq())
    }
}

pub type Result<T, E = Failure> = std::result::Result<T, E>;

impl From<stele_client::Error> for Failure {
    /// A call to a node that failed: the node's typed reason when it gave
    /// one, and a message that names the node and, where it helps, what to
    /// check.
    fn from(error: stele_client::Error) -> Failure {
        use stele_client::Error;
        let code = match &error {
            Error::Endpoint { .. } => Code::Usage,
            Error::TimedOut { .. } => Code::Timeout,
            Error::Unavailable { .. } => Code::Unavailable,
            Error::Node {
                reason: Some(reason),
                ..
            } => Code::Reason(*reason),
            Error::Node { status, .. } => match status.code() {
                tonic::Code::NotFound => Code::NotFound,
                tonic::Code::AlreadyExists => Code::AlreadyExists,
                tonic::Code::InvalidArgument => Code::InvalidArgument,
                _ => Code::NodeError,
            },
            Error::WrongProposal { .. } | Error::Malformed { .. } => Code::NodeError,
        };
        let message = match &error {
            Error::TimedOut { .. } => format!("{error} (is the node frozen or unreachable?)"),
            Error::Unavailable { .. } => {
                format!("{error} (is a node running there? Set --endpoint or STELE_ENDPOINT)")
            }
            _ => error.to_string(),
        };
        Failure::new(code, message)
    }
}
