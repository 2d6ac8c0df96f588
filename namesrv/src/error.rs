use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

/// What can stop the name server from starting or from keeping its KV config.
#[derive(Debug, Error)]
pub enum NamesrvError {
    #[error("cannot read config file {path}: {source}")]
    ConfigRead { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {reason}")]
    ConfigInvalid { path: PathBuf, reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot read KV config {path}: {source}")]
    KvRead { path: PathBuf, source: std::io::Error },
    #[error("KV config {path} is corrupt ({reason}); fix or move it away, nothing was loaded")]
    KvCorrupt { path: PathBuf, reason: String },
    #[error("cannot persist KV config to {path}: {source}")]
    KvWrite { path: PathBuf, source: std::io::Error },
    #[error("cannot start the name server executor: {0}")]
    Executor(String),
}
