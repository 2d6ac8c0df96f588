//! Retention end to end: a broker deletes its expired CommitLog segments, consumers move past
//! them, and the files it keeps as spares carry later messages intact. Its own test binary: it writes and deletes 12 MiB, which would slow the timing-sensitive
//! client tests if it ran beside them.

use std::time::{Duration, Instant};

use apogee_tests::TestBroker;
use client::{ClientConfig, Message, Producer, ProducerConfig, PullConsumer, PullStatus};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_expired_segments_and_consumers_move_past_them() {
    let broker = TestBroker::start_in(tempfile::tempdir().expect("tempdir"), |c| {
        c.mapped_file_size_commit_log = 4 << 20;
        c.file_reserved_time = 0.0;
        c.delete_when = (0..24).map(|h| h.to_string()).collect::<Vec<_>>().join(";");
        c.clean_resource_interval = 100;
        // Spares are deleted first on a disk past this ratio; a CI disk may be fuller than 75 %.
        c.disk_max_used_space_ratio = 95;
    });
    broker.create_topic("TopicRetention", 1);
    let producer =
        Producer::start(ProducerConfig::new("PG_retention", broker.namesrv().to_string())).expect("producer");
    // About 12 MiB: three 4 MiB segments, all but the newest past their (zero) reserved time.
    for batch in 0..384 {
        let messages = (0..32).map(|i| Message::new("TopicRetention", format!("{batch}-{i}-{}", "r".repeat(1000))));
        producer.send_batch(messages.collect()).await.expect("batch send");
    }
    let commitlog = broker.dir.path().join("store/shard-0/commitlog");
    let consumer =
        PullConsumer::start("CG_retention", ClientConfig::new(broker.namesrv().to_string())).expect("consumer");
    let queue = consumer.queues("TopicRetention").await.expect("queues").into_iter().next().expect("one queue");
    let deadline = Instant::now() + WAIT;
    let moved = loop {
        let result = consumer.pull(&queue, "*", 0, 32).await.expect("pull");
        if result.status == PullStatus::OffsetIllegal {
            break result;
        }
        assert!(Instant::now() < deadline, "retention never removed the oldest messages: {:?}", result.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(moved.next_begin_offset > 0 && moved.next_begin_offset == moved.min_offset, "{moved:?}");
    let segments = std::fs::read_dir(&commitlog).expect("commitlog folder").count();
    assert!(!commitlog.join("00000000000000000000").exists(), "the first segment is gone ({segments} left)");
    // From the new start the queue reads on to the last message sent.
    let mut offset = moved.next_begin_offset;
    let mut last = String::new();
    loop {
        let result = consumer.pull(&queue, "*", offset, 32).await.expect("pull");
        match result.status {
            PullStatus::Found => {
                last = String::from_utf8_lossy(result.messages.last().expect("found messages").body()).into_owned()
            }
            // Retention keeps deleting behind the reader (fileReservedTime = 0): a segment gone
            // mid-read answers "retry" or "offset moved", and the reader goes on from there.
            PullStatus::NoMatchedMsg | PullStatus::OffsetIllegal => {}
            PullStatus::NoNewMsg => break,
        }
        offset = result.next_begin_offset;
    }
    assert_eq!(offset, 384 * 32);
    assert!(last.starts_with("383-31-"), "the newest message is kept: {last:.10}");

    // Deleted segments' files were kept as spares, and the next segments are made from them:
    // what is sent now lands in files that held older messages, and reads back exactly.
    let spares = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        let files = std::fs::read_dir(dir).expect("commitlog folder").filter_map(Result::ok).map(|e| e.path());
        files.filter(|p| p.extension().is_some_and(|x| x == "spare")).collect()
    };
    let kept = spares(&commitlog);
    assert!(!kept.is_empty(), "retention kept spare files");
    for batch in 384..768 {
        let messages = (0..32).map(|i| Message::new("TopicRetention", format!("{batch}-{i}-{}", "s".repeat(1000))));
        producer.send_batch(messages.collect()).await.expect("batch send");
    }
    // Spares go oldest first, and only into new segments (the disk is not past its ratio).
    assert!(kept.iter().any(|spare| !spare.exists()), "a spare became a segment: {kept:?}");
    // Retention keeps deleting behind (and under) the reader, so the reader may skip ahead; what
    // it must never see is a message out of order, or one of the files' earlier contents.
    let mut last_seen: Option<(u32, u32)> = None;
    loop {
        let result = consumer.pull(&queue, "*", offset, 32).await.expect("pull");
        if result.status == PullStatus::NoNewMsg {
            break;
        }
        for m in &result.messages {
            let body = String::from_utf8_lossy(m.body()).into_owned();
            let mut fields = body.splitn(3, '-');
            let mut number = || fields.next().and_then(|f| f.parse::<u32>().ok()).expect("batch-index-payload");
            let at = (number(), number());
            let payload = if at.0 < 384 { 'r' } else { 's' };
            assert!(body.ends_with(&payload.to_string().repeat(1000)), "intact payload at {at:?}");
            assert!(last_seen.is_none_or(|last| at > last), "{at:?} after {last_seen:?}: out of order or stale");
            last_seen = Some(at);
        }
        offset = result.next_begin_offset;
    }
    assert_eq!(offset, 768 * 32);
    assert_eq!(last_seen, Some((767, 31)), "read on to the last message sent");
    producer.shutdown().await;
    consumer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_expired_commitlog_lets_retention_run_outside_its_hours() {
    // A deleteWhen hour twelve hours away: retention does nothing on its own during this test.
    let now_hour = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() / 3600;
    let broker = TestBroker::start_in(tempfile::tempdir().expect("tempdir"), |c| {
        c.mapped_file_size_commit_log = 4 << 20;
        c.file_reserved_time = 0.0;
        c.delete_when = format!("{:02}", (now_hour + 12) % 24);
        c.clean_resource_interval = 100;
        c.disk_max_used_space_ratio = 95;
    });
    broker.create_topic("TopicManual", 1);
    let producer = Producer::start(ProducerConfig::new("PG_manual", broker.namesrv().to_string())).expect("producer");
    // About 12 MiB: three 4 MiB segments.
    for batch in 0..384 {
        let messages = (0..32).map(|i| Message::new("TopicManual", format!("{batch}-{i}-{}", "m".repeat(1000))));
        producer.send_batch(messages.collect()).await.expect("batch send");
    }
    producer.shutdown().await;
    // The shard that stores the topic's one queue holds the three segments.
    let first = (0..8)
        .map(|shard| broker.dir.path().join(format!("store/shard-{shard}/commitlog")))
        .find(|dir| std::fs::read_dir(dir).is_ok_and(|files| files.count() >= 3))
        .expect("a shard with the segments")
        .join("00000000000000000000");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(first.exists(), "no deletion outside the deleteWhen hour (10 passes went by)");

    let addr = broker.addr();
    let answer = tokio::task::spawn_blocking(move || {
        apogee_tests::call(addr, &wire::RemotingCommand::request(wire::code::request::DELETE_EXPIRED_COMMITLOG))
    })
    .await
    .expect("called");
    assert_eq!(answer.code, wire::code::response::SUCCESS, "{:?}", answer.remark_str());
    let deadline = Instant::now() + WAIT;
    while first.exists() {
        assert!(Instant::now() < deadline, "DELETE_EXPIRED_COMMITLOG deleted nothing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
