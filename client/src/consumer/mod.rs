//! Consumers: the requests both kinds share (pull, offsets, consumer lists) and the two kinds,
//! [`PullConsumer`] and [`PushConsumer`].

mod offset_file;
mod pull;
mod push;

use std::time::Duration;

use wire::body::{GetConsumerListByGroupResponseBody, JsonBody, MessageQueue, SubscriptionData};
use wire::code::{request, response};
use wire::header::CommandHeader;
use wire::header::{
    pull_sys_flag, GetConsumerListByGroupRequestHeader, GetMaxOffsetRequestHeader, GetMaxOffsetResponseHeader,
    GetMinOffsetRequestHeader, GetMinOffsetResponseHeader, PullMessageRequestHeader, PullMessageResponseHeader,
    QueryConsumerOffsetRequestHeader, QueryConsumerOffsetResponseHeader, SearchOffsetRequestHeader,
    SearchOffsetResponseHeader, UpdateConsumerOffsetRequestHeader,
};
use wire::RemotingCommand;

pub use pull::PullConsumer;
pub use push::{ConsumeFrom, ConsumeResult, MessageModel, PushConsumer, PushConsumerConfig};

use crate::error::{ClientError, Result};
use crate::instance::ClientInstance;
use crate::message::MessageExt;
use crate::remoting::broker_error;

/// How a pull ended (Java's `PullStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStatus {
    Found,
    /// Nothing at or past the offset yet.
    NoNewMsg,
    /// Messages were there, but none passed the subscription.
    NoMatchedMsg,
    /// The offset is outside the queue; continue from `next_begin_offset`.
    OffsetIllegal,
}

#[derive(Debug, Clone)]
pub struct PullResult {
    pub status: PullStatus,
    pub next_begin_offset: i64,
    pub min_offset: i64,
    pub max_offset: i64,
    /// The messages that passed the subscription's exact tag check.
    pub messages: Vec<MessageExt>,
}

/// What one PULL_MESSAGE asks for.
pub(crate) struct PullRequest<'a> {
    pub queue: &'a MessageQueue,
    pub subscription: &'a SubscriptionData,
    pub offset: i64,
    pub max_nums: i32,
    /// Asks the broker to hold the request up to this long while the queue has nothing new
    /// (long polling).
    pub suspend: Option<Duration>,
    /// A consumer offset to store on the way.
    pub commit_offset: Option<i64>,
}

/// One PULL_MESSAGE.
pub(crate) async fn pull(instance: &ClientInstance, group: &str, request: PullRequest<'_>) -> Result<PullResult> {
    let PullRequest { queue, subscription, offset, max_nums, suspend, commit_offset } = request;
    let addr = broker_addr(instance, queue).await?;
    let mut flags = pull_sys_flag::SUBSCRIPTION;
    if suspend.is_some() {
        flags |= pull_sys_flag::SUSPEND;
    }
    if commit_offset.is_some() {
        flags |= pull_sys_flag::COMMIT_OFFSET;
    }
    let header = PullMessageRequestHeader {
        consumer_group: group.into(),
        topic: queue.topic.as_str().into(),
        queue_id: queue.queue_id,
        queue_offset: offset,
        max_msg_nums: max_nums,
        sys_flag: flags,
        commit_offset: commit_offset.unwrap_or(0),
        suspend_timeout_millis: suspend.map_or(0, |d| d.as_millis() as i64),
        subscription: Some(subscription.sub_string.as_str().into()),
        sub_version: subscription.sub_version,
        expression_type: Some(subscription.expression_type.as_str().into()),
        max_msg_bytes: None,
        broker_name: Some(queue.broker_name.as_str().into()),
    };
    let timeout = instance.request_timeout() + suspend.unwrap_or_default();
    let cmd = RemotingCommand::request(request::PULL_MESSAGE).with_header(header);
    let answer = instance.remoting.invoke(&addr, cmd, timeout).await?;
    let status = match answer.code {
        response::SUCCESS => PullStatus::Found,
        response::PULL_NOT_FOUND => PullStatus::NoNewMsg,
        response::PULL_RETRY_IMMEDIATELY => PullStatus::NoMatchedMsg,
        response::PULL_OFFSET_MOVED => PullStatus::OffsetIllegal,
        _ => return Err(broker_error(&addr, request::PULL_MESSAGE, &answer)),
    };
    let header: PullMessageResponseHeader = read_header(&addr, "PULL_MESSAGE", &answer)?;
    let mut messages = Vec::new();
    if status == PullStatus::Found {
        let stored = wire::message::decode_stored_messages(&answer.body, false)
            .map_err(|source| ClientError::Message { addr: addr.clone(), source })?;
        for message in stored {
            let message = MessageExt::decompressed(message, &queue.broker_name)
                .map_err(|source| ClientError::Message { addr: addr.clone(), source })?;
            if subscription.matches_tags(message.tags()) {
                messages.push(message);
            }
        }
    }
    Ok(PullResult {
        status,
        next_begin_offset: header.next_begin_offset,
        min_offset: header.min_offset,
        max_offset: header.max_offset,
        messages,
    })
}

/// The group's committed offset of `queue`; `None` when the broker has none.
pub(crate) async fn query_offset(instance: &ClientInstance, group: &str, queue: &MessageQueue) -> Result<Option<i64>> {
    let addr = broker_addr(instance, queue).await?;
    let header = QueryConsumerOffsetRequestHeader {
        consumer_group: group.into(),
        topic: queue.topic.as_str().into(),
        queue_id: queue.queue_id,
        broker_name: Some(queue.broker_name.as_str().into()),
    };
    let cmd = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET).with_header(&header);
    let answer = instance.remoting.invoke(&addr, cmd, instance.request_timeout()).await?;
    match answer.code {
        response::SUCCESS => {
            let header: QueryConsumerOffsetResponseHeader = read_header(&addr, "QUERY_CONSUMER_OFFSET", &answer)?;
            Ok(Some(header.offset))
        }
        response::QUERY_NOT_FOUND => Ok(None),
        _ => Err(broker_error(&addr, request::QUERY_CONSUMER_OFFSET, &answer)),
    }
}

/// Stores the group's offset of `queue` at its broker.
pub(crate) async fn update_offset(
    instance: &ClientInstance,
    group: &str,
    queue: &MessageQueue,
    offset: i64,
) -> Result<()> {
    let addr = broker_addr(instance, queue).await?;
    let header = UpdateConsumerOffsetRequestHeader {
        consumer_group: group.into(),
        topic: queue.topic.as_str().into(),
        queue_id: queue.queue_id,
        commit_offset: offset,
        broker_name: Some(queue.broker_name.as_str().into()),
    };
    let cmd = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET).with_header(&header);
    instance.call(&addr, cmd).await.map(|_| ())
}

pub(crate) async fn max_offset(instance: &ClientInstance, queue: &MessageQueue) -> Result<i64> {
    let addr = broker_addr(instance, queue).await?;
    let header = GetMaxOffsetRequestHeader { topic: queue.topic.as_str().into(), queue_id: queue.queue_id };
    let answer = instance.call(&addr, RemotingCommand::request(request::GET_MAX_OFFSET).with_header(&header)).await?;
    Ok(read_header::<GetMaxOffsetResponseHeader>(&addr, "GET_MAX_OFFSET", &answer)?.offset)
}

pub(crate) async fn min_offset(instance: &ClientInstance, queue: &MessageQueue) -> Result<i64> {
    let addr = broker_addr(instance, queue).await?;
    let header = GetMinOffsetRequestHeader { topic: queue.topic.as_str().into(), queue_id: queue.queue_id };
    let answer = instance.call(&addr, RemotingCommand::request(request::GET_MIN_OFFSET).with_header(&header)).await?;
    Ok(read_header::<GetMinOffsetResponseHeader>(&addr, "GET_MIN_OFFSET", &answer)?.offset)
}

/// The offset of the first message stored at or after `timestamp_ms` (the broker's rule).
pub(crate) async fn search_offset(instance: &ClientInstance, queue: &MessageQueue, timestamp_ms: i64) -> Result<i64> {
    let addr = broker_addr(instance, queue).await?;
    let header = SearchOffsetRequestHeader {
        topic: queue.topic.as_str().into(),
        queue_id: queue.queue_id,
        timestamp: timestamp_ms,
    };
    let cmd = RemotingCommand::request(request::SEARCH_OFFSET_BY_TIMESTAMP).with_header(&header);
    let answer = instance.call(&addr, cmd).await?;
    Ok(read_header::<SearchOffsetResponseHeader>(&addr, "SEARCH_OFFSET_BY_TIMESTAMP", &answer)?.offset)
}

/// The client ids of the group's consumers, as the broker at `addr` knows them.
pub(crate) async fn consumer_ids(instance: &ClientInstance, addr: &str, group: &str) -> Result<Vec<String>> {
    let header = GetConsumerListByGroupRequestHeader { consumer_group: group.into() };
    let cmd = RemotingCommand::request(request::GET_CONSUMER_LIST_BY_GROUP).with_header(&header);
    let answer = instance.call(addr, cmd).await?;
    GetConsumerListByGroupResponseBody::decode(&answer.body)
        .map(|b| b.consumer_id_list)
        .map_err(|source| ClientError::Body { addr: addr.to_string(), request: "GET_CONSUMER_LIST_BY_GROUP", source })
}

/// The master address of the queue's broker, from the cached routes or a fresh one.
pub(crate) async fn broker_addr(instance: &ClientInstance, queue: &MessageQueue) -> Result<String> {
    if let Some(addr) = instance.routes.master_addr(&queue.broker_name) {
        return Ok(addr);
    }
    let route = instance.fetch_route(&queue.topic).await?;
    route.and_then(|r| r.master_addr(&queue.broker_name).map(str::to_string)).ok_or_else(|| ClientError::NoRoute {
        topic: queue.topic.clone(),
        reason: format!("broker {} has no master in the route", queue.broker_name),
    })
}

pub(crate) fn read_header<H: CommandHeader>(addr: &str, request: &'static str, answer: &RemotingCommand) -> Result<H> {
    answer.header().map_err(|source| ClientError::Header { addr: addr.to_string(), request, source })
}
