//! Administration: topics, subscription groups, stats, broker config.

use super::header;
use crate::bytestr::ByteStr;

header! {
    /// UPDATE_AND_CREATE_TOPIC request (`CreateTopicRequestHeader`).
    CreateTopicRequestHeader {
        topic: ByteStr = "topic",
        default_topic: ByteStr = "defaultTopic",
        read_queue_nums: i32 = "readQueueNums",
        write_queue_nums: i32 = "writeQueueNums",
        perm: i32 = "perm",
        topic_filter_type: ByteStr = "topicFilterType",
        topic_sys_flag: Option<i32> = "topicSysFlag",
        order: bool = "order",
    }
}

impl CreateTopicRequestHeader {
    /// A read-write topic with `queues` read and write queues, as `mqadmin updateTopic` sends
    /// it by default.
    pub fn new(topic: &str, queues: i32) -> Self {
        Self {
            topic: topic.into(),
            default_topic: crate::message::topic::AUTO_CREATE_TOPIC_KEY.into(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm: crate::body::perm::READ | crate::body::perm::WRITE,
            topic_filter_type: "SINGLE_TAG".into(),
            topic_sys_flag: Some(0),
            order: false,
        }
    }
}

header! {
    /// DELETE_TOPIC_IN_BROKER request.
    DeleteTopicRequestHeader {
        topic: ByteStr = "topic",
    }
}

header! {
    /// DELETE_SUBSCRIPTIONGROUP request.
    DeleteSubscriptionGroupRequestHeader {
        group_name: ByteStr = "groupName",
        remove_offset: Option<bool> = "removeOffset",
    }
}

header! {
    /// GET_TOPIC_STATS_INFO request.
    GetTopicStatsInfoRequestHeader {
        topic: ByteStr = "topic",
    }
}

header! {
    /// GET_CONSUME_STATS request.
    GetConsumeStatsRequestHeader {
        consumer_group: ByteStr = "consumerGroup",
        topic: Option<ByteStr> = "topic",
    }
}

header! {
    /// GET_BROKER_CONSUME_STATS request.
    GetConsumeStatsInBrokerHeader {
        is_order: bool = "isOrder",
    }
}

header! {
    /// GET_BROKER_CONFIG response: the data version of the config in the body.
    GetBrokerConfigResponseHeader {
        version: ByteStr = "version",
    }
}

header! {
    /// VIEW_BROKER_STATS_DATA request.
    ViewBrokerStatsDataRequestHeader {
        stats_name: ByteStr = "statsName",
        stats_key: ByteStr = "statsKey",
    }
}
