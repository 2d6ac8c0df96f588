//! Per-shard storage for Apogee: the CommitLog (RocketMQ 4.x record format, fixed-size
//! segments written with O_DIRECT, group commit, recovery of a torn tail), the ConsumeQueues
//! and the key index derived from it, and the checkpoint that bounds recovery. Knows nothing of sockets; runs on
//! the shard's glommio executor.

mod checkpoint;
mod commitlog;
mod config;
mod consumequeue;
mod crc32c;
mod error;
mod hugepage;
mod index;
mod message_store;
mod root;
mod segment;
mod tail;

pub use checkpoint::Checkpoint;
pub use commitlog::{shard_of, AppendResult, CommitLog, Durable, RecoveredRecord, RecoveryReport, MAX_SHARDS};
pub use config::{CommitLogConfig, FlushDiskType};
pub use consumequeue::{CqUnit, CQ_UNIT_BYTES};
pub use error::StoreError;
pub use index::{key_hash, IndexConfig, IndexHits, KeyIndex};
pub use message_store::{
    parse_delay_levels, GetMessageResult, GetMessageStatus, MessageStore, MessageStoreConfig, PutMessage,
    QueryMessageResult, Retention, StoreRecovery, DEFAULT_DELAY_LEVELS, MAX_MSGS_NUM_BATCH,
};
pub use root::RootLock;

/// O_DIRECT alignment: every write starts and ends on a page.
pub const PAGE: usize = 4096;
