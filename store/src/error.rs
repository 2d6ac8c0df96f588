use std::path::PathBuf;

use thiserror::Error;

/// Why a store operation failed.
#[derive(Debug, Clone, Error)]
pub enum StoreError {
    #[error("{op} {path}: {reason}")]
    Io { op: &'static str, path: PathBuf, reason: String },
    /// A write or sync failed earlier; nothing more is accepted until restart.
    #[error("store is read-only after a failed write: {0}")]
    ReadOnly(String),
    #[error("record of {size} bytes exceeds the largest storable record ({max} bytes)")]
    RecordTooLarge { size: usize, max: usize },
    #[error("invalid record: {0}")]
    BadRecord(String),
    #[error("physical offset {0} is not in the CommitLog")]
    OffsetNotFound(u64),
    #[error("flush did not complete within {0:?}")]
    FlushTimeout(std::time::Duration),
    #[error("another broker holds the lock on {0}")]
    Locked(PathBuf),
    #[error("store is closed")]
    Closed,
    #[error("invalid store configuration: {0}")]
    Config(String),
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, err: impl std::fmt::Display) -> Self {
        StoreError::Io { op, path: path.into(), reason: err.to_string() }
    }
}
