//! CommitLog segment files: named by their 20-digit start offset, created at full size and
//! (by default) filled with zeros before use, under a `.tmp` name until ready; or a spare (a
//! segment retention kept, `<old name>.spare`) renamed into place.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{Directory, DmaBuffer, DmaFile, OpenOptions};
use tracing::debug;

use crate::error::StoreError;
use crate::PAGE;

/// Zero-fill write size.
const FILL_CHUNK: usize = 256 << 10;
/// Zero-fill writes in flight at once while the fill is far behind schedule.
const FILL_DEPTH: usize = 4;

pub(crate) fn file_name(base: u64) -> String {
    format!("{base:020}")
}

pub(crate) fn path(dir: &Path, base: u64) -> PathBuf {
    dir.join(file_name(base))
}

/// The start offsets of the segments in `dir`, ascending. Leftover `.tmp` files (a segment
/// whose creation was interrupted) are removed.
pub(crate) fn list(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let mut bases = Vec::new();
    for (name, path) in file_names(dir)? {
        if name.ends_with(".tmp") {
            std::fs::remove_file(&path).map_err(|e| StoreError::io("remove", &path, e))?;
        } else if let Some(base) = base_of(&name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Where a segment that retention keeps for reuse waits: named by the base it had, so names
/// never collide, and ignored by [`list`].
pub(crate) fn spare_path(dir: &Path, old_base: u64) -> PathBuf {
    dir.join(format!("{}.spare", file_name(old_base)))
}

/// The spare segments in `dir`, oldest first.
pub(crate) fn list_spares(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut spares: Vec<PathBuf> = file_names(dir)?
        .into_iter()
        .filter(|(name, _)| name.strip_suffix(".spare").and_then(base_of).is_some())
        .map(|(_, path)| path)
        .collect();
    spares.sort_unstable();
    Ok(spares)
}

/// The base a segment file name (20 digits) stands for.
fn base_of(name: &str) -> Option<u64> {
    (name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit())).then(|| name.parse().ok()).flatten()
}

/// The UTF-8 names in `dir`, with their paths.
fn file_names(dir: &Path) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| StoreError::io("list", dir, e))? {
        let entry = entry.map_err(|e| StoreError::io("list", dir, e))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push((name, entry.path()));
        }
    }
    Ok(names)
}

/// Makes glommio learn the truth about polled I/O on `dir`'s device before it opens a segment.
///
/// glommio 0.9 decides once per device whether reads may use the polling ring, by reading the
/// first page of the first file it opens there. If that file is empty the read "succeeds" at
/// EOF, polling is switched on, and every later DMA read on the device fails with EOPNOTSUPP
/// (seen here on a fresh store). A first open of a file that has a page avoids that.
pub(crate) async fn prime_iopoll_probe(dir: &Path) -> Result<(), StoreError> {
    let probe = dir.join(".dma-probe");
    std::fs::write(&probe, [0u8; PAGE]).map_err(|e| StoreError::io("write", &probe, e))?;
    let file = DmaFile::open(&probe).await.map_err(|e| StoreError::io("open", &probe, e))?;
    let _ = file.close().await;
    std::fs::remove_file(&probe).map_err(|e| StoreError::io("remove", &probe, e))?;
    Ok(())
}

/// Opens an existing segment for reading and writing. With `dsync` (SYNC_FLUSH), a write
/// completes only once its data is durable (O_DSYNC): the kernel flushes the disk's cache right
/// after each write, so no separate fdatasync round trip is needed and writes in flight
/// overlap their flushes.
pub(crate) async fn open(dir: &Path, base: u64, dsync: bool) -> Result<Rc<DmaFile>, StoreError> {
    open_path(&path(dir, base), dsync).await
}

/// [`open`] by path (a spare's, say).
pub(crate) async fn open_path(path: &Path, dsync: bool) -> Result<Rc<DmaFile>, StoreError> {
    let flags = if dsync { nix::fcntl::OFlag::O_DSYNC.bits() } else { 0 };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(flags)
        .dma_open(path)
        .await
        .map_err(|e| StoreError::io("open", path, e))?;
    Ok(Rc::new(file))
}

/// Where a zero-fill stands against its schedule (see `CommitLog`'s allocator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FillPace {
    /// Rests between chunks, leaving most of the disk to the appends.
    Ahead,
    /// One chunk after another.
    Behind,
    /// Slower than the log itself: several chunks at once.
    FarBehind,
}

/// Share of the disk's time a zero-fill that is ahead of schedule may take: after each chunk it
/// rests this many times as long as the chunk took. Filling back to back, 1 MiB writes queued
/// ahead of the appends' writes cut append throughput for seconds (seen here: a 1 GiB fill made
/// the first 4 s of a run 2-10x slower).
const FILL_REST_FACTOR: u32 = 3;

/// Creates the segment starting at `base`: allocated at full size, zero-filled if asked, synced,
/// then renamed into place. `pace(bytes filled)` says whether the fill rests between chunks or
/// hurries.
pub(crate) async fn create(
    dir: &Path,
    base: u64,
    size: u64,
    zero_fill: bool,
    dsync: bool,
    pace: impl Fn(u64) -> FillPace,
) -> Result<Rc<DmaFile>, StoreError> {
    let final_path = path(dir, base);
    let tmp = dir.join(format!("{}.tmp", file_name(base)));
    let io = |op| move |e: glommio::GlommioError<()>| StoreError::io(op, final_path_display(base), e);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .dma_open(&tmp)
        .await
        .map_err(io("create"))?;
    file.pre_allocate(size, false).await.map_err(io("preallocate"))?;
    let file = Rc::new(file);
    if zero_fill {
        // One zeroed buffer serves every chunk: zeroing a fresh one each time cost as much
        // memset as the appends that fill the segment later.
        let zeros = Rc::new({
            let mut buf = file.alloc_dma_buffer(FILL_CHUNK);
            buf.as_bytes_mut().fill(0);
            buf
        });
        let mut at = 0;
        while at < size {
            let started = std::time::Instant::now();
            // Behind, several chunks go at once: one at a time, the fill could not keep up with
            // appends at full speed and the log stalled waiting for its segment.
            let depth = if pace(at) == FillPace::FarBehind { FILL_DEPTH } else { 1 };
            let mut chunks = Vec::with_capacity(depth);
            while chunks.len() < depth && at < size {
                let len = FILL_CHUNK.min((size - at) as usize);
                chunks.push(glommio::spawn_local(fill_chunk(file.clone(), zeros.clone(), at, len)));
                at += len as u64;
            }
            for chunk in chunks {
                chunk.await.map_err(|e| StoreError::io("zero-fill", final_path_display(base), e))?;
            }
            if pace(at) == FillPace::Ahead {
                glommio::timer::sleep(started.elapsed() * FILL_REST_FACTOR).await;
            }
        }
    }
    file.fdatasync().await.map_err(io("sync"))?;
    file.rename(&final_path).await.map_err(io("rename"))?;
    sync_dir(dir).await?;
    // Reads through the creating handle failed with EOPNOTSUPP here (glommio 0.9); a handle
    // opened afresh reads and writes.
    file.close_rc().await.map_err(io("close"))?;
    debug!(segment = %final_path.display(), size, zero_fill, "segment created");
    open(dir, base, dsync).await
}

/// Makes `spare` (a whole segment written before, kept by retention) the segment starting at
/// `base`: a rename, no zero-fill. Its old records stay until overwritten; recovery tells them
/// from new ones by the physical offset each record carries.
pub(crate) async fn reuse(dir: &Path, spare: &DmaFile, base: u64) -> Result<(), StoreError> {
    let final_path = path(dir, base);
    spare.rename(&final_path).await.map_err(|e| StoreError::io("rename", &final_path, e))?;
    sync_dir(dir).await
}

/// Writes zeros over `len` bytes at `at`, from the shared zeroed buffer when it is a whole chunk.
async fn fill_chunk(file: Rc<DmaFile>, zeros: Rc<DmaBuffer>, at: u64, len: usize) -> Result<(), String> {
    let written = if len == zeros.len() {
        file.write_rc_at(zeros, at).await
    } else {
        let mut buf = file.alloc_dma_buffer(len);
        buf.as_bytes_mut().fill(0);
        file.write_at(buf, at).await
    };
    whole_write(written, len, at)
}

/// A write's outcome as an error unless all `len` bytes at `pos` were written.
pub(crate) fn whole_write(written: glommio::Result<usize, ()>, len: usize, pos: u64) -> Result<(), String> {
    match written {
        Ok(n) if n == len => Ok(()),
        Ok(n) => Err(format!("short write of {n} of {len} bytes at {pos}")),
        Err(e) => Err(e.to_string()),
    }
}

fn final_path_display(base: u64) -> PathBuf {
    PathBuf::from(file_name(base))
}

pub(crate) async fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    let d = Directory::open(dir).await.map_err(|e| StoreError::io("open directory", dir, e))?;
    d.sync().await.map_err(|e| StoreError::io("sync directory", dir, e))?;
    let _ = d.close().await;
    Ok(())
}

/// Rounds down to a page boundary.
pub(crate) fn align_down(v: u64) -> u64 {
    v & !(PAGE as u64 - 1)
}

/// Rounds up to a page boundary.
pub(crate) fn align_up(v: u64) -> u64 {
    align_down(v + PAGE as u64 - 1)
}
