//! The store root shared by a broker's shards: `<root>/lock` keeps a second broker off the same
//! folder, `<root>/abort` exists while a broker runs, so its presence at start means the last
//! stop was not clean.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::error::StoreError;

/// Held for as long as the broker runs; dropping it releases the lock (the abort marker stays
/// unless [`RootLock::mark_clean_stop`] removed it).
#[derive(Debug)]
pub struct RootLock {
    _lock: File,
    abort: PathBuf,
    /// Whether the previous run stopped cleanly (or there was none).
    pub previous_stop_clean: bool,
}

impl RootLock {
    /// Creates `root` if needed, takes its lock and writes the abort marker.
    pub fn acquire(root: &Path) -> Result<RootLock, StoreError> {
        std::fs::create_dir_all(root).map_err(|e| StoreError::io("create", root, e))?;
        let lock_path = root.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::io("open", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked(root.to_path_buf()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::io("lock", &lock_path, e)),
        }
        let abort = root.join("abort");
        let previous_stop_clean = !abort.exists();
        if !previous_stop_clean {
            warn!(root = %root.display(), "the previous run did not stop cleanly; recovery checks the log tail");
        }
        File::create(&abort).and_then(|f| f.sync_all()).map_err(|e| StoreError::io("create", &abort, e))?;
        sync_dir(root)?;
        Ok(RootLock { _lock: lock, abort, previous_stop_clean })
    }

    /// Removes the abort marker: call after every shard closed its store.
    pub fn mark_clean_stop(&self) -> Result<(), StoreError> {
        match std::fs::remove_file(&self.abort) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("remove", &self.abort, e)),
        }
        if let Some(root) = self.abort.parent() {
            sync_dir(root)?;
        }
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| StoreError::io("fsync", dir, e))
}
