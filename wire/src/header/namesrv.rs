//! Name server requests: broker registration, routes, KV config, permissions.

use super::header;
use crate::bytestr::ByteStr;

header! {
    /// REGISTER_BROKER request.
    RegisterBrokerRequestHeader {
        broker_name: ByteStr = "brokerName",
        broker_addr: ByteStr = "brokerAddr",
        cluster_name: ByteStr = "clusterName",
        ha_server_addr: ByteStr = "haServerAddr",
        broker_id: i64 = "brokerId",
        /// Body is the deflated binary form of `RegisterBrokerBody`.
        compressed: Option<bool> = "compressed",
        /// CRC32 (IEEE) of the body masked to 31 bits (`UtilAll.crc32`, as BODYCRC); 0 = not checked.
        body_crc32: Option<i32> = "bodyCrc32",
    }
}

header! {
    /// REGISTER_BROKER response.
    RegisterBrokerResponseHeader {
        ha_server_addr: Option<ByteStr> = "haServerAddr",
        master_addr: Option<ByteStr> = "masterAddr",
    }
}

header! {
    /// UNREGISTER_BROKER request.
    UnRegisterBrokerRequestHeader {
        broker_name: ByteStr = "brokerName",
        broker_addr: ByteStr = "brokerAddr",
        cluster_name: ByteStr = "clusterName",
        broker_id: i64 = "brokerId",
    }
}

header! {
    /// QUERY_DATA_VERSION request.
    QueryDataVersionRequestHeader {
        broker_name: ByteStr = "brokerName",
        broker_addr: ByteStr = "brokerAddr",
        cluster_name: ByteStr = "clusterName",
        broker_id: i64 = "brokerId",
    }
}

header! {
    /// QUERY_DATA_VERSION response.
    QueryDataVersionResponseHeader {
        changed: bool = "changed",
    }
}

header! {
    /// GET_ROUTEINFO_BY_TOPIC request.
    GetRouteInfoRequestHeader {
        topic: ByteStr = "topic",
        accept_standard_json_only: Option<bool> = "acceptStandardJsonOnly",
    }
}

header! {
    /// GET_TOPICS_BY_CLUSTER request.
    GetTopicsByClusterRequestHeader {
        cluster: ByteStr = "cluster",
    }
}

header! {
    /// DELETE_TOPIC_IN_NAMESRV request.
    DeleteTopicFromNamesrvRequestHeader {
        topic: ByteStr = "topic",
        cluster_name: Option<ByteStr> = "clusterName",
    }
}

header! {
    /// WIPE_WRITE_PERM_OF_BROKER request.
    WipeWritePermOfBrokerRequestHeader {
        broker_name: ByteStr = "brokerName",
    }
}

header! {
    /// WIPE_WRITE_PERM_OF_BROKER response.
    WipeWritePermOfBrokerResponseHeader {
        wipe_topic_count: i32 = "wipeTopicCount",
    }
}

header! {
    /// ADD_WRITE_PERM_OF_BROKER request.
    AddWritePermOfBrokerRequestHeader {
        broker_name: ByteStr = "brokerName",
    }
}

header! {
    /// ADD_WRITE_PERM_OF_BROKER response.
    AddWritePermOfBrokerResponseHeader {
        add_topic_count: i32 = "addTopicCount",
    }
}

header! {
    /// PUT_KV_CONFIG request.
    PutKvConfigRequestHeader {
        namespace: ByteStr = "namespace",
        key: ByteStr = "key",
        value: ByteStr = "value",
    }
}

header! {
    /// GET_KV_CONFIG request.
    GetKvConfigRequestHeader {
        namespace: ByteStr = "namespace",
        key: ByteStr = "key",
    }
}

header! {
    /// GET_KV_CONFIG response.
    GetKvConfigResponseHeader {
        value: Option<ByteStr> = "value",
    }
}

header! {
    /// DELETE_KV_CONFIG request.
    DeleteKvConfigRequestHeader {
        namespace: ByteStr = "namespace",
        key: ByteStr = "key",
    }
}

header! {
    /// GET_KVLIST_BY_NAMESPACE request.
    GetKvListByNamespaceRequestHeader {
        namespace: ByteStr = "namespace",
    }
}
