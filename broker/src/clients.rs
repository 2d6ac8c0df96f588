//! Producer and consumer groups as heartbeats describe them (Java's `ProducerManager` and
//! `ConsumerManager`): which connections belong to which group, what each consumer group
//! subscribes to, and when a client went silent.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use wire::body::{ConsumeFromWhere, ConsumeType, ConsumerData, MessageModel, SubscriptionData};

/// A connection, numbered by the broker in accept order.
pub type ConnId = u64;

#[derive(Debug, Clone)]
pub struct ClientChannel {
    pub client_id: String,
    pub addr: SocketAddr,
    pub language: String,
    pub version: i32,
    pub last_update: Instant,
}

#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    pub channels: BTreeMap<ConnId, ClientChannel>,
    /// By topic.
    pub subscriptions: HashMap<String, SubscriptionData>,
    pub consume_type: ConsumeType,
    pub message_model: MessageModel,
    pub consume_from_where: ConsumeFromWhere,
}

#[derive(Default)]
pub struct Clients {
    pub producers: HashMap<String, BTreeMap<ConnId, ClientChannel>>,
    pub consumers: HashMap<String, ConsumerGroup>,
}

impl Clients {
    pub fn register_producer(&mut self, group: &str, conn: ConnId, channel: ClientChannel) {
        self.producers.entry(group.to_owned()).or_default().insert(conn, channel);
    }

    /// Records a consumer heartbeat; true when the group's set of clients changed (its
    /// consumers must then rebalance).
    pub fn register_consumer(&mut self, data: &ConsumerData, conn: ConnId, channel: ClientChannel) -> bool {
        let group = self.consumers.entry(data.group_name.clone()).or_insert_with(|| ConsumerGroup {
            channels: BTreeMap::new(),
            subscriptions: HashMap::new(),
            consume_type: data.consume_type,
            message_model: data.message_model,
            consume_from_where: data.consume_from_where,
        });
        group.consume_type = data.consume_type;
        group.message_model = data.message_model;
        group.consume_from_where = data.consume_from_where;
        for sub in &data.subscription_data_set {
            match group.subscriptions.get(&sub.topic) {
                Some(old) if old.sub_version > sub.sub_version => {}
                _ => {
                    group.subscriptions.insert(sub.topic.clone(), sub.clone());
                }
            }
        }
        let known = group.channels.get(&conn).is_some_and(|c| c.client_id == channel.client_id);
        group.channels.insert(conn, channel);
        !known
    }

    /// Removes a client from a group; true when the group changed.
    pub fn unregister(&mut self, conn: ConnId, producer_group: Option<&str>, consumer_group: Option<&str>) -> bool {
        if let Some(group) = producer_group {
            if let Some(channels) = self.producers.get_mut(group) {
                channels.remove(&conn);
                if channels.is_empty() {
                    self.producers.remove(group);
                }
            }
        }
        let Some(group) = consumer_group else { return false };
        let Some(info) = self.consumers.get_mut(group) else { return false };
        let removed = info.channels.remove(&conn).is_some();
        if info.channels.is_empty() {
            self.consumers.remove(group);
        }
        removed
    }

    /// Forgets a closed connection; returns the consumer groups that changed.
    pub fn connection_closed(&mut self, conn: ConnId) -> Vec<String> {
        self.producers.retain(|_, channels| {
            channels.remove(&conn);
            !channels.is_empty()
        });
        self.drop_consumers(|id, _| id == conn)
    }

    /// Drops clients silent for longer than `timeout`; returns the consumer groups that changed.
    pub fn scan_expired(&mut self, now: Instant, timeout: Duration) -> Vec<String> {
        let stale = |c: &ClientChannel| now.saturating_duration_since(c.last_update) > timeout;
        self.producers.retain(|_, channels| {
            channels.retain(|_, c| !stale(c));
            !channels.is_empty()
        });
        self.drop_consumers(|_, c| stale(c))
    }

    fn drop_consumers(&mut self, drop: impl Fn(ConnId, &ClientChannel) -> bool) -> Vec<String> {
        let mut changed = Vec::new();
        self.consumers.retain(|group, info| {
            let before = info.channels.len();
            info.channels.retain(|id, c| !drop(*id, c));
            if info.channels.len() != before {
                changed.push(group.clone());
            }
            !info.channels.is_empty()
        });
        changed
    }

    /// Client ids of a consumer group, as GET_CONSUMER_LIST_BY_GROUP lists them.
    pub fn consumer_ids(&self, group: &str) -> Vec<String> {
        self.consumers
            .get(group)
            .map(|g| g.channels.values().map(|c| c.client_id.clone()).collect())
            .unwrap_or_default()
    }

    /// Connections of a consumer group with the client id on each, for requests the broker
    /// passes to consumers.
    pub fn consumer_channels(&self, group: &str) -> Vec<(ConnId, String)> {
        self.consumers
            .get(group)
            .map(|g| g.channels.iter().map(|(id, ch)| (*id, ch.client_id.clone())).collect())
            .unwrap_or_default()
    }

    /// Connections of a consumer group (for NOTIFY_CONSUMER_IDS_CHANGED).
    pub fn consumer_conns(&self, group: &str) -> Vec<ConnId> {
        self.consumers.get(group).map(|g| g.channels.keys().copied().collect()).unwrap_or_default()
    }

    pub fn subscription(&self, group: &str, topic: &str) -> Option<&SubscriptionData> {
        self.consumers.get(group).and_then(|g| g.subscriptions.get(topic))
    }

    /// Whether `group` is online with subscriptions, none of them to `topic`: admin requests
    /// about the group's offsets leave such a topic out, as Java's do.
    pub fn subscribes_elsewhere(&self, group: &str, topic: &str) -> bool {
        self.consumers.get(group).is_some_and(|g| !g.subscriptions.is_empty() && !g.subscriptions.contains_key(topic))
    }

    /// Groups online with a subscription to `topic`.
    pub fn groups_subscribed_to<'a>(&'a self, topic: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.consumers.iter().filter(move |(_, g)| g.subscriptions.contains_key(topic)).map(|(name, _)| name)
    }
}

/// Whether a ConsumeQueue unit's tag code passes `sub` (Java's `isMatchedByConsumeQueue`).
pub fn matches_tag_code(sub: Option<&SubscriptionData>, tag_code: i64) -> bool {
    match sub {
        None => true,
        Some(sub) if sub.class_filter_mode => true,
        Some(sub) if sub.is_all() => true,
        Some(sub) => sub.code_set.contains(&(tag_code as i32)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_expressions_become_code_sets() {
        let sub = SubscriptionData::from_tag_expression("T", "TagA || TagB", 7);
        assert_eq!(sub.tags_set.len(), 2);
        assert!(matches_tag_code(Some(&sub), wire::message::tag_hash_code("TagA")));
        assert!(!matches_tag_code(Some(&sub), wire::message::tag_hash_code("TagC")));
        let all = SubscriptionData::from_tag_expression("T", "*", 7);
        assert!(matches_tag_code(Some(&all), 12345));
        assert!(matches_tag_code(None, 12345));
    }
}
