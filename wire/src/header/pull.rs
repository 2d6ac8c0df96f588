//! Pulling: PULL_MESSAGE request and response.

use super::header;
use crate::bytestr::ByteStr;

header! {
    /// PULL_MESSAGE request (`PullMessageRequestHeader`).
    PullMessageRequestHeader {
        consumer_group: ByteStr = "consumerGroup",
        topic: ByteStr = "topic",
        queue_id: i32 = "queueId",
        queue_offset: i64 = "queueOffset",
        max_msg_nums: i32 = "maxMsgNums",
        sys_flag: i32 = "sysFlag",
        commit_offset: i64 = "commitOffset",
        suspend_timeout_millis: i64 = "suspendTimeoutMillis",
        subscription: Option<ByteStr> = "subscription",
        sub_version: i64 = "subVersion",
        expression_type: Option<ByteStr> = "expressionType",
        /// Byte limit some clients add (`maxMsgBytes`).
        max_msg_bytes: Option<i32> = "maxMsgBytes",
        broker_name: Option<ByteStr> = "bname",
    }
}

header! {
    /// PULL_MESSAGE response (`PullMessageResponseHeader`).
    PullMessageResponseHeader {
        suggest_which_broker_id: i64 = "suggestWhichBrokerId",
        next_begin_offset: i64 = "nextBeginOffset",
        min_offset: i64 = "minOffset",
        max_offset: i64 = "maxOffset",
    }
}

/// Bits of PULL_MESSAGE's `sysFlag` (`PullSysFlag`).
pub mod pull_sys_flag {
    pub const COMMIT_OFFSET: i32 = 1;
    pub const SUSPEND: i32 = 1 << 1;
    pub const SUBSCRIPTION: i32 = 1 << 2;
    pub const CLASS_FILTER: i32 = 1 << 3;
    pub const LITE_PULL_MESSAGE: i32 = 1 << 4;
}
