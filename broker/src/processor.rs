//! Request handlers: one function per request code, answering with the codes and remarks of the
//! Java 4.9.x broker. Each runs on its own task (see `server::dispatch`); none holds a borrow
//! across an await.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use glommio::channels::local_channel;
use tracing::{info, warn};
use wire::body::{
    perm, GetConsumerListByGroupResponseBody, HeartbeatData, JsonBody, LockBatchRequestBody, LockBatchResponseBody,
    MessageModel, SubscriptionData, SubscriptionGroupConfig, TopicConfig, TopicFilterType, UnlockBatchRequestBody,
};
use wire::code::{request as req, response as resp};
use wire::header::pull_sys_flag;
use wire::header::CommandHeader;
use wire::header::*;
use wire::message::{self, properties, topic, StoredMessage};
use wire::{ByteStr, RemotingCommand, SerializeType};

use crate::clients::{matches_tag_code, ClientChannel};
use crate::metadata::MetaFile;
use crate::server::{now_ms, Broker, Conn};
use crate::view::TopicAccess;

/// A ready answer either way: `Err` carries an error response.
pub(crate) type Answer = Result<RemotingCommand, RemotingCommand>;

pub(crate) const FAQ: &str = "\nSee http://rocketmq.apache.org/docs/faq/ for further details.";

/// Runs one request; `None` when there is no answer here (a pull passed on to its queue's
/// shard). `hops` counts how often shards passed the request on.
pub async fn process(b: &Rc<Broker>, conn: &Rc<Conn>, cmd: RemotingCommand, hops: u8) -> Option<RemotingCommand> {
    // Every request's task holds this future, sized by its largest arm: the sends are most of
    // the requests, so the others are boxed rather than copied into every send's task.
    let answer = match cmd.code {
        req::SEND_MESSAGE | req::SEND_MESSAGE_V2 | req::SEND_BATCH_MESSAGE => send(b, conn, &cmd).await,
        _ => Box::pin(other(b, conn, &cmd, hops)).await?,
    };
    let answer = answer.unwrap_or_else(|e| e);
    if answer.code != resp::SUCCESS {
        tracing::debug!(shard = b.mesh.shard, request = cmd.code, code = answer.code, remark = answer.remark_str());
    }
    Some(answer)
}

/// The requests other than sends; `None` as in [`process`].
async fn other(b: &Rc<Broker>, conn: &Rc<Conn>, cmd: &RemotingCommand, hops: u8) -> Option<Answer> {
    let answer = match cmd.code {
        req::PULL_MESSAGE => pull(b, conn, cmd, hops).await?,
        req::QUERY_CONSUMER_OFFSET => query_consumer_offset(b, cmd).await,
        req::UPDATE_CONSUMER_OFFSET => update_consumer_offset(b, cmd),
        req::HEART_BEAT => heart_beat(b, conn, cmd).await,
        req::UNREGISTER_CLIENT => unregister_client(b, conn, cmd),
        req::GET_CONSUMER_LIST_BY_GROUP => consumer_list(b, cmd),
        req::GET_MAX_OFFSET => max_offset(b, cmd).await,
        req::GET_MIN_OFFSET => min_offset(b, cmd).await,
        req::GET_EARLIEST_MSG_STORETIME => earliest_time(b, cmd).await,
        req::SEARCH_OFFSET_BY_TIMESTAMP => search_offset(b, cmd).await,
        req::VIEW_MESSAGE_BY_ID => view_message(b, cmd).await,
        req::QUERY_MESSAGE => query_message(b, cmd).await,
        req::UPDATE_AND_CREATE_TOPIC => create_topic(b, cmd).await,
        req::DELETE_TOPIC_IN_BROKER => delete_topic(b, cmd).await,
        req::GET_ALL_TOPIC_CONFIG => Ok(ok(cmd).with_body(b.meta.borrow().topics.encode())),
        req::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => create_group(b, cmd).await,
        req::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => Ok(ok(cmd).with_body(b.meta.borrow().groups.encode())),
        req::DELETE_SUBSCRIPTIONGROUP => delete_group(b, cmd).await,
        req::GET_ALL_CONSUMER_OFFSET => Ok(ok(cmd).with_body(b.meta.borrow().offsets.encode_fastjson())),
        req::GET_BROKER_CONFIG => broker_config(b, cmd),
        req::UPDATE_BROKER_CONFIG => update_broker_config(b, cmd),
        req::GET_BROKER_RUNTIME_INFO => crate::admin::runtime_info(b, cmd).await,
        req::GET_TOPIC_STATS_INFO => crate::admin::topic_stats(b, cmd).await,
        req::GET_CONSUME_STATS => crate::admin::consume_stats(b, cmd).await,
        req::GET_CONSUMER_CONNECTION_LIST => crate::admin::consumer_connections(b, cmd),
        req::GET_PRODUCER_CONNECTION_LIST => crate::admin::producer_connections(b, cmd),
        req::GET_ALL_PRODUCER_INFO => crate::admin::all_producers(b, cmd),
        req::CONSUMER_SEND_MSG_BACK => crate::send_back::send_back(b, cmd).await,
        req::INVOKE_BROKER_TO_RESET_OFFSET => crate::admin::reset_offset(b, cmd).await,
        req::QUERY_TOPIC_CONSUME_BY_WHO => crate::admin::topic_consumed_by(b, cmd),
        req::GET_BROKER_CONSUME_STATS => crate::admin::broker_consume_stats(b, cmd).await,
        req::QUERY_CONSUME_QUEUE => crate::admin::query_consume_queue(b, cmd).await,
        req::QUERY_CONSUME_TIME_SPAN => crate::admin::consume_time_span(b, cmd).await,
        req::CLONE_GROUP_OFFSET => crate::admin::clone_group_offset(b, cmd),
        req::GET_ALL_DELAY_OFFSET => Ok(ok(cmd).with_body(b.meta.borrow().delay_offsets.encode_fastjson())),
        req::GET_SYSTEM_TOPIC_LIST_FROM_BROKER => crate::admin::system_topics(cmd),
        req::DELETE_EXPIRED_COMMITLOG => crate::admin::delete_expired_commitlog(b, cmd).await,
        req::GET_CONSUMER_RUNNING_INFO => crate::admin::call_consumer(b, cmd).await,
        req::INVOKE_BROKER_TO_GET_CONSUMER_STATUS => crate::admin::consumer_status(b, cmd).await,
        req::CONSUME_MESSAGE_DIRECTLY => crate::admin::consume_message_directly(b, cmd).await,
        req::END_TRANSACTION => crate::transaction::end_transaction(b, cmd).await?,
        req::LOCK_BATCH_MQ => lock_batch(b, cmd),
        req::UNLOCK_BATCH_MQ => unlock_batch(b, cmd),
        code => Err(error(cmd, resp::REQUEST_CODE_NOT_SUPPORTED, format!(" request type {code} not supported"))),
    };
    Some(answer)
}

fn lock_batch(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let request: LockBatchRequestBody = body(cmd)?;
    let locked =
        b.queue_locks.borrow_mut().try_lock(&request.consumer_group, &request.mq_set, &request.client_id, now_ms());
    Ok(ok(cmd).with_body(LockBatchResponseBody { lock_ok_mq_set: locked }.encode()))
}

fn unlock_batch(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let request: UnlockBatchRequestBody = body(cmd)?;
    b.queue_locks.borrow_mut().unlock(&request.consumer_group, &request.mq_set, &request.client_id);
    Ok(ok(cmd))
}

pub(crate) fn ok(cmd: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(cmd, resp::SUCCESS)
}

pub(crate) fn error(cmd: &RemotingCommand, code: i32, remark: impl Into<wire::ByteStr>) -> RemotingCommand {
    RemotingCommand::response_to(cmd, code).with_remark(remark)
}

pub(crate) fn header<H: CommandHeader>(cmd: &RemotingCommand) -> Result<H, RemotingCommand> {
    cmd.header::<H>().map_err(|e| error(cmd, resp::SYSTEM_ERROR, e.to_string()))
}

fn body<T: JsonBody>(cmd: &RemotingCommand) -> Result<T, RemotingCommand> {
    T::decode(&cmd.body).map_err(|e| error(cmd, resp::SYSTEM_ERROR, e.to_string()))
}

/// Topics a client may not send to (Java's `TopicValidator.NOT_ALLOWED_SEND_TOPIC_SET`).
fn send_forbidden(name: &str) -> bool {
    matches!(
        name,
        topic::SCHEDULE_TOPIC
            | topic::TRANS_HALF_TOPIC
            | topic::TRANS_OP_HALF_TOPIC
            | "TRANS_CHECK_MAX_TIME_TOPIC"
            | "SELF_TEST_TOPIC"
            | "OFFSET_MOVED_EVENT"
    )
}

fn check_topic_name(cmd: &RemotingCommand, name: &str) -> Result<(), RemotingCommand> {
    if name.is_empty() {
        return Err(error(cmd, resp::SYSTEM_ERROR, "The specified topic is blank."));
    }
    if name.len() > topic::TOPIC_MAX_LENGTH {
        return Err(error(cmd, resp::SYSTEM_ERROR, "The specified topic is longer than topic max length."));
    }
    if !topic::is_valid_name(name) {
        return Err(error(
            cmd,
            resp::SYSTEM_ERROR,
            format!("The specified topic[{name}] contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"),
        ));
    }
    Ok(())
}

/// The config of a topic that exists, as this shard knows it.
fn existing_topic(b: &Broker, name: &str) -> Option<TopicAccess> {
    if b.mesh.shard != 0 {
        return b.view.borrow().topic(name);
    }
    b.meta.borrow().topic(name).map(TopicAccess::from)
}

/// Creates a topic a send names but this shard does not know ([`existing_topic`] found
/// nothing): from `default_topic` (TBW102) when auto-creation is on and that topic may be
/// inherited, or as a one-queue retry topic.
async fn create_topic_for_send(
    b: &Rc<Broker>,
    cmd: &RemotingCommand,
    name: &str,
    default_topic: &str,
    queue_nums: i32,
) -> Result<TopicAccess, RemotingCommand> {
    if b.mesh.shard != 0 {
        // Only shard 0 creates topics; the router sends it the sends to unknown ones.
        return Err(error(cmd, resp::TOPIC_NOT_EXIST, format!("topic[{name}] not exist, apply first please!{FAQ}")));
    }
    let created = {
        let meta = b.meta.borrow();
        if name.starts_with(topic::RETRY_GROUP_TOPIC_PREFIX) {
            Some(TopicConfig::new(name, 1))
        } else if b.config.borrow().auto_create_topic_enable {
            meta.topic(default_topic).filter(|d| d.perm & perm::INHERIT != 0).map(|d| {
                let mut t = TopicConfig::new(name, queue_nums.clamp(1, d.write_queue_nums.max(1)));
                t.perm = d.perm & !perm::INHERIT;
                t
            })
        } else {
            None
        }
    };
    let Some(config) = created else {
        return Err(error(cmd, resp::TOPIC_NOT_EXIST, format!("topic[{name}] not exist, apply first please!{FAQ}")));
    };
    let access = TopicAccess::from(&config);
    b.meta.borrow_mut().put_topic(config, now_ms());
    info!(topic = name, queues = access.write_queue_nums, "topic created on first send");
    save_topics(b).await;
    Ok(access)
}

pub(crate) async fn save_topics(b: &Rc<Broker>) {
    if let Err(e) = b.persist(MetaFile::Topics).await {
        warn!(error = %e, "topic configs not persisted");
    }
    b.registrar.trigger();
}

async fn send(b: &Rc<Broker>, conn: &Rc<Conn>, cmd: &RemotingCommand) -> Answer {
    // Java reads SEND_BATCH_MESSAGE with the V2 header as well; older tools sent it with long
    // names, so those still pass.
    let v2 =
        cmd.code == req::SEND_MESSAGE_V2 || (cmd.code == req::SEND_BATCH_MESSAGE && cmd.ext_fields.get("a").is_some());
    let h = SendMessageRequestHeader::read_any(&cmd.ext_fields, v2)
        .map_err(|e| error(cmd, resp::SYSTEM_ERROR, e.to_string()))?;
    if !perm::is_writeable(b.config.borrow().broker_permission) {
        return Err(error(
            cmd,
            resp::NO_PERMISSION,
            format!("the broker[{}] sending message is forbidden", b.store_host.ip()),
        ));
    }
    let name = h.topic.as_str();
    check_topic_name(cmd, name)?;
    if send_forbidden(name) {
        return Err(error(cmd, resp::NO_PERMISSION, format!("Sending message to topic[{name}] is forbidden.")));
    }
    // A message sent to a retry topic that has been consumed too often goes to the DLQ.
    // The rare paths that wait (dead letters, creating a topic) are boxed: inline, they would
    // make every send's future larger.
    let dead_letter = match name.strip_prefix(topic::RETRY_GROUP_TOPIC_PREFIX) {
        Some(group) => Box::pin(crate::send_back::dead_letter_topic(b, cmd, group, &h)).await?,
        None => None,
    };
    let name = dead_letter.as_deref().unwrap_or(name);
    let config = match existing_topic(b, name) {
        Some(access) => access,
        None => {
            Box::pin(create_topic_for_send(b, cmd, name, h.default_topic.as_str(), h.default_topic_queue_nums)).await?
        }
    };
    if !perm::is_writeable(config.perm) && dead_letter.is_none() {
        return Err(error(cmd, resp::NO_PERMISSION, format!("the topic[{name}] sending message is forbidden")));
    }
    let queue_id = if dead_letter.is_some() {
        0
    } else if h.queue_id < 0 {
        (now_ms() % i64::from(config.write_queue_nums.max(1))) as i32
    } else {
        h.queue_id
    };
    if queue_id >= config.write_queue_nums {
        return Err(error(
            cmd,
            resp::SYSTEM_ERROR,
            format!(
                "request queueId[{queue_id}] is illegal, topic:[{name}] topicConfig.writeQueueNums:[{}] Producer: {}",
                config.write_queue_nums, conn.peer
            ),
        ));
    }
    let parts: Vec<(i32, Bytes, ByteStr)> = if cmd.code == req::SEND_BATCH_MESSAGE {
        let batch = message::decode_batch(&cmd.body).map_err(|e| error(cmd, resp::MESSAGE_ILLEGAL, e.to_string()))?;
        batch.into_iter().map(|m| (m.flag, m.body, m.properties)).collect()
    } else {
        vec![(h.flag, cmd.body.clone(), h.properties.clone().unwrap_or_default())]
    };
    if parts.is_empty() || parts.iter().any(|(_, body, _)| body.len() > b.config.borrow().max_message_size) {
        return Err(error(
            cmd,
            resp::MESSAGE_ILLEGAL,
            "the message is illegal, maybe msg body or properties length not matched. msg body length limit 128k, msg properties length limit 32k.",
        ));
    }
    // Views into the request's properties, not copies.
    let first = parts.first().map(|(_, _, p)| p.clone()).unwrap_or_default();
    let region = properties::get(&first, properties::MSG_REGION)
        .map_or(ByteStr::from_static("DefaultRegion"), |r| first.slice_of(r));
    let trace_on =
        properties::get(&first, properties::TRACE_SWITCH).map_or(ByteStr::from_static("true"), |t| first.slice_of(t));
    let topic_name = match &dead_letter {
        Some(dlq) => ByteStr::from(dlq.as_str()),
        None => h.topic.clone(),
    };
    let mut msgs = Vec::with_capacity(parts.len());
    for (flag, body, props) in parts {
        let mut props = properties::with(&props, properties::CLUSTER, &b.config.borrow().broker_cluster_name);
        if dead_letter.is_some() {
            props = properties::without(&props, properties::DELAY_TIME_LEVEL);
        }
        let prepared = crate::transaction::is_prepared(&props);
        if prepared && b.config.borrow().reject_transaction_message {
            return Err(error(
                cmd,
                resp::NO_PERMISSION,
                format!("the broker[{}] sending transaction message is forbidden", b.store_host.ip()),
            ));
        }
        let mut msg = StoredMessage {
            body_crc: message::body_crc(&body),
            queue_id,
            flag,
            sys_flag: h.sys_flag,
            born_timestamp: h.born_timestamp,
            born_host: conn.peer,
            store_host: b.store_host,
            reconsume_times: h.reconsume_times.unwrap_or(0),
            body,
            topic: topic_name.clone(),
            properties: props.into(),
            ..Default::default()
        };
        if prepared {
            crate::transaction::to_half(&mut msg);
        }
        msgs.push(msg);
    }
    let stored = b.put_messages(msgs).await.map_err(|e| store_error(cmd, e))?;
    // One id for a single send; a batch's ids joined by commas, as Java's broker answers.
    let mut ids = String::with_capacity((message::OFFSET_MSG_ID_MAX_LEN + 1) * stored.offsets.len());
    for (i, (_, physical)) in stored.offsets.iter().enumerate() {
        if i > 0 {
            ids.push(',');
        }
        message::push_offset_msg_id(&mut ids, b.store_host, *physical);
    }
    let first_offset = stored.offsets.first().map(|(queue_offset, _)| *queue_offset);
    let code = match stored.durable {
        Ok(_) => resp::SUCCESS,
        Err(store::StoreError::FlushTimeout(_)) => resp::FLUSH_DISK_TIMEOUT,
        Err(e) => return Err(store_error(cmd, e)),
    };
    let header = SendMessageResponseHeader {
        msg_id: ids.into(),
        queue_id,
        queue_offset: first_offset.unwrap_or(0),
        transaction_id: None,
        msg_region: Some(region),
        trace_on: Some(trace_on),
    };
    Ok(RemotingCommand::response_to(cmd, code).with_header(header))
}

pub(crate) fn store_error(cmd: &RemotingCommand, e: store::StoreError) -> RemotingCommand {
    use store::StoreError as E;
    match e {
        E::RecordTooLarge { .. } | E::BadRecord(_) => error(
            cmd,
            resp::MESSAGE_ILLEGAL,
            format!("the message is illegal, maybe msg body or properties length not matched: {e}"),
        ),
        E::ReadOnly(_) | E::Closed => {
            error(cmd, resp::SERVICE_NOT_AVAILABLE, format!("service not available now: {e}"))
        }
        other => error(cmd, resp::SYSTEM_ERROR, other.to_string()),
    }
}

async fn pull(b: &Rc<Broker>, conn: &Rc<Conn>, cmd: &RemotingCommand, hops: u8) -> Option<Answer> {
    let h: PullMessageRequestHeader = match header(cmd) {
        Ok(h) => h,
        Err(e) => return Some(Err(e)),
    };
    let (group, name, queue_id) = (h.consumer_group.as_str(), h.topic.as_str(), h.queue_id);
    let here = b.mesh.shard;
    if here != 0 && !b.view.borrow().groups.contains_key(group) && hops == 0 {
        b.forward(0, conn, cmd.clone(), hops + 1); // shard 0 creates the group
        return None;
    }
    if here == 0 && b.mesh.shards > 1 {
        // The group and topic are checked (and the group created) here; the pull waits on its
        // queue's shard.
        if let Err(e) = pull_group(b, cmd, group) {
            return Some(Err(e));
        }
        let owner = b.owner(name, queue_id);
        if owner != 0 {
            b.forward(owner, conn, cmd.clone(), hops.saturating_add(1));
            return None;
        }
    }
    Some(pull_here(b, cmd, h).await)
}

/// The group's `(consumeEnable, consumeBroadcastEnable)`: shard 0 creates a missing group when
/// auto-creation is on; the other shards read the view.
fn pull_group(b: &Rc<Broker>, cmd: &RemotingCommand, group: &str) -> Result<(bool, bool), RemotingCommand> {
    let flags = if b.mesh.shard == 0 {
        let mut meta = b.meta.borrow_mut();
        let existed = meta.groups.subscription_group_table.contains_key(group);
        let flags = meta
            .group_or_create(group, b.config.borrow().auto_create_subscription_group, now_ms())
            .map(|g| (g.consume_enable, g.consume_broadcast_enable));
        drop(meta);
        if !existed && flags.is_some() {
            b.publish();
        }
        flags
    } else {
        b.view.borrow().groups.get(group).map(|g| (g.consume_enable, g.consume_broadcast_enable))
    };
    flags.ok_or_else(|| {
        error(cmd, resp::SUBSCRIPTION_GROUP_NOT_EXIST, format!("subscription group [{group}] does not exist, {FAQ}"))
    })
}

async fn pull_here(b: &Rc<Broker>, cmd: &RemotingCommand, h: PullMessageRequestHeader) -> Answer {
    let (group, name, queue_id) = (h.consumer_group.as_str(), h.topic.as_str(), h.queue_id);
    if !perm::is_readable(b.config.borrow().broker_permission) {
        return Err(error(
            cmd,
            resp::NO_PERMISSION,
            format!("the broker[{}] pulling message is forbidden", b.store_host.ip()),
        ));
    }
    let (consume_enable, broadcast_enable) = pull_group(b, cmd, group)?;
    if !consume_enable {
        return Err(error(cmd, resp::NO_PERMISSION, format!("subscription group no permission, {group}")));
    }
    let topic_config = if b.mesh.shard == 0 {
        b.meta.borrow().topic(name).map(TopicAccess::from)
    } else {
        b.view.borrow().topic(name)
    };
    let Some(topic_config) = topic_config else {
        return Err(error(cmd, resp::TOPIC_NOT_EXIST, format!("topic[{name}] not exist, apply first please!{FAQ}")));
    };
    if !perm::is_readable(topic_config.perm) {
        return Err(error(cmd, resp::NO_PERMISSION, format!("the topic[{name}] pulling message is forbidden")));
    }
    if queue_id < 0 || queue_id >= topic_config.read_queue_nums {
        return Err(error(
            cmd,
            resp::SYSTEM_ERROR,
            format!(
                "queueId[{queue_id}] is illegal, topic:[{name}] topicConfig.readQueueNums:[{}] consumer:[{}]",
                topic_config.read_queue_nums,
                cmd.remark_str()
            ),
        ));
    }
    if h.expression_type.as_ref().is_some_and(|t| t.as_str() != wire::body::EXPRESSION_TYPE_TAG) {
        return Err(error(cmd, resp::SYSTEM_ERROR, "The broker does not support consumer to filter message by SQL92"));
    }
    let subscription = subscription_for_pull(b, cmd, &h, broadcast_enable)?;
    if h.sys_flag & pull_sys_flag::COMMIT_OFFSET != 0 {
        if b.mesh.shard == 0 {
            b.meta.borrow_mut().commit_offset(group, name, queue_id, h.commit_offset);
            b.offsets_dirty.set(true);
        } else {
            let (group, topic, offset) = (group.to_owned(), name.to_owned(), h.commit_offset);
            b.mesh.post(0, crate::mesh::ShardMsg::CommitOffset { group, topic, queue_id, offset });
        }
    }
    let suspend = h.sys_flag & pull_sys_flag::SUSPEND != 0;
    let wait = if b.config.borrow().long_polling_enable {
        Duration::from_millis(h.suspend_timeout_millis.max(0) as u64)
    } else {
        Duration::from_millis(b.config.borrow().short_polling_time_mills)
    };
    let deadline = Instant::now() + wait;
    let mut woken = false;
    // Only a pull that asked to be held may wait for company (see `pull_batching`).
    let batch_window = Duration::from_micros(b.config.borrow().pull_batch_window_micros);
    let batching = (suspend && !batch_window.is_zero()).then(|| crate::pull_batching::queue_key(group, name, queue_id));
    loop {
        if let Some(queue_key) = batching {
            wait_for_batch(b, &h, queue_key, batch_window).await;
        }
        let answer = pull_once(b, cmd, &h, subscription.as_ref()).await?;
        if let Some(queue_key) = batching.filter(|_| answer.code == resp::SUCCESS) {
            b.pull_batching.borrow_mut().answered(queue_key, batch_window, Instant::now());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if answer.code != resp::PULL_NOT_FOUND || !suspend || left.is_zero() {
            // Java answers a woken pull through a fresh response in its default (JSON) form.
            return Ok(if woken { answer.with_serialize_type(SerializeType::Json) } else { answer });
        }
        let (tx, rx) = local_channel::new_bounded(1);
        b.holds.borrow_mut().entry((name.to_owned(), queue_id)).or_default().push(tx);
        b.suspended.set(b.suspended.get() + 1);
        woken = futures_lite::future::or(
            async {
                let _ = rx.recv().await;
                true
            },
            async {
                glommio::timer::sleep(left).await;
                false
            },
        )
        .await
            || woken;
        b.suspended.set(b.suspended.get() - 1);
        if !woken && Instant::now() >= deadline {
            return pull_once(b, cmd, &h, subscription.as_ref()).await;
        }
    }
}

/// Holds a pull of a queue answered less than `window` ago until the window has passed, unless
/// a full batch is already waiting.
async fn wait_for_batch(b: &Broker, h: &PullMessageRequestHeader, queue_key: u64, window: Duration) {
    let backlog = b.store.max_offset_in_queue(h.topic.as_str(), h.queue_id) - h.queue_offset;
    if backlog >= i64::from(h.max_msg_nums.max(1)) {
        return;
    }
    let now = Instant::now();
    let answer_at = b.pull_batching.borrow().answer_at(queue_key, window, now);
    if let Some(at) = answer_at {
        // Waiting costs no work, as a suspended pull's does not: not counted against
        // `maxPendingRequests`.
        b.suspended.set(b.suspended.get() + 1);
        glommio::timer::sleep(at - now).await;
        b.suspended.set(b.suspended.get() - 1);
    }
}

fn subscription_for_pull(
    b: &Rc<Broker>,
    cmd: &RemotingCommand,
    h: &PullMessageRequestHeader,
    broadcast_enable: bool,
) -> Result<Option<SubscriptionData>, RemotingCommand> {
    if h.sys_flag & pull_sys_flag::SUBSCRIPTION != 0 {
        let expression = h.subscription.as_ref().map(|s| s.as_str()).unwrap_or(wire::body::SUB_ALL);
        return Ok(Some(SubscriptionData::from_tag_expression(h.topic.as_str(), expression, h.sub_version)));
    }
    let group = h.consumer_group.as_str();
    let (message_model, sub) = if b.mesh.shard == 0 {
        let clients = b.clients.borrow();
        let info = clients.consumers.get(group);
        (info.map(|i| i.message_model), clients.subscription(group, h.topic.as_str()).cloned())
    } else {
        let view = b.view.borrow();
        let info = view.consumers.get(group);
        (info.map(|i| i.message_model), info.and_then(|i| i.subscriptions.get(h.topic.as_str())).cloned())
    };
    let Some(message_model) = message_model else {
        return Err(error(cmd, resp::SUBSCRIPTION_NOT_EXIST, format!("the consumer's group info not exist{FAQ}")));
    };
    if !broadcast_enable && message_model == MessageModel::BROADCASTING {
        return Err(error(
            cmd,
            resp::NO_PERMISSION,
            format!("the consumer group[{group}] can not consume by broadcast way"),
        ));
    }
    let Some(sub) = sub else {
        return Err(error(cmd, resp::SUBSCRIPTION_NOT_EXIST, format!("the consumer's subscription not exist{FAQ}")));
    };
    if sub.sub_version < h.sub_version {
        return Err(error(cmd, resp::SUBSCRIPTION_NOT_LATEST, "the consumer's subscription not latest"));
    }
    Ok(Some(sub))
}

async fn pull_once(
    b: &Rc<Broker>,
    cmd: &RemotingCommand,
    h: &PullMessageRequestHeader,
    sub: Option<&SubscriptionData>,
) -> Answer {
    use store::GetMessageStatus as S;
    let max = h.max_msg_nums.clamp(1, 1024) as usize;
    let accept = |code: i64| matches_tag_code(sub, code);
    let mut result = b
        .store
        .get_message(h.topic.as_str(), h.queue_id, h.queue_offset, max, &accept)
        .await
        .map_err(|e| error(cmd, resp::SYSTEM_ERROR, e.to_string()))?;
    if let Some(sub) = sub.filter(|s| !s.is_all() && !s.class_filter_mode) {
        keep_exact_tags(&mut result, sub);
    }
    let code = match result.status {
        S::Found => resp::SUCCESS,
        S::MessageWasRemoving | S::NoMatchedMessage => resp::PULL_RETRY_IMMEDIATELY,
        S::NoMatchedLogicQueue | S::NoMessageInQueue => {
            if h.queue_offset != 0 {
                resp::PULL_OFFSET_MOVED
            } else {
                resp::PULL_NOT_FOUND
            }
        }
        S::OffsetFoundNull | S::OffsetOverflowOne => resp::PULL_NOT_FOUND,
        S::OffsetOverflowBadly | S::OffsetTooSmall => resp::PULL_OFFSET_MOVED,
    };
    let header = PullMessageResponseHeader {
        suggest_which_broker_id: 0,
        next_begin_offset: result.next_begin_offset,
        min_offset: result.min_offset,
        max_offset: result.max_offset,
    };
    let mut answer = RemotingCommand::response_to(cmd, code).with_header(header).with_remark(result.status.name());
    if !result.messages.is_empty() {
        b.gets.set(b.gets.get() + result.messages.len() as u64);
        let mut body = BytesMut::with_capacity(result.buffer_total_size);
        for record in &result.messages {
            body.extend_from_slice(record);
        }
        answer = answer.with_body(body.freeze());
    }
    Ok(answer)
}

/// The ConsumeQueue matched tag hash codes; two tags can share one. Java leaves the exact check
/// to the client; here the broker drops what a client would drop, so no client (however it
/// filters) gets a message of another tag.
fn keep_exact_tags(result: &mut store::GetMessageResult, sub: &SubscriptionData) {
    let found = result.messages.len();
    let exact = |record: &bytes::Bytes| {
        StoredMessage::decode(record, false).is_ok_and(|(m, _)| m.tags().is_some_and(|t| sub.tags_set.contains(t)))
    };
    let mut kept = 0;
    for i in 0..found {
        if exact(&result.messages[i]) {
            result.messages.swap(kept, i);
            result.queue_offsets.swap(kept, i);
            kept += 1;
        }
    }
    if kept < found {
        result.messages.truncate(kept);
        result.queue_offsets.truncate(kept);
        result.buffer_total_size = result.messages.iter().map(bytes::Bytes::len).sum();
        if kept == 0 {
            result.status = store::GetMessageStatus::NoMatchedMessage;
        }
    }
}

async fn query_consumer_offset(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: QueryConsumerOffsetRequestHeader = header(cmd)?;
    let (group, name, queue_id) = (h.consumer_group.as_str(), h.topic.as_str(), h.queue_id);
    let stored = b.meta.borrow().query_offset(group, name, queue_id);
    let offset = if stored >= 0 {
        stored
    } else {
        // No stored offset: start at 0 only while the queue's first message is still in memory
        // (a new queue), as Java does; clients starting "from last offset" depend on it.
        let at_zero =
            b.starts_at_zero(name, queue_id).await.map_err(|e| error(cmd, resp::SYSTEM_ERROR, e.to_string()))?;
        if at_zero {
            0
        } else {
            return Err(error(
                cmd,
                resp::QUERY_NOT_FOUND,
                "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
            ));
        }
    };
    Ok(ok(cmd).with_header(QueryConsumerOffsetResponseHeader { offset }))
}

fn update_consumer_offset(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: UpdateConsumerOffsetRequestHeader = header(cmd)?;
    b.meta.borrow_mut().commit_offset(h.consumer_group.as_str(), h.topic.as_str(), h.queue_id, h.commit_offset);
    b.offsets_dirty.set(true);
    Ok(ok(cmd))
}

async fn heart_beat(b: &Rc<Broker>, conn: &Rc<Conn>, cmd: &RemotingCommand) -> Answer {
    let data: HeartbeatData = body(cmd)?;
    let channel = ClientChannel {
        client_id: data.client_id.clone(),
        addr: conn.peer,
        language: cmd.language.name().to_owned(),
        version: cmd.version,
        last_update: Instant::now(),
    };
    let mut topics_changed = false;
    let mut groups_changed = false;
    for consumer in &data.consumer_data_set {
        let group = consumer.group_name.as_str();
        let (config, created) = {
            let mut meta = b.meta.borrow_mut();
            let existed = meta.groups.subscription_group_table.contains_key(group);
            let config =
                meta.group_or_create(group, b.config.borrow().auto_create_subscription_group, now_ms()).cloned();
            (config, !existed)
        };
        groups_changed |= created && config.is_some();
        let notify = config.as_ref().is_none_or(|c| c.notify_consumer_ids_changed_enable);
        if let Some(config) = &config {
            let retry = topic::retry_topic(group);
            let (_, created) = b.meta.borrow_mut().ensure_topic(&retry, config.retry_queue_nums.max(1), now_ms());
            topics_changed |= created;
        }
        let changed = b.clients.borrow_mut().register_consumer(consumer, conn.id, channel.clone());
        if changed {
            info!(group, client = %data.client_id, peer = %conn.peer, "consumer joined");
            if notify {
                b.notify_consumer_ids_changed(group);
            }
        }
    }
    for producer in &data.producer_data_set {
        b.clients.borrow_mut().register_producer(&producer.group_name, conn.id, channel.clone());
    }
    if !data.consumer_data_set.is_empty() {
        b.publish(); // the pulls on other shards read these subscriptions
    }
    if topics_changed {
        save_topics(b).await;
    }
    if groups_changed {
        if let Err(e) = b.persist(MetaFile::Groups).await {
            warn!(error = %e, "subscription groups not persisted");
        }
    }
    Ok(ok(cmd))
}

fn unregister_client(b: &Rc<Broker>, conn: &Rc<Conn>, cmd: &RemotingCommand) -> Answer {
    let h: UnregisterClientRequestHeader = header(cmd)?;
    let consumer_group = h.consumer_group.as_ref().map(|g| g.as_str());
    let changed =
        b.clients.borrow_mut().unregister(conn.id, h.producer_group.as_ref().map(|g| g.as_str()), consumer_group);
    if let (true, Some(group)) = (changed, consumer_group) {
        b.publish();
        info!(group, client = %h.client_id.as_str(), "consumer left");
        b.notify_consumer_ids_changed(group);
    }
    Ok(ok(cmd))
}

fn consumer_list(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: GetConsumerListByGroupRequestHeader = header(cmd)?;
    let ids = b.clients.borrow().consumer_ids(h.consumer_group.as_str());
    if ids.is_empty() {
        return Err(error(
            cmd,
            resp::SYSTEM_ERROR,
            format!("no consumer for this group, {}", h.consumer_group.as_str()),
        ));
    }
    Ok(ok(cmd).with_body(GetConsumerListByGroupResponseBody { consumer_id_list: ids }.encode()))
}

async fn max_offset(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: GetMaxOffsetRequestHeader = header(cmd)?;
    let offset = b.max_offset(h.topic.as_str(), h.queue_id).await;
    Ok(ok(cmd).with_header(GetMaxOffsetResponseHeader { offset }))
}

async fn min_offset(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: GetMinOffsetRequestHeader = header(cmd)?;
    let offset = b.min_offset(h.topic.as_str(), h.queue_id).await;
    Ok(ok(cmd).with_header(GetMinOffsetResponseHeader { offset }))
}

async fn earliest_time(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: GetEarliestMsgStoretimeRequestHeader = header(cmd)?;
    let time = b
        .earliest_time(h.topic.as_str(), h.queue_id)
        .await
        .map_err(|e| error(cmd, resp::SYSTEM_ERROR, e.to_string()))?;
    Ok(ok(cmd).with_header(GetEarliestMsgStoretimeResponseHeader { timestamp: time.unwrap_or(-1) }))
}

async fn search_offset(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: SearchOffsetRequestHeader = header(cmd)?;
    let offset = b
        .offset_by_time(h.topic.as_str(), h.queue_id, h.timestamp)
        .await
        .map_err(|e| error(cmd, resp::SYSTEM_ERROR, e.to_string()))?;
    Ok(ok(cmd).with_header(SearchOffsetResponseHeader { offset }))
}

async fn view_message(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: ViewMessageRequestHeader = header(cmd)?;
    match b.look_message(h.offset).await {
        Ok(record) => Ok(ok(cmd).with_body(record)),
        Err(_) => Err(error(cmd, resp::SYSTEM_ERROR, format!("can not find message by the offset, {}", h.offset))),
    }
}

/// QUERY_MESSAGE: by key, or by unique key when the client says so (then at most
/// `defaultQueryMaxNum`, as Java).
async fn query_message(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: QueryMessageRequestHeader = header(cmd)?;
    let max_num = match h.unique_key_flag {
        Some(true) => b.config.borrow().default_query_max_num,
        _ => h.max_num,
    };
    let result = b
        .query_messages(h.topic.as_str(), h.key.as_str(), max_num.max(0) as usize, h.begin_timestamp, h.end_timestamp)
        .await
        .map_err(|e| error(cmd, resp::SYSTEM_ERROR, e.to_string()))?;
    let head = QueryMessageResponseHeader {
        index_last_update_timestamp: result.index_last_update_timestamp,
        index_last_update_phyoffset: result.index_last_update_phyoffset,
    };
    if result.messages.is_empty() {
        let response = error(cmd, resp::QUERY_NOT_FOUND, "can not find message, maybe time range not correct");
        return Err(response.with_header(&head));
    }
    let mut body = BytesMut::with_capacity(result.messages.iter().map(Bytes::len).sum());
    result.messages.iter().for_each(|m| body.extend_from_slice(m));
    Ok(ok(cmd).with_header(&head).with_body(body.freeze()))
}

async fn create_topic(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: CreateTopicRequestHeader = header(cmd)?;
    let name = h.topic.as_str();
    check_topic_name(cmd, name)?;
    if name == b.config.borrow().broker_cluster_name {
        return Err(error(
            cmd,
            resp::SYSTEM_ERROR,
            format!("the topic[{name}] is conflict with system reserved words."),
        ));
    }
    let config = TopicConfig {
        order: h.order,
        perm: h.perm,
        read_queue_nums: h.read_queue_nums,
        topic_filter_type: if h.topic_filter_type.as_str() == "MULTI_TAG" {
            TopicFilterType::MULTI_TAG
        } else {
            TopicFilterType::SINGLE_TAG
        },
        topic_name: name.to_owned(),
        topic_sys_flag: h.topic_sys_flag.unwrap_or(0),
        write_queue_nums: h.write_queue_nums,
    };
    if config.read_queue_nums <= 0 || config.write_queue_nums <= 0 {
        return Err(error(cmd, resp::SYSTEM_ERROR, "readQueueNums and writeQueueNums must be above 0"));
    }
    b.meta.borrow_mut().put_topic(config, now_ms());
    info!(topic = name, queues = h.write_queue_nums, "topic created or updated");
    save_topics(b).await;
    Ok(ok(cmd))
}

async fn delete_topic(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: DeleteTopicRequestHeader = header(cmd)?;
    if b.meta.borrow_mut().remove_topic(h.topic.as_str(), now_ms()) {
        info!(topic = h.topic.as_str(), "topic deleted");
        save_topics(b).await;
    }
    Ok(ok(cmd))
}

async fn create_group(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let config: SubscriptionGroupConfig = body(cmd)?;
    if config.group_name.is_empty() {
        return Err(error(cmd, resp::SYSTEM_ERROR, "groupName must not be empty"));
    }
    {
        let mut meta = b.meta.borrow_mut();
        meta.groups.subscription_group_table.insert(config.group_name.clone(), config);
        meta.groups.data_version = meta.groups.data_version.next(now_ms());
    }
    b.persist(MetaFile::Groups).await.map_err(|e| error(cmd, resp::SYSTEM_ERROR, e.to_string()))?;
    Ok(ok(cmd))
}

async fn delete_group(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: DeleteSubscriptionGroupRequestHeader = header(cmd)?;
    {
        let mut meta = b.meta.borrow_mut();
        if meta.groups.subscription_group_table.remove(h.group_name.as_str()).is_some() {
            meta.groups.data_version = meta.groups.data_version.next(now_ms());
        }
    }
    b.persist(MetaFile::Groups).await.map_err(|e| error(cmd, resp::SYSTEM_ERROR, e.to_string()))?;
    Ok(ok(cmd))
}

/// UPDATE_BROKER_CONFIG: `key=value` lines. Unlike Java, an unknown key or a bad value
/// refuses the whole change, and the remark says which settings wait for a restart.
fn update_broker_config(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let text = std::str::from_utf8(&cmd.body).map_err(|_| error(cmd, resp::SYSTEM_ERROR, "string2Properties error"))?;
    let (config, now, later) =
        b.config.borrow().updated(text).map_err(|e| error(cmd, resp::SYSTEM_ERROR, format!("update refused: {e}")))?;
    let permission_changed = config.broker_permission != b.config.borrow().broker_permission;
    *b.config.borrow_mut() = config;
    b.publish();
    info!(applied = ?now, after_restart = ?later, "broker configuration updated");
    if permission_changed {
        b.meta.borrow_mut().touch_topics(now_ms());
        b.registrar.trigger();
    }
    let remark = match later.is_empty() {
        true => format!("applied: {}", now.join(", ")),
        false => format!("applied: {}; effective after a restart: {}", now.join(", "), later.join(", ")),
    };
    Ok(ok(cmd).with_remark(remark))
}

fn broker_config(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let version = String::from_utf8(b.meta.borrow().data_version().encode()).unwrap_or_default();
    Ok(ok(cmd)
        .with_header(GetBrokerConfigResponseHeader { version: version.as_str().into() })
        .with_body(b.config.borrow().to_properties()))
}
