//! Client management: heartbeat companions, consumer lists, notifications.

use super::header;
use crate::bytestr::ByteStr;

header! {
    /// UNREGISTER_CLIENT request.
    UnregisterClientRequestHeader {
        client_id: ByteStr = "clientID",
        producer_group: Option<ByteStr> = "producerGroup",
        consumer_group: Option<ByteStr> = "consumerGroup",
    }
}

header! {
    /// GET_CONSUMER_LIST_BY_GROUP request.
    GetConsumerListByGroupRequestHeader {
        consumer_group: ByteStr = "consumerGroup",
    }
}

header! {
    /// NOTIFY_CONSUMER_IDS_CHANGED (broker to client, oneway).
    NotifyConsumerIdsChangedRequestHeader {
        consumer_group: ByteStr = "consumerGroup",
    }
}

header! {
    /// GET_CONSUMER_RUNNING_INFO request (broker to client, or admin through the broker).
    GetConsumerRunningInfoRequestHeader {
        consumer_group: ByteStr = "consumerGroup",
        client_id: ByteStr = "clientId",
        jstack_enable: Option<bool> = "jstackEnable",
    }
}

header! {
    /// GET_CONSUMER_STATUS_FROM_CLIENT request.
    GetConsumerStatusRequestHeader {
        topic: ByteStr = "topic",
        group: ByteStr = "group",
        client_addr: Option<ByteStr> = "clientAddr",
    }
}

header! {
    /// CONSUME_MESSAGE_DIRECTLY request.
    ConsumeMessageDirectlyResultRequestHeader {
        consumer_group: ByteStr = "consumerGroup",
        client_id: Option<ByteStr> = "clientId",
        msg_id: Option<ByteStr> = "msgId",
        broker_name: Option<ByteStr> = "brokerName",
    }
}

header! {
    /// GET_CONSUMER_CONNECTION_LIST request.
    GetConsumerConnectionListRequestHeader {
        consumer_group: ByteStr = "consumerGroup",
    }
}

header! {
    /// GET_PRODUCER_CONNECTION_LIST request.
    GetProducerConnectionListRequestHeader {
        producer_group: ByteStr = "producerGroup",
    }
}
