//! Administration, as `mqadmin` does it: topics, clusters, routes, stats, consumer progress,
//! broker runtime and config.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use wire::body::{
    perm, ClusterInfo, ConsumeStats, GetConsumerStatusBody, JsonBody, KvTable, MessageQueue, ResetOffsetBody,
    TopicList, TopicRouteData, TopicStatsTable,
};
use wire::code::{request, response};
use wire::header::{
    ConsumeMessageDirectlyResultRequestHeader, CreateTopicRequestHeader, DeleteTopicFromNamesrvRequestHeader,
    DeleteTopicRequestHeader, GetConsumeStatsRequestHeader, GetConsumerRunningInfoRequestHeader,
    GetConsumerStatusRequestHeader, GetTopicStatsInfoRequestHeader, QueryMessageRequestHeader,
    ResetOffsetRequestHeader, ViewMessageRequestHeader,
};
use wire::message::topic;
use wire::RemotingCommand;

use crate::error::{ClientError, Result};
use crate::instance::{ClientConfig, ClientInstance};
use crate::message::MessageExt;
use crate::remoting::{broker_error, expect_success};

/// A topic's shape for create and update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub read_queues: i32,
    pub write_queues: i32,
    /// `perm::READ | perm::WRITE` for an ordinary topic.
    pub perm: i32,
    pub order: bool,
}

impl TopicSpec {
    pub fn new(name: impl Into<String>, queues: i32) -> Self {
        Self {
            name: name.into(),
            read_queues: queues,
            write_queues: queues,
            perm: perm::READ | perm::WRITE,
            order: false,
        }
    }
}

/// Which brokers an admin change goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every master of the named cluster, or of every cluster when `None`.
    Cluster(Option<String>),
    /// One broker, by address.
    Broker(String),
}

/// An admin client (Java's `DefaultMQAdminExt`).
pub struct Admin {
    instance: Arc<ClientInstance>,
}

impl Admin {
    pub fn start(config: ClientConfig) -> Result<Self> {
        Ok(Self { instance: ClientInstance::start(config)? })
    }

    /// Brokers by cluster (GET_BROKER_CLUSTER_INFO).
    pub async fn cluster_info(&self) -> Result<ClusterInfo> {
        let (addr, answer) =
            self.instance.namesrv.invoke(RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO)).await?;
        let answer = expect_success(&addr, request::GET_BROKER_CLUSTER_INFO, answer)?;
        ClusterInfo::decode(&answer.body).map_err(|source| ClientError::Body {
            addr,
            request: "GET_BROKER_CLUSTER_INFO",
            source,
        })
    }

    /// Every topic the name servers know.
    pub async fn topic_list(&self) -> Result<BTreeSet<String>> {
        let cmd = RemotingCommand::request(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER);
        let (addr, answer) = self.instance.namesrv.invoke(cmd).await?;
        let answer = expect_success(&addr, request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER, answer)?;
        TopicList::decode(&answer.body).map(|l| l.topic_list).map_err(|source| ClientError::Body {
            addr,
            request: "GET_ALL_TOPIC_LIST_FROM_NAMESERVER",
            source,
        })
    }

    pub async fn topic_route(&self, topic_name: &str) -> Result<TopicRouteData> {
        self.instance.namesrv.topic_route(topic_name).await?.ok_or_else(|| ClientError::NoRoute {
            topic: topic_name.into(),
            reason: "the name servers know no such topic".into(),
        })
    }

    /// Creates or updates a topic on the target's masters; returns their addresses.
    pub async fn create_topic(&self, spec: &TopicSpec, target: &Target) -> Result<Vec<String>> {
        if !topic::is_valid_name(&spec.name) {
            return Err(ClientError::InvalidArgument(format!("{:?} is not a valid topic name", spec.name)));
        }
        if spec.read_queues < 1 || spec.write_queues < 1 {
            return Err(ClientError::InvalidArgument("a topic needs at least one read and one write queue".into()));
        }
        let addrs = self.target_addrs(target).await?;
        let mut header = CreateTopicRequestHeader::new(&spec.name, spec.write_queues);
        header.read_queue_nums = spec.read_queues;
        header.perm = spec.perm;
        header.order = spec.order;
        for addr in &addrs {
            let cmd = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC).with_header(&header);
            self.instance.call(addr, cmd).await?;
        }
        Ok(addrs)
    }

    /// Deletes a topic from the target's masters, then from every name server.
    pub async fn delete_topic(&self, topic_name: &str, target: &Target) -> Result<Vec<String>> {
        let addrs = self.target_addrs(target).await?;
        for addr in &addrs {
            let header = DeleteTopicRequestHeader { topic: topic_name.into() };
            let cmd = RemotingCommand::request(request::DELETE_TOPIC_IN_BROKER).with_header(&header);
            self.instance.call(addr, cmd).await?;
        }
        let cluster_name = match target {
            Target::Cluster(name) => name.clone(),
            Target::Broker(_) => None,
        };
        for namesrv in self.instance.namesrv.addrs() {
            let header = DeleteTopicFromNamesrvRequestHeader {
                topic: topic_name.into(),
                cluster_name: cluster_name.as_deref().map(Into::into),
            };
            let cmd = RemotingCommand::request(request::DELETE_TOPIC_IN_NAMESRV).with_header(&header);
            self.instance.call(namesrv, cmd).await?;
        }
        Ok(addrs)
    }

    /// Min and max offsets of every queue of the topic, from each of its brokers.
    pub async fn topic_stats(&self, topic_name: &str) -> Result<TopicStatsTable> {
        let header = GetTopicStatsInfoRequestHeader { topic: topic_name.into() };
        let cmd = RemotingCommand::request(request::GET_TOPIC_STATS_INFO).with_header(&header);
        let mut merged = TopicStatsTable::default();
        for table in self.ask_topic_masters::<TopicStatsTable>(topic_name, cmd, "GET_TOPIC_STATS_INFO").await? {
            merged.offset_table.extend(table.offset_table);
        }
        Ok(merged)
    }

    /// A consumer group's progress on every queue it consumes (broker offset, consumer offset,
    /// lag), optionally for one topic.
    pub async fn consume_stats(&self, group: &str, topic_name: Option<&str>) -> Result<ConsumeStats> {
        // The group's retry topic lives on every broker the group consumes from, as in Java.
        let addrs = match self.instance.namesrv.topic_route(&topic::retry_topic(group)).await? {
            Some(route) => master_addrs(&route),
            None => self.target_addrs(&Target::Cluster(None)).await?,
        };
        let mut merged = ConsumeStats::default();
        let mut found = false;
        for addr in addrs {
            let header =
                GetConsumeStatsRequestHeader { consumer_group: group.into(), topic: topic_name.map(Into::into) };
            let cmd = RemotingCommand::request(request::GET_CONSUME_STATS).with_header(&header);
            let answer = self.instance.remoting.invoke(&addr, cmd, self.instance.request_timeout()).await?;
            if answer.code != response::SUCCESS {
                return Err(broker_error(&addr, request::GET_CONSUME_STATS, &answer));
            }
            let stats = ConsumeStats::decode(&answer.body).map_err(|source| ClientError::Body {
                addr: addr.clone(),
                request: "GET_CONSUME_STATS",
                source,
            })?;
            found |= !stats.offset_table.is_empty();
            merged.consume_tps += stats.consume_tps;
            merged.offset_table.extend(stats.offset_table);
        }
        if !found {
            return Err(ClientError::InvalidArgument(format!("consumer group {group} has no offsets on any broker")));
        }
        Ok(merged)
    }

    /// Messages of `topic` with key `key` stored within `begin..=end` (ms), from every broker of
    /// the topic (QUERY_MESSAGE, as `mqadmin queryMsgByKey`); at most `max` per broker.
    pub async fn query_message(
        &self,
        topic_name: &str,
        key: &str,
        max: i32,
        begin: i64,
        end: i64,
    ) -> Result<Vec<MessageExt>> {
        self.query(topic_name, key, max, begin, end, false).await
    }

    /// The messages whose unique key (the msgId a producer reports) is `msg_id`
    /// (`mqadmin queryMsgByUniqueKey`).
    pub async fn query_message_by_unique_key(&self, topic_name: &str, msg_id: &str) -> Result<Vec<MessageExt>> {
        self.query(topic_name, msg_id, 32, 0, i64::MAX, true).await
    }

    async fn query(
        &self,
        topic_name: &str,
        key: &str,
        max: i32,
        begin: i64,
        end: i64,
        unique: bool,
    ) -> Result<Vec<MessageExt>> {
        let route = self.topic_route(topic_name).await?;
        let mut found = Vec::new();
        for broker in &route.broker_datas {
            let Some(addr) = broker.master_addr() else { continue };
            let header = QueryMessageRequestHeader {
                topic: topic_name.into(),
                key: key.into(),
                max_num: max,
                begin_timestamp: begin,
                end_timestamp: end,
                unique_key_flag: unique.then_some(true),
            };
            let cmd = RemotingCommand::request(request::QUERY_MESSAGE).with_header(&header);
            let answer = self.instance.remoting.invoke(addr, cmd, self.instance.request_timeout()).await?;
            match answer.code {
                response::SUCCESS => {}
                response::QUERY_NOT_FOUND => continue,
                _ => return Err(broker_error(addr, request::QUERY_MESSAGE, &answer)),
            }
            let bad = |e: wire::MessageError| {
                ClientError::InvalidArgument(format!("{addr}: QUERY_MESSAGE answered with bad records: {e}"))
            };
            for m in wire::message::decode_stored_messages(&answer.body, false).map_err(bad)? {
                found.push(MessageExt::decompressed(m, &broker.broker_name).map_err(bad)?);
            }
        }
        // As Java's client: only exact matches, whatever a broker's index let through.
        found.retain(|m| match unique {
            true => m.msg_id() == key,
            false => m.keys().contains(&key),
        });
        Ok(found)
    }

    /// The message with offset message id `offset_msg_id` (VIEW_MESSAGE_BY_ID, as `mqadmin
    /// queryMsgById`).
    pub async fn view_message(&self, offset_msg_id: &str) -> Result<MessageExt> {
        let (host, offset) = wire::message::decode_offset_msg_id(offset_msg_id)
            .map_err(|e| ClientError::InvalidArgument(format!("{offset_msg_id:?} is not an offset message id: {e}")))?;
        let addr = host.to_string();
        let cmd =
            RemotingCommand::request(request::VIEW_MESSAGE_BY_ID).with_header(&ViewMessageRequestHeader { offset });
        let answer = self.instance.call(&addr, cmd).await?;
        let bad = |e: wire::MessageError| {
            ClientError::InvalidArgument(format!("{addr}: VIEW_MESSAGE_BY_ID answered with a bad record: {e}"))
        };
        let mut stored = wire::message::decode_stored_messages(&answer.body, false).map_err(bad)?;
        match stored.pop() {
            Some(m) => MessageExt::decompressed(m, "").map_err(bad),
            None => Err(ClientError::InvalidArgument(format!("{addr}: no message at offset {offset}"))),
        }
    }

    /// Moves `group` on every queue of `topic` back to the first message stored at
    /// `timestamp` (ms; −1 for the end), or anywhere when `force` (INVOKE_BROKER_TO_RESET_OFFSET
    /// on each broker of the topic, as `mqadmin resetOffsetByTime`). The group's consumers must
    /// be online: they are told to start there. Returns the new offset of each queue.
    pub async fn reset_offset_by_time(
        &self,
        group: &str,
        topic_name: &str,
        timestamp: i64,
        force: bool,
    ) -> Result<BTreeMap<MessageQueue, i64>> {
        let header =
            ResetOffsetRequestHeader { topic: topic_name.into(), group: group.into(), timestamp, is_force: force };
        let cmd = RemotingCommand::request(request::INVOKE_BROKER_TO_RESET_OFFSET).with_header(&header);
        let answers =
            self.ask_topic_masters::<ResetOffsetBody>(topic_name, cmd, "INVOKE_BROKER_TO_RESET_OFFSET").await?;
        Ok(answers.into_iter().flat_map(|body| body.offset_table).collect())
    }

    /// Sends `cmd` to every master serving `topic_name` and decodes each answer's body.
    async fn ask_topic_masters<T: JsonBody>(
        &self,
        topic_name: &str,
        cmd: RemotingCommand,
        request: &'static str,
    ) -> Result<Vec<T>> {
        let route = self.topic_route(topic_name).await?;
        let mut answers = Vec::new();
        for addr in master_addrs(&route) {
            let answer = self.instance.call(&addr, cmd.clone()).await?;
            let body =
                T::decode(&answer.body).map_err(|source| ClientError::Body { addr: addr.clone(), request, source })?;
            answers.push(body);
        }
        Ok(answers)
    }

    /// What one consumer of `group` reports about itself (GET_CONSUMER_RUNNING_INFO through a
    /// broker of the group): Java's `ConsumerRunningInfo` as JSON.
    pub async fn consumer_running_info(&self, group: &str, client_id: &str) -> Result<serde_json::Value> {
        let addrs = match self.instance.namesrv.topic_route(&topic::retry_topic(group)).await? {
            Some(route) => master_addrs(&route),
            None => self.target_addrs(&Target::Cluster(None)).await?,
        };
        let addr =
            addrs.first().ok_or_else(|| ClientError::InvalidArgument(format!("no broker serves group {group}")))?;
        let header = GetConsumerRunningInfoRequestHeader {
            consumer_group: group.into(),
            client_id: client_id.into(),
            jstack_enable: Some(false),
        };
        let cmd = RemotingCommand::request(request::GET_CONSUMER_RUNNING_INFO).with_header(&header);
        let answer = self.instance.call(addr, cmd).await?;
        let normalized = wire::body::fastjson::normalize_keys(&answer.body);
        serde_json::from_slice(&normalized).map_err(|e| {
            ClientError::InvalidArgument(format!("{addr}: GET_CONSUMER_RUNNING_INFO answered with bad JSON: {e}"))
        })
    }

    /// Has the consumer `client_id` of `group` handle the message `offset_msg_id` once more
    /// (CONSUME_MESSAGE_DIRECTLY through the broker that stores it, as `mqadmin queryMsgById -g
    /// -d`): Java's `ConsumeMessageDirectlyResult` as JSON, `consumeResult` `CR_SUCCESS`,
    /// `CR_LATER` or `CR_THROW_EXCEPTION`. Waits three request timeouts, as Java's admin does.
    pub async fn consume_message_directly(
        &self,
        group: &str,
        client_id: &str,
        offset_msg_id: &str,
    ) -> Result<serde_json::Value> {
        let (host, _) = wire::message::decode_offset_msg_id(offset_msg_id)
            .map_err(|e| ClientError::InvalidArgument(format!("{offset_msg_id:?} is not an offset message id: {e}")))?;
        let addr = host.to_string();
        let header = ConsumeMessageDirectlyResultRequestHeader {
            consumer_group: group.into(),
            client_id: Some(client_id.into()),
            msg_id: Some(offset_msg_id.into()),
            broker_name: None,
        };
        let cmd = RemotingCommand::request(request::CONSUME_MESSAGE_DIRECTLY).with_header(&header);
        let answer = self.instance.remoting.invoke(&addr, cmd, self.instance.request_timeout() * 3).await?;
        if answer.code != response::SUCCESS {
            return Err(broker_error(&addr, request::CONSUME_MESSAGE_DIRECTLY, &answer));
        }
        serde_json::from_slice(&answer.body).map_err(|e| {
            ClientError::InvalidArgument(format!("{addr}: CONSUME_MESSAGE_DIRECTLY answered with bad JSON: {e}"))
        })
    }

    /// Each online consumer's offsets on `topic`'s queues, by client id (INVOKE_BROKER_TO_GET_
    /// CONSUMER_STATUS on every master of the topic, as `mqadmin getConsumerStatus`), from every
    /// consumer of `group` or only `client_id`.
    pub async fn consumer_status(
        &self,
        topic_name: &str,
        group: &str,
        client_id: Option<&str>,
    ) -> Result<BTreeMap<String, BTreeMap<MessageQueue, i64>>> {
        let route = self.topic_route(topic_name).await?;
        let header = GetConsumerStatusRequestHeader {
            topic: topic_name.into(),
            group: group.into(),
            client_addr: client_id.map(Into::into),
        };
        let mut all: BTreeMap<String, BTreeMap<MessageQueue, i64>> = BTreeMap::new();
        for addr in master_addrs(&route) {
            let cmd = RemotingCommand::request(request::INVOKE_BROKER_TO_GET_CONSUMER_STATUS).with_header(&header);
            let answer = self.instance.call(&addr, cmd).await?;
            let body = GetConsumerStatusBody::decode(&answer.body).map_err(|source| ClientError::Body {
                addr: addr.clone(),
                request: "INVOKE_BROKER_TO_GET_CONSUMER_STATUS",
                source,
            })?;
            for (client, offsets) in body.consumer_table {
                all.entry(client).or_default().extend(offsets.0);
            }
        }
        Ok(all)
    }

    /// GET_BROKER_RUNTIME_INFO: the broker's counters as name → value.
    pub async fn broker_runtime(&self, addr: &str) -> Result<BTreeMap<String, String>> {
        let answer = self.instance.call(addr, RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO)).await?;
        KvTable::decode(&answer.body).map(|t| t.table).map_err(|source| ClientError::Body {
            addr: addr.into(),
            request: "GET_BROKER_RUNTIME_INFO",
            source,
        })
    }

    /// GET_BROKER_CONFIG: the broker's effective settings, as key → value.
    pub async fn broker_config(&self, addr: &str) -> Result<BTreeMap<String, String>> {
        let answer = self.instance.call(addr, RemotingCommand::request(request::GET_BROKER_CONFIG)).await?;
        let text = String::from_utf8_lossy(&answer.body);
        Ok(parse_properties(&text))
    }

    /// UPDATE_BROKER_CONFIG: changes settings of a running broker; returns the broker's remark
    /// (which settings applied at once, which wait for a restart).
    pub async fn update_broker_config(&self, addr: &str, changes: &BTreeMap<String, String>) -> Result<String> {
        let body: String = changes.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        let cmd = RemotingCommand::request(request::UPDATE_BROKER_CONFIG).with_body(body.into_bytes());
        let answer = self.instance.call(addr, cmd).await?;
        Ok(answer.remark_str().to_string())
    }

    pub async fn shutdown(&self) {
        self.instance.shutdown().await;
    }

    /// The master addresses a change to `target` goes to.
    async fn target_addrs(&self, target: &Target) -> Result<Vec<String>> {
        let cluster = match target {
            Target::Broker(addr) => return Ok(vec![addr.clone()]),
            Target::Cluster(cluster) => cluster,
        };
        let info = self.cluster_info().await?;
        let names: BTreeSet<&String> = match cluster {
            Some(name) => info
                .cluster_addr_table
                .get(name)
                .ok_or_else(|| ClientError::InvalidArgument(format!("no cluster named {name}")))?
                .iter()
                .collect(),
            None => info.cluster_addr_table.values().flatten().collect(),
        };
        let addrs: Vec<String> = names
            .into_iter()
            .filter_map(|name| info.broker_addr_table.get(name).and_then(|b| b.master_addr()).map(str::to_string))
            .collect();
        if addrs.is_empty() {
            return Err(ClientError::InvalidArgument("no broker master is registered with the name servers".into()));
        }
        Ok(addrs)
    }
}

fn master_addrs(route: &TopicRouteData) -> Vec<String> {
    route.broker_datas.iter().filter_map(|b| b.master_addr().map(str::to_string)).collect()
}

/// Java `Properties` text (`key=value` lines, `#` comments) as a map.
fn parse_properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_text_parses() {
        let map = parse_properties("# comment\nbrokerName=broker-a\n\nlistenPort = 10911\nnoValue\n");
        assert_eq!(map.get("brokerName").map(String::as_str), Some("broker-a"));
        assert_eq!(map.get("listenPort").map(String::as_str), Some("10911"));
        assert_eq!(map.len(), 2);
    }
}
