//! Admin bodies keyed by message queue: consume stats, topic stats and offset resets.
//!
//! Java keys these maps by `MessageQueue` objects, which fastjson writes as bare objects. Here the
//! maps serialize each key as a string holding the queue's JSON; [`super::JsonBody::encode_fastjson`]
//! writes those keys bare again, and decoding reads both forms.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::client::MessageQueue;
use super::json_body;

/// Per queue: broker max offset, group's consumer offset, time of the last stored message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OffsetWrapper {
    pub broker_offset: i64,
    pub consumer_offset: i64,
    #[serde(default)]
    pub last_timestamp: i64,
}

/// GET_CONSUME_STATS answer (`ConsumeStats`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumeStats {
    #[serde(default)]
    pub consume_tps: f64,
    #[serde(default, with = "queue_keyed")]
    pub offset_table: BTreeMap<MessageQueue, OffsetWrapper>,
}

impl ConsumeStats {
    /// Messages stored but not yet consumed by the group, over all queues.
    pub fn lag(&self) -> i64 {
        self.offset_table.values().map(|o| (o.broker_offset - o.consumer_offset).max(0)).sum()
    }
}

/// Per queue: min and max offsets and the time of the last update (`TopicOffset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicOffset {
    #[serde(default)]
    pub last_update_timestamp: i64,
    pub max_offset: i64,
    pub min_offset: i64,
}

/// GET_TOPIC_STATS_INFO answer (`TopicStatsTable`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatsTable {
    #[serde(default, with = "queue_keyed")]
    pub offset_table: BTreeMap<MessageQueue, TopicOffset>,
}

/// RESET_CONSUMER_CLIENT_OFFSET body and INVOKE_BROKER_TO_RESET_OFFSET answer: the offset
/// each queue of the group starts from again (`ResetOffsetBody`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetOffsetBody {
    #[serde(default, with = "queue_keyed")]
    pub offset_table: BTreeMap<MessageQueue, i64>,
}

/// GET_BROKER_CONSUME_STATS answer (`ConsumeStatsList`): per subscription group, its progress
/// on each topic.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumeStatsList {
    #[serde(default)]
    pub broker_addr: String,
    /// One map per group: group name → one [`ConsumeStats`] per topic.
    #[serde(default)]
    pub consume_stats_list: Vec<BTreeMap<String, Vec<ConsumeStats>>>,
    #[serde(default)]
    pub total_diff: i64,
}

/// GET_CONSUMER_STATUS_FROM_CLIENT answer (a consumer's offsets on a topic, in
/// `messageQueueTable`) and INVOKE_BROKER_TO_GET_CONSUMER_STATUS answer (each consumer's, by
/// client id, in `consumerTable`): `GetConsumerStatusBody`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetConsumerStatusBody {
    #[serde(default)]
    pub consumer_table: BTreeMap<String, QueueOffsets>,
    #[serde(default, with = "queue_keyed")]
    pub message_queue_table: BTreeMap<MessageQueue, i64>,
}

/// Offsets by queue, keys travelling as the queue's JSON text (bare in fastjson's form).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QueueOffsets(#[serde(with = "queue_keyed")] pub BTreeMap<MessageQueue, i64>);

/// QUERY_TOPIC_CONSUME_BY_WHO answer: consumer group names (`GroupList`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupList {
    #[serde(default)]
    pub group_list: BTreeSet<String>,
}

json_body!(ConsumeStats, ConsumeStatsList, TopicStatsTable, ResetOffsetBody, GroupList, GetConsumerStatusBody);

/// Maps keyed by `MessageQueue`, keys travelling as the queue's JSON text.
mod queue_keyed {
    use std::collections::BTreeMap;

    use serde::de::{DeserializeOwned, Error as _};
    use serde::ser::{Error as _, SerializeMap};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::MessageQueue;

    pub fn serialize<V: Serialize, S: Serializer>(map: &BTreeMap<MessageQueue, V>, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_map(Some(map.len()))?;
        for (mq, v) in map {
            let key = serde_json::to_string(mq).map_err(S::Error::custom)?;
            out.serialize_entry(&key, v)?;
        }
        out.end()
    }

    pub fn deserialize<'de, V: DeserializeOwned, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<MessageQueue, V>, D::Error> {
        let raw = BTreeMap::<String, V>::deserialize(d)?;
        raw.into_iter()
            .map(|(k, v)| {
                let mq: MessageQueue =
                    serde_json::from_str(&k).map_err(|e| D::Error::custom(format!("message queue key {k:?}: {e}")))?;
                Ok((mq, v))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::JsonBody;

    #[test]
    fn queue_keys_are_bare_objects_in_fastjson_form_and_read_back() {
        let mut stats = TopicStatsTable::default();
        let mq = MessageQueue { broker_name: "broker-a".into(), queue_id: 2, topic: "TopicTest".into() };
        stats.offset_table.insert(mq.clone(), TopicOffset { last_update_timestamp: 5, max_offset: 9, min_offset: 1 });
        let java = stats.encode_fastjson();
        let text = String::from_utf8(java.clone()).expect("utf8");
        assert_eq!(
            text,
            r#"{"offsetTable":{{"brokerName":"broker-a","queueId":2,"topic":"TopicTest"}:{"lastUpdateTimestamp":5,"maxOffset":9,"minOffset":1}}}"#
        );
        assert_eq!(TopicStatsTable::decode(&java).expect("fastjson form"), stats);
        assert_eq!(TopicStatsTable::decode(&stats.encode()).expect("standard form"), stats);
    }

    #[test]
    fn consumer_status_nests_queue_keyed_maps_by_client_id() {
        let mq = MessageQueue { broker_name: "broker-a".into(), queue_id: 1, topic: "T".into() };
        let mut status = GetConsumerStatusBody::default();
        status.consumer_table.insert("10.0.0.1@1".into(), QueueOffsets([(mq.clone(), 7)].into()));
        let java = String::from_utf8(status.encode_fastjson()).expect("utf8");
        assert_eq!(
            java,
            r#"{"consumerTable":{"10.0.0.1@1":{{"brokerName":"broker-a","queueId":1,"topic":"T"}:7}},"messageQueueTable":{}}"#
        );
        assert_eq!(GetConsumerStatusBody::decode(java.as_bytes()).expect("fastjson form"), status);
    }
}
