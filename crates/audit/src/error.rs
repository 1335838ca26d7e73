//! What can go wrong writing a decision log, and why a decision was not
//! taken by it.

use std::path::PathBuf;

use stele_ledger::KeyError;
use thiserror::Error;

/// The log could not be opened, resumed or written.
#[derive(Debug, Error)]
pub enum LogError {
    /// A file or directory operation failed: what was being done, where.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing the decision log: {0}")]
    Write(std::io::Error),
    #[error("syncing the decision log: {0}")]
    Sync(std::io::Error),
    /// An existing segment holds a line that is not one of the log's.
    #[error("{}: a line is not a log record: {why}", path.display())]
    NotARecord { path: PathBuf, why: String },
    #[error("{}: {source}", path.display())]
    Key { path: PathBuf, source: KeyError },
    #[error("cannot start the decision log writer: {0}")]
    Spawn(std::io::Error),
    #[error("the decision log holds as many records as an index can count: start a new one")]
    Exhausted,
}

impl LogError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> LogError {
        let path = path.into();
        move |source| LogError::Io {
            action,
            path,
            source,
        }
    }
}

/// The log will not take a decision, so the node must not answer it. (With
/// `--decision-log-when-full drop` the decision is answered and counted as
/// dropped instead.)
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Unlogged {
    /// The writer failed: the log cannot be written.
    #[error("the decision log cannot be written: {0}")]
    Failed(String),
    /// The log was closed: the node is stopping.
    #[error("the decision log is closed: the node is stopping")]
    Closed,
    /// The queue is full (only with `drop`, where it is counted instead).
    #[error("the decision log's queue is full")]
    Full,
}
