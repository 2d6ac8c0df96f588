//! Read throughput: a MessageStore is filled with 1 KiB records over 16 queues, then every queue
//! is read to its end with `get_message` (Java's batch limits: 32 records / 256 KiB a call from
//! memory, 8 / 64 KiB from disk), by one reader and by 16 concurrent readers (one per queue):
//! first from the in-memory tail cache, right after the appends; then from disk (O_DIRECT
//! reads, no page cache) after a reopen with a small cache. Prints records/s, MB/s and the
//! median and p99 time of one call, medians over the runs.
//!
//! Run: `cargo bench -p store --bench read`. Env: `READ_MB` (default 128), `READ_RUNS` (3),
//! `READ_DIR` (a folder under `target/`). Under `cargo test`, one small run as a smoke test.

mod common;

use common::{env_or, work_dir};

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::LocalExecutorBuilder;
use store::{GetMessageStatus, MessageStore, MessageStoreConfig};
use wire::message::StoredMessage;

const QUEUES: i32 = 16;

fn config(dir: &Path, cache_bytes: usize) -> MessageStoreConfig {
    let mut c = MessageStoreConfig::new(dir);
    c.commitlog.segment_bytes = 64 << 20;
    c.commitlog.cache_bytes = cache_bytes;
    c
}

/// One pass over every queue: records, bytes, wall time and per-call latencies.
struct Pass {
    records: u64,
    bytes: u64,
    elapsed: Duration,
    calls: Vec<Duration>,
}

impl Pass {
    fn records_per_s(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }

    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }

    fn call_percentile(&mut self, p: f64) -> Duration {
        self.calls.sort_unstable();
        self.calls.get(((self.calls.len() as f64 - 1.0) * p) as usize).copied().unwrap_or_default()
    }
}

async fn read_queue(store: &MessageStore, queue: i32, calls: &RefCell<Vec<Duration>>) -> (u64, u64) {
    let max = store.max_offset_in_queue("BenchTopic", queue);
    let mut offset = store.min_offset_in_queue("BenchTopic", queue);
    let (mut records, mut bytes) = (0u64, 0u64);
    while offset < max {
        let started = Instant::now();
        let r = store.get_message("BenchTopic", queue, offset, 32, &|_| true).await.expect("get");
        calls.borrow_mut().push(started.elapsed());
        assert_eq!(r.status, GetMessageStatus::Found, "queue {queue} at {offset}");
        records += r.messages.len() as u64;
        bytes += r.buffer_total_size as u64;
        offset = r.next_begin_offset;
    }
    (records, bytes)
}

async fn read_all(store: &MessageStore, readers: i32) -> Pass {
    let calls = Rc::new(RefCell::new(Vec::new()));
    let started = Instant::now();
    let mut totals = (0u64, 0u64);
    if readers == 1 {
        for queue in 0..QUEUES {
            let (r, b) = read_queue(store, queue, &calls).await;
            totals = (totals.0 + r, totals.1 + b);
        }
    } else {
        let tasks: Vec<_> = (0..QUEUES)
            .map(|queue| {
                let (store, calls) = (store.clone(), calls.clone());
                glommio::spawn_local(async move { read_queue(&store, queue, &calls).await })
            })
            .collect();
        for task in tasks {
            let (r, b) = task.await;
            totals = (totals.0 + r, totals.1 + b);
        }
    }
    let elapsed = started.elapsed();
    let calls = calls.take();
    Pass { records: totals.0, bytes: totals.1, elapsed, calls }
}

fn report(label: &str, mut passes: Vec<Pass>, expected_records: u64) {
    for p in &passes {
        assert_eq!(p.records, expected_records, "{label}: every record read");
    }
    passes.sort_by(|a, b| a.records_per_s().total_cmp(&b.records_per_s()));
    let median = passes.len() / 2;
    let m = &mut passes[median];
    println!(
        "{label:<22} {:>9.0} rec/s {:>7.0} MB/s   call p50 {:>6.1} µs  p99 {:>7.1} µs   ({} runs, median)",
        m.records_per_s(),
        m.mb_per_s(),
        m.call_percentile(0.5).as_secs_f64() * 1e6,
        m.call_percentile(0.99).as_secs_f64() * 1e6,
        passes.len()
    );
}

fn on_executor<T: Send + 'static, F: std::future::Future<Output = T> + 'static>(
    f: impl FnOnce() -> F + Send + 'static,
) -> T {
    LocalExecutorBuilder::default().spawn(f).expect("executor").join().expect("executor result")
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let total_mb = if measuring { env_or("READ_MB", 128) } else { 8 };
    let runs = if measuring { env_or("READ_RUNS", 3) } else { 1 };
    let dir = work_dir("READ_DIR", "read-bench");
    let _ = std::fs::remove_dir_all(&dir);

    // From memory: the whole log fits the tail cache and is read right after the appends.
    let cache_dir = dir.clone();
    let (records, cached) = on_executor(move || async move {
        let (store, _) = MessageStore::open(config(&cache_dir, (total_mb as usize + 64) << 20)).await.expect("open");
        let records = fill(&store, total_mb << 20).await;
        assert!(store.commitlog().in_memory(store.commitlog().global_offset(0)), "the whole log is cached");
        let mut passes = Vec::new();
        for readers in [1, QUEUES] {
            let mut by_readers = Vec::new();
            for _ in 0..runs {
                by_readers.push(read_all(&store, readers).await);
            }
            passes.push(by_readers);
        }
        store.close().await.expect("close");
        (records, passes)
    });
    println!("filled {total_mb} MB: {records} records of 1 KiB over {QUEUES} queues");
    let mut cached = cached.into_iter();
    report("cache, 1 reader", cached.next().unwrap_or_default(), records);
    report("cache, 16 readers", cached.next().unwrap_or_default(), records);

    // From disk: a reopened store with a 1 MiB cache reads every record with O_DIRECT.
    for readers in [1, QUEUES] {
        let mut passes = Vec::new();
        for _ in 0..runs {
            let run_dir = dir.clone();
            passes.push(on_executor(move || async move {
                let (store, _) = MessageStore::open(config(&run_dir, 1 << 20)).await.expect("reopen");
                let pass = read_all(&store, readers).await;
                store.close().await.expect("close");
                pass
            }));
        }
        report(&format!("disk, {readers} reader{}", if readers == 1 { "" } else { "s" }), passes, records);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn fill(store: &MessageStore, bytes: u64) -> u64 {
    let body = Bytes::from(vec![b'x'; 1024]);
    let crc = wire::message::body_crc(&body);
    let mut records = 0u64;
    let mut last = None;
    while store.commitlog().end() < bytes {
        let msg = StoredMessage {
            topic: "BenchTopic".into(),
            queue_id: (records % QUEUES as u64) as i32,
            body: body.clone(),
            body_crc: crc,
            properties: "TAGS\u{1}TagA".into(),
            ..Default::default()
        };
        let put = store.put_message(msg).expect("put");
        records += 1;
        if records.is_multiple_of(4096) {
            put.durable.wait().await.expect("durable");
        } else {
            last = Some(put.durable);
        }
    }
    if let Some(durable) = last {
        durable.wait().await.expect("durable");
    }
    records
}
