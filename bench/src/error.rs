//! Errors of the bench harness: setting up the cluster and the topic, or writing the report.
//! Failures of individual sends are not errors here; they are counted in the report.

use thiserror::Error;

pub type Result<T, E = BenchError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum BenchError {
    #[error(transparent)]
    Client(#[from] client::ClientError),
    #[error("embedded broker: {0}")]
    Embedded(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("{context}: {source}")]
    Json { context: String, source: serde_json::Error },
    #[error("{0}")]
    Invalid(String),
}

impl BenchError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        BenchError::Io { context: context.into(), source }
    }
}
