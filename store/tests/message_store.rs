//! The shard's message store on real files: puts and gets with Java's statuses and batch
//! limits, tag filtering, ConsumeQueues across files, lookups by time, clean and unclean
//! restarts (kill -9 with ConsumeQueues rebuilt from the checkpoint), a lost or torn checkpoint,
//! and the root lock.

mod common;
mod crash;

use common::{config, decode, keyed, message, on_executor, query_seqs, seq_of};

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use store::{FlushDiskType, GetMessageStatus, MessageStore, MessageStoreConfig, RootLock, StoreError, StoreRecovery};
use wire::message::{sys_flag, tag_hash_code, StoredMessage};

async fn open(c: MessageStoreConfig) -> (MessageStore, StoreRecovery) {
    MessageStore::open(c).await.expect("open store")
}

async fn put(store: &MessageStore, msg: StoredMessage) -> i64 {
    let put = store.put_message(msg).expect("put");
    let offset = put.queue_offset;
    put.durable.wait().await.expect("durable");
    offset
}

/// Every message of a queue, pulled batch by batch (from disk, Java's limit is 8 a batch).
async fn read_queue(store: &MessageStore, topic: &str, queue_id: i32) -> Vec<u64> {
    let max = store.max_offset_in_queue(topic, queue_id);
    let mut offset = store.min_offset_in_queue(topic, queue_id);
    let mut seen = Vec::new();
    while offset < max {
        let r = store.get_message(topic, queue_id, offset, 32, &all).await.expect("get");
        assert_eq!(r.status, GetMessageStatus::Found, "{topic}/{queue_id} at {offset}");
        assert!(r.next_begin_offset > offset);
        seen.extend(r.messages.iter().map(seq_of));
        offset = r.next_begin_offset;
    }
    seen
}

fn all(_: i64) -> bool {
    true
}

#[test]
fn puts_and_gets_follow_java_statuses_offsets_and_batch_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path(), FlushDiskType::AsyncFlush);
    // One ConsumeQueue file: a scan stops at a file's end, as Java's does.
    c.units_per_consume_queue_file = 1000;
    on_executor(move || async move {
        let (store, _) = open(c).await;
        for seq in 0..120u64 {
            let tag = if seq % 3 == 0 { "TagA" } else { "TagB" };
            let offset = put(&store, message("TopicTest", (seq % 2) as i32, seq, tag)).await;
            assert_eq!(offset, (seq / 2) as i64, "queue offsets count per queue");
        }
        assert_eq!(store.max_offset_in_queue("TopicTest", 0), 60);
        assert_eq!(store.max_offset_in_queue("TopicTest", 1), 60);
        assert_eq!(store.min_offset_in_queue("TopicTest", 0), 0);

        let r = store.get_message("TopicTest", 0, 0, 100, &all).await.expect("get");
        assert_eq!(r.status, GetMessageStatus::Found);
        // At most 32 messages per pull from memory, as Java's maxTransferCountOnMessageInMemory.
        assert_eq!(r.messages.len(), 32);
        assert_eq!(r.next_begin_offset, 32);
        assert_eq!((r.min_offset, r.max_offset), (0, 60));
        for (i, record) in r.messages.iter().enumerate() {
            let msg = decode(record);
            assert_eq!(msg.queue_offset, i as i64);
            assert_eq!(msg.queue_id, 0);
            assert_eq!(seq_of(record), 2 * i as u64);
            assert_eq!(r.queue_offsets[i], i as i64);
            assert_eq!(store::shard_of(msg.physical_offset), 2, "shard in the offset");
        }
        let r = store.get_message("TopicTest", 0, 50, 4, &all).await.expect("get");
        assert_eq!((r.status, r.messages.len(), r.next_begin_offset), (GetMessageStatus::Found, 4, 54));

        // Tag filtering by hash code: skipped units still advance the next offset.
        let tag_a = tag_hash_code("TagA");
        let only_a = move |code: i64| code == tag_a;
        let r = store.get_message("TopicTest", 1, 0, 5, &only_a).await.expect("get");
        assert_eq!(r.status, GetMessageStatus::Found);
        assert_eq!(r.messages.iter().map(seq_of).collect::<Vec<_>>(), vec![3, 9, 15, 21, 27]);
        assert_eq!(r.next_begin_offset, 14, "stops after the fifth match, at queue offset 13");
        let none = |_: i64| false;
        let r = store.get_message("TopicTest", 1, 0, 5, &none).await.expect("get");
        assert_eq!(r.status, GetMessageStatus::NoMatchedMessage);
        assert_eq!(r.next_begin_offset, 60, "every unit scanned");

        let r = store.get_message("TopicTest", 0, 60, 32, &all).await.expect("get");
        assert_eq!((r.status, r.next_begin_offset), (GetMessageStatus::OffsetOverflowOne, 60));
        let r = store.get_message("TopicTest", 0, 61, 32, &all).await.expect("get");
        assert_eq!((r.status, r.next_begin_offset), (GetMessageStatus::OffsetOverflowBadly, 0));
        let r = store.get_message("NoSuchTopic", 0, 0, 32, &all).await.expect("get");
        assert_eq!((r.status, r.next_begin_offset), (GetMessageStatus::NoMatchedLogicQueue, 0));

        // Lookups by physical offset (offset message ids).
        let first = store.get_message("TopicTest", 1, 7, 1, &all).await.expect("get");
        let phys = decode(&first.messages[0]).physical_offset;
        assert_eq!(store.look_message_by_offset(phys).await.expect("by offset"), first.messages[0]);

        // Prepared transaction messages are stored but no queue serves them.
        let mut half = message("TopicTest", 0, 999, "TagA");
        half.sys_flag = sys_flag::TRANSACTION_PREPARED_TYPE;
        assert_eq!(put(&store, half).await, 0);
        assert_eq!(store.max_offset_in_queue("TopicTest", 0), 60);

        assert!(matches!(store.put_message(message("bad/topic", 0, 1, "x")), Err(StoreError::BadRecord(_))));
        store.close().await.expect("close");
        assert!(matches!(store.put_message(message("TopicTest", 0, 1, "x")), Err(StoreError::Closed)));
    });
}

#[test]
fn consume_queues_span_files_survive_a_clean_restart_and_answer_time_lookups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = config(dir.path(), FlushDiskType::SyncFlush);
    let first_run = c.clone();
    let times = on_executor(move || async move {
        let (store, recovery) = open(first_run).await;
        assert!(recovery.checkpoint.is_none(), "a new store has no checkpoint");
        let mut times = Vec::new();
        // 180 units: four ConsumeQueue files of 50, and more than one CommitLog segment.
        for seq in 0..180u64 {
            let put = store.put_message(message("%RETRY%group", 3, seq, "t")).expect("put");
            let r = put.durable.wait().await.expect("durable");
            times.push(r.store_timestamp);
            if seq % 60 == 59 {
                glommio::timer::sleep(Duration::from_millis(5)).await;
            }
        }
        let cp = store.close().await.expect("close");
        assert_eq!(cp.consume_queue_end, store.commitlog().end());
        times
    });
    let queue_dir = dir.path().join("consumequeue").join("%RETRY%group").join("3");
    let files: Vec<String> = std::fs::read_dir(&queue_dir)
        .expect("queue folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(files, ["00000000000000000000", "00000000000000001000", "00000000000000002000", "00000000000000003000"]);
    assert!(dir.path().join("commitlog").join("00000000000000262144").exists(), "a second segment");

    on_executor(move || async move {
        let (store, recovery) = open(c).await;
        assert_eq!(recovery.commitlog.records, 0, "a clean stop needs no scan: {recovery:?}");
        assert_eq!(recovery.consume_queues, 1);
        assert_eq!(store.max_offset_in_queue("%RETRY%group", 3), 180);
        // Read everything back from the files and the segments on disk.
        let first = store.get_message("%RETRY%group", 3, 0, 32, &all).await.expect("get");
        assert_eq!(first.messages.len(), 8, "from disk, Java's maxTransferCountOnMessageInDisk");
        assert_eq!(read_queue(&store, "%RETRY%group", 3).await, (0..180).collect::<Vec<u64>>());

        assert_eq!(store.earliest_message_time("%RETRY%group", 3).await.expect("time"), Some(times[0]));
        let t = times[100];
        let found = store.offset_in_queue_by_time("%RETRY%group", 3, t).await.expect("by time");
        assert_eq!(times[found as usize], t, "an exact match when one exists");
        assert_eq!(store.offset_in_queue_by_time("%RETRY%group", 3, 0).await.expect("by time"), 0);
        assert_eq!(store.offset_in_queue_by_time("%RETRY%group", 3, i64::MAX / 2).await.expect("by time"), 179);
        assert_eq!(store.offset_in_queue_by_time("nope", 0, t).await.expect("by time"), 0);

        // Appends continue after the restart.
        assert_eq!(put(&store, message("%RETRY%group", 3, 180, "t")).await, 180);
        store.close().await.expect("close");
    });
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn retention_deletes_old_segments_and_queues_start_after_them_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = config(dir.path(), FlushDiskType::SyncFlush);
    let first_run = c.clone();
    let log_min = on_executor(move || async move {
        let (store, _) = open(first_run).await;
        // "old" only gets messages at the start, so all of it expires; "live" runs throughout.
        for seq in 0..120u64 {
            put(&store, message("old", 0, seq, "t")).await;
        }
        for seq in 0..1500u64 {
            put(&store, message("live", (seq % 2) as i32, seq, "t")).await;
        }
        store.checkpoint().await.expect("checkpoint");
        let nothing = store.delete_expired(Some(std::time::UNIX_EPOCH), 10, true).await.expect("retention");
        assert!(nothing.segments.is_empty(), "no segment is older than 1970: {nothing:?}");

        let before_segments = files_in(&dir_of(&store, "commitlog"));
        let r = store.delete_expired(None, 2, false).await.expect("retention");
        assert_eq!(r.segments, [0, 256 * 1024], "the two oldest segments, and no more than asked");
        assert_eq!(files_in(&dir_of(&store, "commitlog")), before_segments - 2);
        assert_eq!(r.log_min_offset, 512 * 1024);
        assert!(r.queue_files > 0, "ConsumeQueue files that only indexed deleted data go: {r:?}");

        // The old queue is empty now: its offsets are too small, and nothing is lost silently.
        let old_max = store.max_offset_in_queue("old", 0);
        assert_eq!(store.min_offset_in_queue("old", 0), old_max);
        let g = store.get_message("old", 0, 0, 32, &all).await.expect("get");
        assert_eq!((g.status, g.next_begin_offset), (GetMessageStatus::OffsetTooSmall, old_max));
        // The live queues start at their first message past the deleted segments, and read
        // through to the end.
        for queue in 0..2 {
            let min = store.min_offset_in_queue("live", queue);
            assert!(min > 0, "queue {queue} lost its oldest messages");
            let seqs = read_queue(&store, "live", queue).await;
            assert_eq!(seqs.len() as i64, store.max_offset_in_queue("live", queue) - min);
            assert!(seqs.windows(2).all(|w| w[1] == w[0] + 2), "contiguous: {seqs:?}");
            assert_eq!(seqs.last(), Some(&(1498 + queue as u64)));
            let g = store.get_message("live", queue, min - 1, 32, &all).await.expect("get");
            assert_eq!((g.status, g.next_begin_offset), (GetMessageStatus::OffsetTooSmall, min));
        }
        store.close().await.expect("close");
        r.log_min_offset
    });

    on_executor(move || async move {
        let (store, _) = open(c).await;
        assert_eq!(store.commitlog().min_offset(), log_min);
        for queue in 0..2 {
            let min = store.min_offset_in_queue("live", queue);
            let g = store.get_message("live", queue, min, 1, &all).await.expect("get");
            assert_eq!(g.status, GetMessageStatus::Found, "after a restart the queue starts at a stored message");
        }
        let old_max = store.max_offset_in_queue("old", 0);
        assert_eq!(store.min_offset_in_queue("old", 0), old_max, "an expired queue stays empty");
        store.close().await.expect("close");
    });
}

fn index_bases(dir: &Path) -> Vec<i64> {
    let names = std::fs::read_dir(dir).expect("index dir").filter_map(|e| e.ok()?.file_name().into_string().ok());
    names.filter_map(|name| name.parse().ok()).collect()
}

fn dir_of(store: &MessageStore, sub: &str) -> std::path::PathBuf {
    store.config().dir.join(sub)
}

#[test]
fn the_key_index_finds_messages_by_key_and_unique_key_across_files_restarts_and_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path(), FlushDiskType::AsyncFlush);
    // Few slots and small files: long chains, shared slots and many files.
    c.index.hash_slots = 61;
    c.index.max_entries = 500;
    let first = c.clone();
    let index_files = on_executor(move || async move {
        let (store, _) = open(first).await;
        for seq in 0..1500u64 {
            put(&store, keyed(message("KeyTopic", (seq % 4) as i32, seq, "t"), seq)).await;
        }
        put(&store, keyed(message("OtherTopic", 0, 7, "t"), 7)).await;
        for seq in [0u64, 1, 499, 777, 1499] {
            assert_eq!(query_seqs(&store, "KeyTopic", &format!("k{seq}"), 32).await, [seq], "by key");
            assert_eq!(query_seqs(&store, "KeyTopic", &format!("U{seq}"), 32).await, [seq], "by unique key");
        }
        assert_eq!(query_seqs(&store, "OtherTopic", "k7", 32).await, [7], "keys are per topic");
        assert!(query_seqs(&store, "KeyTopic", "k1500", 32).await.is_empty());
        assert!(query_seqs(&store, "KeyTopic", "k15", 32).await.contains(&15));
        // A shared key: the newest matches, at most 64 (Java's maxMsgsNumBatch), oldest first.
        let g3 = query_seqs(&store, "KeyTopic", "g3", 1000).await;
        let all_g3: Vec<u64> = (0..1500).filter(|s| s % 10 == 3).collect();
        let newest = &all_g3[all_g3.len() - 64..];
        assert_eq!(g3, newest);
        assert_eq!(query_seqs(&store, "KeyTopic", "g3", 5).await, newest[59..]);
        // The time range bounds the search.
        let r = store.query_message("KeyTopic", "k5", 32, i64::MAX - 1, i64::MAX).await.expect("query");
        assert!(r.messages.is_empty());
        assert!(r.index_last_update_timestamp > 0 && r.index_last_update_phyoffset > 0);
        store.close().await.expect("close");
        files_in(&dir_of(&store, "index"))
    });
    assert!(index_files >= 9, "4,503 entries in files of 500: {index_files}");

    let second = c.clone();
    on_executor(move || async move {
        let (store, recovery) = open(second).await;
        assert_eq!(recovery.commitlog.records, 0, "a clean stop replays nothing");
        for seq in [0u64, 2, 500, 1234, 1499] {
            assert_eq!(query_seqs(&store, "KeyTopic", &format!("k{seq}"), 32).await, [seq], "after restart");
            assert_eq!(query_seqs(&store, "KeyTopic", &format!("U{seq}"), 32).await, [seq], "after restart");
        }
        // Retention: index files that only cover deleted segments go with them.
        store.checkpoint().await.expect("checkpoint");
        let r = store.delete_expired(None, 2, false).await.expect("retention");
        assert_eq!(r.segments.len(), 2);
        assert!(files_in(&dir_of(&store, "index")) < index_files, "old index files deleted");
        assert!(query_seqs(&store, "KeyTopic", "k0", 32).await.is_empty(), "its segment is gone");
        assert_eq!(query_seqs(&store, "KeyTopic", "k1499", 32).await, [1499]);
        store.close().await.expect("close");
    });
}

/// A kill -9 at the wrong moment once left the key index holding entries of records the log
/// lost (the checkpoint wrote the index before the log was on disk). The records appended
/// where the lost ones were must still be found by key: built here by hand, with the log's
/// tail zeroed and the checkpoint from before it put back.
#[test]
fn records_appended_where_a_crash_cut_the_log_are_found_by_key_despite_stale_index_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path(), FlushDiskType::AsyncFlush);
    // Three keys a record, two records a file: the lost records fill index files of their own,
    // one of them named by the offset where the cut log now ends.
    c.index.hash_slots = 61;
    c.index.max_entries = 6;
    let first = c.clone();
    let saved_cp = dir.path().join("checkpoint");
    let (cut_from, cut_to, segment) = on_executor(move || async move {
        let (store, _) = open(first).await;
        for seq in 0..20u64 {
            put(&store, keyed(message("CutTopic", 0, seq, "t"), seq)).await;
        }
        store.checkpoint().await.expect("checkpoint");
        let kept = std::fs::read(&saved_cp).expect("read checkpoint");
        let from = store.commitlog().end();
        for seq in 20..40u64 {
            put(&store, keyed(message("CutTopic", 0, seq, "t"), seq)).await;
        }
        let to = store.commitlog().end();
        store.close().await.expect("close");
        std::fs::write(&saved_cp, kept).expect("restore the older checkpoint");
        (from, to, dir_of(&store, "commitlog").join(format!("{:020}", 0u64)))
    });
    // The log loses seq 20..40, as writes that never completed; the index keeps their entries.
    let file = std::fs::OpenOptions::new().write(true).open(&segment).expect("open segment");
    std::os::unix::fs::FileExt::write_all_at(&file, &vec![0u8; (cut_to - cut_from) as usize], cut_from)
        .expect("zero the tail");
    drop(file);

    let second = c.clone();
    on_executor(move || async move {
        let (store, recovery) = open(second).await;
        assert_eq!(store.commitlog().end(), cut_from, "{recovery:?}");
        assert_eq!(store.max_offset_in_queue("CutTopic", 0), 20);
        let end = store.commitlog().global_offset(cut_from);
        let index_bases = index_bases(&dir_of(&store, "index"));
        assert_eq!(index_bases.len(), 10, "seq 0..20, two records a file: {index_bases:?}");
        assert!(index_bases.iter().all(|b| *b < end), "files of lost records deleted: {index_bases:?} vs {end}");
        assert!(query_seqs(&store, "CutTopic", "k25", 32).await.is_empty(), "a lost record is not served");
        for seq in 100..120u64 {
            put(&store, keyed(message("CutTopic", 0, seq, "t"), seq)).await;
        }
        for seq in [5u64, 100, 107, 119] {
            assert_eq!(query_seqs(&store, "CutTopic", &format!("k{seq}"), 32).await, [seq], "by key");
            assert_eq!(query_seqs(&store, "CutTopic", &format!("U{seq}"), 32).await, [seq], "by unique key");
        }
        store.close().await.expect("close");
    });
    on_executor(move || async move {
        let (store, _) = open(c).await;
        assert_eq!(query_seqs(&store, "CutTopic", "k107", 32).await, [107], "after a clean restart");
        store.close().await.expect("close");
    });
}

#[test]
fn a_lost_checkpoint_rebuilds_every_consume_queue_and_a_torn_slot_falls_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = config(dir.path(), FlushDiskType::AsyncFlush);
    let first = c.clone();
    on_executor(move || async move {
        let (store, _) = open(first).await;
        for seq in 0..90u64 {
            put(&store, message("TopicTest", (seq % 3) as i32, seq, "t")).await;
        }
        store.close().await.expect("close");
    });
    // Tear the newest checkpoint slot: the older one still holds a valid (earlier) point.
    let cp_path = dir.path().join("checkpoint");
    let mut raw = std::fs::read(&cp_path).expect("checkpoint");
    let newest = if raw[512..].iter().any(|b| *b != 0) && raw[8..16] < raw[520..528] { 512 } else { 0 };
    raw[newest + 20] ^= 0xff;
    std::fs::write(&cp_path, &raw).expect("tear checkpoint");
    let second = c.clone();
    on_executor(move || async move {
        let (store, recovery) = open(second).await;
        let cp = recovery.checkpoint.expect("the older slot");
        assert!(cp.scan_from() < store.commitlog().end(), "the older slot points before the end: {cp:?}");
        for q in 0..3 {
            assert_eq!(store.max_offset_in_queue("TopicTest", q), 30);
        }
        store.close().await.expect("close");
    });
    // No checkpoint at all: the whole log is scanned and every queue rebuilt.
    std::fs::remove_file(&cp_path).expect("remove checkpoint");
    on_executor(move || async move {
        let (store, recovery) = open(c).await;
        assert!(recovery.checkpoint.is_none());
        assert_eq!(recovery.commitlog.records, 90, "{recovery:?}");
        for q in 0..3 {
            assert_eq!(store.max_offset_in_queue("TopicTest", q), 30);
            let seqs = read_queue(&store, "TopicTest", q).await;
            assert_eq!(seqs, (0..30).map(|i| i * 3 + q as u64).collect::<Vec<_>>());
        }
        store.close().await.expect("close");
    });
}

#[test]
fn the_root_lock_keeps_a_second_broker_out_and_the_abort_marker_tells_an_unclean_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("store");
    let lock = RootLock::acquire(&root).expect("first lock");
    assert!(lock.previous_stop_clean);
    match RootLock::acquire(&root) {
        Err(StoreError::Locked(path)) => assert_eq!(path, root),
        other => panic!("second lock must fail with Locked, got {other:?}"),
    }
    drop(lock); // a crash: the marker stays
    let lock = RootLock::acquire(&root).expect("lock after the first holder went away");
    assert!(!lock.previous_stop_clean, "the abort marker survived");
    lock.mark_clean_stop().expect("clean stop");
    drop(lock);
    let lock = RootLock::acquire(&root).expect("lock again");
    assert!(lock.previous_stop_clean);
}

const CHILD_ENV: &str = "MESSAGE_STORE_CRASH_CHILD_DIR";

/// Not a test on its own: the appending process that `acknowledged_messages_survive_kill_9`
/// kills. Prints one line per acknowledged put.
#[test]
fn message_store_crash_child() {
    let Some((dir, flush, first_seq)) = crash::child_settings(CHILD_ENV) else { return };
    let c = config(&dir, flush);
    on_executor(move || async move {
        let (store, _) = open(c).await;
        let out = Rc::new(RefCell::new(std::io::stdout()));
        let mut tasks = Vec::new();
        for appender in 0..16u64 {
            let (store, out) = (store.clone(), out.clone());
            tasks.push(glommio::spawn_local(async move {
                let mut seq = first_seq + appender;
                loop {
                    let queue_id = (seq % 4) as i32;
                    let put = store.put_message(keyed(message("CrashTopic", queue_id, seq, "t"), seq)).expect("put");
                    let queue_offset = put.queue_offset;
                    put.durable.wait().await.expect("durable");
                    let mut out = out.borrow_mut();
                    let _ = writeln!(out, "ACK {seq} {queue_id} {queue_offset}");
                    let _ = out.flush();
                    seq += 16;
                }
            }));
        }
        for t in tasks {
            t.await;
        }
    });
}

#[test]
fn acknowledged_messages_survive_kill_9_and_their_queues_are_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    // queue id → queue offset → seq, for every acknowledged put of every round.
    let mut acked: BTreeMap<(i32, i64), u64> = BTreeMap::new();
    let mut next_seq = 0u64;
    for round in 0..6u64 {
        let flush = if round % 2 == 0 { "ASYNC_FLUSH" } else { "SYNC_FLUSH" };
        let envs = [("STORE_CRASH_FLUSH", flush.to_owned()), ("STORE_CRASH_SEQ", next_seq.to_string())];
        let after = Duration::from_millis(250 + round * 61 % 200);
        let round_acked: Vec<(u64, i32, i64)> =
            crash::run_and_kill("message_store_crash_child", CHILD_ENV, dir.path(), &envs, after)
                .iter()
                .map(|a| (crash::field(a, 0), crash::field(a, 1), crash::field(a, 2)))
                .collect();
        assert!(!round_acked.is_empty(), "round {round} ({flush}): the child acknowledged something");
        next_seq = round_acked.iter().map(|a| a.0).max().unwrap_or(0) + 1_000_000;
        for (seq, queue_id, offset) in round_acked {
            assert!(acked.insert((queue_id, offset), seq).is_none(), "queue offset {queue_id}/{offset} given twice");
        }

        let c = config(dir.path(), FlushDiskType::AsyncFlush);
        let check = acked.clone();
        on_executor(move || async move {
            let (store, recovery) = open(c).await;
            if round > 0 {
                assert!(recovery.checkpoint.is_some(), "round {round}: a checkpoint was stored");
            }
            for q in 0..4 {
                // Every queue offset below the end is served, in order, and the acknowledged
                // ones hold exactly the acknowledged message.
                let max = store.max_offset_in_queue("CrashTopic", q);
                let mut offset = 0;
                while offset < max {
                    let r = store.get_message("CrashTopic", q, offset, 32, &all).await.expect("get");
                    assert_eq!(r.status, GetMessageStatus::Found, "round {round}: queue {q} at {offset} of {max}");
                    for (i, record) in r.messages.iter().enumerate() {
                        let msg = decode(record);
                        assert_eq!(msg.queue_offset, offset + i as i64);
                        if let Some(seq) = check.get(&(q, msg.queue_offset)) {
                            assert_eq!(seq_of(record), *seq, "round {round}: queue {q} offset {}", msg.queue_offset);
                        }
                    }
                    offset = r.next_begin_offset;
                }
                let acked_max = check.range((q, 0)..(q + 1, 0)).next_back().map_or(0, |((_, o), _)| *o + 1);
                assert!(max >= acked_max, "round {round}: queue {q} ends at {max}, acknowledged up to {acked_max}");
            }
            // The key index was rebuilt past its durable point too: acknowledged messages are
            // found by key and by unique key, once each.
            for seq in check.values().step_by(5) {
                assert_eq!(query_seqs(&store, "CrashTopic", &format!("k{seq}"), 32).await, [*seq], "round {round}");
                assert_eq!(query_seqs(&store, "CrashTopic", &format!("U{seq}"), 32).await, [*seq], "round {round}");
            }
            store.close().await.expect("close");
        });
    }
}
