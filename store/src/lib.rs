//! Per-shard storage for Apogee: the CommitLog (RocketMQ 4.x record format, fixed-size
//! segments written with O_DIRECT, group commit, recovery of a torn tail). Knows nothing of
//! sockets; runs on the shard's glommio executor.

mod commitlog;
mod config;
mod error;
mod segment;
mod tail;

pub use commitlog::{AppendResult, CommitLog, Durable, RecoveredRecord, RecoveryReport};
pub use config::{CommitLogConfig, FlushDiskType};
pub use error::StoreError;

/// O_DIRECT alignment: every write starts and ends on a page.
pub const PAGE: usize = 4096;
