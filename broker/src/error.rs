use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

/// What can stop the broker from starting or from keeping its metadata.
#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("cannot read config file {path}: {source}")]
    ConfigRead { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {reason}")]
    ConfigInvalid { path: PathBuf, reason: String },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("{path} is corrupt ({reason}); fix or move it away, nothing was loaded")]
    MetadataCorrupt { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    MetadataWrite { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Namesrv(#[from] namesrv::NamesrvError),
    #[error("cannot start the broker executor: {0}")]
    Executor(String),
}
