//! One ConsumeQueue: the index of a message queue `(topic, queueId)`, one 20-byte unit per
//! message (physical offset, size, tag hash code), in files of `units_per_file` units named by
//! their first unit's byte offset, as RocketMQ lays them out.
//!
//! Units are appended in memory as records are appended to the CommitLog and written to their
//! files by the shard's periodic flush. The files go through the page cache: units are small,
//! read often, and rebuilt from the CommitLog after a crash, so O_DIRECT buys nothing here.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{BufferedFile, OpenOptions};
use tracing::warn;

use crate::error::StoreError;

/// Bytes per unit: physical offset (8), size (4), tag hash code (8).
pub const CQ_UNIT_BYTES: usize = 20;

/// One ConsumeQueue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqUnit {
    /// As clients see it: with the shard's bits (see `commitlog::SHARD_SHIFT`).
    pub physical_offset: i64,
    pub size: i32,
    pub tag_code: i64,
}

impl CqUnit {
    /// Stands in for units lost before a gap; never served.
    const HOLE: CqUnit = CqUnit { physical_offset: -1, size: 0, tag_code: 0 };

    fn put(&self, dst: &mut Vec<u8>) {
        dst.extend_from_slice(&self.physical_offset.to_be_bytes());
        dst.extend_from_slice(&self.size.to_be_bytes());
        dst.extend_from_slice(&self.tag_code.to_be_bytes());
    }

    fn get(src: &[u8]) -> CqUnit {
        let mut off = [0u8; 8];
        off.copy_from_slice(&src[..8]);
        let mut size = [0u8; 4];
        size.copy_from_slice(&src[8..12]);
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&src[12..20]);
        CqUnit {
            physical_offset: i64::from_be_bytes(off),
            size: i32::from_be_bytes(size),
            tag_code: i64::from_be_bytes(tag),
        }
    }

    pub fn is_hole(&self) -> bool {
        self.size <= 0 || self.physical_offset < 0
    }

    fn is_zero(raw: &[u8]) -> bool {
        raw.iter().all(|b| *b == 0)
    }
}

struct State {
    /// Units at `written..max_offset`, not yet in their files.
    pending: Vec<u8>,
    written: i64,
    min_offset: i64,
    files: BTreeMap<i64, Rc<BufferedFile>>,
}

pub(crate) struct ConsumeQueue {
    dir: PathBuf,
    units_per_file: i64,
    state: RefCell<State>,
    flushing: Cell<bool>,
}

impl ConsumeQueue {
    /// A queue with no units yet; its folder is created by the first flush.
    pub fn new(dir: PathBuf, units_per_file: u64) -> Self {
        let state = State { pending: Vec::new(), written: 0, min_offset: 0, files: BTreeMap::new() };
        ConsumeQueue {
            dir,
            units_per_file: units_per_file as i64,
            state: RefCell::new(state),
            flushing: Cell::new(false),
        }
    }

    /// Opens the queue in `dir`, dropping units that point at or past `rebuild_from` (a
    /// physical offset as clients see it): recovery appends them again from the CommitLog.
    pub async fn load(dir: PathBuf, units_per_file: u64, rebuild_from: i64) -> Result<Self, StoreError> {
        let queue = ConsumeQueue::new(dir, units_per_file);
        let upf = queue.units_per_file;
        let names = list_files(&queue.dir)?;
        let mut files = BTreeMap::new();
        for (first, path) in names {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .buffered_open(&path)
                .await
                .map_err(|e| StoreError::io("open", &path, e))?;
            files.insert(first, (path, Rc::new(file)));
        }
        // Keep the prefix of units that are present and older than `rebuild_from`: walk files
        // from the last one back until one keeps a unit.
        let mut max_offset = 0;
        while let Some((&first, (path, file))) = files.iter().next_back() {
            let size = file.file_size().await.map_err(|e| StoreError::io("stat", path, e))?;
            let units = (size / CQ_UNIT_BYTES as u64).min(upf as u64) as i64;
            let keep = kept_prefix(file, path, units, rebuild_from).await?;
            if keep * (CQ_UNIT_BYTES as i64) != size as i64 {
                file.truncate((keep as u64) * CQ_UNIT_BYTES as u64)
                    .await
                    .map_err(|e| StoreError::io("truncate", path, e))?;
            }
            if keep == 0 && files.len() > 1 {
                file.remove().await.map_err(|e| StoreError::io("remove", path, e))?;
                files.remove(&first);
                continue;
            }
            max_offset = first + keep;
            break;
        }
        {
            let mut st = queue.state.borrow_mut();
            st.min_offset = files.keys().next().copied().unwrap_or(0);
            st.written = max_offset;
            st.files = files.into_iter().map(|(first, (_, file))| (first, file)).collect();
        }
        Ok(queue)
    }

    pub fn min_offset(&self) -> i64 {
        self.state.borrow().min_offset
    }

    /// The next unit's queue offset.
    pub fn max_offset(&self) -> i64 {
        let st = self.state.borrow();
        st.written + (st.pending.len() / CQ_UNIT_BYTES) as i64
    }

    /// Appends the unit for queue offset `offset`. Offsets below the end replace the units from
    /// there on (recovery appending again what it dropped); a gap is filled with holes.
    pub fn put(&self, offset: i64, unit: CqUnit) {
        let max = self.max_offset();
        let mut st = self.state.borrow_mut();
        if offset < max {
            if offset < st.written {
                warn!(dir = %self.dir.display(), offset, written = st.written, "ConsumeQueue unit rewritten below its flushed end");
                return;
            }
            let keep = ((offset - st.written) as usize) * CQ_UNIT_BYTES;
            st.pending.truncate(keep);
        } else if offset > max {
            warn!(dir = %self.dir.display(), from = max, to = offset, "ConsumeQueue gap filled with holes");
            for _ in max..offset {
                CqUnit::HOLE.put(&mut st.pending);
            }
        }
        unit.put(&mut st.pending);
    }

    /// Up to `max` units from `offset` on, fewer at a file's end; empty past the end.
    pub async fn units(&self, offset: i64, max: usize) -> Result<Vec<CqUnit>, StoreError> {
        let (file, count) = {
            let st = self.state.borrow();
            let end = st.written + (st.pending.len() / CQ_UNIT_BYTES) as i64;
            if offset < st.min_offset || offset >= end || max == 0 {
                return Ok(Vec::new());
            }
            if offset >= st.written {
                let from = (offset - st.written) as usize * CQ_UNIT_BYTES;
                let to = st.pending.len().min(from + max * CQ_UNIT_BYTES);
                return Ok(st.pending[from..to].chunks_exact(CQ_UNIT_BYTES).map(CqUnit::get).collect());
            }
            let first = offset / self.units_per_file * self.units_per_file;
            let Some(file) = st.files.get(&first).cloned() else {
                return Ok(Vec::new());
            };
            let count = (max as i64).min(st.written - offset).min(first + self.units_per_file - offset);
            (file, (first, count as usize))
        };
        let (first, count) = count;
        let pos = ((offset - first) as u64) * CQ_UNIT_BYTES as u64;
        let raw = file
            .read_at(pos, count * CQ_UNIT_BYTES)
            .await
            .map_err(|e| StoreError::io("read", self.file_path(first), e))?;
        let mut units: Vec<CqUnit> = raw.chunks_exact(CQ_UNIT_BYTES).map(CqUnit::get).collect();
        // Units past the written end continue from memory, so how far a flush got does not
        // change what one call returns (within the same file).
        let next = offset + units.len() as i64;
        let room = max.saturating_sub(units.len());
        let st = self.state.borrow();
        if room > 0 && next == st.written && next < first + self.units_per_file {
            let room = room.min((first + self.units_per_file - next) as usize);
            let to = st.pending.len().min(room * CQ_UNIT_BYTES);
            units.extend(st.pending[..to].chunks_exact(CQ_UNIT_BYTES).map(CqUnit::get));
        }
        Ok(units)
    }

    /// The unit at `offset`, if there is one.
    pub async fn unit(&self, offset: i64) -> Result<Option<CqUnit>, StoreError> {
        Ok(self.units(offset, 1).await?.first().copied())
    }

    /// Retention: moves the minimum offset to the first unit at or past `min_physical` (where
    /// the CommitLog now starts, shard bits included) and deletes the files, except the last,
    /// whose units all lie below it. Returns how many files were deleted.
    pub async fn drop_below(&self, min_physical: i64) -> Result<usize, StoreError> {
        const STEP: usize = 1024;
        let (mut offset, end) = (self.min_offset(), self.max_offset());
        let new_min = loop {
            if offset >= end {
                break end;
            }
            let units = self.units(offset, STEP).await?;
            if units.is_empty() {
                break offset;
            }
            match units.iter().position(|u| !u.is_hole() && u.physical_offset >= min_physical) {
                Some(i) => break offset + i as i64,
                None => offset += units.len() as i64,
            }
        };
        let doomed: Vec<(i64, Rc<BufferedFile>)> = {
            let mut st = self.state.borrow_mut();
            st.min_offset = st.min_offset.max(new_min);
            let last = st.files.keys().next_back().copied();
            let upf = self.units_per_file;
            let gone: Vec<i64> =
                st.files.keys().copied().filter(|&first| first + upf <= new_min && Some(first) != last).collect();
            gone.into_iter().filter_map(|first| st.files.remove(&first).map(|f| (first, f))).collect()
        };
        for (first, file) in &doomed {
            file.remove().await.map_err(|e| StoreError::io("remove", self.file_path(*first), e))?;
        }
        Ok(doomed.len())
    }

    /// Writes the pending units to their files and syncs them. Returns whether anything was
    /// written.
    pub async fn flush(&self) -> Result<bool, StoreError> {
        if self.flushing.replace(true) {
            return Ok(false);
        }
        let result = self.flush_pending().await;
        self.flushing.set(false);
        result
    }

    async fn flush_pending(&self) -> Result<bool, StoreError> {
        let (start, bytes) = {
            let st = self.state.borrow();
            if st.pending.is_empty() {
                return Ok(false);
            }
            (st.written, st.pending.clone())
        };
        let mut offset = start;
        let mut done = 0usize;
        while done < bytes.len() {
            let first = offset / self.units_per_file * self.units_per_file;
            let file = self.file_for(first).await?;
            let units = ((bytes.len() - done) / CQ_UNIT_BYTES).min((first + self.units_per_file - offset) as usize);
            let len = units * CQ_UNIT_BYTES;
            let path = self.file_path(first);
            let pos = ((offset - first) as u64) * CQ_UNIT_BYTES as u64;
            let written = file
                .write_at(bytes[done..done + len].to_vec(), pos)
                .await
                .map_err(|e| StoreError::io("write", &path, e))?;
            if written != len {
                return Err(StoreError::io("write", &path, format!("short write: {written} of {len} bytes")));
            }
            file.fdatasync().await.map_err(|e| StoreError::io("fdatasync", &path, e))?;
            offset += units as i64;
            done += len;
        }
        let mut st = self.state.borrow_mut();
        st.pending.drain(..done);
        st.written = offset;
        Ok(true)
    }

    async fn file_for(&self, first: i64) -> Result<Rc<BufferedFile>, StoreError> {
        if let Some(file) = self.state.borrow().files.get(&first) {
            return Ok(file.clone());
        }
        let dir = self.dir.clone();
        glommio::executor()
            .spawn_blocking(move || std::fs::create_dir_all(&dir).map_err(|e| StoreError::io("create", &dir, e)))
            .await?;
        let path = self.file_path(first);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .buffered_open(&path)
            .await
            .map_err(|e| StoreError::io("create", &path, e))?;
        let file = Rc::new(file);
        self.state.borrow_mut().files.insert(first, file.clone());
        Ok(file)
    }

    fn file_path(&self, first: i64) -> PathBuf {
        self.dir.join(format!("{:020}", first * CQ_UNIT_BYTES as i64))
    }
}

/// How many units at the start of `file` are present and point before `rebuild_from`. Such
/// units form a prefix (units are written in order), so a binary search finds its end.
async fn kept_prefix(file: &BufferedFile, path: &Path, units: i64, rebuild_from: i64) -> Result<i64, StoreError> {
    let keeps = |raw: &[u8]| !CqUnit::is_zero(raw) && CqUnit::get(raw).physical_offset < rebuild_from;
    let (mut lo, mut hi) = (0i64, units); // units below lo are kept, from hi on dropped
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let raw = file
            .read_at(mid as u64 * CQ_UNIT_BYTES as u64, CQ_UNIT_BYTES)
            .await
            .map_err(|e| StoreError::io("read", path, e))?;
        if raw.len() == CQ_UNIT_BYTES && keeps(&raw) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// The unit files in `dir` by first unit offset.
fn list_files(dir: &Path) -> Result<Vec<(i64, PathBuf)>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("list", dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(byte_offset) = name.parse::<i64>() else { continue };
        if name.len() != 20 || byte_offset % CQ_UNIT_BYTES as i64 != 0 {
            continue;
        }
        files.push((byte_offset / CQ_UNIT_BYTES as i64, entry.path()));
    }
    files.sort();
    Ok(files)
}
