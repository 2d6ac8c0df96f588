//! Broker registration (REGISTER_BROKER body) and the broker's persisted config shapes:
//! topics.json, subscriptionGroup.json and consumerOffset.json use these same types.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};

use super::lenient::java_enum;
use super::{json_body, JsonBody};
use crate::code::request;
use crate::command::RemotingCommand;
use crate::error::BodyError;
use crate::header::RegisterBrokerRequestHeader;
use crate::message::body_crc;

/// Counter and time of the last change to a broker's topic configs (`DataVersion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DataVersion {
    #[serde(default)]
    pub counter: i64,
    #[serde(default)]
    pub timestamp: i64,
}

impl DataVersion {
    /// The next version, at `now_ms`.
    pub fn next(self, now_ms: i64) -> Self {
        Self { counter: self.counter + 1, timestamp: now_ms }
    }
}

java_enum! {
    /// `TopicFilterType`.
    TopicFilterType {
        SINGLE_TAG = 0,
        MULTI_TAG = 1,
    }
}

#[allow(clippy::derivable_impls)] // the enum comes from `java_enum!`, which cannot mark a default variant
impl Default for TopicFilterType {
    fn default() -> Self {
        Self::SINGLE_TAG
    }
}

/// One topic's configuration on a broker (`TopicConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicConfig {
    #[serde(default)]
    pub order: bool,
    pub perm: i32,
    pub read_queue_nums: i32,
    #[serde(default)]
    pub topic_filter_type: TopicFilterType,
    pub topic_name: String,
    #[serde(default)]
    pub topic_sys_flag: i32,
    pub write_queue_nums: i32,
}

impl TopicConfig {
    /// A read-write topic with `queues` read and write queues.
    pub fn new(name: impl Into<String>, queues: i32) -> Self {
        Self {
            order: false,
            perm: super::perm::READ | super::perm::WRITE,
            read_queue_nums: queues,
            topic_filter_type: TopicFilterType::SINGLE_TAG,
            topic_name: name.into(),
            topic_sys_flag: 0,
            write_queue_nums: queues,
        }
    }
}

/// A broker's topic table with its version (`TopicConfigSerializeWrapper`); also topics.json.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicConfigSerializeWrapper {
    #[serde(default)]
    pub data_version: DataVersion,
    #[serde(default)]
    pub topic_config_table: BTreeMap<String, TopicConfig>,
}

/// REGISTER_BROKER body (`RegisterBrokerBody`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterBrokerBody {
    #[serde(default)]
    pub filter_server_list: Vec<String>,
    #[serde(default)]
    pub topic_config_serialize_wrapper: TopicConfigSerializeWrapper,
}

/// Bound on the compressed form's inflated size and on any one length field in it.
const COMPRESSED_MAX_BYTES: usize = 64 * 1024 * 1024;

impl RegisterBrokerBody {
    /// Decodes the body, in JSON or (when the header says `compressed`) in Java's deflated
    /// binary form: i32 length + DataVersion JSON, i32 topic count, per topic i32 length +
    /// TopicConfig JSON, i32 length + filter server list JSON.
    pub fn decode_any(body: &[u8], compressed: bool) -> Result<Self, BodyError> {
        if !compressed {
            return Self::decode(body);
        }
        let invalid = |reason: String| BodyError::Invalid { body: "RegisterBrokerBody", reason };
        let mut inflated = Vec::new();
        ZlibDecoder::new(body)
            .take(COMPRESSED_MAX_BYTES as u64 + 1)
            .read_to_end(&mut inflated)
            .map_err(|e| invalid(format!("inflate: {e}")))?;
        if inflated.len() > COMPRESSED_MAX_BYTES {
            return Err(invalid(format!("inflates past {COMPRESSED_MAX_BYTES} bytes")));
        }
        let mut r = ChunkReader { data: &inflated, at: 0 };
        let json_err = |what: &str, e: serde_json::Error| invalid(format!("{what}: {e}"));
        let data_version: DataVersion =
            serde_json::from_slice(r.chunk().map_err(invalid)?).map_err(|e| json_err("dataVersion", e))?;
        let count = r.int().map_err(invalid)?;
        let mut table = BTreeMap::new();
        for _ in 0..count {
            let config: TopicConfig =
                serde_json::from_slice(r.chunk().map_err(invalid)?).map_err(|e| json_err("topicConfig", e))?;
            table.insert(config.topic_name.clone(), config);
        }
        let filter_server_list: Vec<String> =
            serde_json::from_slice(r.chunk().map_err(invalid)?).map_err(|e| json_err("filterServerList", e))?;
        Ok(Self {
            filter_server_list,
            topic_config_serialize_wrapper: TopicConfigSerializeWrapper { data_version, topic_config_table: table },
        })
    }

    /// Encodes in Java's deflated binary form (what a broker with `compressedRegister` sends).
    pub fn encode_compressed(&self) -> Vec<u8> {
        let mut raw = Vec::new();
        let put_chunk = |raw: &mut Vec<u8>, bytes: Vec<u8>| {
            raw.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
            raw.extend_from_slice(&bytes);
        };
        let wrapper = &self.topic_config_serialize_wrapper;
        put_chunk(&mut raw, serde_json::to_vec(&wrapper.data_version).unwrap_or_default());
        raw.extend_from_slice(&(wrapper.topic_config_table.len() as i32).to_be_bytes());
        for config in wrapper.topic_config_table.values() {
            put_chunk(&mut raw, serde_json::to_vec(config).unwrap_or_default());
        }
        put_chunk(&mut raw, serde_json::to_vec(&self.filter_server_list).unwrap_or_default());
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
        // Writing to a Vec cannot fail.
        let _ = encoder.write_all(&raw);
        encoder.finish().unwrap_or_default()
    }

    /// A REGISTER_BROKER request carrying this body (deflated when `compressed`), with
    /// `compressed` and `bodyCrc32` set as Java's broker sets them.
    pub fn to_request(&self, mut header: RegisterBrokerRequestHeader, compressed: bool) -> RemotingCommand {
        let body = if compressed { self.encode_compressed() } else { self.encode() };
        header.compressed = Some(compressed);
        header.body_crc32 = Some(body_crc(&body) as i32);
        RemotingCommand::request(request::REGISTER_BROKER).with_header(&header).with_body(body)
    }
}

struct ChunkReader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> ChunkReader<'a> {
    fn int(&mut self) -> Result<usize, String> {
        let bytes = self.data.get(self.at..self.at + 4).ok_or("truncated length field")?;
        self.at += 4;
        let n = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        usize::try_from(n).map_err(|_| format!("negative length {n}"))
    }

    fn chunk(&mut self) -> Result<&'a [u8], String> {
        let len = self.int()?;
        let chunk = self.data.get(self.at..self.at + len).ok_or_else(|| format!("chunk of {len} bytes truncated"))?;
        self.at += len;
        Ok(chunk)
    }
}

/// A consumer group's settings (`SubscriptionGroupConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupConfig {
    pub broker_id: i64,
    pub consume_broadcast_enable: bool,
    pub consume_enable: bool,
    pub consume_from_min_enable: bool,
    pub group_name: String,
    pub notify_consumer_ids_changed_enable: bool,
    pub retry_max_times: i32,
    pub retry_queue_nums: i32,
    pub which_broker_when_consume_slowly: i64,
}

impl Default for SubscriptionGroupConfig {
    fn default() -> Self {
        Self {
            broker_id: 0,
            consume_broadcast_enable: true,
            consume_enable: true,
            consume_from_min_enable: true,
            group_name: String::new(),
            notify_consumer_ids_changed_enable: true,
            retry_max_times: 16,
            retry_queue_nums: 1,
            which_broker_when_consume_slowly: 1,
        }
    }
}

/// All subscription groups with a version (`SubscriptionGroupWrapper`); also subscriptionGroup.json.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionGroupWrapper {
    #[serde(default)]
    pub data_version: DataVersion,
    #[serde(default)]
    pub subscription_group_table: BTreeMap<String, SubscriptionGroupConfig>,
}

/// Consumer offsets (`ConsumerOffsetSerializeWrapper`); also consumerOffset.json.
/// Keys are `topic@group`, then queue id → offset (fastjson writes queue ids bare).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerOffsetSerializeWrapper {
    #[serde(default)]
    pub offset_table: BTreeMap<String, BTreeMap<i32, i64>>,
}

/// Delivery progress of the delay levels (`delayOffset.json`): level → offset in its queue of
/// SCHEDULE_TOPIC_XXXX.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DelayOffsetSerializeWrapper {
    #[serde(default)]
    pub offset_table: BTreeMap<i32, i64>,
}

json_body!(
    RegisterBrokerBody,
    TopicConfigSerializeWrapper,
    TopicConfig,
    DataVersion,
    SubscriptionGroupWrapper,
    SubscriptionGroupConfig,
    ConsumerOffsetSerializeWrapper,
    DelayOffsetSerializeWrapper
);
