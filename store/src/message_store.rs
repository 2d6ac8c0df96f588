//! One shard's message store: its CommitLog, the ConsumeQueues of the queues it owns, and the
//! checkpoint that bounds recovery. RocketMQ's `DefaultMessageStore`, for one core.
//!
//! A put assigns the queue offset, appends the record and adds its ConsumeQueue unit at once,
//! on the same executor, so units are in queue order and never lag the log in memory. Readers
//! see a unit once its record is durable. A periodic task writes the units to disk, makes the
//! log durable up to the same point and stores the checkpoint; recovery scans the log from the
//! checkpoint and appends the units again.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tracing::{error, info, warn};
use wire::message::{properties, sys_flag, tag_hash_code, topic, StoredMessage};

use crate::checkpoint::{Checkpoint, CheckpointFile};
use crate::commitlog::{CommitLog, Durable, RecoveryReport};
use crate::config::CommitLogConfig;
use crate::consumequeue::{ConsumeQueue, CqUnit};
use crate::error::StoreError;
use crate::index::{IndexConfig, KeyIndex};

/// Java's `maxMsgsNumBatch`: the most messages one QUERY_MESSAGE returns.
pub const MAX_MSGS_NUM_BATCH: usize = 64;

/// Java's default `messageDelayLevel`: 1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h.
pub const DEFAULT_DELAY_LEVELS: &str = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";

#[derive(Debug, Clone)]
pub struct MessageStoreConfig {
    /// This shard's folder (`<storePathRootDir>/shard-<n>`).
    pub dir: PathBuf,
    /// The CommitLog's settings; its folder is always `<dir>/commitlog`.
    pub commitlog: CommitLogConfig,
    /// `mappedFileSizeConsumeQueue` / 20: units per ConsumeQueue file.
    pub units_per_consume_queue_file: u64,
    /// `flushIntervalConsumeQueue`: how often units are written and the checkpoint stored.
    pub flush_interval_consume_queue: Duration,
    /// `messageDelayLevel`, in milliseconds: a delayed message's tag code is its delivery time.
    pub delay_levels_ms: Vec<i64>,
    /// `maxTransferBytesOnMessageInMemory` / `maxTransferCountOnMessageInMemory`.
    pub max_transfer_bytes_in_memory: usize,
    pub max_transfer_count_in_memory: usize,
    /// `maxTransferBytesOnMessageInDisk` / `maxTransferCountOnMessageInDisk`.
    pub max_transfer_bytes_in_disk: usize,
    pub max_transfer_count_in_disk: usize,
    /// The key index (`messageIndexEnable`, `maxHashSlotNum`, `maxIndexNum`); its folder is
    /// `<dir>/index`.
    pub index: IndexConfig,
}

impl MessageStoreConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Self {
            commitlog: CommitLogConfig::new(dir.join("commitlog")),
            dir,
            units_per_consume_queue_file: 300_000,
            flush_interval_consume_queue: Duration::from_secs(1),
            delay_levels_ms: parse_delay_levels(DEFAULT_DELAY_LEVELS).unwrap_or_default(),
            max_transfer_bytes_in_memory: 256 * 1024,
            max_transfer_count_in_memory: 32,
            max_transfer_bytes_in_disk: 64 * 1024,
            max_transfer_count_in_disk: 8,
            index: IndexConfig::default(),
        }
    }
}

/// Parses `messageDelayLevel` ("1s 5s 1m 2h 1d") into milliseconds.
pub fn parse_delay_levels(levels: &str) -> Result<Vec<i64>, StoreError> {
    levels
        .split_whitespace()
        .map(|level| {
            let (digits, unit) = level.split_at(level.len().saturating_sub(1));
            let ms = match unit {
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => 0,
            };
            match digits.parse::<i64>() {
                Ok(n) if ms > 0 && n >= 0 => Ok(n * ms),
                _ => Err(StoreError::Config(format!("messageDelayLevel entry {level:?} is not like 5s, 1m, 2h or 1d"))),
            }
        })
        .collect()
}

/// Java's `GetMessageStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetMessageStatus {
    Found,
    NoMatchedMessage,
    MessageWasRemoving,
    OffsetFoundNull,
    OffsetOverflowBadly,
    OffsetOverflowOne,
    OffsetTooSmall,
    NoMatchedLogicQueue,
    NoMessageInQueue,
}

impl GetMessageStatus {
    /// The name Java prints.
    pub fn name(self) -> &'static str {
        match self {
            Self::Found => "FOUND",
            Self::NoMatchedMessage => "NO_MATCHED_MESSAGE",
            Self::MessageWasRemoving => "MESSAGE_WAS_REMOVING",
            Self::OffsetFoundNull => "OFFSET_FOUND_NULL",
            Self::OffsetOverflowBadly => "OFFSET_OVERFLOW_BADLY",
            Self::OffsetOverflowOne => "OFFSET_OVERFLOW_ONE",
            Self::OffsetTooSmall => "OFFSET_TOO_SMALL",
            Self::NoMatchedLogicQueue => "NO_MATCHED_LOGIC_QUEUE",
            Self::NoMessageInQueue => "NO_MESSAGE_IN_QUEUE",
        }
    }
}

/// What a get returned: whole stored records, ready to be a PULL response body.
#[derive(Debug, Clone)]
pub struct GetMessageResult {
    pub status: GetMessageStatus,
    pub next_begin_offset: i64,
    pub min_offset: i64,
    pub max_offset: i64,
    pub messages: Vec<Bytes>,
    /// Queue offset of each message in `messages`.
    pub queue_offsets: Vec<i64>,
    pub buffer_total_size: usize,
}

/// What QUERY_MESSAGE found: whole stored records, oldest first.
#[derive(Debug, Clone, Default)]
pub struct QueryMessageResult {
    pub messages: Vec<Bytes>,
    pub index_last_update_timestamp: i64,
    pub index_last_update_phyoffset: i64,
}

/// Where a put went.
#[must_use = "a put is acknowledged only once its Durable completes"]
pub struct PutMessage {
    pub durable: Durable,
    pub queue_offset: i64,
}

/// How the store came up.
/// What a retention pass deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Bases (local offsets) of the CommitLog segments deleted.
    pub segments: Vec<u64>,
    /// ConsumeQueue files deleted.
    pub queue_files: usize,
    /// Where the CommitLog starts now.
    pub log_min_offset: u64,
}

#[derive(Debug, Clone)]
pub struct StoreRecovery {
    pub checkpoint: Option<Checkpoint>,
    pub commitlog: RecoveryReport,
    pub consume_queues: usize,
}

struct Inner {
    config: MessageStoreConfig,
    log: CommitLog,
    queues: RefCell<HashMap<String, HashMap<i32, Rc<ConsumeQueue>>>>,
    index: Option<KeyIndex>,
    checkpoint: RefCell<Option<CheckpointFile>>,
    /// One checkpoint at a time: the periodic one and a close may meet.
    checkpoint_turn: glommio::sync::Semaphore,
    last_checkpoint: Cell<Option<Checkpoint>>,
    closed: Cell<bool>,
}

/// A shard's store. Cloning gives another handle to it, on the same executor.
#[derive(Clone)]
pub struct MessageStore {
    inner: Rc<Inner>,
}

impl MessageStore {
    /// Opens (or creates) the store: loads the ConsumeQueues, recovers the CommitLog from the
    /// checkpoint (all of it without one) and appends the units of the records scanned. Spawns
    /// the periodic ConsumeQueue flush and checkpoint on the current glommio executor.
    pub async fn open(mut config: MessageStoreConfig) -> Result<(MessageStore, StoreRecovery), StoreError> {
        let started = Instant::now();
        config.commitlog.dir = config.dir.join("commitlog");
        if config.units_per_consume_queue_file == 0 {
            return Err(StoreError::Config("mappedFileSizeConsumeQueue must hold at least one unit".into()));
        }
        std::fs::create_dir_all(&config.dir).map_err(|e| StoreError::io("create", &config.dir, e))?;
        crate::segment::prime_iopoll_probe(&config.dir).await?;
        let (checkpoint_file, checkpoint) = CheckpointFile::open(&config.dir.join("checkpoint")).await?;
        let scan_from = checkpoint.map(|cp| cp.scan_from());
        let shard_bits = i64::from(config.commitlog.shard) << crate::commitlog::SHARD_SHIFT;
        let rebuild_from = shard_bits | scan_from.unwrap_or(0) as i64;
        let queues = load_queues(&config, rebuild_from).await?;
        let loaded = queues.values().map(HashMap::len).sum::<usize>();
        info!(dir = %config.dir.display(), queues = loaded, ?checkpoint, "ConsumeQueues loaded");

        let index = match config.index.enabled {
            true => Some(KeyIndex::open(config.dir.join("index"), config.index).await?),
            false => None,
        };

        let queues = RefCell::new(queues);
        let (log, report) = {
            let mut dispatch = |rec: crate::commitlog::RecoveredRecord<'_>| {
                let msg = rec.message;
                if let Some(index) = &index {
                    index_message(index, msg);
                }
                if !is_consumable(msg.sys_flag) {
                    return;
                }
                let unit = CqUnit {
                    physical_offset: msg.physical_offset,
                    size: rec.size as i32,
                    tag_code: tag_code(&config.delay_levels_ms, msg),
                };
                let mut queues = queues.borrow_mut();
                let queue = queue_entry(&config, &mut queues, msg.topic.as_str(), msg.queue_id);
                queue.put(msg.queue_offset, unit);
            };
            CommitLog::open(config.commitlog.clone(), scan_from, &mut dispatch).await?
        };
        if let Some(index) = &index {
            index.forget_from(log.global_offset(log.end()))?;
        }
        let recovery = StoreRecovery { checkpoint, commitlog: report, consume_queues: loaded };
        let store = MessageStore {
            inner: Rc::new(Inner {
                config,
                log,
                queues,
                index,
                checkpoint: RefCell::new(Some(checkpoint_file)),
                checkpoint_turn: glommio::sync::Semaphore::new(1),
                last_checkpoint: Cell::new(checkpoint),
                closed: Cell::new(false),
            }),
        };
        // Queues whose oldest units index segments that retention deleted start past them.
        if store.inner.log.min_offset() > 0 {
            store.drop_queue_units_below_log().await?;
        }
        // Recovery's units are on disk, and the checkpoint moves past the scan, before any put.
        store.checkpoint().await?;
        glommio::spawn_local(periodic_checkpoint(Rc::downgrade(&store.inner))).detach();
        info!(dir = %store.inner.config.dir.display(), took = ?started.elapsed(), "message store ready");
        Ok((store, recovery))
    }

    pub fn config(&self) -> &MessageStoreConfig {
        &self.inner.config
    }

    pub fn commitlog(&self) -> &CommitLog {
        &self.inner.log
    }

    /// Appends `msg` to its queue: sets its queue offset (0 for prepared and rolled-back
    /// transaction messages, which no queue serves), physical offset and store timestamp.
    pub fn put_message(&self, mut msg: StoredMessage) -> Result<PutMessage, StoreError> {
        if self.inner.closed.get() {
            return Err(StoreError::Closed);
        }
        if !topic::is_valid_name(msg.topic.as_str()) {
            return Err(StoreError::BadRecord(format!("invalid topic name {:?}", msg.topic.as_str())));
        }
        let consumable = is_consumable(msg.sys_flag);
        if consumable {
            park_if_delayed(&self.inner.config.delay_levels_ms, &mut msg);
        }
        let queue = consumable.then(|| self.queue_or_create(msg.topic.as_str(), msg.queue_id));
        msg.queue_offset = queue.as_ref().map_or(0, |q| q.max_offset());
        let durable = self.inner.log.append(&mut msg)?;
        if let Some(index) = &self.inner.index {
            index_message(index, &msg);
        }
        if let Some(queue) = queue {
            let result = durable.result();
            let unit = CqUnit {
                physical_offset: result.physical_offset,
                size: result.size as i32,
                tag_code: tag_code(&self.inner.config.delay_levels_ms, &msg),
            };
            queue.put(msg.queue_offset, unit);
        }
        Ok(PutMessage { durable, queue_offset: msg.queue_offset })
    }

    /// Messages of `(topic, queue_id)` from `offset` on, at most `max_count`, whose tag code
    /// `accept_tag` accepts; the batch is bounded as Java bounds it (bytes and count, smaller
    /// when the data comes from disk). Statuses and next offsets are Java's.
    pub async fn get_message(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
        max_count: usize,
        accept_tag: &dyn Fn(i64) -> bool,
    ) -> Result<GetMessageResult, StoreError> {
        let mut result = GetMessageResult {
            status: GetMessageStatus::NoMatchedLogicQueue,
            next_begin_offset: 0,
            min_offset: 0,
            max_offset: 0,
            messages: Vec::new(),
            queue_offsets: Vec::new(),
            buffer_total_size: 0,
        };
        let Some(queue) = self.queue(topic, queue_id) else {
            return Ok(result);
        };
        let (min, max) = (queue.min_offset(), queue.max_offset());
        result.min_offset = min;
        result.max_offset = max;
        if max == 0 {
            result.status = GetMessageStatus::NoMessageInQueue;
            return Ok(result);
        }
        if offset < min {
            result.status = GetMessageStatus::OffsetTooSmall;
            result.next_begin_offset = min;
            return Ok(result);
        }
        if offset == max {
            result.status = GetMessageStatus::OffsetOverflowOne;
            result.next_begin_offset = offset;
            return Ok(result);
        }
        if offset > max {
            result.status = GetMessageStatus::OffsetOverflowBadly;
            result.next_begin_offset = if min == 0 { min } else { max };
            return Ok(result);
        }
        // Java scans up to max(16000 bytes of units, the requested count) per call.
        let scan_limit = (16_000 / crate::consumequeue::CQ_UNIT_BYTES).max(max_count);
        let units = queue.units(offset, scan_limit).await?;
        if units.is_empty() {
            result.status = GetMessageStatus::OffsetFoundNull;
            result.next_begin_offset = offset;
            return Ok(result);
        }
        let log = &self.inner.log;
        let durable_end = log.durable_end();
        let config = &self.inner.config;
        result.status = GetMessageStatus::NoMatchedMessage;
        let mut scanned = 0i64;
        // What the batch takes: (queue offset, unit), read together afterwards.
        let mut selected: Vec<(i64, &CqUnit)> = Vec::new();
        let mut selected_bytes = 0usize;
        for unit in &units {
            if unit.is_hole() {
                scanned += 1;
                continue;
            }
            if CommitLog::local_part(unit.physical_offset) + unit.size as u64 > durable_end {
                if selected.is_empty() && scanned == 0 {
                    result.status = GetMessageStatus::OffsetOverflowOne; // not yet durable
                }
                break;
            }
            let in_memory = log.in_memory(unit.physical_offset);
            let (max_bytes, max_msgs) = if in_memory {
                (config.max_transfer_bytes_in_memory, config.max_transfer_count_in_memory)
            } else {
                (config.max_transfer_bytes_in_disk, config.max_transfer_count_in_disk)
            };
            let count = selected.len();
            if count > 0
                && (count >= max_count || selected_bytes + unit.size as usize > max_bytes || count > max_msgs - 1)
            {
                break;
            }
            scanned += 1;
            if !accept_tag(unit.tag_code) {
                continue;
            }
            selected.push((offset + scanned - 1, unit));
            selected_bytes += unit.size as usize;
        }
        result.next_begin_offset = offset + scanned;
        let wanted: Vec<(i64, usize)> = selected.iter().map(|(_, u)| (u.physical_offset, u.size as usize)).collect();
        match log.read_near(&wanted).await {
            Ok(records) => {
                for ((queue_offset, _), record) in selected.iter().zip(records) {
                    result.buffer_total_size += record.len();
                    result.queue_offsets.push(*queue_offset);
                    result.messages.push(record);
                    result.status = GetMessageStatus::Found;
                }
            }
            // Retention deleted some of them meanwhile: take what is left, one by one.
            Err(StoreError::OffsetNotFound(_)) => {
                for (queue_offset, unit) in selected {
                    match log.read(unit.physical_offset, unit.size as usize).await {
                        Ok(record) => {
                            result.buffer_total_size += record.len();
                            result.queue_offsets.push(queue_offset);
                            result.messages.push(record);
                            result.status = GetMessageStatus::Found;
                        }
                        Err(StoreError::OffsetNotFound(_)) => {
                            if result.messages.is_empty() {
                                result.status = GetMessageStatus::MessageWasRemoving;
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) => return Err(e),
        }
        Ok(result)
    }

    /// Retention: deletes CommitLog segments last written before `expired_before` (any age
    /// with `None`, for a nearly full disk), oldest first and at most `max_segments`, never one
    /// that recovery from the last checkpoint could need; then every ConsumeQueue's minimum
    /// offset moves past what is gone and its files that only index deleted data go too. With
    /// `keep_spares`, up to `spare_segments` of the segment files are kept for reuse instead.
    pub async fn delete_expired(
        &self,
        expired_before: Option<SystemTime>,
        max_segments: usize,
        keep_spares: bool,
    ) -> Result<Retention, StoreError> {
        let keep_from = self.inner.last_checkpoint.get().map_or(0, |cp| cp.scan_from());
        let log = &self.inner.log;
        let segments = log.delete_old_segments(keep_from, expired_before, max_segments, keep_spares).await?;
        let mut queue_files = 0;
        if !segments.is_empty() {
            queue_files = self.drop_queue_units_below_log().await?;
            if let Some(index) = &self.inner.index {
                index.drop_below(self.inner.log.global_offset(self.inner.log.min_offset()))?;
            }
        }
        Ok(Retention { segments, queue_files, log_min_offset: self.inner.log.min_offset() })
    }

    /// Deletes the CommitLog's spare segments (a disk filling up needs their space back).
    pub async fn drop_spare_segments(&self) -> Result<usize, StoreError> {
        self.inner.log.drop_spare_segments().await
    }

    /// Moves every ConsumeQueue's minimum past the start of the CommitLog.
    async fn drop_queue_units_below_log(&self) -> Result<usize, StoreError> {
        let min_physical = self.inner.log.global_offset(self.inner.log.min_offset());
        let queues: Vec<Rc<ConsumeQueue>> =
            self.inner.queues.borrow().values().flat_map(|q| q.values().cloned()).collect();
        let mut deleted = 0;
        for queue in queues {
            deleted += queue.drop_below(min_physical).await?;
        }
        Ok(deleted)
    }

    /// QUERY_MESSAGE: messages of `topic` whose key or unique key is `key`, stored within
    /// `begin..=end` (ms), the newest `max_num` (at most [`MAX_MSGS_NUM_BATCH`]) oldest first.
    /// Unlike Java, records are checked against the key, so hash neighbours never show up.
    pub async fn query_message(
        &self,
        topic: &str,
        key: &str,
        max_num: usize,
        begin: i64,
        end: i64,
    ) -> Result<QueryMessageResult, StoreError> {
        let Some(index) = &self.inner.index else { return Ok(QueryMessageResult::default()) };
        let max_num = max_num.min(MAX_MSGS_NUM_BATCH);
        // Extra hits cover hash neighbours and records not yet durable.
        let hits = index.query(topic, key, begin, end, max_num * 2 + 8).await?;
        let mut offsets = hits.physical_offsets;
        offsets.sort_unstable();
        offsets.dedup();
        let durable_end = self.inner.log.durable_end();
        let mut result = QueryMessageResult {
            messages: Vec::new(),
            index_last_update_timestamp: hits.last_update_timestamp,
            index_last_update_phyoffset: hits.last_update_physical_offset,
        };
        for offset in offsets.into_iter().rev() {
            if result.messages.len() >= max_num {
                break;
            }
            if CommitLog::local_part(offset) >= durable_end {
                continue;
            }
            let record = match self.inner.log.read_record(offset).await {
                Ok(record) => record,
                Err(StoreError::OffsetNotFound(_)) => continue, // deleted by retention meanwhile
                Err(e) => return Err(e),
            };
            let Ok((msg, _)) = StoredMessage::decode(&record, false) else { continue };
            if msg.topic.as_str() == topic && index_keys(&msg).any(|k| k == key) {
                result.messages.push(record);
            }
        }
        result.messages.reverse();
        Ok(result)
    }

    /// The next queue offset of `(topic, queue_id)`; 0 for an unknown queue.
    pub fn max_offset_in_queue(&self, topic: &str, queue_id: i32) -> i64 {
        self.queue(topic, queue_id).map_or(0, |q| q.max_offset())
    }

    /// The first queue offset still served; 0 for an unknown queue.
    pub fn min_offset_in_queue(&self, topic: &str, queue_id: i32) -> i64 {
        self.queue(topic, queue_id).map_or(0, |q| q.min_offset())
    }

    /// The queue's `(min, max)` offsets and up to `count` of its ConsumeQueue units from queue
    /// offset `from` (fewer at the end of a ConsumeQueue file); `None` for an unknown queue.
    pub async fn consume_queue_units(
        &self,
        topic: &str,
        queue_id: i32,
        from: i64,
        count: usize,
    ) -> Result<Option<(i64, i64, Vec<CqUnit>)>, StoreError> {
        let Some(queue) = self.queue(topic, queue_id) else { return Ok(None) };
        let units = queue.units(from, count).await?;
        Ok(Some((queue.min_offset(), queue.max_offset(), units)))
    }

    /// The stored record at `physical_offset` (offset message ids), from memory or disk.
    pub async fn look_message_by_offset(&self, physical_offset: i64) -> Result<Bytes, StoreError> {
        self.inner.log.read_record(physical_offset).await
    }

    /// Store timestamp of the message at queue offset `offset`; `None` if there is none.
    pub async fn message_store_timestamp(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
    ) -> Result<Option<i64>, StoreError> {
        let Some(queue) = self.queue(topic, queue_id) else { return Ok(None) };
        let Some(unit) = queue.unit(offset).await? else { return Ok(None) };
        self.unit_store_timestamp(&unit).await
    }

    /// Store timestamp of the queue's first message (GET_EARLIEST_MSG_STORETIME); `None` if
    /// the queue is empty.
    pub async fn earliest_message_time(&self, topic: &str, queue_id: i32) -> Result<Option<i64>, StoreError> {
        let min = self.min_offset_in_queue(topic, queue_id);
        self.message_store_timestamp(topic, queue_id, min).await
    }

    /// The queue offset whose store time is nearest `timestamp`, as Java's
    /// `getOffsetInQueueByTime` picks it (an exact match, else the closer neighbour); 0 for an
    /// empty or unknown queue.
    pub async fn offset_in_queue_by_time(&self, topic: &str, queue_id: i32, timestamp: i64) -> Result<i64, StoreError> {
        let Some(queue) = self.queue(topic, queue_id) else { return Ok(0) };
        let (mut low, mut high) = (queue.min_offset(), queue.max_offset() - 1);
        // Nearest neighbours seen so far: (queue offset, store time).
        let mut left: Option<(i64, i64)> = None;
        let mut right: Option<(i64, i64)> = None;
        while low <= high {
            let mid = low + (high - low) / 2;
            let Some(unit) = queue.unit(mid).await? else { break };
            let Some(stored) = self.unit_store_timestamp(&unit).await? else {
                low = mid + 1;
                continue;
            };
            match stored.cmp(&timestamp) {
                std::cmp::Ordering::Equal => return Ok(mid),
                std::cmp::Ordering::Greater => {
                    right = Some((mid, stored));
                    high = mid - 1;
                }
                std::cmp::Ordering::Less => {
                    left = Some((mid, stored));
                    low = mid + 1;
                }
            }
        }
        Ok(match (left, right) {
            (None, None) => 0,
            (None, Some((r, _))) => r,
            (Some((l, _)), None) => l,
            (Some((l, lt)), Some((r, rt))) => {
                if (timestamp - lt).abs() > (rt - timestamp).abs() {
                    r
                } else {
                    l
                }
            }
        })
    }

    /// Whether reading queue offset `offset` would go to disk (Java's
    /// `checkInDiskByConsumeOffset`); false when there is no such message.
    pub async fn is_in_disk(&self, topic: &str, queue_id: i32, offset: i64) -> Result<bool, StoreError> {
        let Some(queue) = self.queue(topic, queue_id) else { return Ok(false) };
        let Some(unit) = queue.unit(offset).await? else { return Ok(false) };
        Ok(!unit.is_hole() && !self.inner.log.in_memory(unit.physical_offset))
    }

    /// The last checkpoint stored.
    pub fn last_checkpoint(&self) -> Option<Checkpoint> {
        self.inner.last_checkpoint.get()
    }

    /// Writes every pending ConsumeQueue unit, makes the log durable up to the same point and
    /// stores the checkpoint.
    pub async fn checkpoint(&self) -> Result<Checkpoint, StoreError> {
        let _turn = self.inner.checkpoint_turn.acquire_permit(1).await.map_err(|_| StoreError::Closed)?;
        let Some(mut file) = self.inner.checkpoint.borrow_mut().take() else {
            return Err(StoreError::Closed);
        };
        let result = self.checkpoint_with(&mut file).await;
        *self.inner.checkpoint.borrow_mut() = Some(file);
        result
    }

    async fn checkpoint_with(&self, file: &mut CheckpointFile) -> Result<Checkpoint, StoreError> {
        let log = &self.inner.log;
        // Every record below `end` has its unit pending or written by now.
        let end = log.end();
        let queues: Vec<Rc<ConsumeQueue>> =
            self.inner.queues.borrow().values().flat_map(|qs| qs.values().cloned()).collect();
        for queue in queues {
            queue.flush().await?;
        }
        if log.synced_end() < end {
            log.flush().await?;
        }
        // Only after the records are written: an index entry that reached the disk before its
        // record could outlive it in a crash, and the index would then skip whatever record is
        // appended at that offset after recovery (its key never found).
        if let Some(index) = &self.inner.index {
            index.flush(log.global_offset(end)).await?;
        }
        let cp = Checkpoint { commitlog_end: end, consume_queue_end: end, index_end: end, timestamp_ms: now_ms() };
        if self.inner.last_checkpoint.get().is_some_and(|last| last.scan_from() == cp.scan_from()) {
            return Ok(cp);
        }
        file.store(&cp).await?;
        self.inner.last_checkpoint.set(Some(cp));
        Ok(cp)
    }

    /// Clean stop: refuses further puts, writes everything, stores the final checkpoint and
    /// stops the store's tasks.
    pub async fn close(&self) -> Result<Checkpoint, StoreError> {
        self.inner.closed.set(true);
        let cp = self.checkpoint().await?;
        self.inner.log.close().await?;
        info!(dir = %self.inner.config.dir.display(), end = cp.commitlog_end, "message store closed");
        Ok(cp)
    }

    fn queue(&self, topic: &str, queue_id: i32) -> Option<Rc<ConsumeQueue>> {
        self.inner.queues.borrow().get(topic).and_then(|qs| qs.get(&queue_id)).cloned()
    }

    fn queue_or_create(&self, topic: &str, queue_id: i32) -> Rc<ConsumeQueue> {
        let mut queues = self.inner.queues.borrow_mut();
        queue_entry(&self.inner.config, &mut queues, topic, queue_id).clone()
    }

    async fn unit_store_timestamp(&self, unit: &CqUnit) -> Result<Option<i64>, StoreError> {
        if unit.is_hole() {
            return Ok(None);
        }
        match self.inner.log.read(unit.physical_offset, unit.size as usize).await {
            Ok(record) => match StoredMessage::decode(&record, false) {
                Ok((msg, _)) => Ok(Some(msg.store_timestamp)),
                Err(e) => Err(StoreError::BadRecord(format!("at {}: {e}", unit.physical_offset))),
            },
            Err(StoreError::OffsetNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn queue_entry<'a>(
    config: &MessageStoreConfig,
    queues: &'a mut HashMap<String, HashMap<i32, Rc<ConsumeQueue>>>,
    topic: &str,
    queue_id: i32,
) -> &'a Rc<ConsumeQueue> {
    if !queues.contains_key(topic) {
        queues.insert(topic.to_owned(), HashMap::new());
    }
    let by_id = queues.get_mut(topic).expect("inserted above");
    by_id.entry(queue_id).or_insert_with(|| {
        let dir = config.dir.join("consumequeue").join(topic).join(queue_id.to_string());
        Rc::new(ConsumeQueue::new(dir, config.units_per_consume_queue_file))
    })
}

/// Loads every ConsumeQueue under `<dir>/consumequeue/<topic>/<queueId>`.
async fn load_queues(
    config: &MessageStoreConfig,
    rebuild_from: i64,
) -> Result<HashMap<String, HashMap<i32, Rc<ConsumeQueue>>>, StoreError> {
    let root = config.dir.join("consumequeue");
    let mut queues: HashMap<String, HashMap<i32, Rc<ConsumeQueue>>> = HashMap::new();
    let topics = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(queues),
        Err(e) => return Err(StoreError::io("list", &root, e)),
    };
    for topic_entry in topics {
        let topic_entry = topic_entry.map_err(|e| StoreError::io("list", &root, e))?;
        let Some(topic) = topic_entry.file_name().to_str().map(str::to_owned) else { continue };
        if !topic::is_valid_name(&topic) {
            warn!(path = %topic_entry.path().display(), "not a ConsumeQueue folder; ignored");
            continue;
        }
        let topic_dir = topic_entry.path();
        let ids = std::fs::read_dir(&topic_dir).map_err(|e| StoreError::io("list", &topic_dir, e))?;
        for id_entry in ids {
            let id_entry = id_entry.map_err(|e| StoreError::io("list", &topic_dir, e))?;
            let Some(queue_id) = id_entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
            let queue = ConsumeQueue::load(id_entry.path(), config.units_per_consume_queue_file, rebuild_from).await?;
            queues.entry(topic.clone()).or_default().insert(queue_id, Rc::new(queue));
        }
    }
    Ok(queues)
}

/// Files a stored record under its unique key and keys; rolled-back transaction messages are
/// left out, as in Java.
fn index_message(index: &KeyIndex, msg: &StoredMessage) {
    if sys_flag::transaction_type(msg.sys_flag) == sys_flag::TRANSACTION_ROLLBACK_TYPE {
        return;
    }
    index.put(msg.topic.as_str(), msg.physical_offset, msg.store_timestamp, index_keys(msg));
}

/// UNIQ_KEY, then each of KEYS (space-separated).
fn index_keys(msg: &StoredMessage) -> impl Iterator<Item = &str> {
    let unique = msg.property(properties::UNIQ_CLIENT_MESSAGE_ID_KEYIDX);
    let keys = msg.property(properties::KEYS).into_iter().flat_map(|k| k.split(properties::KEY_SEPARATOR));
    unique.into_iter().chain(keys).filter(|k| !k.is_empty())
}

/// Prepared and rolled-back transaction messages are stored but no queue serves them.
fn is_consumable(flag: i32) -> bool {
    matches!(sys_flag::transaction_type(flag), sys_flag::TRANSACTION_NOT_TYPE | sys_flag::TRANSACTION_COMMIT_TYPE)
}

/// A message with a delay level goes to SCHEDULE_TOPIC_XXXX, queue `level - 1`, its real topic
/// and queue in REAL_TOPIC / REAL_QID, until the broker's schedule delivers it (Java does this in
/// `CommitLog.putMessage`). Levels above the highest configured one mean the highest.
fn park_if_delayed(delay_levels_ms: &[i64], msg: &mut StoredMessage) {
    if msg.topic.as_str() == topic::SCHEDULE_TOPIC || delay_levels_ms.is_empty() {
        return;
    }
    let Some(level) = msg.property(properties::DELAY_TIME_LEVEL).and_then(|l| l.trim().parse::<usize>().ok()) else {
        return;
    };
    if level == 0 {
        return;
    }
    let level = level.min(delay_levels_ms.len());
    let mut props = properties::with(msg.properties.as_str(), properties::REAL_TOPIC, msg.topic.as_str());
    props = properties::with(&props, properties::REAL_QUEUE_ID, &msg.queue_id.to_string());
    props = properties::with(&props, properties::DELAY_TIME_LEVEL, &level.to_string());
    msg.properties = props.into();
    msg.topic = topic::SCHEDULE_TOPIC.into();
    msg.queue_id = level as i32 - 1;
}

/// The unit's tag code: the tag's hash, or for a parked delayed message its delivery time.
fn tag_code(delay_levels_ms: &[i64], msg: &StoredMessage) -> i64 {
    if msg.topic.as_str() == topic::SCHEDULE_TOPIC {
        if let Some(level) = msg.property(properties::DELAY_TIME_LEVEL).and_then(|l| l.parse::<usize>().ok()) {
            let level = level.min(delay_levels_ms.len());
            if level > 0 {
                return msg.store_timestamp + delay_levels_ms[level - 1];
            }
        }
    }
    msg.tags().map_or(0, tag_hash_code)
}

/// ConsumeQueue units and the checkpoint, every `flushIntervalConsumeQueue`.
async fn periodic_checkpoint(inner: std::rc::Weak<Inner>) {
    let mut failing = false;
    loop {
        let Some(interval) = inner.upgrade().map(|i| i.config.flush_interval_consume_queue) else { return };
        glommio::timer::sleep(interval).await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.closed.get() {
            return;
        }
        let store = MessageStore { inner };
        match store.checkpoint().await {
            Ok(_) if failing => {
                failing = false;
                info!(dir = %store.inner.config.dir.display(), "checkpoint stored again");
            }
            Ok(_) => {}
            Err(e) if !failing => {
                failing = true;
                error!(dir = %store.inner.config.dir.display(), error = %e, "checkpoint failed; recovery will scan further back");
            }
            Err(_) => {}
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
