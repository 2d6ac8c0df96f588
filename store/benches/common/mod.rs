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
