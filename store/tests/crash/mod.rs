//! The kill -9 harness shared by the store's crash tests: re-runs this test binary as a child
//! that appends and prints one `ACK …` line per acknowledged record, kills it while appends
//! flow, and returns what it acknowledged.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs the test named `child_test` as a child process with `dir_env` = `dir` and `envs`;
/// kills it `after` the first acknowledgement; returns the fields of every `ACK` line.
pub fn run_and_kill(
    child_test: &str,
    dir_env: &str,
    dir: &Path,
    envs: &[(&str, String)],
    after: Duration,
) -> Vec<Vec<String>> {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", child_test, "--nocapture", "--test-threads=1"]).env(dir_env, dir);
    for (key, value) in envs {
        cmd.env(key, value);
    }
    // The child's stderr is kept, to be shown when a round acknowledged nothing.
    let log_path = std::env::temp_dir().join(format!("{child_test}-{}.stderr", std::process::id()));
    let log = std::fs::File::create(&log_path).expect("child log");
    let mut child = cmd.stdout(Stdio::piped()).stderr(log).spawn().expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (first_ack, appending) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let mut parts = line.split_whitespace();
            if parts.next() == Some("ACK") {
                acks.push(parts.map(str::to_owned).collect());
                let _ = first_ack.send(());
            }
        }
        acks
    });
    // Once appends flow (recovery may take a while on a loaded machine), wait the given time.
    let _ = appending.recv_timeout(Duration::from_secs(60));
    std::thread::sleep(after);
    child.kill().expect("kill -9");
    let status = child.wait();
    let acks = reader.join().expect("reader");
    if acks.is_empty() {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        eprintln!("child acknowledged nothing ({status:?}); the end of its stderr:");
        for line in tail.iter().rev() {
            eprintln!("  {line}");
        }
    }
    let _ = std::fs::remove_file(&log_path);
    acks
}

/// Parses field `i` of an `ACK` line.
pub fn field<T: std::str::FromStr>(ack: &[String], i: usize) -> T {
    ack.get(i).and_then(|f| f.parse().ok()).unwrap_or_else(|| panic!("bad ACK line {ack:?}"))
}

/// In the child process (`dir_env` set): its store folder, flush mode and first sequence
/// number, as `run_and_kill`'s caller passed them in `STORE_CRASH_FLUSH` / `STORE_CRASH_SEQ`.
/// `None` in an ordinary test run.
pub fn child_settings(dir_env: &str) -> Option<(PathBuf, store::FlushDiskType, u64)> {
    let dir = std::env::var_os(dir_env)?;
    let flush = match std::env::var("STORE_CRASH_FLUSH").as_deref() {
        Ok("SYNC_FLUSH") => store::FlushDiskType::SyncFlush,
        _ => store::FlushDiskType::AsyncFlush,
    };
    let first_seq = std::env::var("STORE_CRASH_SEQ").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    Some((PathBuf::from(dir), flush, first_seq))
}
