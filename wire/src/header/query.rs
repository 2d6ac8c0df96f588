//! Message queries: by key, by offset message id, and consume-queue inspection.

use super::header;
use crate::bytestr::ByteStr;

header! {
    /// QUERY_MESSAGE request: messages whose key (or unique key) matches, in a time range.
    QueryMessageRequestHeader {
        topic: ByteStr = "topic",
        key: ByteStr = "key",
        max_num: i32 = "maxNum",
        begin_timestamp: i64 = "beginTimestamp",
        end_timestamp: i64 = "endTimestamp",
        /// Set by clients querying by unique key (`_UNIQUE_KEY_QUERY`).
        unique_key_flag: Option<bool> = "_UNIQUE_KEY_QUERY",
    }
}

header! {
    /// QUERY_MESSAGE response.
    QueryMessageResponseHeader {
        index_last_update_timestamp: i64 = "indexLastUpdateTimestamp",
        index_last_update_phyoffset: i64 = "indexLastUpdatePhyoffset",
    }
}

header! {
    /// VIEW_MESSAGE_BY_ID request: the physical offset decoded from an offset message id.
    ViewMessageRequestHeader {
        offset: i64 = "offset",
    }
}

header! {
    /// QUERY_CONSUME_QUEUE request.
    QueryConsumeQueueRequestHeader {
        topic: ByteStr = "topic",
        queue_id: i32 = "queueId",
        index: i64 = "index",
        count: i32 = "count",
        consumer_group: Option<ByteStr> = "consumerGroup",
    }
}

header! {
    /// QUERY_CONSUME_TIME_SPAN request.
    QueryConsumeTimeSpanRequestHeader {
        topic: ByteStr = "topic",
        group: ByteStr = "group",
    }
}

header! {
    /// QUERY_TOPIC_CONSUME_BY_WHO request.
    QueryTopicConsumeByWhoRequestHeader {
        topic: ByteStr = "topic",
    }
}

header! {
    /// LOCK_BATCH_MQ / UNLOCK_BATCH_MQ carry their data in the body; this names the broker
    /// when a client adds it.
    LockBatchMqRequestHeader {
        broker_name: Option<ByteStr> = "bname",
    }
}
