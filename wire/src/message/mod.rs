//! Messages: the 4.x stored-message format (CommitLog records and PULL bodies), batch bodies,
//! the properties string, message ids, tag hash codes and zlib bodies.

mod batch;
mod compress;
mod id;
pub mod properties;
mod stored;
mod tag;

pub use batch::{decode_batch, encode_batch, BatchMessage};
pub use compress::{compress_body, decompress_body, CompressionType, MAX_INFLATED_BODY_BYTES};
pub use id::{decode_offset_msg_id, offset_msg_id, push_offset_msg_id, UniqueIdGenerator, OFFSET_MSG_ID_MAX_LEN};
pub use stored::{body_crc, decode_stored_messages, StoredMessage, BLANK_MAGIC_CODE, MESSAGE_MAGIC_CODE};
pub use tag::tag_hash_code;

/// Bits of a message's `sysFlag` (`MessageSysFlag`).
pub mod sys_flag {
    /// The body is compressed, with the codec bits 8–10 name (`COMPRESSION_TYPE_MASK`).
    pub const COMPRESSED: i32 = 1;
    pub const MULTI_TAGS: i32 = 1 << 1;
    pub const TRANSACTION_NOT_TYPE: i32 = 0;
    pub const TRANSACTION_PREPARED_TYPE: i32 = 1 << 2;
    pub const TRANSACTION_COMMIT_TYPE: i32 = 2 << 2;
    pub const TRANSACTION_ROLLBACK_TYPE: i32 = 3 << 2;
    /// Mask of the two transaction-type bits.
    pub const TRANSACTION_MASK: i32 = 3 << 2;
    /// The born host is IPv6 (16-byte address).
    pub const BORNHOST_V6: i32 = 1 << 4;
    /// The store host is IPv6 (16-byte address).
    pub const STOREHOST_V6: i32 = 1 << 5;
    /// The codec of a compressed body (4.9.8): 1 LZ4, 2 zstd, 3 or 0 zlib.
    pub const COMPRESSION_TYPE_MASK: i32 = 7 << 8;

    pub fn transaction_type(flag: i32) -> i32 {
        flag & TRANSACTION_MASK
    }

    pub fn with_transaction_type(flag: i32, kind: i32) -> i32 {
        (flag & !TRANSACTION_MASK) | kind
    }
}

/// Topic naming rules and reserved names (`TopicValidator`, `MixAll`).
pub mod topic {
    pub const AUTO_CREATE_TOPIC_KEY: &str = "TBW102";
    pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
    pub const TRANS_HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
    pub const TRANS_OP_HALF_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
    pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";
    pub const DLQ_GROUP_TOPIC_PREFIX: &str = "%DLQ%";
    /// Java's system topics (`TopicValidator.getSystemTopicSet()`).
    pub const SYSTEM_TOPICS: [&str; 9] = [
        AUTO_CREATE_TOPIC_KEY,
        SCHEDULE_TOPIC,
        "BenchmarkTest",
        TRANS_HALF_TOPIC,
        "RMQ_SYS_TRACE_TOPIC",
        TRANS_OP_HALF_TOPIC,
        "TRANS_CHECK_MAX_TIME_TOPIC",
        "SELF_TEST_TOPIC",
        "OFFSET_MOVED_EVENT",
    ];
    /// Longest topic name a client may use (`TopicValidator.TOPIC_MAX_LENGTH`).
    pub const TOPIC_MAX_LENGTH: usize = 127;

    /// `%RETRY%<group>`.
    pub fn retry_topic(group: &str) -> String {
        format!("{RETRY_GROUP_TOPIC_PREFIX}{group}")
    }

    /// `%DLQ%<group>`.
    pub fn dlq_topic(group: &str) -> String {
        format!("{DLQ_GROUP_TOPIC_PREFIX}{group}")
    }

    /// Java's rule: 1–127 characters from `[%|a-zA-Z0-9_-]`.
    pub fn is_valid_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= TOPIC_MAX_LENGTH
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'_' | b'-'))
    }
}
