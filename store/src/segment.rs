//! CommitLog segment files: named by their 20-digit start offset, created at full size and
//! (by default) filled with zeros before use, under a `.tmp` name until ready.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{Directory, DmaFile, OpenOptions};
use tracing::debug;

use crate::error::StoreError;
use crate::PAGE;

/// Zero-fill write size.
const FILL_CHUNK: usize = 256 << 10;

pub(crate) fn file_name(base: u64) -> String {
    format!("{base:020}")
}

pub(crate) fn path(dir: &Path, base: u64) -> PathBuf {
    dir.join(file_name(base))
}

/// The start offsets of the segments in `dir`, ascending. Leftover `.tmp` files (a segment
/// whose creation was interrupted) are removed.
pub(crate) fn list(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let entries = std::fs::read_dir(dir).map_err(|e| StoreError::io("list", dir, e))?;
    let mut bases = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            std::fs::remove_file(entry.path()).map_err(|e| StoreError::io("remove", entry.path(), e))?;
            continue;
        }
        if name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(base) = name.parse::<u64>() {
                bases.push(base);
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
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

/// Opens an existing segment for reading and writing.
pub(crate) async fn open(dir: &Path, base: u64) -> Result<Rc<DmaFile>, StoreError> {
    let path = path(dir, base);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .dma_open(&path)
        .await
        .map_err(|e| StoreError::io("open", &path, e))?;
    Ok(Rc::new(file))
}

/// Share of the disk's time a zero-fill that is ahead of schedule may take: after each chunk it
/// rests this many times as long as the chunk took. Filling back to back, 1 MiB writes queued
/// ahead of the appends' writes cut append throughput for seconds (seen here: a 1 GiB fill made
/// the first 4 s of a run 2-10x slower).
const FILL_REST_FACTOR: u32 = 3;

/// Creates the segment starting at `base`: allocated at full size, zero-filled if asked, synced,
/// then renamed into place. The fill rests between chunks unless `behind(bytes filled)` says
/// it must hurry.
pub(crate) async fn create(
    dir: &Path,
    base: u64,
    size: u64,
    zero_fill: bool,
    behind: impl Fn(u64) -> bool,
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
            let len = FILL_CHUNK.min((size - at) as usize);
            let started = std::time::Instant::now();
            let written = if len == FILL_CHUNK {
                file.write_rc_at(zeros.clone(), at).await
            } else {
                let mut buf = file.alloc_dma_buffer(len);
                buf.as_bytes_mut().fill(0);
                file.write_at(buf, at).await
            };
            let written = written.map_err(io("zero-fill"))?;
            if written != len {
                let short = format!("wrote {written} of {len} bytes");
                return Err(StoreError::io("zero-fill", final_path_display(base), short));
            }
            at += len as u64;
            if !behind(at) {
                glommio::timer::sleep(started.elapsed() * FILL_REST_FACTOR).await;
            }
        }
    }
    file.fdatasync().await.map_err(io("sync"))?;
    file.rename(&final_path).await.map_err(io("rename"))?;
    sync_dir(dir).await?;
    // Reads through the creating handle failed with EOPNOTSUPP here (glommio 0.9); a handle
    // opened afresh reads and writes.
    file.close().await.map_err(io("close"))?;
    debug!(segment = %final_path.display(), size, zero_fill, "segment created");
    open(dir, base).await
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
