//! Errors of the client. Each names the server and the request it concerns, so one line in a
//! log tells what failed where.

use std::time::Duration;

use thiserror::Error;

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("connecting to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("connecting to {addr}: no answer within {timeout:?}")]
    ConnectTimeout { addr: String, timeout: Duration },
    #[error("connection to {addr} closed before {request} was answered")]
    ConnectionClosed { addr: String, request: &'static str },
    #[error("{request} to {addr}: no answer within {timeout:?}")]
    Timeout { addr: String, request: &'static str, timeout: Duration },
    #[error("{request} to {addr}: {code_name} ({code}): {remark}")]
    Broker { addr: String, request: &'static str, code: i32, code_name: &'static str, remark: String },
    #[error("{request} answer from {addr}: {source}")]
    Header { addr: String, request: &'static str, source: wire::HeaderError },
    #[error("{request} answer from {addr}: {source}")]
    Body { addr: String, request: &'static str, source: wire::BodyError },
    #[error("messages from {addr}: {source}")]
    Message { addr: String, source: wire::MessageError },
    #[error("no name server address given (set -n / namesrvAddr)")]
    NoNameServer,
    #[error("no route for topic {topic}: {reason}")]
    NoRoute { topic: String, reason: String },
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("the client is shut down")]
    Shutdown,
    #[error("consumer offsets file {}: {reason}", path.display())]
    OffsetFile { path: std::path::PathBuf, reason: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl ClientError {
    /// The response code when a server answered with an error, `None` for transport errors.
    pub fn response_code(&self) -> Option<i32> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True for failures of the connection rather than of the request: another server may
    /// well succeed.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. }
                | ClientError::ConnectTimeout { .. }
                | ClientError::ConnectionClosed { .. }
                | ClientError::Timeout { .. }
        )
    }
}

/// The Java name of a request code, for errors and logs.
pub(crate) fn request_name(code: i32) -> &'static str {
    wire::code::request_name(code).unwrap_or("request")
}

/// The Java name of a response code.
pub(crate) fn response_name(code: i32) -> &'static str {
    wire::code::response_name(code).unwrap_or("UNKNOWN")
}
