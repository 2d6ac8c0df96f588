//! Offsets: consumer offsets, queue min/max offsets, store times, offset search.

use super::header;
use crate::bytestr::ByteStr;

header! {
    /// QUERY_CONSUMER_OFFSET request.
    QueryConsumerOffsetRequestHeader {
        consumer_group: ByteStr = "consumerGroup",
        topic: ByteStr = "topic",
        queue_id: i32 = "queueId",
        broker_name: Option<ByteStr> = "bname",
    }
}

header! {
    /// QUERY_CONSUMER_OFFSET response.
    QueryConsumerOffsetResponseHeader {
        offset: i64 = "offset",
    }
}

header! {
    /// UPDATE_CONSUMER_OFFSET request (Java sends it oneway).
    UpdateConsumerOffsetRequestHeader {
        consumer_group: ByteStr = "consumerGroup",
        topic: ByteStr = "topic",
        queue_id: i32 = "queueId",
        commit_offset: i64 = "commitOffset",
        broker_name: Option<ByteStr> = "bname",
    }
}

header! {
    /// GET_MAX_OFFSET request.
    GetMaxOffsetRequestHeader {
        topic: ByteStr = "topic",
        queue_id: i32 = "queueId",
    }
}

header! {
    /// GET_MAX_OFFSET response.
    GetMaxOffsetResponseHeader {
        offset: i64 = "offset",
    }
}

header! {
    /// GET_MIN_OFFSET request.
    GetMinOffsetRequestHeader {
        topic: ByteStr = "topic",
        queue_id: i32 = "queueId",
    }
}

header! {
    /// GET_MIN_OFFSET response.
    GetMinOffsetResponseHeader {
        offset: i64 = "offset",
    }
}

header! {
    /// GET_EARLIEST_MSG_STORETIME request.
    GetEarliestMsgStoretimeRequestHeader {
        topic: ByteStr = "topic",
        queue_id: i32 = "queueId",
    }
}

header! {
    /// GET_EARLIEST_MSG_STORETIME response.
    GetEarliestMsgStoretimeResponseHeader {
        timestamp: i64 = "timestamp",
    }
}

header! {
    /// SEARCH_OFFSET_BY_TIMESTAMP request.
    SearchOffsetRequestHeader {
        topic: ByteStr = "topic",
        queue_id: i32 = "queueId",
        timestamp: i64 = "timestamp",
    }
}

header! {
    /// SEARCH_OFFSET_BY_TIMESTAMP response.
    SearchOffsetResponseHeader {
        offset: i64 = "offset",
    }
}

header! {
    /// INVOKE_BROKER_TO_RESET_OFFSET / RESET_CONSUMER_CLIENT_OFFSET request (`ResetOffsetRequestHeader`).
    ResetOffsetRequestHeader {
        topic: ByteStr = "topic",
        group: ByteStr = "group",
        timestamp: i64 = "timestamp",
        is_force: bool = "isForce",
    }
}

header! {
    /// CLONE_GROUP_OFFSET request.
    CloneGroupOffsetRequestHeader {
        src_group: ByteStr = "srcGroup",
        dest_group: ByteStr = "destGroup",
        topic: Option<ByteStr> = "topic",
        offline: Option<bool> = "offline",
    }
}
