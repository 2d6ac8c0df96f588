//! Storage settings, named as RocketMQ's `MessageStoreConfig` names them where one exists.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::StoreError;

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushDiskType {
    /// Once the write completed (survives a process crash); fdatasync runs every
    /// `flush_interval`.
    AsyncFlush,
    /// Once an fdatasync covering the record completed (survives power loss).
    SyncFlush,
}

impl FlushDiskType {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ASYNC_FLUSH" => Some(Self::AsyncFlush),
            "SYNC_FLUSH" => Some(Self::SyncFlush),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::AsyncFlush => "ASYNC_FLUSH",
            Self::SyncFlush => "SYNC_FLUSH",
        }
    }
}

#[derive(Debug, Clone)]
pub struct CommitLogConfig {
    /// The folder holding this shard's segments (`<root>/shard-<n>/commitlog`).
    pub dir: PathBuf,
    /// Shard number (below `MAX_SHARDS`), carried in bits 50–52 of every physical offset clients see.
    pub shard: u8,
    /// `mappedFileSizeCommitLog`: bytes per segment, a multiple of 4 KiB.
    pub segment_bytes: u64,
    /// `flushDiskType`.
    pub flush_disk_type: FlushDiskType,
    /// `flushIntervalCommitLog`: fdatasync period under ASYNC_FLUSH.
    pub flush_interval: Duration,
    /// `syncFlushTimeout`: longest wait for a SYNC_FLUSH acknowledgement.
    pub sync_flush_timeout: Duration,
    /// How much of the log tail stays in memory for reads (at least the unwritten part).
    pub cache_bytes: usize,
    /// Largest single write.
    pub max_write_bytes: usize,
    /// Writes in flight at once.
    pub writes_in_flight: usize,
    /// Fill new segments with zeros before use, so no write ever lands on an unwritten extent.
    pub zero_fill_segments: bool,
    /// Segments retention keeps for reuse instead of deleting (Apogee). A reused segment needs
    /// no zero-fill, which otherwise writes every byte of the log twice: here, with the disk
    /// shared by the fill, a 141 KiB append write took 200 µs instead of 96 µs.
    pub spare_segments: usize,
}

impl CommitLogConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            shard: 0,
            segment_bytes: 1 << 30,
            flush_disk_type: FlushDiskType::AsyncFlush,
            flush_interval: Duration::from_millis(500),
            sync_flush_timeout: Duration::from_secs(5),
            cache_bytes: 256 << 20,
            max_write_bytes: 1 << 20,
            writes_in_flight: 4,
            zero_fill_segments: true,
            spare_segments: 8,
        }
    }

    /// Whether segment writes are durable on completion (O_DSYNC): under SYNC_FLUSH.
    pub(crate) fn dsync(&self) -> bool {
        self.flush_disk_type == FlushDiskType::SyncFlush
    }

    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |m: String| Err(StoreError::Config(m));
        if self.segment_bytes < 64 * 1024 || !self.segment_bytes.is_multiple_of(crate::PAGE as u64) {
            return bad(format!(
                "mappedFileSizeCommitLog = {} must be a multiple of 4096, at least 64 KiB",
                self.segment_bytes
            ));
        }
        if self.max_write_bytes < crate::PAGE || !self.max_write_bytes.is_multiple_of(crate::PAGE) {
            return bad(format!("max write of {} bytes must be a multiple of 4096", self.max_write_bytes));
        }
        if self.writes_in_flight == 0 {
            return bad("writes in flight must be at least 1".into());
        }
        // Recovery scans two segments: what was in flight at a crash must fit in one.
        if (self.writes_in_flight * self.max_write_bytes) as u64 > self.segment_bytes {
            return bad(format!(
                "{} writes of {} bytes in flight exceed a segment of {} bytes",
                self.writes_in_flight, self.max_write_bytes, self.segment_bytes
            ));
        }
        Ok(())
    }
}
