//! What every shard may read of the broker-wide state that shard 0 owns: topics with the shard
//! of each queue, subscription groups, the subscriptions consumers declared, and the broker's
//! settings. Shard 0 rebuilds it after each change and hands the same immutable copy to every
//! shard, so the router and the send and pull paths read it without locks or cross-core calls.

use std::collections::HashMap;
use std::sync::Arc;

use wire::body::{MessageModel, SubscriptionData, TopicConfig};

use crate::clients::Clients;
use crate::config::BrokerConfig;
use crate::metadata::Metadata;

/// What a send or pull needs of a topic's config, copied out without its strings.
#[derive(Debug, Clone, Copy)]
pub struct TopicAccess {
    pub perm: i32,
    pub write_queue_nums: i32,
    pub read_queue_nums: i32,
}

impl From<&TopicConfig> for TopicAccess {
    fn from(t: &TopicConfig) -> Self {
        TopicAccess { perm: t.perm, write_queue_nums: t.write_queue_nums, read_queue_nums: t.read_queue_nums }
    }
}

#[derive(Debug, Clone)]
pub struct TopicRoute {
    pub access: TopicAccess,
    /// The shard of each queue, by queue id.
    pub owners: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
pub struct GroupAccess {
    pub consume_enable: bool,
    pub consume_broadcast_enable: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupSubscriptions {
    pub message_model: MessageModel,
    /// By topic.
    pub subscriptions: HashMap<String, SubscriptionData>,
}

#[derive(Debug, Clone, Default)]
pub struct View {
    pub topics: HashMap<String, TopicRoute>,
    pub groups: HashMap<String, GroupAccess>,
    pub consumers: HashMap<String, GroupSubscriptions>,
}

impl View {
    pub fn build(meta: &Metadata, clients: &Clients) -> View {
        let topics = meta
            .topics
            .topic_config_table
            .iter()
            .map(|(name, t)| {
                let owners = meta.owners.get(name).cloned().unwrap_or_default();
                (name.clone(), TopicRoute { access: t.into(), owners })
            })
            .collect();
        let groups = meta
            .groups
            .subscription_group_table
            .iter()
            .map(|(name, g)| {
                let access = GroupAccess {
                    consume_enable: g.consume_enable,
                    consume_broadcast_enable: g.consume_broadcast_enable,
                };
                (name.clone(), access)
            })
            .collect();
        let consumers = clients
            .consumers
            .iter()
            .map(|(name, g)| {
                let subs =
                    GroupSubscriptions { message_model: g.message_model, subscriptions: g.subscriptions.clone() };
                (name.clone(), subs)
            })
            .collect();
        View { topics, groups, consumers }
    }

    /// The shard that stores `(topic, queue_id)`; 0 for unknown topics and queues.
    pub fn owner(&self, topic: &str, queue_id: i32) -> usize {
        let route = self.topics.get(topic);
        usize::try_from(queue_id).ok().and_then(|q| route?.owners.get(q)).map_or(0, |o| usize::from(*o))
    }

    pub fn topic(&self, name: &str) -> Option<TopicAccess> {
        self.topics.get(name).map(|t| t.access)
    }
}

/// What shard 0 hands the other shards after a change.
#[derive(Debug, Clone)]
pub struct Published {
    pub view: Arc<View>,
    pub config: Arc<BrokerConfig>,
}
