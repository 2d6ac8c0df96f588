//! Admin requests that report state: runtime info, topic stats, a group's consume progress,
//! and the connections of producer and consumer groups (what `mqadmin` and the Apogee CLI show);
//! and those that reach through to a group's consumers: offset resets, running info.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use std::time::Duration;

use wire::body::{
    Connection, ConsumeStats, ConsumeStatsList, ConsumerConnection, GetConsumerStatusBody, GroupList, JsonBody,
    KvTable, MessageQueue, OffsetWrapper, ProducerConnection, QueueOffsets, ResetOffsetBody, TopicList, TopicOffset,
    TopicStatsTable,
};
use wire::code::{request as req, response as resp};
use wire::header::*;
use wire::RemotingCommand;

use crate::clients::ClientChannel;
use crate::processor::{error, header, ok, Answer};
use crate::server::{now_ms, Broker};

fn queue(b: &Broker, topic: &str, queue_id: i32) -> MessageQueue {
    MessageQueue { broker_name: b.config.borrow().broker_name.clone(), queue_id, topic: topic.to_owned() }
}

/// Store time of the message before queue offset `offset` (the newest one below it), or 0.
async fn time_before(b: &Rc<Broker>, topic: &str, queue_id: i32, offset: i64) -> i64 {
    if offset <= 0 {
        return 0;
    }
    b.store_timestamp(topic, queue_id, offset - 1).await.ok().flatten().unwrap_or(0)
}

pub async fn topic_stats(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: GetTopicStatsInfoRequestHeader = header(cmd)?;
    let name = h.topic.as_str();
    let Some(config) = b.meta.borrow().topic(name).cloned() else {
        return Err(error(cmd, resp::TOPIC_NOT_EXIST, format!("topic[{name}] not exist")));
    };
    let mut table = TopicStatsTable::default();
    for queue_id in 0..config.write_queue_nums {
        let (min_offset, max_offset) = b.queue_offsets(name, queue_id).await;
        let offset = TopicOffset {
            min_offset,
            max_offset,
            last_update_timestamp: time_before(b, name, queue_id, max_offset).await,
        };
        table.offset_table.insert(queue(b, name, queue_id), offset);
    }
    Ok(ok(cmd).with_body(table.encode_fastjson()))
}

pub async fn consume_stats(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: GetConsumeStatsRequestHeader = header(cmd)?;
    let group = h.consumer_group.as_str();
    let topics: Vec<String> = match h.topic.as_ref().map(|t| t.as_str()).filter(|t| !t.is_empty()) {
        Some(topic) => vec![topic.to_owned()],
        None => b.meta.borrow().topics_consumed_by(group),
    };
    let mut stats = ConsumeStats::default();
    for name in topics {
        let Some(config) = b.meta.borrow().topic(&name).cloned() else { continue };
        add_queue_progress(b, &mut stats, group, &name, config.write_queue_nums).await;
    }
    Ok(ok(cmd).with_body(stats.encode_fastjson()))
}

/// `group`'s progress on each of the first `queues` queues of `topic`.
async fn add_queue_progress(b: &Rc<Broker>, stats: &mut ConsumeStats, group: &str, topic: &str, queues: i32) {
    for queue_id in 0..queues {
        let broker_offset = b.max_offset(topic, queue_id).await;
        let consumer_offset = b.meta.borrow().query_offset(group, topic, queue_id).max(0);
        let wrapper = OffsetWrapper {
            broker_offset,
            consumer_offset,
            last_timestamp: time_before(b, topic, queue_id, consumer_offset).await,
        };
        stats.offset_table.insert(queue(b, topic, queue_id), wrapper);
    }
}

/// GET_BROKER_CONSUME_STATS (`mqadmin brokerConsumeStats`): every subscription group's progress
/// on each topic it has offsets for (ordered topics only with `isOrder`), and the total lag.
/// As Java, a topic an online group does not subscribe to is left out.
pub async fn broker_consume_stats(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: GetConsumeStatsInBrokerHeader = header(cmd)?;
    let groups: Vec<String> = b.meta.borrow().groups.subscription_group_table.keys().cloned().collect();
    let mut list = Vec::with_capacity(groups.len());
    let mut total_diff = 0;
    for group in groups {
        let topics = b.meta.borrow().topics_consumed_by(&group);
        let mut per_topic = Vec::new();
        for name in topics {
            let Some(config) = b.meta.borrow().topic(&name).cloned() else { continue };
            if h.is_order && !config.order {
                continue;
            }
            if b.clients.borrow().subscribes_elsewhere(&group, &name) {
                continue;
            }
            let mut stats = ConsumeStats::default();
            add_queue_progress(b, &mut stats, &group, &name, config.write_queue_nums).await;
            total_diff += stats.lag();
            per_topic.push(stats);
        }
        list.push(BTreeMap::from([(group, per_topic)]));
    }
    let body = ConsumeStatsList { broker_addr: b.store_host.to_string(), consume_stats_list: list, total_diff };
    Ok(ok(cmd).with_body(body.encode_fastjson()))
}

fn connections<'a>(channels: impl Iterator<Item = &'a ClientChannel>) -> BTreeSet<Connection> {
    channels
        .map(|c| Connection {
            client_addr: c.addr.to_string(),
            client_id: c.client_id.clone(),
            language: c.language.clone(),
            version: c.version,
        })
        .collect()
}

pub fn consumer_connections(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: GetConsumerConnectionListRequestHeader = header(cmd)?;
    let clients = b.clients.borrow();
    let Some(info) = clients.consumers.get(h.consumer_group.as_str()) else {
        return Err(error(
            cmd,
            resp::CONSUMER_NOT_ONLINE,
            format!("the consumer group[{}] not online", h.consumer_group.as_str()),
        ));
    };
    let body = ConsumerConnection {
        connection_set: connections(info.channels.values()),
        consume_from_where: Some(info.consume_from_where),
        consume_type: Some(info.consume_type),
        message_model: Some(info.message_model),
        subscription_table: info.subscriptions.iter().map(|(t, s)| (t.clone(), s.clone())).collect(),
    };
    Ok(ok(cmd).with_body(body.encode()))
}

/// QUERY_TOPIC_CONSUME_BY_WHO: the groups online with a subscription to the topic, and those
/// with offsets committed on it (`mqadmin topicStatus`' consumers, the dashboard's topic page).
pub fn topic_consumed_by(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: QueryTopicConsumeByWhoRequestHeader = header(cmd)?;
    let topic = h.topic.as_str();
    let mut groups: BTreeSet<String> = b.clients.borrow().groups_subscribed_to(topic).cloned().collect();
    groups.extend(b.meta.borrow().groups_consuming(topic).map(str::to_owned));
    Ok(ok(cmd).with_body(GroupList { group_list: groups }.encode()))
}

/// CLONE_GROUP_OFFSET (`mqadmin cloneGroupOffset`): `destGroup` gets `srcGroup`'s committed
/// offsets on the topic (on every topic `srcGroup` has offsets for, when none is named). Unless
/// `offline`, a topic the source group is online without subscribing to is left out, as Java.
/// Java names the header's topic in the copy even when it loops over the group's topics, so a
/// request without a topic copies nothing there; here it copies each topic.
pub fn clone_group_offset(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: CloneGroupOffsetRequestHeader = header(cmd)?;
    let (src, dest) = (h.src_group.as_str(), h.dest_group.as_str());
    let mut meta = b.meta.borrow_mut();
    let topics = match h.topic.as_ref().map(|t| t.as_str().trim()).filter(|t| !t.is_empty()) {
        Some(topic) => vec![topic.to_owned()],
        None => meta.topics_consumed_by(src),
    };
    let clients = b.clients.borrow();
    let mut cloned = 0;
    for topic in topics {
        if meta.topic(&topic).is_none() {
            tracing::warn!(%topic, "cloneGroupOffset: no such topic");
            continue;
        }
        if !h.offline.unwrap_or(false) && clients.subscribes_elsewhere(src, &topic) {
            tracing::warn!(group = src, %topic, "cloneGroupOffset: the group is online without this topic");
            continue;
        }
        cloned += usize::from(meta.clone_offsets(src, dest, &topic));
    }
    tracing::info!(src, dest, topics = cloned, "consumer offsets cloned");
    Ok(ok(cmd))
}

/// QUERY_CONSUME_TIME_SPAN (`mqadmin consumerProgress`' time columns, the dashboard): per
/// queue of the topic, the store times of its first and last messages, of the last message the
/// group consumed, and how long ago the first one it has not consumed was stored (`delayTime`).
/// Times are −1 where there is no such message. Unlike Java, a group with no committed offset
/// is measured from the queue's first message rather than from offset −1.
pub async fn consume_time_span(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: QueryConsumeTimeSpanRequestHeader = header(cmd)?;
    let (topic, group) = (h.topic.as_str(), h.group.as_str());
    let Some(config) = b.meta.borrow().topic(topic).cloned() else {
        return Err(error(cmd, resp::TOPIC_NOT_EXIST, format!("topic[{topic}] not exist")));
    };
    let time_at = |queue_id: i32, offset: i64| async move {
        if offset < 0 {
            return -1;
        }
        b.store_timestamp(topic, queue_id, offset).await.ok().flatten().unwrap_or(-1)
    };
    let mut spans = Vec::new();
    for queue_id in 0..config.write_queue_nums {
        let (min, max) = b.queue_offsets(topic, queue_id).await;
        let min_time = time_at(queue_id, min).await;
        let committed = b.meta.borrow().query_offset(group, topic, queue_id);
        let consume_time = if committed > 0 { time_at(queue_id, committed - 1).await } else { min_time };
        let mut span = serde_json::json!({
            "messageQueue": queue(b, topic, queue_id),
            "minTimeStamp": min_time,
            "maxTimeStamp": time_at(queue_id, max - 1).await,
            "consumeTimeStamp": consume_time,
            "delayTime": 0,
        });
        let next = committed.max(min);
        if next < max {
            let next_time = time_at(queue_id, next).await;
            if next_time >= 0 {
                span["delayTime"] = (now_ms() - next_time).into();
            }
        }
        spans.push(span);
    }
    let body = serde_json::json!({ "consumeTimeSpanSet": spans });
    Ok(ok(cmd).with_body(serde_json::to_vec(&body).unwrap_or_default()))
}

/// Most units one QUERY_CONSUME_QUEUE returns (Java stops only at the end of a ConsumeQueue
/// file, 300,000 units).
const MAX_CONSUME_QUEUE_UNITS: usize = 10_000;

/// QUERY_CONSUME_QUEUE (`mqadmin queryCq`): `count` ConsumeQueue units of a queue from queue
/// offset `index`, with its min and max offsets and, when a group is named, that group's
/// subscription to the topic (Java's `QueryConsumeQueueResponseBody`).
pub async fn query_consume_queue(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: QueryConsumeQueueRequestHeader = header(cmd)?;
    let topic = h.topic.as_str();
    let count = usize::try_from(h.count).unwrap_or(0).min(MAX_CONSUME_QUEUE_UNITS);
    let found = b
        .consume_queue_units(topic, h.queue_id, h.index, count)
        .await
        .map_err(|e| error(cmd, resp::SYSTEM_ERROR, e.to_string()))?;
    let Some((min, max, units)) = found else {
        return Err(error(cmd, resp::SYSTEM_ERROR, format!("{}@{topic} is not exist!", h.queue_id)));
    };
    let mut body = serde_json::json!({ "maxQueueIndex": max, "minQueueIndex": min });
    if let Some(group) = &h.consumer_group {
        let subscription = b.clients.borrow().subscription(group.as_str(), topic).cloned();
        body["filterData"] = match &subscription {
            None => format!("{}@{topic} is not online!", group.as_str()).into(),
            // Tag subscriptions have no filter data; Java prints its null.
            Some(_) => "null".into(),
        };
        body["subscriptionData"] = serde_json::to_value(subscription).unwrap_or_default();
    }
    if units.is_empty() {
        let remark = format!("Index {} of {}@{topic} is not exist!", h.index, h.queue_id);
        return Ok(ok(cmd).with_remark(remark));
    }
    body["queueData"] = units
        .iter()
        .map(|u| serde_json::json!({ "physicOffset": u.physical_offset, "physicSize": u.size, "tagsCode": u.tag_code, "eval": false }))
        .collect();
    Ok(ok(cmd).with_body(serde_json::to_vec(&body).unwrap_or_default()))
}

/// DELETE_EXPIRED_COMMITLOG (`mqadmin deleteExpiredCommitLog`): the next retention passes of
/// every shard delete expired segments whatever the `deleteWhen` hour (Java's
/// `executeDeleteFilesManually`); segments younger than `fileReservedTime` stay.
pub async fn delete_expired_commitlog(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    for shard in 0..b.mesh.shards {
        b.on_shard(shard, |b| async move { b.manual_deletes.set(crate::retention::MANUAL_DELETE_PASSES) })
            .await
            .map_err(|e| error(cmd, resp::SYSTEM_ERROR, format!("shard {shard}: {e}")))?;
    }
    tracing::info!("expired CommitLog segments go at the next retention passes, whatever the hour");
    Ok(ok(cmd))
}

/// GET_SYSTEM_TOPIC_LIST_FROM_BROKER: Java's system topic names (`TopicValidator`).
pub fn system_topics(cmd: &RemotingCommand) -> Answer {
    let names = wire::message::topic::SYSTEM_TOPICS;
    let list = TopicList { broker_addr: None, topic_list: names.iter().map(|n| n.to_string()).collect() };
    Ok(ok(cmd).with_body(list.encode()))
}

/// GET_ALL_PRODUCER_INFO (the dashboard's producer list): every producer group with its
/// online clients, as Java's `ProducerTableInfo` (`remoteIP` in Netty's `/ip:port` form).
pub fn all_producers(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let now = now_ms();
    let clients = b.clients.borrow();
    let data: BTreeMap<&String, Vec<serde_json::Value>> = clients
        .producers
        .iter()
        .map(|(group, channels)| {
            let infos = channels.values().map(|c| {
                serde_json::json!({
                    "clientId": c.client_id,
                    "remoteIP": format!("/{}", c.addr),
                    "language": c.language,
                    "version": c.version,
                    "lastUpdateTimestamp": now - c.last_update.elapsed().as_millis() as i64,
                })
            });
            (group, infos.collect())
        })
        .collect();
    Ok(ok(cmd).with_body(serde_json::to_vec(&serde_json::json!({ "data": data })).unwrap_or_default()))
}

pub fn producer_connections(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: GetProducerConnectionListRequestHeader = header(cmd)?;
    let clients = b.clients.borrow();
    let Some(channels) = clients.producers.get(h.producer_group.as_str()) else {
        return Err(error(
            cmd,
            resp::SYSTEM_ERROR,
            format!("the producer group[{}] not exist", h.producer_group.as_str()),
        ));
    };
    Ok(ok(cmd).with_body(ProducerConnection { connection_set: connections(channels.values()) }.encode()))
}

/// One shard's part of the runtime info.
struct ShardStats {
    puts: u64,
    gets: u64,
    min_offset: i64,
    max_offset: i64,
    unflushed: u64,
    failure: Option<String>,
}

fn shard_stats(b: &Broker) -> ShardStats {
    let log = b.store.commitlog();
    ShardStats {
        puts: b.puts.get(),
        gets: b.gets.get(),
        min_offset: log.global_offset(log.min_offset()),
        max_offset: log.global_offset(log.end()),
        unflushed: log.end().saturating_sub(log.synced_end()),
        failure: log.failure(),
    }
}

/// GET_BROKER_RUNTIME_INFO: counts summed over the shards; the CommitLog offsets are shard 0's
/// (each shard's log has its own offsets), the others' are listed as `commitLogMaxOffset.<n>`.
pub async fn runtime_info(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let mut shards = Vec::with_capacity(b.mesh.shards);
    for shard in 0..b.mesh.shards {
        let stats = b.on_shard(shard, |b| async move { shard_stats(&b) }).await;
        shards.push(stats.map_err(|e| error(cmd, resp::SYSTEM_ERROR, format!("shard {shard}: {e}")))?);
    }
    let first = &shards[0];
    let mut table = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        table.insert(k.to_owned(), v);
    };
    put("brokerVersionDesc", "V4_9_8".into());
    put("brokerVersion", wire::VERSION_4_9_8.to_string());
    put("msgPutTotalTodayNow", shards.iter().map(|s| s.puts).sum::<u64>().to_string());
    put("msgGetTotalTodayNow", shards.iter().map(|s| s.gets).sum::<u64>().to_string());
    put("bootTimestamp", (now_ms() - b.started.elapsed().as_millis() as i64).to_string());
    put("runtime", format!("[ {} seconds ]", b.started.elapsed().as_secs()));
    put("commitLogMinOffset", first.min_offset.to_string());
    put("commitLogMaxOffset", first.max_offset.to_string());
    for (shard, stats) in shards.iter().enumerate().skip(1) {
        put(&format!("commitLogMaxOffset.{shard}"), stats.max_offset.to_string());
    }
    put("shards", shards.len().to_string());
    put("remainHowManyDataToFlush", format!("{} B", shards.iter().map(|s| s.unflushed).sum::<u64>()));
    put("dispatchBehindBytes", "0".into());
    put("pageCacheLockTimeMills", "0".into());
    put("inFlightRequests", b.in_flight.get().to_string());
    put("flushDiskType", b.config.borrow().flush_disk_type.clone());
    let failures: Vec<String> = shards.iter().filter_map(|s| s.failure.clone()).collect();
    if !failures.is_empty() {
        put("storeReadOnly", failures.join("; "));
    }
    Ok(ok(cmd).with_body(KvTable { table }.encode()))
}

/// INVOKE_BROKER_TO_RESET_OFFSET: moves `group` on every queue of `topic` to the first message
/// stored at `timestamp` (−1: the end), or only back unless forced, and tells each online
/// consumer of the group (RESET_CONSUMER_CLIENT_OFFSET) to start there. Java leaves the offsets
/// to the consumers; here they are committed too, so a consumer that misses the request or a
/// restart does not undo the reset. Each consumer gets the body in the form its language
/// reads (C++ clients read a list).
pub async fn reset_offset(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: ResetOffsetRequestHeader = header(cmd)?;
    let (topic, group) = (h.topic.as_str(), h.group.as_str());
    let Some(config) = b.meta.borrow().topic(topic).cloned() else {
        return Err(error(
            cmd,
            resp::SYSTEM_ERROR,
            format!("[reset-offset] reset offset failed, no topic in this broker. topic={topic}"),
        ));
    };
    let mut table = ResetOffsetBody::default();
    for queue_id in 0..config.write_queue_nums {
        let consumer_offset = b.meta.borrow().query_offset(group, topic, queue_id);
        if consumer_offset == -1 {
            return Err(error(cmd, resp::SYSTEM_ERROR, format!("THe consumer group <{group}> not exist")));
        }
        let target = match h.timestamp {
            -1 => b.max_offset(topic, queue_id).await,
            at => b
                .offset_by_time(topic, queue_id, at)
                .await
                .map_err(|e| error(cmd, resp::SYSTEM_ERROR, e.to_string()))?,
        }
        .max(0);
        let offset = if h.is_force || target < consumer_offset { target } else { consumer_offset };
        table.offset_table.insert(queue(b, topic, queue_id), offset);
    }
    let consumers: Vec<(Rc<crate::server::Conn>, String)> = {
        let clients = b.clients.borrow();
        let conns = b.conns.borrow();
        clients
            .consumers
            .get(group)
            .map(|g| {
                g.channels
                    .iter()
                    .filter_map(|(id, ch)| conns.get(id).map(|c| (c.clone(), ch.language.clone())))
                    .collect()
            })
            .unwrap_or_default()
    };
    if consumers.is_empty() {
        return Err(error(
            cmd,
            resp::CONSUMER_NOT_ONLINE,
            format!(
                "Consumer not online, so can not reset offset, Group: {group} Topic: {topic} Timestamp: {}",
                h.timestamp
            ),
        ));
    }
    {
        let mut meta = b.meta.borrow_mut();
        for (mq, offset) in &table.offset_table {
            meta.commit_offset(group, topic, mq.queue_id, *offset);
        }
    }
    b.offsets_dirty.set(true);
    let notice = ResetOffsetRequestHeader {
        topic: topic.into(),
        group: group.into(),
        timestamp: h.timestamp,
        is_force: h.is_force,
    };
    for (conn, language) in consumers {
        let body = if language == "CPP" { reset_body_for_cpp(&table) } else { table.encode_fastjson() };
        let request = RemotingCommand::request(req::RESET_CONSUMER_CLIENT_OFFSET)
            .with_header(&notice)
            .with_body(body)
            .mark_oneway();
        b.send_request(&conn, request);
    }
    tracing::info!(topic, group, timestamp = h.timestamp, "consumer offsets reset");
    Ok(ok(cmd).with_body(table.encode_fastjson()))
}

/// Java's `ResetOffsetBodyForC`: `{"offsetTable":[{"brokerName":…,"offset":…,"queueId":…,"topic":…}]}`.
fn reset_body_for_cpp(table: &ResetOffsetBody) -> Vec<u8> {
    let list: Vec<serde_json::Value> = table
        .offset_table
        .iter()
        .map(|(mq, offset)| {
            serde_json::json!({"brokerName": mq.broker_name, "offset": offset, "queueId": mq.queue_id, "topic": mq.topic})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "offsetTable": list })).unwrap_or_default()
}

/// INVOKE_BROKER_TO_GET_CONSUMER_STATUS (`mqadmin getConsumerStatus`): asks each online consumer
/// of the group (or only `clientAddr`, a client id) for its offsets on the topic
/// (GET_CONSUMER_STATUS_FROM_CLIENT, 5 s each) and answers them by client id. A consumer that
/// does not answer is left out, as Java leaves it.
pub async fn consumer_status(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: GetConsumerStatusRequestHeader = header(cmd)?;
    let (topic, group) = (h.topic.as_str(), h.group.as_str());
    let only = h.client_addr.as_ref().map(|c| c.as_str()).filter(|c| !c.is_empty());
    let channels = b.clients.borrow().consumer_channels(group);
    if channels.is_empty() {
        return Err(error(cmd, resp::SYSTEM_ERROR, format!("No Any Consumer online in the consumer group: [{group}]")));
    }
    let ask = GetConsumerStatusRequestHeader { topic: topic.into(), group: group.into(), client_addr: None };
    let mut status = GetConsumerStatusBody::default();
    for (id, client_id) in channels.into_iter().filter(|(_, c)| only.is_none_or(|o| o == c)) {
        let Some(conn) = b.conns.borrow().get(&id).cloned() else { continue };
        let request = RemotingCommand::request(req::GET_CONSUMER_STATUS_FROM_CLIENT).with_header(&ask);
        let answer = b.call_client(&conn, request, CONSUMER_STATUS_TIMEOUT).await;
        match answer.filter(|a| a.code == resp::SUCCESS).map(|a| GetConsumerStatusBody::decode(&a.body)) {
            Some(Ok(body)) => drop(status.consumer_table.insert(client_id, QueueOffsets(body.message_queue_table))),
            Some(Err(e)) => tracing::warn!(%group, %client_id, error = %e, "unreadable consumer status"),
            None => tracing::warn!(%group, %client_id, "no consumer status"),
        }
    }
    Ok(ok(cmd).with_body(status.encode_fastjson()))
}

/// How long INVOKE_BROKER_TO_GET_CONSUMER_STATUS waits for each consumer (Java's 5 s).
const CONSUMER_STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// CONSUME_MESSAGE_DIRECTLY: the message `msgId` names (an offset id of this broker) goes to the
/// named consumer with this broker's name, as Java's broker sends it; the consumer's listener
/// handles it and its answer (`ConsumeMessageDirectlyResult`) comes back.
pub async fn consume_message_directly(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let h: ConsumeMessageDirectlyResultRequestHeader = header(cmd)?;
    let msg_id = h.msg_id.as_ref().map_or("", |id| id.as_str());
    let (_, offset) = wire::message::decode_offset_msg_id(msg_id)
        .map_err(|e| error(cmd, resp::SYSTEM_ERROR, format!("message id {msg_id:?}: {e}")))?;
    let record = b
        .look_message(offset)
        .await
        .map_err(|_| error(cmd, resp::SYSTEM_ERROR, format!("can not find message by the offset, {offset}")))?;
    let mut forward = cmd.clone().with_body(record);
    forward.ext_fields.insert("brokerName", b.config.borrow().broker_name.clone());
    call_consumer(b, &forward).await
}

/// GET_CONSUMER_RUNNING_INFO and CONSUME_MESSAGE_DIRECTLY: passed to the named consumer, its
/// answer passed back (Java's `callConsumer`).
pub async fn call_consumer(b: &Rc<Broker>, cmd: &RemotingCommand) -> Answer {
    let group = cmd.ext_fields.get("consumerGroup").map(str::to_owned).unwrap_or_default();
    let client_id = cmd.ext_fields.get("clientId").map(str::to_owned).unwrap_or_default();
    let channels = b.clients.borrow().consumer_channels(&group);
    let id = channels.into_iter().find(|(_, c)| *c == client_id).map(|(id, _)| id);
    let conn = id.and_then(|id| b.conns.borrow().get(&id).cloned());
    let Some(conn) = conn else {
        return Err(error(cmd, resp::SYSTEM_ERROR, format!("The Consumer <{group}> <{client_id}> not online")));
    };
    let mut forward = RemotingCommand::request(cmd.code).with_body(cmd.body.clone());
    forward.ext_fields = cmd.ext_fields.clone();
    match b.call_client(&conn, forward, Duration::from_secs(10)).await {
        Some(mut answer) => {
            answer.opaque = cmd.opaque;
            Ok(answer)
        }
        None => Err(error(
            cmd,
            resp::CONSUME_MSG_TIMEOUT,
            format!("consumer <{group}> <{client_id}> Timeout: no answer in 10000 ms"),
        )),
    }
}
