//! CONSUMER_SEND_MSG_BACK: a consumer failed a message; it comes back through the group's retry
//! topic after the next delay level, or goes to the group's dead-letter topic once it has been
//! delivered `maxReconsumeTimes` times (Java's `SendMessageProcessor.asyncConsumerSendMsgBack`).

use std::rc::Rc;

use tracing::info;
use wire::body::perm;
use wire::code::response as resp;
use wire::header::ConsumerSendMsgBackRequestHeader;
use wire::message::{self, properties, topic, StoredMessage};
use wire::RemotingCommand;

use crate::processor::{error, header, ok, save_topics, store_error, Answer, FAQ};
use crate::server::{now_ms, Broker};

/// Dead-letter queues per group, as Java.
const DLQ_QUEUES: i32 = 1;

pub(crate) async fn send_back(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: ConsumerSendMsgBackRequestHeader = header(cmd)?;
    let group = h.group.as_str();
    let group_config =
        b.meta.borrow().groups.subscription_group_table.get(group).map(|g| (g.retry_queue_nums, g.retry_max_times));
    let Some((retry_queues, retry_max_times)) = group_config else {
        return Err(error(
            cmd,
            resp::SUBSCRIPTION_GROUP_NOT_EXIST,
            format!("subscription group not exist, {group} {FAQ}"),
        ));
    };
    if !perm::is_writeable(b.config.borrow().broker_permission) {
        return Err(error(
            cmd,
            resp::NO_PERMISSION,
            format!("the broker[{}] sending message is forbidden", b.store_host.ip()),
        ));
    }
    if retry_queues <= 0 {
        return Ok(ok(cmd)); // the group asked for no retries
    }
    let record = b
        .look_message(h.offset)
        .await
        .map_err(|_| error(cmd, resp::SYSTEM_ERROR, format!("look message by offset failed, {}", h.offset)))?;
    let failed = message::decode_stored_messages(&record, false)
        .ok()
        .and_then(|mut v| v.pop())
        .ok_or_else(|| error(cmd, resp::SYSTEM_ERROR, format!("look message by offset failed, {}", h.offset)))?;

    let max_reconsume_times = h.max_reconsume_times.unwrap_or(retry_max_times);
    let mut props = failed.properties.as_str().to_owned();
    if properties::get(&props, properties::RETRY_TOPIC).is_none() {
        props = properties::with(&props, properties::RETRY_TOPIC, failed.topic.as_str());
    }
    props = properties::with(&props, properties::WAIT_STORE_MSG_OK, "false");
    if properties::get(&props, properties::ORIGIN_MESSAGE_ID).is_none() {
        let id = message::offset_msg_id(failed.store_host, failed.physical_offset);
        props = properties::with(&props, properties::ORIGIN_MESSAGE_ID, &id);
    }
    let dead = failed.reconsume_times >= max_reconsume_times || h.delay_level < 0;
    let (target, queues, delay_level) = if dead {
        (topic::dlq_topic(group), DLQ_QUEUES, 0)
    } else {
        let level = if h.delay_level == 0 { 3 + failed.reconsume_times } else { h.delay_level };
        (topic::retry_topic(group), retry_queues, level)
    };
    let target_perm = ensure_topic(b, &target, queues).await;
    if !perm::is_writeable(target_perm) {
        return Err(error(cmd, resp::NO_PERMISSION, format!("the topic[{target}] sending message is forbidden")));
    }
    props = properties::with(&props, properties::DELAY_TIME_LEVEL, &delay_level.to_string());
    let queue_id = (now_ms().rem_euclid(i64::from(queues))) as i32;
    let msg = StoredMessage {
        topic: target.as_str().into(),
        queue_id,
        properties: props.as_str().into(),
        store_host: b.store_host,
        reconsume_times: failed.reconsume_times + 1,
        queue_offset: 0,
        physical_offset: 0,
        store_timestamp: 0,
        ..failed
    };
    let stored = b.put_messages(vec![msg]).await.map_err(|e| store_error(cmd, e))?;
    stored.durable.map_err(|e| store_error(cmd, e))?;
    if dead {
        info!(group, topic = target, offset = h.offset, "message moved to the dead-letter queue");
    }
    Ok(ok(cmd))
}

/// For a send to `%RETRY%<group>`: the group's DLQ topic when the message has been consumed
/// `maxReconsumeTimes` times (how Java's orderly consumers give up on a message), else `None`
/// (Java's `handleRetryAndDLQ`).
pub(crate) async fn dead_letter_topic(
    b: &Rc<Broker>,
    cmd: &RemotingCommand,
    group: &str,
    h: &wire::header::SendMessageRequestHeader,
) -> Result<Option<String>, RemotingCommand> {
    let retry_max_times = b.meta.borrow().groups.subscription_group_table.get(group).map(|g| g.retry_max_times);
    let Some(retry_max_times) = retry_max_times else {
        return Err(error(
            cmd,
            resp::SUBSCRIPTION_GROUP_NOT_EXIST,
            format!("subscription group not exist, {group} {FAQ}"),
        ));
    };
    let max = h.max_reconsume_times.unwrap_or(retry_max_times);
    if h.reconsume_times.unwrap_or(0) < max {
        return Ok(None);
    }
    let dlq = topic::dlq_topic(group);
    ensure_topic(b, &dlq, DLQ_QUEUES).await;
    info!(group, topic = dlq, "message sent to the retry topic too often: moved to the dead-letter queue");
    Ok(Some(dlq))
}

/// The topic's permission, creating it read-write with `queues` queues when missing (Java's
/// `createTopicInSendMessageBackMethod`).
async fn ensure_topic(b: &Rc<Broker>, name: &str, queues: i32) -> i32 {
    let (perm, created) = b.meta.borrow_mut().ensure_topic(name, queues, now_ms());
    if created {
        save_topics(b).await;
    }
    perm
}
