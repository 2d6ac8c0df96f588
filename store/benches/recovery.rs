//! Recovery rate: a MessageStore with 1 KiB records over 16 queues is filled, closed, its
//! checkpoint removed, and reopened: the reopening scans and validates the whole CommitLog and
//! rebuilds every ConsumeQueue. Prints MB/s of log scanned (median of the runs).
//!
//! Run: `cargo bench -p store --bench recovery`. Env: `RECOVERY_MB` (default 512), `RECOVERY_RUNS`
//! (3), `RECOVERY_DIR` (a folder under `target/`). Under `cargo test`, one small run as a smoke test.

mod common;

use common::{env_or, work_dir};

use std::time::Instant;

use bytes::Bytes;
use glommio::LocalExecutorBuilder;
use store::{MessageStore, MessageStoreConfig};
use wire::message::StoredMessage;

fn config(dir: &std::path::Path) -> MessageStoreConfig {
    let mut c = MessageStoreConfig::new(dir);
    c.commitlog.segment_bytes = 64 << 20;
    c
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let total_mb = if measuring { env_or("RECOVERY_MB", 512) } else { 8 };
    let runs = if measuring { env_or("RECOVERY_RUNS", 3) } else { 1 };
    let dir = work_dir("RECOVERY_DIR", "recovery-bench");
    let _ = std::fs::remove_dir_all(&dir);
    let fill_dir = dir.clone();
    let records = LocalExecutorBuilder::default()
        .spawn(move || async move { fill(&fill_dir, total_mb << 20).await })
        .expect("executor")
        .join()
        .expect("fill");
    println!("filled {total_mb} MB: {records} records of 1 KiB over 16 queues");
    let mut rates = Vec::new();
    for run in 0..runs {
        let _ = std::fs::remove_file(dir.join("checkpoint"));
        let run_dir = dir.clone();
        let (mb_per_s, scanned) = LocalExecutorBuilder::default()
            .spawn(move || async move {
                let started = Instant::now();
                let (store, recovery) = MessageStore::open(config(&run_dir)).await.expect("reopen");
                let secs = started.elapsed().as_secs_f64();
                assert_eq!(recovery.commitlog.records, records, "every record scanned");
                assert!(store.max_offset_in_queue("BenchTopic", 0) > 0);
                store.close().await.expect("close");
                (recovery.commitlog.bytes_scanned as f64 / 1e6 / secs, recovery.commitlog.bytes_scanned)
            })
            .expect("executor")
            .join()
            .expect("recovery run");
        println!("run {run}: scanned {:.0} MB at {mb_per_s:.0} MB/s (ConsumeQueues rebuilt)", scanned as f64 / 1e6);
        rates.push(mb_per_s);
    }
    rates.sort_by(f64::total_cmp);
    println!("recovery median: {:.0} MB/s over {} runs", rates[rates.len() / 2], rates.len());
    let _ = std::fs::remove_dir_all(&dir);
}

async fn fill(dir: &std::path::Path, bytes: u64) -> u64 {
    let (store, _) = MessageStore::open(config(dir)).await.expect("open");
    let body = Bytes::from(vec![b'x'; 1024]);
    let crc = wire::message::body_crc(&body);
    let mut records = 0u64;
    let mut last = None;
    let mut next_report = 64u64 << 20;
    while store.commitlog().end() < bytes {
        let msg = StoredMessage {
            topic: "BenchTopic".into(),
            queue_id: (records % 16) as i32,
            body: body.clone(),
            body_crc: crc,
            properties: "TAGS\u{1}TagA".into(),
            ..Default::default()
        };
        let put = store.put_message(msg).expect("put");
        records += 1;
        // Keep a bounded number of appends ahead of the disk.
        if records.is_multiple_of(4096) {
            put.durable.wait().await.expect("durable");
        } else {
            last = Some(put.durable);
        }
        if store.commitlog().end() >= next_report {
            next_report += 64 << 20;
            eprintln!("filling: {} MB", store.commitlog().end() >> 20);
        }
    }
    if let Some(durable) = last {
        durable.wait().await.expect("durable");
    }
    store.close().await.expect("close");
    records
}
