//! Client bodies: heartbeats, consumer lists and connections, queue locks.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::json_body;
use super::lenient::{i64_or_string, java_enum};

java_enum! {
    /// `ConsumeType`: pull (actively) or push (passively).
    ConsumeType {
        CONSUME_ACTIVELY = 0,
        CONSUME_PASSIVELY = 1,
    }
}

java_enum! {
    /// `MessageModel`.
    MessageModel {
        BROADCASTING = 0,
        CLUSTERING = 1,
    }
}

java_enum! {
    /// `ConsumeFromWhere`: where a group with no stored offset starts.
    ConsumeFromWhere {
        CONSUME_FROM_LAST_OFFSET = 0,
        CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST = 1,
        CONSUME_FROM_MIN_OFFSET = 2,
        CONSUME_FROM_MAX_OFFSET = 3,
        CONSUME_FROM_FIRST_OFFSET = 4,
        CONSUME_FROM_TIMESTAMP = 5,
    }
}

/// The tag expression type that subscriptions use unless they say otherwise.
pub const EXPRESSION_TYPE_TAG: &str = "TAG";
/// The subscription expression that matches every tag.
pub const SUB_ALL: &str = "*";

fn tag_expression() -> String {
    EXPRESSION_TYPE_TAG.to_owned()
}

/// One topic subscription of a consumer group (`SubscriptionData`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionData {
    #[serde(default)]
    pub class_filter_mode: bool,
    /// Tag hash codes (Java `String.hashCode`) of `tagsSet`.
    #[serde(default)]
    pub code_set: BTreeSet<i32>,
    #[serde(default = "tag_expression")]
    pub expression_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_class_source: Option<String>,
    /// The expression as the user wrote it: `*`, `TagA || TagB`, or an SQL92 filter.
    #[serde(default)]
    pub sub_string: String,
    #[serde(default, deserialize_with = "i64_or_string")]
    pub sub_version: i64,
    #[serde(default)]
    pub tags_set: BTreeSet<String>,
    pub topic: String,
}

impl SubscriptionData {
    /// A TAG subscription from an expression: `*` (or empty) for every tag, else tags
    /// separated by `||`, each with its hash code, as Java's `FilterAPI.buildSubscriptionData`.
    pub fn from_tag_expression(topic: &str, expression: &str, sub_version: i64) -> Self {
        let expression = expression.trim();
        let mut data = SubscriptionData {
            class_filter_mode: false,
            code_set: BTreeSet::new(),
            expression_type: EXPRESSION_TYPE_TAG.to_owned(),
            filter_class_source: None,
            sub_string: if expression.is_empty() { SUB_ALL.to_owned() } else { expression.to_owned() },
            sub_version,
            tags_set: BTreeSet::new(),
            topic: topic.to_owned(),
        };
        if data.sub_string != SUB_ALL {
            for tag in data.sub_string.split("||").map(str::trim).filter(|t| !t.is_empty()) {
                data.tags_set.insert(tag.to_owned());
                data.code_set.insert(crate::message::tag_hash_code(tag) as i32);
            }
        }
        data
    }

    /// Whether every tag passes.
    pub fn is_all(&self) -> bool {
        self.sub_string == SUB_ALL || self.sub_string.is_empty()
    }

    /// Whether a message with `tags` passes the exact tag check (the hash check's companion:
    /// two tags can share a hash code).
    pub fn matches_tags(&self, tags: Option<&str>) -> bool {
        self.class_filter_mode || self.is_all() || tags.is_some_and(|t| self.tags_set.contains(t))
    }
}

/// A producer group a client belongs to (`ProducerData`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerData {
    pub group_name: String,
}

/// A consumer group a client belongs to, with its subscriptions (`ConsumerData`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerData {
    pub consume_from_where: ConsumeFromWhere,
    pub consume_type: ConsumeType,
    pub group_name: String,
    pub message_model: MessageModel,
    #[serde(default)]
    pub subscription_data_set: Vec<SubscriptionData>,
    #[serde(default)]
    pub unit_mode: bool,
}

/// HEART_BEAT body (`HeartbeatData`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HeartbeatData {
    #[serde(rename = "clientID")]
    pub client_id: String,
    #[serde(rename = "consumerDataSet", default)]
    pub consumer_data_set: Vec<ConsumerData>,
    #[serde(rename = "producerDataSet", default)]
    pub producer_data_set: Vec<ProducerData>,
}

/// GET_CONSUMER_LIST_BY_GROUP answer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetConsumerListByGroupResponseBody {
    #[serde(default)]
    pub consumer_id_list: Vec<String>,
}

/// One client connection (`Connection`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub client_addr: String,
    pub client_id: String,
    /// `LanguageCode` name.
    pub language: String,
    pub version: i32,
}

/// GET_CONSUMER_CONNECTION_LIST answer (`ConsumerConnection`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerConnection {
    #[serde(default)]
    pub connection_set: BTreeSet<Connection>,
    pub consume_from_where: Option<ConsumeFromWhere>,
    pub consume_type: Option<ConsumeType>,
    pub message_model: Option<MessageModel>,
    /// Topic → subscription.
    #[serde(default)]
    pub subscription_table: BTreeMap<String, SubscriptionData>,
}

/// GET_PRODUCER_CONNECTION_LIST answer (`ProducerConnection`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerConnection {
    #[serde(default)]
    pub connection_set: BTreeSet<Connection>,
}

/// A message queue: topic, broker, queue id (`MessageQueue`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageQueue {
    pub broker_name: String,
    pub queue_id: i32,
    pub topic: String,
}

/// LOCK_BATCH_MQ body (`LockBatchRequestBody`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockBatchRequestBody {
    pub client_id: String,
    pub consumer_group: String,
    #[serde(default)]
    pub mq_set: BTreeSet<MessageQueue>,
}

/// LOCK_BATCH_MQ answer (`LockBatchResponseBody`): the queues now locked by the requester.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LockBatchResponseBody {
    #[serde(rename = "lockOKMQSet", default)]
    pub lock_ok_mq_set: BTreeSet<MessageQueue>,
}

/// UNLOCK_BATCH_MQ body (`UnlockBatchRequestBody`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnlockBatchRequestBody {
    pub client_id: String,
    pub consumer_group: String,
    #[serde(default)]
    pub mq_set: BTreeSet<MessageQueue>,
}

json_body!(
    HeartbeatData,
    GetConsumerListByGroupResponseBody,
    ConsumerConnection,
    ProducerConnection,
    LockBatchRequestBody,
    LockBatchResponseBody,
    UnlockBatchRequestBody
);
