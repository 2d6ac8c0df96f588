//! Messages: what a producer sends ([`Message`]) and what a consumer receives ([`MessageExt`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use wire::message::{properties, StoredMessage};
use wire::ByteStr;

/// A message to send: topic, body, and the properties RocketMQ gives meaning to (tags, keys,
/// delay level) plus any of the user's own.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub topic: String,
    pub body: Bytes,
    pub flag: i32,
    pub properties: BTreeMap<String, String>,
}

impl Message {
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self { topic: topic.into(), body: body.into(), ..Self::default() }
    }

    /// One tag, used by consumers' subscription expressions (`TagA || TagB`).
    pub fn with_tags(mut self, tags: impl Into<String>) -> Self {
        self.properties.insert(properties::TAGS.into(), tags.into());
        self
    }

    /// Keys for QUERY_MESSAGE, space-separated as Java joins them.
    pub fn with_keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let joined: Vec<String> = keys.into_iter().map(|k| k.as_ref().to_string()).collect();
        self.properties.insert(properties::KEYS.into(), joined.join(" "));
        self
    }

    /// Delay level 1.. (1s 5s 10s 30s 1m … by the broker's `messageDelayLevel`).
    pub fn with_delay_level(mut self, level: i32) -> Self {
        self.properties.insert(properties::DELAY_TIME_LEVEL.into(), level.to_string());
        self
    }

    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    pub fn tags(&self) -> Option<&str> {
        self.properties.get(properties::TAGS).map(String::as_str)
    }

    pub fn keys(&self) -> Option<&str> {
        self.properties.get(properties::KEYS).map(String::as_str)
    }

    /// The properties in their wire form.
    pub(crate) fn encoded_properties(&self) -> ByteStr {
        ByteStr::from(properties::encode(self.properties.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
    }
}

/// A received message with what the broker stored about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageExt {
    pub stored: StoredMessage,
    /// Which broker it came from.
    pub broker_name: String,
}

impl MessageExt {
    pub fn new(stored: StoredMessage, broker_name: &str) -> Self {
        Self { stored, broker_name: broker_name.to_string() }
    }

    /// A message as a broker returned it, its body decompressed when the producer compressed
    /// it (as Java's `MessageDecoder` does for consumers and admin queries). The sysFlag still
    /// says how it was stored.
    pub fn decompressed(mut stored: StoredMessage, broker_name: &str) -> Result<Self, wire::MessageError> {
        if stored.sys_flag & wire::message::sys_flag::COMPRESSED != 0 {
            stored.body = wire::message::decompress_body(&stored.body, stored.sys_flag)?.into();
        }
        Ok(Self::new(stored, broker_name))
    }

    /// The topic the producer sent to: a retried message carries its original topic in
    /// RETRY_TOPIC.
    pub fn topic(&self) -> &str {
        self.property(properties::RETRY_TOPIC).unwrap_or(self.stored.topic.as_str())
    }

    /// The topic it was stored under (`%RETRY%group` for a retried message).
    pub fn stored_topic(&self) -> &str {
        self.stored.topic.as_str()
    }

    pub fn body(&self) -> &Bytes {
        &self.stored.body
    }

    pub fn tags(&self) -> Option<&str> {
        self.property(properties::TAGS)
    }

    pub fn keys(&self) -> Vec<&str> {
        self.property(properties::KEYS).map(|k| k.split(' ').filter(|k| !k.is_empty()).collect()).unwrap_or_default()
    }

    pub fn property(&self, key: &str) -> Option<&str> {
        properties::get(self.stored.properties.as_str(), key)
    }

    pub fn properties(&self) -> impl Iterator<Item = (&str, &str)> {
        properties::pairs(self.stored.properties.as_str())
    }

    /// The producer's unique id (UNIQ_KEY), or the offset id when there is none: what Java's
    /// `MessageExt.getMsgId()` returns for messages that came from a producer.
    pub fn msg_id(&self) -> String {
        match self.property(properties::UNIQ_CLIENT_MESSAGE_ID_KEYIDX) {
            Some(id) => id.to_string(),
            None => self.offset_msg_id(),
        }
    }

    /// The id made of the store host and physical offset, as VIEW_MESSAGE_BY_ID takes.
    pub fn offset_msg_id(&self) -> String {
        wire::message::offset_msg_id(self.stored.store_host, self.stored.physical_offset)
    }

    pub fn queue_id(&self) -> i32 {
        self.stored.queue_id
    }

    pub fn queue_offset(&self) -> i64 {
        self.stored.queue_offset
    }

    pub fn reconsume_times(&self) -> i32 {
        self.stored.reconsume_times
    }

    pub fn born_timestamp(&self) -> i64 {
        self.stored.born_timestamp
    }

    pub fn store_timestamp(&self) -> i64 {
        self.stored.store_timestamp
    }

    pub fn born_host(&self) -> SocketAddr {
        self.stored.born_host
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_are_encoded_in_key_order_with_java_separators() {
        let none = Message::new("T", "b");
        assert_eq!(none.encoded_properties().as_str(), "");
        let message = Message::new("T", "b").with_tags("TagA").with_keys(["k1", "k2"]).with_property("a", "");
        assert_eq!(message.encoded_properties().as_str(), "KEYS\u{1}k1 k2\u{2}TAGS\u{1}TagA\u{2}a\u{1}");
    }
}
