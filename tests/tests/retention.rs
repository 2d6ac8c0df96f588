//! Retention end to end: a broker deletes its expired CommitLog segments and consumers move past
//! them. Its own test binary: it writes and deletes 12 MiB, which would slow the timing-sensitive
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
    producer.shutdown().await;
    consumer.shutdown().await;
}
