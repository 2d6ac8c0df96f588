//! CommitLog on real files: round trips across segments, reads from cache and disk, recovery of
//! torn and corrupt tails, spare segments reused, SYNC_FLUSH group commit, and kill -9 of an
//! appending process.

mod crash;

use std::cell::RefCell;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use glommio::LocalExecutorBuilder;
use store::{CommitLog, CommitLogConfig, FlushDiskType, RecoveryReport};
use wire::message::StoredMessage;

const SEGMENT: u64 = 256 * 1024;

fn config(dir: &Path, flush: FlushDiskType) -> CommitLogConfig {
    let mut c = CommitLogConfig::new(dir);
    c.shard = 3;
    c.segment_bytes = SEGMENT;
    c.max_write_bytes = 32 * 1024;
    c.writes_in_flight = 4;
    c.flush_disk_type = flush;
    c.flush_interval = Duration::from_millis(20);
    c.cache_bytes = 64 * 1024;
    c
}

/// Runs `f` on a fresh glommio executor: each call is like a new process start.
fn on_executor<T: Send + 'static, F: std::future::Future<Output = T> + 'static>(
    f: impl FnOnce() -> F + Send + 'static,
) -> T {
    LocalExecutorBuilder::default().io_memory(1 << 20).spawn(f).expect("executor").join().expect("executor result")
}

fn message(seq: u64, body_len: usize) -> StoredMessage {
    let body: Vec<u8> = (0..body_len).map(|i| (seq as usize + i) as u8).collect();
    StoredMessage {
        topic: "TopicTest".into(),
        queue_id: (seq % 4) as i32,
        queue_offset: seq as i64,
        body_crc: wire::message::body_crc(&body),
        body: Bytes::from(body),
        properties: format!("SEQ\u{1}{seq}").as_str().into(),
        born_timestamp: 1_700_000_000_000,
        ..Default::default()
    }
}

fn seq_of(record: &Bytes) -> u64 {
    let (msg, _) = StoredMessage::decode(record, true).expect("intact record");
    msg.property("SEQ").and_then(|s| s.parse().ok()).expect("SEQ property")
}

async fn open(c: CommitLogConfig) -> (CommitLog, RecoveryReport) {
    CommitLog::open(c, None, |_| {}).await.expect("open")
}

#[test]
fn appends_roll_over_segments_and_read_back_from_cache_and_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = config(dir.path(), FlushDiskType::AsyncFlush);
    let acked = on_executor(move || async move {
        let (log, report) = open(c).await;
        assert_eq!(report.end, 0);
        let mut pending = Vec::new();
        for seq in 0..1200u64 {
            let mut msg = message(seq, 200 + (seq as usize * 37) % 1500);
            pending.push((seq, log.append(&mut msg).expect("append")));
        }
        let mut acked = Vec::new();
        for (seq, durable) in pending {
            let r = durable.wait().await.expect("durable");
            assert_eq!(store::shard_of(r.physical_offset), 3, "shard in the offset");
            assert!(r.physical_offset < 1 << 53, "exact as a JavaScript number");
            acked.push((seq, r.physical_offset, r.size));
        }
        assert!(log.end() > 3 * SEGMENT, "several segments used: {}", log.end());
        assert!(log.cached_bytes() <= 64 * 1024 + 4096, "cache bounded: {}", log.cached_bytes());
        for &(seq, offset, size) in &acked {
            let record = log.read(offset, size).await.expect("read");
            assert_eq!(seq_of(&record), seq);
        }
        let first = log.read_record(acked[0].1).await.expect("read without size");
        assert_eq!(seq_of(&first), 0);
        assert!(log.read(1 << 50, 10).await.is_err(), "another shard's offset");
        log.flush().await.expect("flush");
        acked
    });

    // A new start finds every record and the same end.
    let c = config(dir.path(), FlushDiskType::AsyncFlush);
    on_executor(move || async move {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let sink = seen.clone();
        let (log, report) =
            CommitLog::open(c, None, move |r| sink.borrow_mut().push(r.message.physical_offset)).await.expect("open");
        assert!(!report.discarded_tail);
        let last = acked.last().expect("records");
        assert_eq!(report.end, (last.1 as u64 & ((1 << 50) - 1)) + last.2 as u64);
        assert!(!seen.borrow().is_empty());
        for &(seq, offset, size) in &acked {
            assert_eq!(seq_of(&log.read(offset, size).await.expect("read after restart")), seq);
        }
    });
}

/// Appenders in their own tasks, each at its own pace and not waiting for acknowledgements,
/// keep appending while writes are in flight, so writes start past pages still being written;
/// every acknowledged record must still be on disk, whole, in both flush modes.
#[test]
fn concurrent_appenders_with_writes_in_flight_lose_nothing() {
    for flush in [FlushDiskType::AsyncFlush, FlushDiskType::SyncFlush] {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = config(dir.path(), flush);
        let (acked, deferred) = on_executor(move || async move {
            let (log, _) = open(c).await;
            let mut tasks = Vec::new();
            for appender in 0..8u64 {
                let log = log.clone();
                tasks.push(glommio::spawn_local(async move {
                    let mut pending = Vec::new();
                    for i in 0..1000u64 {
                        let seq = appender * 1000 + i;
                        let mut msg = message(seq, 100 + (seq as usize * 53) % 900);
                        pending.push((seq, log.append(&mut msg).expect("append")));
                        if i % 4 == 3 {
                            glommio::timer::sleep(Duration::from_micros(20 + 15 * appender)).await;
                        }
                    }
                    let mut acked = Vec::new();
                    for (seq, durable) in pending {
                        let r = durable.wait().await.expect("durable");
                        acked.push((seq, r.physical_offset, r.size));
                    }
                    acked
                }));
            }
            let mut acked = Vec::new();
            for task in tasks {
                acked.extend(task.await);
            }
            let deferred = log.deferred_page_rewrites();
            log.close().await.expect("close");
            (acked, deferred)
        });
        assert_eq!(acked.len(), 8 * 1000);
        assert!(deferred > 0, "{}: no write started past a busy page; the test proves nothing", flush.name());

        let c = config(dir.path(), flush);
        on_executor(move || async move {
            let (log, report) = open(c).await;
            assert!(!report.discarded_tail, "{}", flush.name());
            for &(seq, offset, size) in &acked {
                assert_eq!(seq_of(&log.read(offset, size).await.expect("read after restart")), seq);
            }
        });
    }
}

#[test]
fn a_corrupt_tail_is_cut_and_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = config(dir.path(), FlushDiskType::AsyncFlush);
    let acked = on_executor(move || async move {
        let (log, _) = open(c).await;
        let mut acked = Vec::new();
        for seq in 0..50u64 {
            let r = log.append(&mut message(seq, 1000)).expect("append").wait().await.expect("durable");
            acked.push((seq, r.physical_offset, r.size));
        }
        log.flush().await.expect("flush");
        acked
    });
    // Flip bytes inside the body of record 40: its BODYCRC no longer matches.
    let (_, offset, _) = acked[40];
    let local = CommitLog::local_part(offset);
    let segment_path = dir.path().join(format!("{:020}", local / SEGMENT * SEGMENT));
    let mut f = std::fs::OpenOptions::new().write(true).open(&segment_path).expect("segment");
    f.seek(SeekFrom::Start(local % SEGMENT + 200)).expect("seek");
    f.write_all(b"garbage!").expect("corrupt");
    drop(f);

    let c = config(dir.path(), FlushDiskType::AsyncFlush);
    let acked_after = on_executor(move || async move {
        let (log, report) = open(c).await;
        assert!(report.discarded_tail);
        assert_eq!(report.end, local, "the log ends before the corrupt record");
        assert_eq!(report.records, 40);
        for &(seq, offset, size) in &acked[..40] {
            assert_eq!(seq_of(&log.read(offset, size).await.expect("read")), seq);
        }
        assert!(log.read(acked[45].1, acked[45].2).await.is_err(), "nothing past the cut is served");
        let mut more = Vec::new();
        for seq in 100..110u64 {
            let r = log.append(&mut message(seq, 700)).expect("append").wait().await.expect("durable");
            more.push((seq, r.physical_offset, r.size));
        }
        assert_eq!(more[0].1, offset, "appends continue where the valid log ended");
        log.flush().await.expect("flush");
        more
    });
    let c = config(dir.path(), FlushDiskType::AsyncFlush);
    on_executor(move || async move {
        let (log, report) = open(c).await;
        assert!(!report.discarded_tail, "the stale tail was zeroed: {report:?}");
        assert_eq!(report.records, 50);
        for &(seq, offset, size) in &acked_after {
            assert_eq!(seq_of(&log.read(offset, size).await.expect("read")), seq);
        }
    });
}

/// A message whose record is exactly `size` bytes.
fn message_of_size(seq: u64, size: usize) -> StoredMessage {
    let header = message(seq, 0).encoded_len();
    message(seq, size - header)
}

fn spares_in(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("dir")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "spare")))
        .count()
}

/// Appends 1 KiB records (so every fourth ends on a page, and a segment's records sit at the
/// same places in every segment) until `done(end)`; returns (seq, offset, size) of each.
async fn append_1k_until(log: &CommitLog, first_seq: u64, done: impl Fn(u64) -> bool) -> Vec<(u64, i64, usize)> {
    let mut acked = Vec::new();
    let mut seq = first_seq;
    while !done(log.end()) {
        let r = log.append(&mut message_of_size(seq, 1024)).expect("append").wait().await.expect("durable");
        acked.push((seq, r.physical_offset, r.size));
        seq += 1;
    }
    acked
}

#[test]
fn retention_keeps_spare_segments_that_later_segments_reuse_and_recovery_ignores_their_old_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path(), FlushDiskType::AsyncFlush);
    c.spare_segments = 2;
    let first = c.clone();
    let (end, live) = on_executor(move || async move {
        let (log, _) = open(first).await;
        let old = append_1k_until(&log, 0, |end| end > 3 * SEGMENT + 8 * 1024).await;
        log.flush().await.expect("flush");
        let deleted = log.delete_old_segments(log.end(), None, 3, true).await.expect("retention");
        assert_eq!(deleted, [0, SEGMENT, 2 * SEGMENT]);
        assert_eq!(log.spare_segments(), 2, "two files kept, the third deleted");
        assert_eq!(spares_in(log.config().dir.as_path()), 2);

        // Segment 4 was made before retention ran; 5 and 6 are the spares renamed.
        let new = append_1k_until(&log, 10_000, |end| end > 6 * SEGMENT + 8 * 1024 && end % 4096 == 0).await;
        assert_eq!(log.spare_segments(), 0, "both spares were reused");
        assert_eq!(spares_in(log.config().dir.as_path()), 0);
        for &(seq, offset, size) in new.iter().rev().take(300) {
            assert_eq!(seq_of(&log.read(offset, size).await.expect("read")), seq);
        }
        log.close().await.expect("close");
        let live: Vec<_> =
            old.into_iter().chain(new).filter(|&(_, o, _)| CommitLog::local_part(o) >= 3 * SEGMENT).collect();
        (log.end(), live)
    });

    // The log ends on a page of a reused segment, right before an old record of that file
    // (written there when it was segment 1): a scan from the start must stop there, cleanly.
    let reopened = c.clone();
    on_executor(move || async move {
        let mut scanned = Vec::new();
        let (log, report) = CommitLog::open(reopened, None, |r| scanned.push((r.message.physical_offset, r.size)))
            .await
            .expect("reopen");
        assert_eq!(report.end, end, "{report:?}");
        assert!(!report.discarded_tail, "old records of a reused file are not a torn tail: {report:?}");
        let expected: Vec<(i64, usize)> = live.iter().map(|&(_, o, s)| (o, s)).collect();
        assert_eq!(scanned, expected, "exactly the live records, none of the reused files' old ones");
        for &(seq, offset, size) in live.iter().rev().take(300) {
            assert_eq!(seq_of(&log.read(offset, size).await.expect("read")), seq);
        }
        let r = log.append(&mut message(20_000, 300)).expect("append").wait().await.expect("durable");
        assert_eq!(CommitLog::local_part(r.physical_offset), end, "appends go on where the log ended");
        log.close().await.expect("close");
    });
}

#[test]
fn spares_are_bounded_survive_a_restart_and_go_when_space_is_needed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path(), FlushDiskType::SyncFlush);
    c.spare_segments = 1;
    let first = c.clone();
    on_executor(move || async move {
        let (log, _) = open(first).await;
        append_1k_until(&log, 0, |end| end > 4 * SEGMENT).await;
        log.flush().await.expect("flush");
        assert_eq!(log.delete_old_segments(log.end(), None, 1, false).await.expect("retention"), [0]);
        assert_eq!(log.spare_segments(), 0, "not kept when the caller needs the space");
        assert_eq!(log.delete_old_segments(log.end(), None, 2, true).await.expect("retention"), [SEGMENT, 2 * SEGMENT]);
        assert_eq!(log.spare_segments(), 1, "no more than spare_segments are kept");
        log.close().await.expect("close");
    });
    assert_eq!(spares_in(dir.path()), 1);
    let second = c.clone();
    on_executor(move || async move {
        let (log, _) = open(second).await;
        // A restart removes the segment made ahead of the log; it is made again, from the spare.
        append_1k_until(&log, 1000, |end| end > 5 * SEGMENT + 1024).await;
        assert_eq!(log.spare_segments(), 0, "the spare left by the last run became a segment");
        assert_eq!(spares_in(log.config().dir.as_path()), 0);
        log.flush().await.expect("flush");
        assert_eq!(log.delete_old_segments(log.end(), None, 1, true).await.expect("retention"), [3 * SEGMENT]);
        assert_eq!(log.spare_segments(), 1);
        assert_eq!(log.drop_spare_segments().await.expect("drop"), 1, "space needed: spares go");
        assert_eq!(log.spare_segments(), 0);
        log.close().await.expect("close");
    });
    assert_eq!(spares_in(dir.path()), 0);
    // A spare of another segment size (the setting changed) is deleted, never reused.
    let odd = dir.path().join(format!("{:020}.spare", 99 * SEGMENT));
    std::fs::write(&odd, vec![0u8; 8192]).expect("odd spare");
    on_executor(move || async move {
        let (log, _) = open(c).await;
        assert_eq!(log.spare_segments(), 0);
        log.close().await.expect("close");
    });
    assert!(!odd.exists());
}

#[test]
fn sync_flush_acknowledges_synced_records_with_group_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = config(dir.path(), FlushDiskType::SyncFlush);
    on_executor(move || async move {
        let (log, _) = open(c).await;
        let mut tasks = Vec::new();
        for appender in 0..32u64 {
            let log = log.clone();
            tasks.push(glommio::spawn_local(async move {
                for i in 0..20u64 {
                    let seq = appender * 1000 + i;
                    let r = log.append(&mut message(seq, 512)).expect("append").wait().await.expect("synced");
                    assert!(log.durable_end() >= CommitLog::local_part(r.physical_offset) + r.size as u64);
                }
            }));
        }
        for t in tasks {
            t.await;
        }
        assert_eq!(log.durable_end(), log.end());
    });
}

#[test]
fn records_too_large_for_a_segment_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = config(dir.path(), FlushDiskType::AsyncFlush);
    on_executor(move || async move {
        let (log, _) = open(c).await;
        let err = log.append(&mut message(1, SEGMENT as usize)).err().expect("too large");
        assert!(matches!(err, store::StoreError::RecordTooLarge { .. }), "{err}");
        log.append(&mut message(2, 100)).expect("still usable").wait().await.expect("durable");
    });
}

#[test]
fn bad_configs_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path(), FlushDiskType::AsyncFlush);
    c.segment_bytes = 100_000;
    assert!(c.validate().is_err());
    let mut c = config(dir.path(), FlushDiskType::AsyncFlush);
    c.max_write_bytes = 1 << 20;
    assert!(c.validate().is_err(), "in-flight window larger than a segment");
}

// ---- kill -9 ----

const CHILD_ENV: &str = "STORE_CRASH_CHILD_DIR";

/// Not a test on its own: when the crash test re-runs this binary with `CHILD_ENV` set, this
/// appends until killed, printing each acknowledged record.
#[test]
fn crash_child() {
    let Some((dir, flush, first_seq)) = crash::child_settings(CHILD_ENV) else { return };
    let reusing = std::env::var_os("STORE_CRASH_SPARES").is_some();
    let mut c = config(&dir, flush);
    c.spare_segments = if reusing { SPARES_WHILE_CRASHING } else { 0 };
    on_executor(move || async move {
        let (log, _) = open(c).await;
        let out = Rc::new(RefCell::new(std::io::stdout()));
        let mut tasks = Vec::new();
        for appender in 0..16u64 {
            let (log, out) = (log.clone(), out.clone());
            tasks.push(glommio::spawn_local(async move {
                let mut seq = first_seq + appender;
                loop {
                    let durable = log.append(&mut message(seq, 300 + (seq as usize % 900))).expect("append");
                    let r = durable.wait().await.expect("durable");
                    let mut out = out.borrow_mut();
                    let _ = writeln!(out, "ACK {seq} {} {} {}", r.physical_offset, r.size, log.reused_segments());
                    let _ = out.flush();
                    seq += 16;
                }
            }));
        }
        if reusing {
            // Retention as fast as segments fill: all but the last two become spares, which
            // the next segments reuse while the child is killed at any moment.
            tasks.push(glommio::spawn_local(async move {
                loop {
                    glommio::timer::sleep(Duration::from_millis(5)).await;
                    let _ = log.flush().await;
                    let keep_from = log.end().saturating_sub(2 * SEGMENT);
                    log.delete_old_segments(keep_from, None, 10, true).await.expect("retention");
                }
            }));
        }
        for t in tasks {
            t.await;
        }
    });
}

#[test]
fn every_acknowledged_record_survives_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acked: Vec<(u64, i64, usize)> = Vec::new();
    let mut next_seq = 0u64;
    for round in 0..8u64 {
        let flush = if round % 2 == 0 { "ASYNC_FLUSH" } else { "SYNC_FLUSH" };
        let envs = [("STORE_CRASH_FLUSH", flush.to_owned()), ("STORE_CRASH_SEQ", next_seq.to_string())];
        let after = Duration::from_millis(150 + round * 37 % 200);
        let round_acked: Vec<(u64, i64, usize)> =
            crash::run_and_kill("crash_child", CHILD_ENV, dir.path(), &envs, after)
                .iter()
                .map(|a| (crash::field(a, 0), crash::field(a, 1), crash::field(a, 2)))
                .collect();
        assert!(!round_acked.is_empty(), "round {round} ({flush}): the child acknowledged something");
        next_seq = round_acked.iter().map(|a| a.0).max().unwrap_or(0) + 1_000_000;
        acked.extend(round_acked);

        let c = config(dir.path(), FlushDiskType::AsyncFlush);
        let c_dir = dir.path().to_path_buf();
        let check = acked.clone();
        on_executor(move || async move {
            let (log, report) = open(c).await;
            for &(seq, offset, size) in &check {
                let record = log.read(offset, size).await.unwrap_or_else(|e| {
                    let files: Vec<String> = std::fs::read_dir(&c_dir)
                        .map(|d| {
                            d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
                        })
                        .unwrap_or_default();
                    panic!(
                        "round {round}: acknowledged record {seq} at {offset} lost: {e} ({report:?}; files {files:?})"
                    )
                });
                assert_eq!(seq_of(&record), seq, "round {round}: record at {offset}");
            }
            assert!(log.read(log.end() as i64 | (3 << 50), 8).await.is_err(), "nothing past the end");
        });
    }
}

const SPARES_WHILE_CRASHING: usize = 3;

#[test]
fn every_acknowledged_record_survives_kill_9_while_segments_are_reused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path(), FlushDiskType::AsyncFlush);
    c.spare_segments = SPARES_WHILE_CRASHING;
    let mut acked: Vec<(u64, i64, usize)> = Vec::new();
    let mut next_seq = 0u64;
    let mut reuses_seen = 0u64;
    for round in 0..6u64 {
        let flush = if round % 2 == 0 { "ASYNC_FLUSH" } else { "SYNC_FLUSH" };
        let envs = [
            ("STORE_CRASH_FLUSH", flush.to_owned()),
            ("STORE_CRASH_SEQ", next_seq.to_string()),
            ("STORE_CRASH_SPARES", "1".to_owned()),
        ];
        let after = Duration::from_millis(200 + round * 53 % 200);
        let acks = crash::run_and_kill("crash_child", CHILD_ENV, dir.path(), &envs, after);
        // The child's fourth field: segments it made from spares so far.
        reuses_seen += acks.iter().map(|a| crash::field::<u64>(a, 3)).max().unwrap_or(0);
        let round_acked: Vec<(u64, i64, usize)> =
            acks.iter().map(|a| (crash::field(a, 0), crash::field(a, 1), crash::field(a, 2))).collect();
        assert!(!round_acked.is_empty(), "round {round} ({flush}): the child acknowledged something");
        next_seq = round_acked.iter().map(|a| a.0).max().unwrap_or(0) + 1_000_000;
        acked.extend(round_acked);

        let c = c.clone();
        let check = acked.clone();
        on_executor(move || async move {
            let mut scanned = 0u64;
            let (log, report) = CommitLog::open(c, None, |_| scanned += 1).await.expect("open");
            assert!(report.records == scanned && scanned > 0, "round {round}: {report:?}");
            // What retention deleted is gone; everything acknowledged after it is intact.
            let live: Vec<_> = check.iter().filter(|a| CommitLog::local_part(a.1) >= log.min_offset()).collect();
            assert!(!live.is_empty(), "round {round}: acknowledged records remain");
            for &&(seq, offset, size) in &live {
                let record = log.read(offset, size).await.unwrap_or_else(|e| {
                    panic!("round {round}: acknowledged record {seq} at {offset} lost: {e} ({report:?})")
                });
                assert_eq!(seq_of(&record), seq, "round {round}: record at {offset}");
            }
            assert!(log.read(log.end() as i64 | (3 << 50), 8).await.is_err(), "nothing past the end");
        });
    }
    assert!(reuses_seen > 0, "the children appended into segments made from spares");
}
