//! Helpers shared by the store's integration tests: a small-file store config, an executor to
//! run on, and messages that carry a sequence number, tags and keys.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use glommio::LocalExecutorBuilder;
use store::{FlushDiskType, MessageStore, MessageStoreConfig};
use wire::message::StoredMessage;

pub fn config(dir: &Path, flush: FlushDiskType) -> MessageStoreConfig {
    let mut c = MessageStoreConfig::new(dir);
    c.commitlog.shard = 2;
    c.commitlog.segment_bytes = 256 * 1024;
    c.commitlog.max_write_bytes = 32 * 1024;
    c.commitlog.flush_disk_type = flush;
    c.commitlog.flush_interval = Duration::from_millis(20);
    c.commitlog.cache_bytes = 64 * 1024;
    c.units_per_consume_queue_file = 50;
    c.flush_interval_consume_queue = Duration::from_millis(50);
    c
}

pub fn on_executor<T: Send + 'static, F: std::future::Future<Output = T> + 'static>(
    f: impl FnOnce() -> F + Send + 'static,
) -> T {
    LocalExecutorBuilder::default().io_memory(1 << 20).spawn(f).expect("executor").join().expect("executor result")
}

pub fn message(topic: &str, queue_id: i32, seq: u64, tag: &str) -> StoredMessage {
    let body: Vec<u8> = (0..200 + seq as usize % 300).map(|i| (seq as usize + i) as u8).collect();
    StoredMessage {
        topic: topic.into(),
        queue_id,
        body_crc: wire::message::body_crc(&body),
        body: Bytes::from(body),
        properties: format!("TAGS\u{1}{tag}\u{2}SEQ\u{1}{seq}").as_str().into(),
        born_timestamp: 1_700_000_000_000,
        ..Default::default()
    }
}

/// `msg` with keys `k<seq>` and `g<seq % 10>` and unique key `U<seq>`, as producers set them.
pub fn keyed(mut msg: StoredMessage, seq: u64) -> StoredMessage {
    let props = format!("{}\u{2}KEYS\u{1}k{seq} g{}\u{2}UNIQ_KEY\u{1}U{seq}", msg.properties.as_str(), seq % 10);
    msg.properties = props.as_str().into();
    msg
}

pub async fn query_seqs(store: &MessageStore, topic: &str, key: &str, max: usize) -> Vec<u64> {
    let r = store.query_message(topic, key, max, 0, i64::MAX).await.expect("query");
    r.messages.iter().map(seq_of).collect()
}

pub fn decode(record: &Bytes) -> StoredMessage {
    StoredMessage::decode(record, true).expect("intact record").0
}

pub fn seq_of(record: &Bytes) -> u64 {
    decode(record).property("SEQ").and_then(|s| s.parse().ok()).expect("SEQ property")
}
