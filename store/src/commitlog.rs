//! One shard's CommitLog: records appended in arrival order to fixed-size segments, written with
//! O_DIRECT in page-aligned batches, acknowledged once written (ASYNC_FLUSH) or synced
//! (SYNC_FLUSH).
//!
//! An append is synchronous up to the point where its offsets are known: it encodes the record
//! into the in-memory tail and returns a [`Durable`] future. A writer task gathers everything
//! appended since the last write into one aligned write (up to `max_write_bytes`, with up to
//! `writes_in_flight` writes outstanding), applies completions in log order and wakes the
//! appenders whose records are covered: many appends share one write (group commit). Under
//! SYNC_FLUSH segments are opened O_DSYNC, so a write completes once its data is durable: the
//! kernel flushes the disk's cache as each write ends, with no fdatasync round trip through the
//! executor in between, and the flushes of writes in flight overlap.
//!
//! A page that ends part-way is written padded with zeros and rewritten, whole, by a later
//! write. Two writes of one page never race: while the first is in flight, the next write
//! starts at the following page, and the rest of the busy page is rewritten once the first
//! completes. Appends are acknowledged in log order, so an acknowledged record never has a hole
//! before it. A failed write or sync fails every waiting append and makes the log read-only.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::io::DmaFile;
use tracing::{debug, error, info, warn};
use wire::message::{StoredMessage, BLANK_MAGIC_CODE, MESSAGE_MAGIC_CODE};

use crate::config::{CommitLogConfig, FlushDiskType};
use crate::error::StoreError;
use crate::segment::{self, align_down, align_up, FillPace};
use crate::tail::{Kind, TailCache};
use crate::PAGE;

/// TOTALSIZE + MAGICCODE of the blank marker that ends a segment.
const BLANK_LEN: u64 = 8;
/// Encoding buffer handed out in slices, one per record.
const CHUNK_BYTES: usize = 1 << 20;
/// Physical offsets carry the shard in bits 50–52, so that every offset stays below 2^53:
/// JavaScript clients (ali-ons) read offsets as doubles, exact only below that, and send them
/// back (consumer retries, lookups by id). Each shard addresses 1 PiB of CommitLog in its life.
pub const SHARD_SHIFT: u32 = 50;
/// Shards that fit in those bits.
pub const MAX_SHARDS: usize = 8;
const LOCAL_MASK: u64 = (1 << SHARD_SHIFT) - 1;

/// The shard a physical offset names.
pub fn shard_of(physical_offset: i64) -> usize {
    ((physical_offset as u64) >> SHARD_SHIFT) as usize
}
/// Recovery logs its progress every this many bytes scanned.
const PROGRESS_BYTES: u64 = 256 << 20;
/// A segment write or fdatasync taking this long is logged: it holds up every append behind it.
const SLOW_WRITE: Duration = Duration::from_millis(50);

/// Where an appended record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Offset as clients see it: the shard in bits 50–52 (see `SHARD_SHIFT`).
    pub physical_offset: i64,
    pub size: usize,
    pub store_timestamp: i64,
}

/// Completes when the appended record is durable as the flush mode promises.
#[must_use = "an append is acknowledged only once its Durable completes"]
pub struct Durable {
    slot: Rc<Slot>,
    result: AppendResult,
    timeout: Option<Duration>,
}

#[derive(Default)]
struct Slot {
    outcome: Cell<Option<Result<(), StoreError>>>,
    waker: Cell<Option<Waker>>,
}

impl Slot {
    fn complete(&self, outcome: Result<(), StoreError>) {
        self.outcome.set(Some(outcome));
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

struct SlotFuture(Rc<Slot>);

impl Future for SlotFuture {
    type Output = Result<(), StoreError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.0.outcome.take() {
            Some(outcome) => Poll::Ready(outcome),
            None => {
                self.0.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }
}

impl Durable {
    /// Where the record went, known before it is durable.
    pub fn result(&self) -> AppendResult {
        self.result
    }

    /// Waits until the record is durable. Under SYNC_FLUSH, waiting longer than
    /// `syncFlushTimeout` gives [`StoreError::FlushTimeout`] (the record may still become
    /// durable later, as with Java's FLUSH_DISK_TIMEOUT).
    pub async fn wait(self) -> Result<AppendResult, StoreError> {
        let result = self.result;
        let done = SlotFuture(self.slot);
        match self.timeout {
            None => done.await.map(|()| result),
            Some(limit) => {
                let timer = async move {
                    glommio::timer::sleep(limit).await;
                    Err(StoreError::FlushTimeout(limit))
                };
                futures_lite::future::or(done, timer).await.map(|()| result)
            }
        }
    }
}

struct Waiter {
    end: u64,
    slot: Rc<Slot>,
}

struct State {
    segments: BTreeMap<u64, Rc<DmaFile>>,
    /// Next record's local offset.
    append_pos: u64,
    cache: TailCache,
    chunk: BytesMut,
    /// A zero-length handle on each encoding buffer handed out, oldest first: once the
    /// oldest is the last handle (its records evicted and read), the buffer is used again.
    /// Fresh buffers cost a page fault and a page clear per 4 KiB (17 % of append time).
    chunks: VecDeque<Bytes>,
    /// End of the data handed to writes.
    issued_end: u64,
    /// The writes between `written` and `issued_end`, in log order.
    pieces: VecDeque<Piece>,
    /// Pages rewritten after the write in flight on them completed (a diagnostic).
    deferred_pages: u64,
    /// End of the data whose writes completed, in order.
    written: u64,
    /// End of the data known durable: covered by a completed fdatasync, or (SYNC_FLUSH) written
    /// through O_DSYNC.
    synced: u64,
    /// Segments written since their last sync.
    unsynced: BTreeSet<u64>,
    waiters: VecDeque<Waiter>,
    failed: Option<String>,
    /// Segments retention kept for reuse (see [`CommitLogConfig::spare_segments`]), oldest first.
    spares: VecDeque<Rc<DmaFile>>,
    /// Segments made from spares since open.
    reused: u64,
}

struct Inner {
    config: CommitLogConfig,
    state: RefCell<State>,
    wake_writer: LocalSender<()>,
    wake_allocator: LocalSender<()>,
    /// One fdatasync at a time: a sync that found nothing to do while another was still in
    /// flight would otherwise call data durable before it is.
    sync_turn: glommio::sync::Semaphore,
    /// Set by `close`: tasks finish what is pending and exit.
    closed: Cell<bool>,
}

/// A shard's CommitLog. Cloning gives another handle to the same log, on the same executor.
#[derive(Clone)]
pub struct CommitLog {
    inner: Rc<Inner>,
}

/// One recovered record, as recovery reports it to whoever rebuilds indexes.
pub struct RecoveredRecord<'a> {
    pub message: &'a StoredMessage,
    pub size: usize,
}

/// How recovery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Local offset where the log ends (the next append goes here).
    pub end: u64,
    pub records: u64,
    pub bytes_scanned: u64,
    /// Bytes after the last valid record that were discarded (a torn or corrupt tail).
    pub discarded_tail: bool,
    pub elapsed: Duration,
}

impl CommitLog {
    /// Opens (or creates) the log in `config.dir`, recovering its end by a scan that starts at
    /// `scan_from` (a record boundary known to be durable, from a checkpoint) or, without one,
    /// at the first segment; `on_record` sees every record scanned, in order. Spawns the
    /// writer, allocator and (ASYNC_FLUSH) periodic flush tasks on the current glommio executor.
    pub async fn open(
        config: CommitLogConfig,
        scan_from: Option<u64>,
        mut on_record: impl FnMut(RecoveredRecord<'_>),
    ) -> Result<(CommitLog, RecoveryReport), StoreError> {
        config.validate()?;
        std::fs::create_dir_all(&config.dir).map_err(|e| StoreError::io("create", &config.dir, e))?;
        segment::prime_iopoll_probe(&config.dir).await?;
        let bases = segment::list(&config.dir)?;
        let mut segments = BTreeMap::new();
        for base in &bases {
            if base % config.segment_bytes != 0 {
                return Err(StoreError::Config(format!(
                    "segment {} does not start at a multiple of mappedFileSizeCommitLog = {}",
                    segment::file_name(*base),
                    config.segment_bytes
                )));
            }
            segments.insert(*base, segment::open(&config.dir, *base, config.dsync()).await?);
        }
        let mut spares = open_spares(&config).await?;
        let (end, report) = recover(&config, &mut segments, scan_from, &mut on_record).await?;
        // The segment appends go to next is ready before the log is: the first sends of a new
        // store would otherwise wait for it to be created and filled (a second for 1 GiB).
        let current = end / config.segment_bytes * config.segment_bytes;
        let mut reused_at_open = false;
        if let std::collections::btree_map::Entry::Vacant(slot) = segments.entry(current) {
            let started = Instant::now();
            let spare = take_spare(&mut spares);
            let reused = spare.is_some();
            match new_segment(&config, current, spare, |_| FillPace::FarBehind).await {
                Ok(file) => {
                    slot.insert(file);
                    reused_at_open = reused;
                    info!(segment = %segment::file_name(current), reused, took = ?started.elapsed(), "CommitLog segment ready");
                }
                // A full disk must not keep the store from opening to serve what it holds: the
                // allocator tries again and turns the log read-only if it cannot either.
                Err(e) => warn!(error = %e, "first CommitLog segment not created at open"),
            }
        }

        let (wake_writer, writer_rx) = local_channel::new_bounded(1);
        let (wake_allocator, allocator_rx) = local_channel::new_bounded(1);
        let mut cache = TailCache::default();
        // The page holding the end is rewritten whole by the next write: keep its prefix.
        let page = align_down(end);
        if page < end {
            let file = &segments[&(end / config.segment_bytes * config.segment_bytes)];
            let pos = page % config.segment_bytes;
            let prefix = read_exact(file, pos, (end - page) as usize).await.map_err(|e| io_err("read", &config, e))?;
            cache.push(page, prefix, Kind::Filler);
        }
        let state = State {
            segments,
            append_pos: end,
            cache,
            chunk: BytesMut::new(),
            chunks: VecDeque::new(),
            issued_end: end,
            pieces: VecDeque::new(),
            deferred_pages: 0,
            written: end,
            synced: end,
            unsynced: BTreeSet::new(),
            waiters: VecDeque::new(),
            failed: None,
            spares,
            reused: u64::from(reused_at_open),
        };
        let log = CommitLog {
            inner: Rc::new(Inner {
                config,
                state: RefCell::new(state),
                wake_writer,
                wake_allocator,
                sync_turn: glommio::sync::Semaphore::new(1),
                closed: Cell::new(false),
            }),
        };
        glommio::spawn_local(writer(log.inner.clone(), writer_rx)).detach();
        glommio::spawn_local(allocator(log.inner.clone(), allocator_rx)).detach();
        if log.inner.config.flush_disk_type == FlushDiskType::AsyncFlush {
            glommio::spawn_local(periodic_flush(Rc::downgrade(&log.inner))).detach();
        }
        let _ = log.inner.wake_allocator.try_send(());
        Ok((log, report))
    }

    pub fn config(&self) -> &CommitLogConfig {
        &self.inner.config
    }

    /// Local offset of the next record.
    pub fn end(&self) -> u64 {
        self.inner.state.borrow().append_pos
    }

    /// Local offset up to which every record is durable per the flush mode.
    pub fn durable_end(&self) -> u64 {
        let st = self.inner.state.borrow();
        match self.inner.config.flush_disk_type {
            FlushDiskType::AsyncFlush => st.written,
            FlushDiskType::SyncFlush => st.synced,
        }
    }

    /// Local offset up to which the log is durable against power loss (fdatasync or O_DSYNC).
    pub fn synced_end(&self) -> u64 {
        self.inner.state.borrow().synced
    }

    /// How many times a write started past a page still being written, leaving that page's
    /// rest to a rewrite once the first write completed.
    pub fn deferred_page_rewrites(&self) -> u64 {
        self.inner.state.borrow().deferred_pages
    }

    /// Bytes of the log tail held in memory.
    pub fn cached_bytes(&self) -> usize {
        self.inner.state.borrow().cache.cached_bytes()
    }

    /// Whether the record at `physical_offset` is served from memory (no disk read).
    pub fn in_memory(&self, physical_offset: i64) -> bool {
        let local = (physical_offset as u64) & LOCAL_MASK;
        self.inner.state.borrow().cache.cached_from().is_some_and(|from| local >= from)
    }

    /// The local offset where the oldest segment starts.
    pub fn min_offset(&self) -> u64 {
        self.inner.state.borrow().segments.keys().next().copied().unwrap_or(0)
    }

    /// The offset clients see for local offset `local`.
    pub fn global_offset(&self, local: u64) -> i64 {
        ((u64::from(self.inner.config.shard) << SHARD_SHIFT) | local) as i64
    }

    /// The local part of an offset clients see.
    pub fn local_part(physical_offset: i64) -> u64 {
        (physical_offset as u64) & LOCAL_MASK
    }

    /// Why the log is read-only, if it is.
    pub fn failure(&self) -> Option<String> {
        self.inner.state.borrow().failed.clone()
    }

    /// Deletes the oldest segments, at most `max` of them, that lie wholly below `keep_from`
    /// (a local offset recovery may still start from) and were last written before
    /// `expired_before` (any age when it is `None`: the disk is nearly full). Returns the bases
    /// deleted. A read still holding a deleted segment finishes; later reads of it get
    /// `OffsetNotFound`.
    pub async fn delete_old_segments(
        &self,
        keep_from: u64,
        expired_before: Option<SystemTime>,
        max: usize,
        keep_spares: bool,
    ) -> Result<Vec<u64>, StoreError> {
        let size = self.inner.config.segment_bytes;
        let keep_from = keep_from.min(self.synced_end());
        let candidates: Vec<u64> = {
            let st = self.inner.state.borrow();
            st.segments.keys().copied().take_while(|base| base + size <= keep_from).take(max).collect()
        };
        let mut deleted = Vec::new();
        for base in candidates {
            let path = segment::path(&self.inner.config.dir, base);
            if let Some(before) = expired_before {
                // Java's rule: the file's last modification, which is its last write.
                let modified = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .map_err(|e| StoreError::io("stat", &path, e))?;
                if modified >= before {
                    break;
                }
            }
            let Some(file) = self.inner.state.borrow_mut().segments.remove(&base) else { break };
            let spare = keep_spares && self.inner.state.borrow().spares.len() < self.inner.config.spare_segments;
            if spare {
                let to = segment::spare_path(&self.inner.config.dir, base);
                file.rename(&to).await.map_err(|e| StoreError::io("rename", &path, e))?;
                self.inner.state.borrow_mut().spares.push_back(file);
                info!(segment = %segment::file_name(base), "CommitLog segment deleted (retention), its file kept for reuse");
            } else {
                file.remove().await.map_err(|e| StoreError::io("remove", &path, e))?;
                info!(segment = %segment::file_name(base), "CommitLog segment deleted (retention)");
            }
            deleted.push(base);
        }
        if !deleted.is_empty() {
            segment::sync_dir(&self.inner.config.dir).await?;
        }
        Ok(deleted)
    }

    /// Deletes the spare segments, giving their space back to the filesystem; returns how many.
    pub async fn drop_spare_segments(&self) -> Result<usize, StoreError> {
        let spares: Vec<Rc<DmaFile>> = self.inner.state.borrow_mut().spares.drain(..).collect();
        for file in &spares {
            file.remove().await.map_err(|e| io_err("remove", &self.inner.config, e))?;
        }
        if !spares.is_empty() {
            segment::sync_dir(&self.inner.config.dir).await?;
            info!(dir = %self.inner.config.dir.display(), spares = spares.len(), "spare CommitLog segments deleted");
        }
        Ok(spares.len())
    }

    /// Segments kept for reuse.
    pub fn spare_segments(&self) -> usize {
        self.inner.state.borrow().spares.len()
    }

    /// Segments made from spares since the log was opened (a diagnostic).
    pub fn reused_segments(&self) -> u64 {
        self.inner.state.borrow().reused
    }

    /// The largest record that fits in a segment.
    pub fn max_record_bytes(&self) -> usize {
        (self.inner.config.segment_bytes - BLANK_LEN) as usize
    }

    /// Appends `msg`, setting its physical offset and store timestamp (queue id and queue offset
    /// are the caller's). Returns once the record has its place; await the [`Durable`] for the
    /// acknowledgement.
    pub fn append(&self, msg: &mut StoredMessage) -> Result<Durable, StoreError> {
        let config = &self.inner.config;
        if self.inner.closed.get() {
            return Err(StoreError::Closed);
        }
        let mut st = self.inner.state.borrow_mut();
        if let Some(reason) = &st.failed {
            return Err(StoreError::ReadOnly(reason.clone()));
        }
        let size = msg.encoded_len();
        if size as u64 + BLANK_LEN > config.segment_bytes {
            return Err(StoreError::RecordTooLarge { size, max: self.max_record_bytes() });
        }
        let segment_end = (st.append_pos / config.segment_bytes + 1) * config.segment_bytes;
        if st.append_pos + size as u64 + BLANK_LEN > segment_end {
            // The record does not fit: a blank marker ends this segment, as in RocketMQ.
            let remaining = segment_end - st.append_pos;
            let mut blank = BytesMut::with_capacity(BLANK_LEN as usize);
            blank.put_i32(remaining as i32);
            blank.put_u32(BLANK_MAGIC_CODE);
            let at = st.append_pos;
            st.cache.push(at, blank.freeze(), Kind::Filler);
            st.append_pos = segment_end;
            let _ = self.inner.wake_allocator.try_send(());
        }
        let at = st.append_pos;
        if at + size as u64 + BLANK_LEN > LOCAL_MASK {
            return Err(StoreError::ReadOnly(format!(
                "the CommitLog of shard {} has used its whole address space (1 PiB)",
                config.shard
            )));
        }
        msg.physical_offset = ((u64::from(config.shard) << SHARD_SHIFT) | at) as i64;
        msg.store_timestamp = now_ms();
        if st.chunk.capacity() < size {
            st.chunk = next_chunk(&mut st.chunks, size);
        }
        msg.encode(&mut st.chunk).map_err(|e| StoreError::BadRecord(e.to_string()))?;
        let record = st.chunk.split().freeze();
        debug_assert_eq!(record.len(), size);
        st.cache.push(at, record, Kind::Record);
        st.append_pos = at + size as u64;
        let slot = Rc::new(Slot::default());
        let end = st.append_pos;
        st.waiters.push_back(Waiter { end, slot: slot.clone() });
        let _ = self.inner.wake_writer.try_send(());
        let timeout = (config.flush_disk_type == FlushDiskType::SyncFlush).then_some(config.sync_flush_timeout);
        let result = AppendResult { physical_offset: msg.physical_offset, size, store_timestamp: msg.store_timestamp };
        Ok(Durable { slot, result, timeout })
    }

    /// The record of `size` bytes at `physical_offset` (as clients see it), from the tail cache
    /// or the disk.
    pub async fn read(&self, physical_offset: i64, size: usize) -> Result<Bytes, StoreError> {
        let local = self.local_offset(physical_offset)?;
        let file = {
            let st = self.inner.state.borrow();
            if local + size as u64 > st.append_pos {
                return Err(StoreError::OffsetNotFound(physical_offset as u64));
            }
            if let Some(bytes) = st.cache.record_at(local) {
                return if bytes.len() == size {
                    Ok(bytes)
                } else {
                    Err(StoreError::BadRecord(format!("record at {local} is {} bytes, not {size}", bytes.len())))
                };
            }
            let base = local / self.inner.config.segment_bytes * self.inner.config.segment_bytes;
            st.segments.get(&base).cloned().ok_or(StoreError::OffsetNotFound(physical_offset as u64))?
        };
        let pos = local % self.inner.config.segment_bytes;
        read_exact(&file, pos, size).await.map_err(|e| io_err("read", &self.inner.config, e))
    }

    /// Records `(physical offset, size)`, ascending: those close together in one segment are
    /// read from disk with one read. A consumer catching up reads one queue's records, which
    /// lie between other queues' at a short stride, so a pull's batch is usually one read
    /// instead of one per record.
    pub async fn read_near(&self, records: &[(i64, usize)]) -> Result<Vec<Bytes>, StoreError> {
        let segment_bytes = self.inner.config.segment_bytes;
        let mut out = Vec::with_capacity(records.len());
        let mut rest = records;
        while let Some(&(first, first_size)) = rest.first() {
            let start = self.local_offset(first)?;
            let cached = self.inner.state.borrow().cache.record_at(start).is_some();
            let group = if cached {
                1
            } else {
                let segment = start / segment_bytes;
                rest.iter()
                    .take_while(|(offset, size)| {
                        let local = CommitLog::local_part(*offset);
                        local / segment_bytes == segment && local + *size as u64 <= start + NEAR_READ_BYTES
                    })
                    .count()
                    .max(1)
            };
            if group == 1 {
                out.push(self.read(first, first_size).await?);
            } else {
                let (last, last_size) = rest[group - 1];
                let span = (CommitLog::local_part(last) + last_size as u64 - start) as usize;
                let bytes = self.read(first, span).await?;
                for &(offset, size) in &rest[..group] {
                    let at = (CommitLog::local_part(offset) - start) as usize;
                    out.push(bytes.slice(at..at + size));
                }
            }
            rest = &rest[group..];
        }
        Ok(out)
    }

    /// The record at `physical_offset` when its size is not known (lookups by message id).
    pub async fn read_record(&self, physical_offset: i64) -> Result<Bytes, StoreError> {
        let local = self.local_offset(physical_offset)?;
        if let Some(bytes) = self.inner.state.borrow().cache.record_at(local) {
            return Ok(bytes);
        }
        let head = self.read(physical_offset, 8).await?;
        let size = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let magic = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if magic != MESSAGE_MAGIC_CODE || size <= 8 {
            return Err(StoreError::OffsetNotFound(physical_offset as u64));
        }
        self.read(physical_offset, size as usize).await
    }

    fn local_offset(&self, physical_offset: i64) -> Result<u64, StoreError> {
        let raw = physical_offset as u64;
        if physical_offset < 0 || raw >> SHARD_SHIFT != u64::from(self.inner.config.shard) {
            return Err(StoreError::OffsetNotFound(raw));
        }
        Ok(raw & LOCAL_MASK)
    }

    /// Waits until everything appended so far is written and synced (clean shutdown).
    pub async fn flush(&self) -> Result<(), StoreError> {
        let target = self.end();
        loop {
            let (written, failed) = {
                let st = self.inner.state.borrow();
                (st.written, st.failed.clone())
            };
            if let Some(reason) = failed {
                return Err(StoreError::ReadOnly(reason));
            }
            if written >= target {
                break;
            }
            let _ = self.inner.wake_writer.try_send(());
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        sync(&self.inner).await
    }

    /// Flushes everything appended, then stops the log's tasks; later appends fail with
    /// [`StoreError::Closed`]. Reads keep working.
    pub async fn close(&self) -> Result<(), StoreError> {
        let flushed = self.flush().await;
        self.inner.closed.set(true);
        let _ = self.inner.wake_writer.try_send(());
        let _ = self.inner.wake_allocator.try_send(());
        flushed
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn io_err(op: &'static str, config: &CommitLogConfig, e: impl std::fmt::Display) -> StoreError {
    StoreError::io(op, &config.dir, e)
}

/// An encoding buffer of at least `size` bytes: the oldest one no longer referenced, or a new one.
fn next_chunk(chunks: &mut VecDeque<Bytes>, size: usize) -> BytesMut {
    let mut chunk = None;
    if chunks.front().is_some_and(Bytes::is_unique) {
        if let Some(Ok(reused)) = chunks.pop_front().map(Bytes::try_into_mut) {
            chunk = Some(reused).filter(|c| c.capacity() >= size);
        }
    }
    let mut chunk = chunk.unwrap_or_else(|| BytesMut::with_capacity(CHUNK_BYTES.max(size)));
    chunks.push_back(chunk.split_to(0).freeze());
    chunk
}

/// The largest span `read_near` reads at once.
const NEAR_READ_BYTES: u64 = 256 * 1024;

async fn read_exact(file: &DmaFile, pos: u64, size: usize) -> Result<Bytes, String> {
    let got = file.read_at(pos, size).await.map_err(|e| e.to_string())?;
    if got.len() < size {
        return Err(format!("short read: {} of {size} bytes at {pos}", got.len()));
    }
    Ok(Bytes::copy_from_slice(&got[..size]))
}

/// A byte range of the log, `[start, end)`, made durable by one write. Pieces are kept in
/// log order and together cover `[written, issued_end)`.
struct Piece {
    start: u64,
    end: u64,
    state: PieceState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PieceState {
    /// The rest of a page whose first part an earlier piece is still writing. Two writes of one
    /// page in flight at once may land in either order, so this one waits for that write to
    /// complete and then rewrites the page whole; the writes after it need not wait.
    Deferred,
    InFlight,
    Done,
}

/// A write ready to go: whole pages of the log from local offset `from`, in `buf`.
struct Plan {
    file: Rc<DmaFile>,
    base: u64,
    from: u64,
    buf: glommio::io::DmaBuffer,
}

impl Plan {
    /// The pages covering `[start, end)`, filled from the tail cache (`end` within the segment).
    fn new(st: &State, segment_bytes: u64, start: u64, end: u64) -> Option<Plan> {
        let base = start / segment_bytes * segment_bytes;
        let file = st.segments.get(&base)?.clone();
        let from = align_down(start);
        let mut buf = file.alloc_dma_buffer((align_up(end) - from) as usize);
        st.cache.copy_range(from, buf.as_bytes_mut());
        Some(Plan { file, base, from, buf })
    }
}

/// The next write, if one may start now, with the pieces it adds (a deferred page first).
fn plan_write(inner: &Inner, st: &mut State) -> Option<(u64, Plan)> {
    let config = &inner.config;
    if st.failed.is_some() {
        return None;
    }
    let in_flight = st.pieces.iter().filter(|p| p.state == PieceState::InFlight).count();
    if in_flight >= config.writes_in_flight {
        return None;
    }
    // A deferred page whose earlier write completed goes first: later data waits on it.
    let mut previous_done = true;
    for (i, piece) in st.pieces.iter().enumerate() {
        if piece.state == PieceState::Deferred && previous_done {
            let plan = Plan::new(st, config.segment_bytes, piece.start, piece.end)?;
            st.pieces[i].state = PieceState::InFlight;
            return Some((st.pieces[i].start, plan));
        }
        previous_done = piece.state == PieceState::Done;
    }
    let mut start = st.issued_end;
    if start >= st.append_pos {
        return None;
    }
    // Bounded so that recovery's discard window covers whatever a crash leaves in flight.
    let limit = st.written + (config.writes_in_flight * config.max_write_bytes) as u64;
    let page_busy = !start.is_multiple_of(PAGE as u64) && st.pieces.back().is_some_and(|p| p.state != PieceState::Done);
    let mut deferred = None;
    if page_busy {
        let next_page = align_up(start);
        // Worth a write now: a sixteenth of the largest write (64 KiB by default) past the page.
        let worth = (config.max_write_bytes as u64 / 16).max(PAGE as u64);
        if st.append_pos < next_page + worth || next_page >= limit {
            // Little past the busy page: one write after it completes carries it all, instead
            // of a small write now plus a rewrite of the page (each write costs ~10 µs of
            // kernel time; in a closed loop of 64 producers this was 6 % more CPU a message).
            return None;
        }
        deferred = Some(Piece { start, end: next_page, state: PieceState::Deferred });
        start = next_page;
    }
    let base = start / config.segment_bytes * config.segment_bytes;
    let end = st
        .append_pos
        .min(base + config.segment_bytes)
        .min(align_down(start) + config.max_write_bytes as u64)
        .min(limit);
    if end <= start {
        return None;
    }
    let plan = Plan::new(st, config.segment_bytes, start, end)?;
    if let Some(piece) = deferred {
        st.pieces.push_back(piece);
        st.deferred_pages += 1;
    }
    st.pieces.push_back(Piece { start, end, state: PieceState::InFlight });
    st.issued_end = end;
    Some((start, plan))
}

/// Issues writes while the pipeline has room, and applies completed ones in log order.
async fn writer(inner: Rc<Inner>, wake: LocalReceiver<()>) {
    loop {
        loop {
            let planned = plan_write(&inner, &mut inner.state.borrow_mut());
            let Some((start, Plan { file, base, from, buf })) = planned else { break };
            let inner = inner.clone();
            glommio::spawn_local(async move {
                let len = buf.len();
                let began = Instant::now();
                let written = file.write_at(buf, from - base).await;
                let took = began.elapsed();
                if took >= SLOW_WRITE {
                    // The disk, not the broker: appends waiting on it see this in their latency.
                    warn!(dir = %inner.config.dir.display(), offset = from, bytes = len, ?took, "CommitLog write was slow");
                }
                match segment::whole_write(written, len, from) {
                    Ok(()) => complete_piece(&inner, start, base),
                    Err(reason) => fail(&inner, format!("CommitLog write failed: {reason}")),
                }
            })
            .detach();
        }
        let idle = {
            let st = inner.state.borrow();
            st.pieces.is_empty() && st.issued_end >= st.append_pos
        };
        if inner.state.borrow().failed.is_some() || inner.closed.get() && idle {
            return;
        }
        if wake.recv().await.is_none() {
            return;
        }
    }
}

/// Marks the piece at `start` written, moves `written` over the pieces complete in log order,
/// and acknowledges what is now durable. (A failed write fails the log at once instead.)
fn complete_piece(inner: &Inner, start: u64, base: u64) {
    {
        let mut st = inner.state.borrow_mut();
        if inner.config.flush_disk_type == FlushDiskType::AsyncFlush {
            st.unsynced.insert(base);
        }
        if let Some(piece) = st.pieces.iter_mut().find(|p| p.start == start) {
            piece.state = PieceState::Done;
        }
        while let Some(end) = st.pieces.front().filter(|p| p.state == PieceState::Done).map(|p| p.end) {
            st.written = end;
            // Under SYNC_FLUSH written through O_DSYNC: durable on completion.
            if inner.config.flush_disk_type == FlushDiskType::SyncFlush {
                st.synced = end;
            }
            st.pieces.pop_front();
        }
    }
    acknowledge(inner);
    let _ = inner.wake_writer.try_send(());
}

/// Wakes the appends whose records are durable, and trims the cache.
fn acknowledge(inner: &Inner) {
    let mut st = inner.state.borrow_mut();
    let durable = match inner.config.flush_disk_type {
        FlushDiskType::AsyncFlush => st.written,
        FlushDiskType::SyncFlush => st.synced,
    };
    while st.waiters.front().is_some_and(|w| w.end <= durable) {
        if let Some(w) = st.waiters.pop_front() {
            w.slot.complete(Ok(()));
        }
    }
    let keep_from = align_down(st.written);
    let limit = inner.config.cache_bytes;
    st.cache.evict(limit, keep_from);
}

/// fdatasync of every segment written since its last sync.
async fn sync(inner: &Inner) -> Result<(), StoreError> {
    let _turn = inner.sync_turn.acquire_permit(1).await.map_err(|e| io_err("fdatasync", &inner.config, e))?;
    let (target, files) = {
        let mut st = inner.state.borrow_mut();
        let bases = std::mem::take(&mut st.unsynced);
        let files: Vec<Rc<DmaFile>> = bases.iter().filter_map(|b| st.segments.get(b).cloned()).collect();
        (st.written, files)
    };
    let began = Instant::now();
    for file in &files {
        file.fdatasync().await.map_err(|e| io_err("fdatasync", &inner.config, e))?;
    }
    let took = began.elapsed();
    if took >= SLOW_WRITE {
        warn!(dir = %inner.config.dir.display(), segments = files.len(), ?took, "CommitLog fdatasync was slow");
    }
    let mut st = inner.state.borrow_mut();
    st.synced = st.synced.max(target);
    Ok(())
}

fn fail(inner: &Inner, reason: String) {
    error!(dir = %inner.config.dir.display(), %reason, "CommitLog is now read-only");
    let mut st = inner.state.borrow_mut();
    if st.failed.is_none() {
        st.failed = Some(reason.clone());
    }
    for w in st.waiters.drain(..) {
        w.slot.complete(Err(StoreError::ReadOnly(reason.clone())));
    }
    // The writer sees the failure and stops.
    let _ = inner.wake_writer.try_send(());
}

/// Keeps the segment being appended to and the next one created ahead of need.
async fn allocator(inner: Rc<Inner>, wake: LocalReceiver<()>) {
    loop {
        let missing = {
            let st = inner.state.borrow();
            let size = inner.config.segment_bytes;
            // Every segment from the one being written to one past the one being appended to.
            let first = st.issued_end / size;
            let last = st.append_pos / size + 1;
            (first..=last).map(|i| i * size).find(|base| !st.segments.contains_key(base))
        };
        match missing {
            Some(base) => {
                let started = Instant::now();
                let config = &inner.config;
                let size = config.segment_bytes;
                let pace = |filled: u64| {
                    let log_progress = inner.state.borrow().append_pos.saturating_sub(base.saturating_sub(size));
                    fill_pace(filled, log_progress, size)
                };
                let spare = take_spare(&mut inner.state.borrow_mut().spares);
                let reused = spare.is_some();
                match new_segment(config, base, spare, pace).await {
                    Ok(file) => {
                        let mut st = inner.state.borrow_mut();
                        st.segments.insert(base, file);
                        st.reused += u64::from(reused);
                        drop(st);
                        info!(segment = %segment::file_name(base), reused, took = ?started.elapsed(), "CommitLog segment ready");
                        let _ = inner.wake_writer.try_send(());
                    }
                    Err(e) => {
                        fail(&inner, format!("cannot create CommitLog segment: {e}"));
                        return;
                    }
                }
            }
            None => {
                if inner.closed.get() || wake.recv().await.is_none() {
                    return;
                }
            }
        }
    }
}

/// The oldest spare no read still holds. A read in flight on a spare (it began before retention)
/// must not see the spare overwritten as another segment, so such a spare waits.
fn take_spare(spares: &mut VecDeque<Rc<DmaFile>>) -> Option<Rc<DmaFile>> {
    let i = spares.iter().position(|file| Rc::strong_count(file) == 1)?;
    spares.remove(i)
}

/// The segment starting at `base`: `spare` renamed, or a new file created and filled.
async fn new_segment(
    config: &CommitLogConfig,
    base: u64,
    spare: Option<Rc<DmaFile>>,
    pace: impl Fn(u64) -> FillPace,
) -> Result<Rc<DmaFile>, StoreError> {
    match spare {
        Some(file) => {
            segment::reuse(&config.dir, &file, base).await?;
            Ok(file)
        }
        None => {
            let size = config.segment_bytes;
            segment::create(&config.dir, base, size, config.zero_fill_segments, config.dsync(), pace).await
        }
    }
}

/// The spare segments left in the folder, opened; those of another size (the segment size was
/// changed) and those beyond `spare_segments` are deleted.
async fn open_spares(config: &CommitLogConfig) -> Result<VecDeque<Rc<DmaFile>>, StoreError> {
    let mut spares = VecDeque::new();
    for path in segment::list_spares(&config.dir)? {
        let len = std::fs::metadata(&path).map_err(|e| StoreError::io("stat", &path, e))?.len();
        if len != config.segment_bytes || spares.len() >= config.spare_segments {
            std::fs::remove_file(&path).map_err(|e| StoreError::io("remove", &path, e))?;
            continue;
        }
        spares.push_back(segment::open_path(&path, config.dsync()).await?);
    }
    Ok(spares)
}

/// How the zero-fill of the next segment, `filled` bytes in, stands while the log is
/// `log_progress` bytes into the segment before it. On schedule, the fill is a tenth further
/// into its segment than the log is into the previous one (plus a head start), so it ends when
/// the log is about 85 % there, spread evenly instead of in a burst that delays appends. At a
/// moderate rate the fill then keeps to its resting pace. (Kept at twice the log's progress, a
/// fill at 47 MB/s of appends kept falling behind its schedule and writing back to back: e2e at
/// 43k msg/s had p99.9 of 3.8–22 ms against 3.5–9.5 ms at a tenth ahead, 3 interleaved pairs.)
fn fill_pace(filled: u64, log_progress: u64, segment_bytes: u64) -> FillPace {
    if filled >= (log_progress + log_progress / 10 + segment_bytes / 16).min(segment_bytes) {
        FillPace::Ahead
    } else if filled >= log_progress {
        FillPace::Behind
    } else {
        FillPace::FarBehind
    }
}

/// ASYNC_FLUSH: fdatasync every `flushIntervalCommitLog`.
async fn periodic_flush(inner: std::rc::Weak<Inner>) {
    loop {
        let Some(interval) = inner.upgrade().map(|i| i.config.flush_interval) else { return };
        glommio::timer::sleep(interval).await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.closed.get() {
            return;
        }
        let pending = {
            let st = inner.state.borrow();
            st.failed.is_none() && st.written > st.synced
        };
        if pending {
            if let Err(e) = sync(&inner).await {
                fail(&inner, e.to_string());
                return;
            }
        }
    }
}

/// Finds the end of the log: scans from `scan_from` (a record boundary, normally the
/// checkpoint's durable point; the first segment when there is none), validating every record
/// (magic, sizes, BODYCRC, its own offset), and discards what follows the last valid one,
/// including any segment after it.
async fn recover(
    config: &CommitLogConfig,
    segments: &mut BTreeMap<u64, Rc<DmaFile>>,
    scan_from: Option<u64>,
    on_record: &mut impl FnMut(RecoveredRecord<'_>),
) -> Result<(u64, RecoveryReport), StoreError> {
    let started = Instant::now();
    let size = config.segment_bytes;
    let first_base = segments.keys().next().copied().unwrap_or(0);
    let start = scan_from.map_or(first_base, |from| from.max(first_base));
    let mut report =
        RecoveryReport { end: start, records: 0, bytes_scanned: 0, discarded_tail: false, elapsed: Duration::ZERO };
    let mut end = start;
    let mut base = start / size * size;
    let mut pos = start - base;
    let mut next_progress = PROGRESS_BYTES;
    'segments: while let Some(file) = segments.get(&base).cloned() {
        // A window of the segment in memory, read in large pieces; per segment, since a window
        // of the previous segment's file would be read as this one's.
        let mut window = Bytes::new();
        let mut window_start = pos;
        loop {
            if pos + BLANK_LEN > size {
                report.discarded_tail = true;
                break 'segments;
            }
            let need_head = 8usize;
            if pos < window_start || pos + need_head as u64 > window_start + window.len() as u64 {
                window_start = pos;
                window = read_window(&file, pos, size, need_head).await.map_err(|e| io_err("read", config, e))?;
            }
            let at = (pos - window_start) as usize;
            let total = i32::from_be_bytes([window[at], window[at + 1], window[at + 2], window[at + 3]]);
            let magic = u32::from_be_bytes([window[at + 4], window[at + 5], window[at + 6], window[at + 7]]);
            if total == 0 && magic == 0 {
                break 'segments; // clean end: zeros follow the last record
            }
            if magic == BLANK_MAGIC_CODE && total as u64 == size - pos {
                report.bytes_scanned += total as u64;
                base += size;
                pos = 0;
                end = base;
                continue 'segments;
            }
            if magic != MESSAGE_MAGIC_CODE || total <= 8 || pos + total as u64 > size {
                report.discarded_tail = true;
                break 'segments;
            }
            let total = total as usize;
            if at + total > window.len() {
                window_start = pos;
                window = read_window(&file, pos, size, total).await.map_err(|e| io_err("read", config, e))?;
            }
            let at = (pos - window_start) as usize;
            let record = window.slice(at..at + total);
            let expected_offset = ((u64::from(config.shard) << SHARD_SHIFT) | (base + pos)) as i64;
            match StoredMessage::decode(&record, true) {
                Ok((msg, len)) if len == total && is_stale(msg.physical_offset, base + pos, size) => {
                    // A whole record of the segment's earlier life (a reused spare): the log
                    // ends here as cleanly as before zeros.
                    debug!(dir = %config.dir.display(), at = base + pos, "CommitLog ends before a reused segment's old records");
                    break 'segments;
                }
                Ok((msg, len)) if len == total && msg.physical_offset == expected_offset => {
                    on_record(RecoveredRecord { message: &msg, size: total });
                    report.records += 1;
                    report.bytes_scanned += total as u64;
                    pos += total as u64;
                    end = base + pos;
                }
                Ok(_) | Err(_) => {
                    report.discarded_tail = true;
                    break 'segments;
                }
            }
            if report.bytes_scanned >= next_progress {
                next_progress += PROGRESS_BYTES;
                let secs = started.elapsed().as_secs_f64().max(1e-6);
                info!(
                    dir = %config.dir.display(),
                    at = end,
                    mb = report.bytes_scanned as f64 / 1e6,
                    mb_per_s = report.bytes_scanned as f64 / 1e6 / secs,
                    "CommitLog recovery in progress"
                );
            }
        }
    }
    if scan_from.is_some_and(|from| from > end) {
        warn!(dir = %config.dir.display(), checkpoint = start, end, "CommitLog ends before its checkpoint");
    }
    discard_after(config, segments, end).await?;
    report.end = end;
    report.elapsed = started.elapsed();
    let secs = report.elapsed.as_secs_f64().max(1e-6);
    info!(
        dir = %config.dir.display(),
        from = start,
        end,
        records = report.records,
        mb = report.bytes_scanned as f64 / 1e6,
        mb_per_s = report.bytes_scanned as f64 / 1e6 / secs,
        discarded_tail = report.discarded_tail,
        "CommitLog recovered"
    );
    if report.discarded_tail {
        warn!(dir = %config.dir.display(), end, "CommitLog tail after the last valid record discarded");
    }
    Ok((end, report))
}

/// Whether a record found at local offset `at` was written there in the segment file's earlier
/// life: same place in its segment, another segment.
fn is_stale(physical_offset: i64, at: u64, segment_bytes: u64) -> bool {
    let local = CommitLog::local_part(physical_offset);
    local != at && local % segment_bytes == at % segment_bytes
}

/// Reads at least `need` bytes at `pos` (more, up to 1 MiB, when the segment has them).
async fn read_window(file: &DmaFile, pos: u64, segment_size: u64, need: usize) -> Result<Bytes, String> {
    let len = need.max((1u64 << 20).min(segment_size - pos) as usize);
    read_exact(file, pos, len).await
}

/// Zeroes what writes in flight at a crash may have left after `end`, and removes later
/// segments, so a stale record can never be mistaken for a new one.
async fn discard_after(
    config: &CommitLogConfig,
    segments: &mut BTreeMap<u64, Rc<DmaFile>>,
    end: u64,
) -> Result<(), StoreError> {
    let size = config.segment_bytes;
    let base = end / size * size;
    let later: Vec<u64> = segments.range(base + 1..).map(|(b, _)| *b).collect();
    for b in later {
        if let Some(file) = segments.remove(&b) {
            file.remove().await.map_err(|e| io_err("remove", config, e))?;
            warn!(segment = %segment::file_name(b), "CommitLog segment after the recovered end removed");
        }
    }
    let Some(file) = segments.get(&base) else {
        return Ok(());
    };
    let page = align_down(end);
    let window = (config.writes_in_flight * config.max_write_bytes + PAGE) as u64;
    let stop = align_up(end + window).min(base + size);
    if page >= stop {
        return Ok(());
    }
    let keep = read_exact(file, page - base, (end - page) as usize).await.map_err(|e| io_err("read", config, e))?;
    let mut at = page;
    while at < stop {
        let len = (stop - at).min(1 << 20) as usize;
        let mut buf = file.alloc_dma_buffer(len);
        let bytes = buf.as_bytes_mut();
        bytes.fill(0);
        if at == page {
            bytes[..keep.len()].copy_from_slice(&keep);
        }
        file.write_at(buf, at - base).await.map_err(|e| io_err("write", config, e))?;
        at += len as u64;
    }
    file.fdatasync().await.map_err(|e| io_err("fdatasync", config, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{fill_pace, FillPace};

    #[test]
    fn the_fill_keeps_a_tenth_ahead_of_the_log_and_finishes_by_85_percent() {
        let size = 1600;
        assert_eq!(fill_pace(0, 0, size), FillPace::Behind, "a head start is filled at once");
        assert_eq!(fill_pace(100, 0, size), FillPace::Ahead, "then the fill rests while the log is idle");
        assert_eq!(fill_pace(300, 200, size), FillPace::Behind, "log 1/8 in: the fill must be 1/8 + 1/80 + 1/16 in");
        assert_eq!(fill_pace(320, 200, size), FillPace::Ahead);
        assert_eq!(fill_pace(100, 200, size), FillPace::FarBehind, "slower than the log itself");
        assert_eq!(fill_pace(1599, 1364, size), FillPace::Behind, "done by the time the log is about 85 % in");
        assert_eq!(fill_pace(1540, 1300, size), FillPace::Ahead);
        assert_eq!(fill_pace(1600, 1600, size), FillPace::Ahead, "a finished fill is never behind");
    }
}
