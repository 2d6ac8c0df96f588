//! Sending: SEND_MESSAGE (long names), SEND_MESSAGE_V2 (single letters), SEND_BATCH_MESSAGE and
//! their response, CONSUMER_SEND_MSG_BACK.

use super::header;
use super::CommandHeader;
use crate::bytestr::ByteStr;
use crate::command::ExtFields;
use crate::error::HeaderError;

header! {
    /// SEND_MESSAGE / SEND_BATCH_MESSAGE request (`SendMessageRequestHeader`).
    SendMessageRequestHeader {
        producer_group: ByteStr = "producerGroup",
        topic: ByteStr = "topic",
        default_topic: ByteStr = "defaultTopic",
        default_topic_queue_nums: i32 = "defaultTopicQueueNums",
        queue_id: i32 = "queueId",
        sys_flag: i32 = "sysFlag",
        born_timestamp: i64 = "bornTimestamp",
        flag: i32 = "flag",
        properties: Option<ByteStr> = "properties",
        reconsume_times: Option<i32> = "reconsumeTimes",
        unit_mode: Option<bool> = "unitMode",
        batch: Option<bool> = "batch",
        max_reconsume_times: Option<i32> = "maxReconsumeTimes",
        /// Broker name the client aimed at (newer clients add it).
        broker_name: Option<ByteStr> = "bname",
    }
}

header! {
    /// SEND_MESSAGE_V2 request (`SendMessageRequestHeaderV2`): the same fields under one-letter
    /// names, to keep frames small.
    SendMessageRequestHeaderV2 {
        a: ByteStr = "a",
        b: ByteStr = "b",
        c: ByteStr = "c",
        d: i32 = "d",
        e: i32 = "e",
        f: i32 = "f",
        g: i64 = "g",
        h: i32 = "h",
        i: Option<ByteStr> = "i",
        j: Option<i32> = "j",
        k: Option<bool> = "k",
        l: Option<i32> = "l",
        m: Option<bool> = "m",
        n: Option<ByteStr> = "n",
    }
}

impl From<SendMessageRequestHeaderV2> for SendMessageRequestHeader {
    fn from(v2: SendMessageRequestHeaderV2) -> Self {
        Self {
            producer_group: v2.a,
            topic: v2.b,
            default_topic: v2.c,
            default_topic_queue_nums: v2.d,
            queue_id: v2.e,
            sys_flag: v2.f,
            born_timestamp: v2.g,
            flag: v2.h,
            properties: v2.i,
            reconsume_times: v2.j,
            unit_mode: v2.k,
            max_reconsume_times: v2.l,
            batch: v2.m,
            broker_name: v2.n,
        }
    }
}

impl From<SendMessageRequestHeader> for SendMessageRequestHeaderV2 {
    fn from(v1: SendMessageRequestHeader) -> Self {
        Self {
            a: v1.producer_group,
            b: v1.topic,
            c: v1.default_topic,
            d: v1.default_topic_queue_nums,
            e: v1.queue_id,
            f: v1.sys_flag,
            g: v1.born_timestamp,
            h: v1.flag,
            i: v1.properties,
            j: v1.reconsume_times,
            k: v1.unit_mode,
            l: v1.max_reconsume_times,
            m: v1.batch,
            n: v1.broker_name,
        }
    }
}

impl SendMessageRequestHeader {
    /// Reads a send header in either form: V2 letters when `v2` (request code 310 or 325),
    /// long names otherwise.
    pub fn read_any(fields: &ExtFields, v2: bool) -> Result<Self, HeaderError> {
        if v2 {
            SendMessageRequestHeaderV2::read_from(fields).map(Self::from)
        } else {
            Self::read_from(fields)
        }
    }
}

header! {
    /// Response to a send (`SendMessageResponseHeader`). The Java broker also puts `MSG_REGION`
    /// and `TRACE_ON` in extFields.
    SendMessageResponseHeader {
        msg_id: ByteStr = "msgId",
        queue_id: i32 = "queueId",
        queue_offset: i64 = "queueOffset",
        transaction_id: Option<ByteStr> = "transactionId",
        msg_region: Option<ByteStr> = "MSG_REGION",
        trace_on: Option<ByteStr> = "TRACE_ON",
    }
}

header! {
    /// CONSUMER_SEND_MSG_BACK request (`ConsumerSendMsgBackRequestHeader`).
    ConsumerSendMsgBackRequestHeader {
        offset: i64 = "offset",
        group: ByteStr = "group",
        delay_level: i32 = "delayLevel",
        origin_msg_id: Option<ByteStr> = "originMsgId",
        origin_topic: Option<ByteStr> = "originTopic",
        unit_mode: Option<bool> = "unitMode",
        max_reconsume_times: Option<i32> = "maxReconsumeTimes",
    }
}
