//! The key index: message keys (KEYS, split at spaces) and unique keys (UNIQ_KEY) → physical
//! offsets and store times, for QUERY_MESSAGE and lookups by unique key. RocketMQ's IndexFile in
//! our own layout: files of `maxIndexNum` entries chained through `maxHashSlotNum` hash slots,
//! each named by the first physical offset it indexes.
//!
//! The active file keeps its slot table in memory; its entries reach the disk at each
//! checkpoint, then a header that counts them. Only a file that is no longer active gets its
//! slot table written, once. So a crash never leaves a slot pointing at an entry that did not
//! reach the disk: at open, the active file's slots are rebuilt from the entries its header
//! counts, and recovery indexes the records after them again.
//!
//! File layout (little endian): a 4 KiB header; the slot table (`u32` entry numbers, 1-based,
//! 0 = empty), meaningful once the file is sealed; then 24-byte entries: key hash `u32`,
//! previous entry in the same slot `u32`, physical offset `i64`, store timestamp `i64`.
//! Entries go through the page cache (glommio `BufferedFile`): the index is off the append
//! path and read a few entries at a time.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{BufferedFile, OpenOptions};
use tracing::{info, warn};

use crate::crc32c::crc32c;
use crate::error::StoreError;

const HEADER_BYTES: u64 = 4096;
const ENTRY_BYTES: usize = 24;
const MAGIC: u32 = 0x4150_4958; // "APIX"
const VERSION: u32 = 1;
/// Entries read per call while a file's slots are rebuilt at open.
const LOAD_CHUNK_ENTRIES: usize = 1 << 16;

/// `messageIndexEnable`, `maxHashSlotNum`, `maxIndexNum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexConfig {
    pub enabled: bool,
    pub hash_slots: u32,
    pub max_entries: u32,
}

impl Default for IndexConfig {
    /// Java's defaults: 5 million slots and 20 million entries per file.
    fn default() -> Self {
        Self { enabled: true, hash_slots: 5_000_000, max_entries: 20_000_000 }
    }
}

impl IndexConfig {
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.hash_slots == 0 || self.max_entries == 0 {
            return Err(StoreError::Config("maxHashSlotNum and maxIndexNum must be above 0".into()));
        }
        Ok(())
    }
}

/// The hash an entry is filed under: FNV-1a of `topic#key`, as RocketMQ builds index keys.
/// Stored in the files, so it must never change.
pub fn key_hash(topic: &str, key: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in topic.as_bytes().iter().chain(b"#").chain(key.as_bytes()) {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: u32,
    prev: u32,
    physical_offset: i64,
    store_timestamp: i64,
}

impl Entry {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.hash.to_le_bytes());
        out.extend_from_slice(&self.prev.to_le_bytes());
        out.extend_from_slice(&self.physical_offset.to_le_bytes());
        out.extend_from_slice(&self.store_timestamp.to_le_bytes());
    }

    fn decode(b: &[u8]) -> Option<Entry> {
        let b: &[u8; ENTRY_BYTES] = b.get(..ENTRY_BYTES)?.try_into().ok()?;
        let (hash, rest) = b.split_at(4);
        let (prev, rest) = rest.split_at(4);
        let (phys, ts) = rest.split_at(8);
        Some(Entry {
            hash: u32::from_le_bytes(hash.try_into().ok()?),
            prev: u32::from_le_bytes(prev.try_into().ok()?),
            physical_offset: i64::from_le_bytes(phys.try_into().ok()?),
            store_timestamp: i64::from_le_bytes(ts.try_into().ok()?),
        })
    }
}

/// What the header of a file says; written after the entries it counts are synced, so it only
/// ever describes durable entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    sealed: bool,
    hash_slots: u32,
    count: u32,
    begin_timestamp: i64,
    /// Store time and physical offset of the last entry counted.
    end_timestamp: i64,
    last_physical_offset: i64,
}

impl Header {
    const LEN: usize = 48;

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES as usize);
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&u32::from(self.sealed).to_le_bytes());
        out.extend_from_slice(&self.hash_slots.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.begin_timestamp.to_le_bytes());
        out.extend_from_slice(&self.end_timestamp.to_le_bytes());
        out.extend_from_slice(&self.last_physical_offset.to_le_bytes());
        let crc = crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(out.len(), Self::LEN);
        out.resize(HEADER_BYTES as usize, 0);
        out
    }

    fn decode(b: &[u8]) -> Option<Header> {
        let b = b.get(..Self::LEN)?;
        let u32_at = |at: usize| b.get(at..at + 4).and_then(|s| s.try_into().ok()).map(u32::from_le_bytes);
        let i64_at = |at: usize| b.get(at..at + 8).and_then(|s| s.try_into().ok()).map(i64::from_le_bytes);
        if u32_at(0)? != MAGIC || u32_at(4)? != VERSION || u32_at(44)? != crc32c(&b[..44]) {
            return None;
        }
        Some(Header {
            sealed: u32_at(8)? != 0,
            hash_slots: u32_at(12)?,
            count: u32_at(16)?,
            begin_timestamp: i64_at(20)?,
            end_timestamp: i64_at(28)?,
            last_physical_offset: i64_at(36)?,
        })
    }
}

struct FileState {
    /// The slot table while the file is active (and until it is sealed on disk).
    slots: Option<Vec<u32>>,
    /// Entries added.
    count: u32,
    /// Entries written to the file; the rest are in `pending`.
    written: u32,
    pending: VecDeque<Entry>,
    begin_timestamp: i64,
    /// Of the last entry added.
    end_timestamp: i64,
    last_physical_offset: i64,
    /// Of the last entry written.
    written_end_timestamp: i64,
    written_last_offset: i64,
    /// The slot table is on disk.
    sealed: bool,
}

struct IndexFile {
    /// The first physical offset this file indexes: its name.
    base: i64,
    path: PathBuf,
    hash_slots: u32,
    /// Created at the first flush.
    file: RefCell<Option<Rc<BufferedFile>>>,
    state: RefCell<FileState>,
}

impl IndexFile {
    fn new(dir: &Path, base: i64, hash_slots: u32) -> IndexFile {
        IndexFile {
            base,
            path: dir.join(format!("{base:020}")),
            hash_slots,
            file: RefCell::new(None),
            state: RefCell::new(FileState {
                slots: Some(crate::hugepage::zeroed_table(hash_slots as usize)),
                count: 0,
                written: 0,
                pending: VecDeque::new(),
                begin_timestamp: 0,
                end_timestamp: 0,
                last_physical_offset: 0,
                written_end_timestamp: 0,
                written_last_offset: -1,
                sealed: false,
            }),
        }
    }

    fn entries_at(&self) -> u64 {
        HEADER_BYTES + (u64::from(self.hash_slots) * 4).div_ceil(HEADER_BYTES) * HEADER_BYTES
    }

    /// Opens an existing file; an unsealed one gets its slot table rebuilt from its entries.
    async fn load(path: PathBuf, base: i64, config: &IndexConfig) -> Result<IndexFile, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .buffered_open(&path)
            .await
            .map_err(|e| StoreError::io("open", &path, e))?;
        let head = file.read_at(0, HEADER_BYTES as usize).await.map_err(|e| StoreError::io("read", &path, e))?;
        let header = Header::decode(&head).unwrap_or_else(|| {
            // Created, but its first header never reached the disk: nothing in it counts.
            warn!(path = %path.display(), "index file without a valid header; its entries will be rebuilt");
            Header {
                sealed: false,
                hash_slots: config.hash_slots,
                count: 0,
                begin_timestamp: 0,
                end_timestamp: 0,
                last_physical_offset: -1,
            }
        });
        let index = IndexFile {
            base,
            path,
            hash_slots: header.hash_slots.max(1),
            file: RefCell::new(Some(Rc::new(file))),
            state: RefCell::new(FileState {
                slots: None,
                count: header.count,
                written: header.count,
                pending: VecDeque::new(),
                begin_timestamp: header.begin_timestamp,
                end_timestamp: header.end_timestamp,
                last_physical_offset: header.last_physical_offset,
                written_end_timestamp: header.end_timestamp,
                written_last_offset: header.last_physical_offset,
                sealed: header.sealed,
            }),
        };
        if !header.sealed {
            let (slots, count) = index.rebuild_slots(header.count).await?;
            let mut st = index.state.borrow_mut();
            st.slots = Some(slots);
            st.count = count;
            st.written = count;
        }
        Ok(index)
    }

    /// The slot table of the first `count` entries, and how many of them the file holds.
    async fn rebuild_slots(&self, count: u32) -> Result<(Vec<u32>, u32), StoreError> {
        let file = self.handle()?;
        let mut slots = crate::hugepage::zeroed_table(self.hash_slots as usize);
        let mut n = 0u32;
        while n < count {
            let batch = (count - n).min(LOAD_CHUNK_ENTRIES as u32);
            let at = self.entries_at() + u64::from(n) * ENTRY_BYTES as u64;
            let bytes = file
                .read_at(at, batch as usize * ENTRY_BYTES)
                .await
                .map_err(|e| StoreError::io("read", &self.path, e))?;
            let short = bytes.len() < batch as usize * ENTRY_BYTES;
            for chunk in bytes.chunks_exact(ENTRY_BYTES) {
                n += 1;
                if let Some(entry) = Entry::decode(chunk) {
                    slots[(entry.hash % self.hash_slots) as usize] = n;
                }
            }
            if short {
                // Cut short outside this program (the header is written after the entries):
                // keep what is there; recovery cannot restore the rest, queries miss it.
                warn!(path = %self.path.display(), counted = count, holds = n, "index file shorter than its header says");
                break;
            }
        }
        Ok((slots, n))
    }

    fn handle(&self) -> Result<Rc<BufferedFile>, StoreError> {
        self.file.borrow().clone().ok_or_else(|| StoreError::io("read", &self.path, "index file not created yet"))
    }

    async fn handle_or_create(&self) -> Result<Rc<BufferedFile>, StoreError> {
        if let Some(file) = self.file.borrow().clone() {
            return Ok(file);
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .buffered_open(&self.path)
            .await
            .map_err(|e| StoreError::io("create", &self.path, e))?;
        let file = Rc::new(file);
        *self.file.borrow_mut() = Some(file.clone());
        Ok(file)
    }

    fn add(&self, hash: u32, physical_offset: i64, store_timestamp: i64) {
        let mut st = self.state.borrow_mut();
        let st = &mut *st;
        let Some(slots) = st.slots.as_mut() else { return };
        let slot = &mut slots[(hash % self.hash_slots) as usize];
        let prev = *slot;
        st.count += 1;
        *slot = st.count;
        st.pending.push_back(Entry { hash, prev, physical_offset, store_timestamp });
        if st.count == 1 {
            st.begin_timestamp = store_timestamp;
        }
        st.end_timestamp = store_timestamp;
        st.last_physical_offset = physical_offset;
    }

    async fn head(&self, hash: u32) -> Result<u32, StoreError> {
        let slot = hash % self.hash_slots;
        if let Some(slots) = &self.state.borrow().slots {
            return Ok(slots[slot as usize]);
        }
        let bytes = read_exact(&*self.handle()?, &self.path, HEADER_BYTES + u64::from(slot) * 4, 4).await?;
        let n = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        Ok(if n > self.state.borrow().count { 0 } else { n })
    }

    async fn entry(&self, n: u32) -> Result<Option<Entry>, StoreError> {
        {
            let st = self.state.borrow();
            if n == 0 || n > st.count {
                return Ok(None);
            }
            if n > st.written {
                return Ok(st.pending.get((n - st.written - 1) as usize).copied());
            }
        }
        let at = self.entries_at() + u64::from(n - 1) * ENTRY_BYTES as u64;
        let bytes = read_exact(&*self.handle()?, &self.path, at, ENTRY_BYTES).await?;
        Ok(Entry::decode(&bytes))
    }

    /// Adds to `found` the physical offsets filed under `hash` with a store time in
    /// `begin..=end`, newest first, until it holds `max`.
    async fn select(
        &self,
        hash: u32,
        begin: i64,
        end: i64,
        max: usize,
        found: &mut Vec<i64>,
    ) -> Result<(), StoreError> {
        let mut n = self.head(hash).await?;
        while n != 0 && found.len() < max {
            let Some(entry) = self.entry(n).await? else { break };
            if entry.hash == hash && (begin..=end).contains(&entry.store_timestamp) {
                found.push(entry.physical_offset);
            }
            // Chains only point back; anything else is damage, and ends the walk.
            if entry.prev >= n {
                break;
            }
            n = entry.prev;
        }
        Ok(())
    }

    /// Writes the entries of records below `end`, then (for a file no longer active, once all
    /// its entries are written) the slot table, then the header that counts them; each step
    /// synced before the next.
    async fn flush(&self, end: i64, active: bool) -> Result<(), StoreError> {
        let (bytes, from, n, last, seal) = {
            let st = self.state.borrow();
            let n = st.pending.iter().take_while(|e| e.physical_offset < end).count();
            let mut bytes = Vec::with_capacity(n * ENTRY_BYTES);
            st.pending.iter().take(n).for_each(|e| e.encode(&mut bytes));
            let last = n.checked_sub(1).and_then(|i| st.pending.get(i)).copied();
            let seal = !active && !st.sealed && n == st.pending.len();
            (bytes, st.written, n, last, seal)
        };
        if n == 0 && !seal {
            return Ok(());
        }
        let file = self.handle_or_create().await?;
        if n > 0 {
            let at = self.entries_at() + u64::from(from) * ENTRY_BYTES as u64;
            write_all(&file, &self.path, bytes, at).await?;
            file.fdatasync().await.map_err(|e| StoreError::io("sync", &self.path, e))?;
            let mut st = self.state.borrow_mut();
            st.written += n as u32;
            st.pending.drain(..n);
            if let Some(last) = last {
                st.written_end_timestamp = last.store_timestamp;
                st.written_last_offset = last.physical_offset;
            }
        }
        if seal {
            let table = {
                let st = self.state.borrow();
                let slots = st.slots.as_deref().unwrap_or_default();
                slots.iter().flat_map(|s| s.to_le_bytes()).collect::<Vec<u8>>()
            };
            write_all(&file, &self.path, table, HEADER_BYTES).await?;
            file.fdatasync().await.map_err(|e| StoreError::io("sync", &self.path, e))?;
        }
        let header = {
            let st = self.state.borrow();
            Header {
                sealed: st.sealed || seal,
                hash_slots: self.hash_slots,
                count: st.written,
                begin_timestamp: st.begin_timestamp,
                end_timestamp: st.written_end_timestamp,
                last_physical_offset: st.written_last_offset,
            }
        };
        write_all(&file, &self.path, header.encode(), 0).await?;
        file.fdatasync().await.map_err(|e| StoreError::io("sync", &self.path, e))?;
        if seal {
            let mut st = self.state.borrow_mut();
            st.sealed = true;
            st.slots = None;
        }
        Ok(())
    }
}

fn remove_index_file(path: &Path) -> Result<(), StoreError> {
    std::fs::remove_file(path).or_else(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Ok(()),
        _ => Err(StoreError::io("remove", path, e)),
    })
}

async fn write_all(file: &BufferedFile, path: &Path, bytes: Vec<u8>, at: u64) -> Result<(), StoreError> {
    let len = bytes.len();
    let written = file.write_at(bytes, at).await.map_err(|e| StoreError::io("write", path, e))?;
    if written < len {
        // A short write is how a full disk shows itself.
        return Err(StoreError::io("write", path, format!("wrote {written} of {len} bytes (disk full?)")));
    }
    Ok(())
}

async fn read_exact(file: &BufferedFile, path: &Path, at: u64, len: usize) -> Result<Vec<u8>, StoreError> {
    let bytes = file.read_at(at, len).await.map_err(|e| StoreError::io("read", path, e))?;
    if bytes.len() < len {
        return Err(StoreError::io("read", path, format!("short read of {} bytes at {at}", bytes.len())));
    }
    Ok(bytes.to_vec())
}

/// Physical offsets a query found, with what the index had seen last (Java's
/// `QueryOffsetResult`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexHits {
    pub physical_offsets: Vec<i64>,
    pub last_update_timestamp: i64,
    pub last_update_physical_offset: i64,
}

/// One shard's key index.
pub struct KeyIndex {
    dir: PathBuf,
    config: IndexConfig,
    files: RefCell<Vec<Rc<IndexFile>>>,
    /// Records below this physical offset have been indexed; recovery's replay skips them.
    /// At open: past the last durable entry, but not past the end of the recovered log (see
    /// [`KeyIndex::forget_from`]). Entries reach the disk in physical order, older files first,
    /// so every record with keys below it is in the files.
    next_offset: Cell<i64>,
}

impl KeyIndex {
    /// Loads the index files under `dir`, creating the folder if needed.
    pub async fn open(dir: PathBuf, config: IndexConfig) -> Result<KeyIndex, StoreError> {
        config.validate()?;
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io("create", &dir, e))?;
        // Index files are named as CommitLog segments are: a 20-digit offset.
        let bases: Vec<i64> = crate::segment::list(&dir)?.into_iter().map(|b| b as i64).collect();
        let mut files = Vec::with_capacity(bases.len());
        let mut next_offset = 0;
        let mut entries = 0u64;
        for base in bases {
            let file = IndexFile::load(dir.join(format!("{base:020}")), base, &config).await?;
            {
                let st = file.state.borrow();
                if st.count > 0 {
                    next_offset = next_offset.max(st.written_last_offset + 1);
                }
                entries += u64::from(st.count);
            }
            files.push(Rc::new(file));
        }
        if !files.is_empty() {
            info!(dir = %dir.display(), files = files.len(), entries, "key index loaded");
        }
        Ok(KeyIndex { dir, config, files: RefCell::new(files), next_offset: Cell::new(next_offset) })
    }

    /// The log ends at `end` (recovery cut what followed, or it was never written): records
    /// appended from there on are new and must be filed, even where the index holds entries
    /// of records the cut removed (an index written before its records, as the checkpoint did
    /// before it synced the log first). Files that start at or past `end` hold nothing else and
    /// are deleted, so a new file never takes the name of a stale one. Stale entries in the file
    /// before them stay; a query reads every record it finds and checks its key, so they never
    /// match the records that replace them.
    pub fn forget_from(&self, end: i64) -> Result<(), StoreError> {
        let covered = self.next_offset.get();
        if end >= covered {
            return Ok(());
        }
        self.next_offset.set(end);
        let mut files = self.files.borrow_mut();
        let mut deleted = 0;
        while let Some(file) = files.pop_if(|f| f.base >= end) {
            remove_index_file(&file.path)?;
            deleted += 1;
        }
        info!(dir = %self.dir.display(), from = end, to = covered, files_deleted = deleted, "key index entries past the end of the log are stale");
        Ok(())
    }

    /// Files the record at `physical_offset` under each of its keys. Records below what the
    /// index already covers (recovery replaying them) are skipped.
    pub fn put<'k>(
        &self,
        topic: &str,
        physical_offset: i64,
        store_timestamp: i64,
        keys: impl IntoIterator<Item = &'k str>,
    ) {
        if physical_offset < self.next_offset.get() {
            return;
        }
        self.next_offset.set(physical_offset + 1);
        let mut file: Option<Rc<IndexFile>> = None;
        for key in keys.into_iter().filter(|k| !k.is_empty()) {
            // All keys of one record go to one file, so file names stay distinct.
            let file = file.get_or_insert_with(|| self.active_file(physical_offset));
            file.add(key_hash(topic, key), physical_offset, store_timestamp);
        }
    }

    fn active_file(&self, physical_offset: i64) -> Rc<IndexFile> {
        let mut files = self.files.borrow_mut();
        if let Some(last) = files.last() {
            let st = last.state.borrow();
            if st.slots.is_some() && st.count < self.config.max_entries {
                return last.clone();
            }
        }
        let file = Rc::new(IndexFile::new(&self.dir, physical_offset, self.config.hash_slots));
        files.push(file.clone());
        file
    }

    /// Physical offsets of records filed under `topic#key` with a store time in
    /// `begin..=end`: newest first, at most `max`. Hash neighbours may be among them; the
    /// caller checks the records.
    pub async fn query(
        &self,
        topic: &str,
        key: &str,
        begin: i64,
        end: i64,
        max: usize,
    ) -> Result<IndexHits, StoreError> {
        let hash = key_hash(topic, key);
        let files: Vec<Rc<IndexFile>> = self.files.borrow().clone();
        let mut hits = IndexHits::default();
        if let Some(last) = files.last() {
            let st = last.state.borrow();
            hits.last_update_timestamp = st.end_timestamp;
            hits.last_update_physical_offset = st.last_physical_offset;
        }
        for file in files.iter().rev() {
            if hits.physical_offsets.len() >= max {
                break;
            }
            let (count, first, last) = {
                let st = file.state.borrow();
                (st.count, st.begin_timestamp, st.end_timestamp)
            };
            if count > 0 && last >= begin && first <= end {
                file.select(hash, begin, end, max, &mut hits.physical_offsets).await?;
            }
            if count > 0 && first < begin {
                break;
            }
        }
        Ok(hits)
    }

    /// Makes every entry of records below `end` durable (checkpoint).
    pub async fn flush(&self, end: i64) -> Result<(), StoreError> {
        let files: Vec<Rc<IndexFile>> = self.files.borrow().clone();
        let last = files.len().saturating_sub(1);
        for (i, file) in files.iter().enumerate() {
            file.flush(end, i == last).await?;
        }
        Ok(())
    }

    /// Retention: deletes the files that only index records below `min_physical`.
    pub fn drop_below(&self, min_physical: i64) -> Result<usize, StoreError> {
        let mut files = self.files.borrow_mut();
        let mut deleted = 0;
        while files.len() > 1 && files[1].base <= min_physical {
            let file = files.remove(0);
            remove_index_file(&file.path)?;
            deleted += 1;
        }
        Ok(deleted)
    }

    pub fn files(&self) -> usize {
        self.files.borrow().len()
    }
}
