//! The pull consumer: the application names the queue and the offset; nothing is rebalanced or
//! committed behind its back.

use std::sync::Arc;
use std::time::Duration;

use wire::body::{ConsumeFromWhere, ConsumeType, ConsumerData, MessageModel, MessageQueue, SubscriptionData};

use super::{PullRequest, PullResult};
use crate::error::{ClientError, Result};
use crate::instance::{now_ms, ClientConfig, ClientInstance};

/// A consumer that pulls from queues it chooses (Java's `DefaultMQPullConsumer`).
#[derive(Clone)]
pub struct PullConsumer {
    instance: Arc<ClientInstance>,
    group: String,
}

impl PullConsumer {
    pub fn start(group: impl Into<String>, config: ClientConfig) -> Result<Self> {
        let group = group.into();
        if group.is_empty() {
            return Err(ClientError::InvalidArgument("the consumer group is empty".into()));
        }
        let instance = ClientInstance::start(config)?;
        instance.register_consumer(ConsumerData {
            consume_from_where: ConsumeFromWhere::CONSUME_FROM_LAST_OFFSET,
            consume_type: ConsumeType::CONSUME_ACTIVELY,
            group_name: group.clone(),
            message_model: MessageModel::CLUSTERING,
            subscription_data_set: Vec::new(),
            unit_mode: false,
        });
        Ok(Self { instance, group })
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// The readable queues of `topic`, from a fresh route.
    pub async fn queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        match self.instance.fetch_route(topic).await? {
            Some(route) => Ok(route.read_queues.clone()),
            None => {
                Err(ClientError::NoRoute { topic: topic.into(), reason: "the name servers know no such topic".into() })
            }
        }
    }

    /// Up to `max_nums` messages at and after `offset` that pass `expression` (`*` or
    /// `TagA || TagB`); answers at once.
    pub async fn pull(&self, queue: &MessageQueue, expression: &str, offset: i64, max_nums: i32) -> Result<PullResult> {
        let sub = SubscriptionData::from_tag_expression(&queue.topic, expression, now_ms());
        let request = PullRequest { queue, subscription: &sub, offset, max_nums, suspend: None, commit_offset: None };
        super::pull(&self.instance, &self.group, request).await
    }

    /// As [`PullConsumer::pull`], but the broker holds the request up to `wait` while the queue
    /// has nothing new (long polling).
    pub async fn pull_blocking(
        &self,
        queue: &MessageQueue,
        expression: &str,
        offset: i64,
        max_nums: i32,
        wait: Duration,
    ) -> Result<PullResult> {
        let sub = SubscriptionData::from_tag_expression(&queue.topic, expression, now_ms());
        let request =
            PullRequest { queue, subscription: &sub, offset, max_nums, suspend: Some(wait), commit_offset: None };
        super::pull(&self.instance, &self.group, request).await
    }

    /// The group's committed offset of `queue`, `None` when there is none.
    pub async fn committed_offset(&self, queue: &MessageQueue) -> Result<Option<i64>> {
        super::query_offset(&self.instance, &self.group, queue).await
    }

    /// Stores the group's offset of `queue` at the broker.
    pub async fn commit_offset(&self, queue: &MessageQueue, offset: i64) -> Result<()> {
        super::update_offset(&self.instance, &self.group, queue, offset).await
    }

    pub async fn min_offset(&self, queue: &MessageQueue) -> Result<i64> {
        super::min_offset(&self.instance, queue).await
    }

    /// The offset the next message of `queue` will get.
    pub async fn max_offset(&self, queue: &MessageQueue) -> Result<i64> {
        super::max_offset(&self.instance, queue).await
    }

    /// The offset of the first message stored at or after `timestamp_ms`.
    pub async fn offset_for_timestamp(&self, queue: &MessageQueue, timestamp_ms: i64) -> Result<i64> {
        super::search_offset(&self.instance, queue, timestamp_ms).await
    }

    pub async fn shutdown(&self) {
        self.instance.shutdown().await;
    }
}
