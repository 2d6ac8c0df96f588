//! The shard's checkpoint: how far the CommitLog, the ConsumeQueues and the index are known to
//! be on disk, so that recovery scans only what came after.
//!
//! The file holds two 512-byte slots written alternately, each with a sequence number and a
//! CRC-32C; the newest slot whose CRC matches wins. A write torn by a crash therefore leaves the
//! previous checkpoint readable, and no rename is needed.

use std::path::{Path, PathBuf};

use glommio::io::{BufferedFile, OpenOptions};
use tracing::warn;

use crate::crc32c::crc32c;
use crate::error::StoreError;

const MAGIC: &[u8; 8] = b"APGCKPT1";
const SLOT: u64 = 512;
/// MAGIC, sequence, commitlog_end, consume_queue_end, index_end, timestamp_ms.
const BODY_LEN: usize = 8 + 8 * 5;

/// Durable points, as local CommitLog offsets: every record below `consume_queue_end` has its
/// ConsumeQueue unit on disk, and so on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    pub commitlog_end: u64,
    pub consume_queue_end: u64,
    pub index_end: u64,
    pub timestamp_ms: i64,
}

impl Checkpoint {
    /// Where recovery starts scanning the CommitLog: the earliest point something derived from
    /// it may be missing.
    pub fn scan_from(&self) -> u64 {
        self.commitlog_end.min(self.consume_queue_end).min(self.index_end)
    }
}

pub(crate) struct CheckpointFile {
    path: PathBuf,
    file: BufferedFile,
    sequence: u64,
}

impl CheckpointFile {
    /// Opens (or creates) the file; returns the newest valid checkpoint in it, if any.
    pub async fn open(path: &Path) -> Result<(CheckpointFile, Option<Checkpoint>), StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .buffered_open(path)
            .await
            .map_err(|e| StoreError::io("open", path, e))?;
        let bytes = file.read_at(0, 2 * SLOT as usize).await.map_err(|e| StoreError::io("read", path, e))?;
        let mut best: Option<(u64, Checkpoint)> = None;
        let mut torn = 0;
        for slot in 0..2 {
            let start = slot * SLOT as usize;
            let Some(raw) = bytes.get(start..start + BODY_LEN + 4) else { continue };
            if raw.iter().all(|b| *b == 0) {
                continue;
            }
            match decode(raw) {
                Some((seq, cp)) if best.is_none_or(|(s, _)| seq > s) => best = Some((seq, cp)),
                Some(_) => {}
                None => torn += 1,
            }
        }
        if torn > 0 {
            warn!(path = %path.display(), "a checkpoint slot failed its CRC-32C; the other one is used");
        }
        let sequence = best.map_or(0, |(s, _)| s);
        Ok((CheckpointFile { path: path.to_path_buf(), file, sequence }, best.map(|(_, cp)| cp)))
    }

    /// Writes `cp` into the older slot and syncs it.
    pub async fn store(&mut self, cp: &Checkpoint) -> Result<(), StoreError> {
        self.sequence += 1;
        let mut raw = Vec::with_capacity(BODY_LEN + 4);
        raw.extend_from_slice(MAGIC);
        raw.extend_from_slice(&self.sequence.to_be_bytes());
        raw.extend_from_slice(&cp.commitlog_end.to_be_bytes());
        raw.extend_from_slice(&cp.consume_queue_end.to_be_bytes());
        raw.extend_from_slice(&cp.index_end.to_be_bytes());
        raw.extend_from_slice(&cp.timestamp_ms.to_be_bytes());
        let crc = crc32c(&raw);
        raw.extend_from_slice(&crc.to_be_bytes());
        let pos = (self.sequence % 2) * SLOT;
        let written = self.file.write_at(raw, pos).await.map_err(|e| StoreError::io("write", &self.path, e))?;
        if written != BODY_LEN + 4 {
            return Err(StoreError::io("write", &self.path, format!("short write of {written} bytes")));
        }
        self.file.fdatasync().await.map_err(|e| StoreError::io("fdatasync", &self.path, e))
    }
}

fn decode(raw: &[u8]) -> Option<(u64, Checkpoint)> {
    let (body, crc) = raw.split_at(BODY_LEN);
    if &body[..8] != MAGIC || crc32c(body).to_be_bytes() != crc {
        return None;
    }
    let field = |i: usize| {
        let at = 8 + 8 * i;
        let mut b = [0u8; 8];
        b.copy_from_slice(&body[at..at + 8]);
        u64::from_be_bytes(b)
    };
    let cp = Checkpoint {
        commitlog_end: field(1),
        consume_queue_end: field(2),
        index_end: field(3),
        timestamp_ms: field(4) as i64,
    };
    Some((field(0), cp))
}
