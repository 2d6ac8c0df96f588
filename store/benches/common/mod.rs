//! What the store's benchmarks share: settings from the environment and their working folder.

use std::path::PathBuf;

/// The number in environment variable `name`, or `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The folder in environment variable `name`, else `target/<fallback>` of the workspace.
pub fn work_dir(name: &str, fallback: &str) -> PathBuf {
    std::env::var_os(name)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target").join(fallback))
}

/// CPU time the calling thread has used so far (from `/proc/thread-self/schedstat`), or `None`
/// where that file is missing. Read before and after a run on the executor's thread, it tells a
/// CPU-bound run (busy near 100 %) from one waiting on the disk.
#[allow(dead_code)] // not every bench reports it
pub fn thread_cpu() -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(std::time::Duration::from_nanos(ns))
}
