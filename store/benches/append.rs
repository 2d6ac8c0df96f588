//! CommitLog append throughput and latency, 1 KiB bodies, one shard: ASYNC_FLUSH and SYNC_FLUSH
//! at 1, 16 and 128 concurrent appenders (each appends, waits for its acknowledgement, repeats).
//!
//! Run: `cargo bench -p store --bench append`. Env: `APPEND_SECS` (default 3), `APPEND_APPENDERS`
//! (`1,16,128`), `APPEND_FLUSH` (both, or `ASYNC_FLUSH` / `SYNC_FLUSH`),
//! `APPEND_SEGMENT_MB` (256), `APPEND_ZERO_FILL` (1), `APPEND_CACHE_MB` (256), `APPEND_DIR` (a folder under `target/`),
//! `APPEND_SPARES` (0; N first writes N segments and deletes them as spares, so the run measures a
//! log whose retention has begun: its new segments are reused files, not zero-filled ones),
//! `APPEND_BATCH` (1; records each appender appends before waiting, as one SEND_BATCH_MESSAGE;
//! latencies are then per batch).
//! Under `cargo test` it makes one short run as a smoke test.

mod common;

use common::{env_or, thread_cpu, work_dir};

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::LocalExecutorBuilder;
use store::{CommitLog, CommitLogConfig, FlushDiskType};
use wire::message::StoredMessage;

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let secs = if measuring { env_or("APPEND_SECS", 3) } else { 1 };
    let chosen: Vec<usize> = std::env::var("APPEND_APPENDERS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| if measuring { vec![1, 16, 128] } else { vec![16] });
    let appenders = chosen.as_slice();
    let modes: Vec<FlushDiskType> = match std::env::var("APPEND_FLUSH").ok().as_deref().and_then(FlushDiskType::parse) {
        Some(mode) => vec![mode],
        None => vec![FlushDiskType::AsyncFlush, FlushDiskType::SyncFlush],
    };
    let segment_bytes = env_or("APPEND_SEGMENT_MB", if measuring { 256 } else { 16 }) << 20;
    let root = work_dir("APPEND_DIR", "append-bench");
    for flush in modes {
        for &n in appenders {
            let dir = root.join(format!("{}-{n}", flush.name()));
            let _ = std::fs::remove_dir_all(&dir);
            let line = LocalExecutorBuilder::default()
                .spawn(move || async move { run(dir, flush, n, segment_bytes, Duration::from_secs(secs)).await })
                .expect("executor")
                .join()
                .expect("bench run");
            println!("{line}");
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

async fn run(dir: PathBuf, flush: FlushDiskType, appenders: usize, segment_bytes: u64, length: Duration) -> String {
    let mut config = CommitLogConfig::new(&dir);
    config.segment_bytes = segment_bytes;
    config.flush_disk_type = flush;
    config.zero_fill_segments = env_or("APPEND_ZERO_FILL", 1) != 0;
    config.cache_bytes = (env_or("APPEND_CACHE_MB", 256) as usize) << 20;
    let spares = env_or("APPEND_SPARES", 0) as usize;
    let batch = env_or("APPEND_BATCH", 1).max(1) as usize;
    config.spare_segments = spares;
    let (log, _) = CommitLog::open(config, None, |_| {}).await.expect("open");
    // Let the first segments be created before measuring.
    log.append(&mut message()).expect("append").wait().await.expect("first append");
    if spares > 0 {
        make_spares(&log, spares, segment_bytes).await;
    }
    let reused_before = log.reused_segments();

    let latencies = Rc::new(RefCell::new(Vec::<u32>::new()));
    let bytes = Rc::new(RefCell::new(0u64));
    let deadline = Instant::now() + length;
    let started = Instant::now();
    let cpu_before = thread_cpu();
    let mut tasks = Vec::new();
    // One message built up front: what is measured is the store, not building bodies.
    let template = message();
    for _ in 0..appenders {
        let (log, latencies, bytes, template) = (log.clone(), latencies.clone(), bytes.clone(), template.clone());
        tasks.push(glommio::spawn_local(async move {
            let mut now = Instant::now();
            while now < deadline {
                // A batch is acknowledged when its last record is (acknowledgements follow log order).
                let mut last = log.append(&mut template.clone()).expect("append");
                for _ in 1..batch {
                    last = log.append(&mut template.clone()).expect("append");
                }
                let r = last.wait().await.expect("durable");
                let done = Instant::now();
                latencies.borrow_mut().push((done - now).as_micros() as u32);
                *bytes.borrow_mut() += batch as u64 * r.size as u64;
                now = done;
            }
        }));
    }
    for t in tasks {
        t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = thread_cpu().zip(cpu_before).map(|(after, before)| (after - before).as_secs_f64());
    let mut lat = latencies.borrow().clone();
    lat.sort_unstable();
    let pct = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0);
    let total = *bytes.borrow();
    let reused = log.reused_segments() - reused_before;
    format!(
        "append {:<11} {:>3} appenders{}: {:>9.0} records/s {:>8.1} MB/s  p50 {:>6} µs  p99 {:>6} µs  max {:>7} µs{}{}",
        flush.name(),
        appenders,
        if batch > 1 { format!(" × {batch}") } else { String::new() },
        (lat.len() * batch) as f64 / elapsed,
        total as f64 / 1e6 / elapsed,
        pct(0.5),
        pct(0.99),
        lat.last().copied().unwrap_or(0),
        // The executor's share of the run on the CPU, and its CPU time per record: a run that is
        // not busy near 100 % waits on the disk or on the executor's scheduling, not on the CPU.
        cpu.map_or(String::new(), |cpu| format!(
            "  busy {:>3.0} %  {:.2} µs CPU/record",
            100.0 * cpu / elapsed,
            1e6 * cpu / (lat.len() * batch).max(1) as f64
        )),
        if spares > 0 { format!("  ({reused} segments reused)") } else { String::new() }
    )
}

/// A log as it runs once retention has begun: `count` whole segments written, then deleted and
/// kept as spares, so the segments measured need no zero-fill.
async fn make_spares(log: &CommitLog, count: usize, segment_bytes: u64) {
    let target = log.end() + count as u64 * segment_bytes;
    eprintln!("writing {count} segments to keep as spares ({} MB)…", count as u64 * segment_bytes / 1_000_000);
    let mut pending = std::collections::VecDeque::new();
    while log.end() < target {
        pending.push_back(log.append(&mut message()).expect("append"));
        if pending.len() >= 256 {
            if let Some(durable) = pending.pop_front() {
                durable.wait().await.expect("durable");
            }
        }
    }
    for durable in pending {
        durable.wait().await.expect("durable");
    }
    log.flush().await.expect("flush");
    let deleted = log.delete_old_segments(log.end(), None, count, true).await.expect("retention");
    eprintln!("{} segments deleted, {} kept as spares", deleted.len(), log.spare_segments());
}

fn message() -> StoredMessage {
    let body = Bytes::from(vec![b'x'; 1024]);
    StoredMessage {
        topic: "BenchTopic".into(),
        body_crc: wire::message::body_crc(&body),
        body,
        properties: "TAGS\u{1}TagA".into(),
        born_timestamp: 1_700_000_000_000,
        ..Default::default()
    }
}
