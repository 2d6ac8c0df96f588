//! The producer: picks a queue from the topic route, sends, retries on another broker when a
//! send fails, and keeps away from brokers that failed recently.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use wire::body::MessageQueue;
use wire::code::{request, response};
use wire::header::{SendMessageRequestHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader};
use wire::message::{properties, topic, BatchMessage, CompressionType, UniqueIdGenerator};
use wire::{ByteStr, RemotingCommand};

use crate::error::{ClientError, Result};
use crate::instance::{local_ip, now_ms, ClientConfig, ClientInstance};
use crate::lock;
use crate::message::Message;
use crate::remoting::broker_error;
use crate::route::TopicRoute;

/// Producer settings, with Java `DefaultMQProducer`'s defaults.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub group: String,
    pub client: ClientConfig,
    /// Extra attempts after a failed send (`retryTimesWhenSendFailed`), each on another broker
    /// when there is one.
    pub retry_times: u32,
    /// Largest body accepted (`maxMessageSize`).
    pub max_message_size: usize,
    /// Queues a topic gets when a send creates it (`defaultTopicQueueNums`).
    pub default_topic_queue_nums: i32,
    /// How long a broker that failed a send is passed over.
    pub isolation: Duration,
    /// A body of this many bytes or more is sent compressed (`compressMsgBodyOverHowmuch`);
    /// `usize::MAX` sends every body as it is. Batches are never compressed, as in Java.
    pub compress_over: usize,
    /// The codec (Java's `rocketmq.message.compressType`). Consumers of every RocketMQ version
    /// read zlib; LZ4 and zstd need 4.9.8 consumers (or this client).
    pub compress_type: CompressionType,
    /// zlib's level, 0–9 (`rocketmq.message.compressLevel`).
    pub compress_level: u32,
}

impl ProducerConfig {
    pub fn new(group: impl Into<String>, namesrv_addr: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            client: ClientConfig::new(namesrv_addr),
            retry_times: 2,
            max_message_size: 4 * 1024 * 1024,
            default_topic_queue_nums: 4,
            isolation: Duration::from_secs(30),
            compress_over: 4 * 1024,
            compress_type: CompressionType::Zlib,
            compress_level: 5,
        }
    }
}

/// How the broker stored a message it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    SendOk,
    /// Stored, but not yet on disk when SYNC_FLUSH's wait ran out.
    FlushDiskTimeout,
    FlushSlaveTimeout,
    SlaveNotAvailable,
}

/// What a send returns (Java's `SendResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    pub status: SendStatus,
    /// The producer's unique id (UNIQ_KEY); comma-separated for a batch.
    pub msg_id: String,
    /// The broker's id: store host and physical offset; comma-separated for a batch.
    pub offset_msg_id: String,
    pub queue: MessageQueue,
    pub queue_offset: i64,
}

/// A RocketMQ producer. Cheap to clone; clones share connections and routes.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

struct Inner {
    config: ProducerConfig,
    /// The group as a header field, made once rather than copied into every send.
    group_field: ByteStr,
    instance: Arc<ClientInstance>,
    ids: Mutex<UniqueIdGenerator>,
    next_queue: AtomicUsize,
    /// Broker name → until when it is passed over.
    isolated: Mutex<HashMap<String, Instant>>,
}

impl Producer {
    /// Starts a producer: connects lazily, fetches routes on first use.
    pub fn start(config: ProducerConfig) -> Result<Producer> {
        if config.group.is_empty() {
            return Err(ClientError::InvalidArgument("the producer group is empty".into()));
        }
        let instance = ClientInstance::start(config.client.clone())?;
        instance.register_producer(&config.group);
        let salt = (instance.client_id.len() as i32) ^ (now_ms() as i32);
        let ids = UniqueIdGenerator::new(local_ip(), std::process::id(), salt);
        Ok(Producer {
            inner: Arc::new(Inner {
                group_field: ByteStr::from(config.group.as_str()),
                config,
                instance,
                ids: Mutex::new(ids),
                next_queue: AtomicUsize::new(0),
                isolated: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn client_id(&self) -> &str {
        &self.inner.instance.client_id
    }

    pub fn group(&self) -> &str {
        &self.inner.config.group
    }

    pub(crate) fn instance(&self) -> &Arc<ClientInstance> {
        &self.inner.instance
    }

    /// Sends one message and waits for the broker's answer; retries on another queue (another
    /// broker when there is one) after a failure that another broker may not have.
    pub async fn send(&self, message: Message) -> Result<SendResult> {
        self.validate(&message)?;
        let (message, unique_id) = self.with_unique_id(message);
        let route = self.route_for_send(&message.topic).await?;
        let mut last_failed: Option<String> = None;
        let mut last_error = None;
        for attempt in 0..=self.inner.config.retry_times {
            let Some(queue) = self.select_queue(&route, last_failed.as_deref()) else {
                return Err(no_writable_queue(&message.topic));
            };
            match self.send_to(&route, &queue, &message, None, unique_id.clone()).await {
                Ok(result) => return Ok(result),
                Err(e) if retryable(&e) => {
                    tracing::debug!(attempt, broker = %queue.broker_name, error = %e, "send failed; retrying");
                    self.isolate(&queue.broker_name);
                    last_failed = Some(queue.broker_name.clone());
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| no_writable_queue(&message.topic)))
    }

    /// Sends without waiting for the broker; the broker sends no answer.
    pub async fn send_oneway(&self, message: Message) -> Result<()> {
        self.validate(&message)?;
        let (message, _) = self.with_unique_id(message);
        let route = self.route_for_send(&message.topic).await?;
        let queue = self.select_queue(&route, None).ok_or_else(|| no_writable_queue(&message.topic))?;
        let (addr, cmd) = self.request_for(&route, &queue, &message, None)?;
        self.inner.instance.remoting.invoke_oneway(&addr, cmd).await
    }

    /// Starts a send and returns at once; the task resolves to the send's result (Java's
    /// callback-style async send).
    pub fn send_async(&self, message: Message) -> tokio::task::JoinHandle<Result<SendResult>> {
        let producer = self.clone();
        tokio::spawn(async move { producer.send(message).await })
    }

    /// Sends to the given queue, with no retry elsewhere.
    pub async fn send_to_queue(&self, message: Message, queue: &MessageQueue) -> Result<SendResult> {
        self.validate(&message)?;
        let (message, unique_id) = self.with_unique_id(message);
        let route = self.route_for_send(&message.topic).await?;
        self.send_to(&route, queue, &message, None, unique_id).await
    }

    /// Ordered send: messages with the same `key` go to the same queue (Java's
    /// `SelectMessageQueueByHash` with the key's `String.hashCode`), so a consumer sees them in
    /// send order. No retry on another queue: that would break the order.
    pub async fn send_ordered(&self, message: Message, key: &str) -> Result<SendResult> {
        self.validate(&message)?;
        let (message, unique_id) = self.with_unique_id(message);
        let route = self.route_for_send(&message.topic).await?;
        if route.write_queues.is_empty() {
            return Err(no_writable_queue(&message.topic));
        }
        // Java's `String.hashCode`, which the tag hash code is too.
        let hash = wire::message::tag_hash_code(key) as i32;
        let index = hash.unsigned_abs() as usize % route.write_queues.len();
        let queue = route.write_queues[index].clone();
        self.send_to(&route, &queue, &message, None, unique_id).await
    }

    /// Sends messages of one topic as one batch (SEND_BATCH_MESSAGE): stored together in one
    /// queue, in order. Delayed messages cannot be batched.
    pub async fn send_batch(&self, messages: Vec<Message>) -> Result<SendResult> {
        let Some(first) = messages.first() else {
            return Err(ClientError::InvalidMessage("the batch is empty".into()));
        };
        let topic_name = first.topic.clone();
        let mut batch = Vec::with_capacity(messages.len());
        let mut ids = Vec::with_capacity(messages.len());
        let mut total = 0;
        for message in messages {
            self.validate(&message)?;
            if message.topic != topic_name {
                return Err(ClientError::InvalidMessage("all messages of a batch need the same topic".into()));
            }
            if message.properties.contains_key(properties::DELAY_TIME_LEVEL) {
                return Err(ClientError::InvalidMessage("delayed messages cannot be batched".into()));
            }
            let (message, id) = self.with_unique_id(message);
            total += message.body.len();
            ids.push(id);
            batch.push(BatchMessage {
                flag: message.flag,
                body: message.body.clone(),
                properties: message.encoded_properties(),
            });
        }
        if total > self.inner.config.max_message_size {
            return Err(ClientError::InvalidMessage(format!(
                "the batch's bodies total {total} bytes, over the limit of {}",
                self.inner.config.max_message_size
            )));
        }
        let mut body = BytesMut::new();
        wire::message::encode_batch(&batch, &mut body).map_err(|e| ClientError::InvalidMessage(e.to_string()))?;
        let carrier = Message::new(topic_name.clone(), Bytes::new());
        let route = self.route_for_send(&topic_name).await?;
        let mut last_failed: Option<String> = None;
        let mut last_error = None;
        let body = body.freeze();
        for _ in 0..=self.inner.config.retry_times {
            let queue =
                self.select_queue(&route, last_failed.as_deref()).ok_or_else(|| no_writable_queue(&topic_name))?;
            match self.send_to(&route, &queue, &carrier, Some(body.clone()), ids.join(",")).await {
                Ok(result) => return Ok(result),
                Err(e) if retryable(&e) => {
                    self.isolate(&queue.broker_name);
                    last_failed = Some(queue.broker_name.clone());
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| no_writable_queue(&topic_name)))
    }

    /// The writable queues of `topic` (for choosing one with [`Producer::send_to_queue`]).
    pub async fn queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        Ok(self.route_for_send(topic).await?.write_queues.clone())
    }

    /// Unregisters from the brokers and closes the connections.
    pub async fn shutdown(&self) {
        self.inner.instance.shutdown().await;
    }

    fn validate(&self, message: &Message) -> Result<()> {
        if !topic::is_valid_name(&message.topic) {
            return Err(ClientError::InvalidMessage(format!(
                "topic {:?} is not a valid topic name (1..=127 of letters, digits, '%', '-', '_', '|')",
                message.topic
            )));
        }
        if message.body.is_empty() {
            return Err(ClientError::InvalidMessage("the message body length is zero".into()));
        }
        if message.body.len() > self.inner.config.max_message_size {
            return Err(ClientError::InvalidMessage(format!(
                "the message body size {} is over the limit of {}",
                message.body.len(),
                self.inner.config.max_message_size
            )));
        }
        Ok(())
    }

    fn with_unique_id(&self, mut message: Message) -> (Message, String) {
        let id = match message.properties.get(properties::UNIQ_CLIENT_MESSAGE_ID_KEYIDX) {
            Some(id) => id.clone(),
            None => {
                let id = lock(&self.inner.ids).next(now_ms());
                message.properties.insert(properties::UNIQ_CLIENT_MESSAGE_ID_KEYIDX.into(), id.clone());
                id
            }
        };
        message.properties.entry(properties::WAIT_STORE_MSG_OK.into()).or_insert_with(|| "true".into());
        (message, id)
    }

    /// The topic's route; for a topic the name servers do not know yet, the route of TBW102
    /// with the new topic's name, so that the broker creates it on the first send.
    async fn route_for_send(&self, topic_name: &str) -> Result<Arc<TopicRoute>> {
        let instance = &self.inner.instance;
        if let Some(route) = instance.routes.get(topic_name) {
            return Ok(route);
        }
        let first_use = async {
            if let Some(route) = instance.fetch_route(topic_name).await? {
                return Ok(route);
            }
            let Some(default) = instance.namesrv.topic_route(topic::AUTO_CREATE_TOPIC_KEY).await? else {
                return Err(ClientError::NoRoute {
                    topic: topic_name.to_string(),
                    reason: "the name servers know no such topic, and no broker allows creating topics (TBW102)".into(),
                });
            };
            let template = TopicRoute::new(topic::AUTO_CREATE_TOPIC_KEY, default);
            Ok(Arc::new(template.for_new_topic(topic_name, self.inner.config.default_topic_queue_nums)))
        };
        let route = first_use.await?;
        instance.greet(route.master_addrs()).await;
        Ok(route)
    }

    /// The next queue round-robin, passing over brokers isolated after failures and the one
    /// that failed the previous attempt, unless nothing else is left.
    fn select_queue(&self, route: &TopicRoute, last_failed: Option<&str>) -> Option<MessageQueue> {
        let queues = &route.write_queues;
        if queues.is_empty() {
            return None;
        }
        let start = self.inner.next_queue.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let isolated = lock(&self.inner.isolated);
        let usable = |q: &MessageQueue| {
            Some(q.broker_name.as_str()) != last_failed
                && isolated.get(&q.broker_name).is_none_or(|until| *until <= now)
        };
        let picked = (0..queues.len()).map(|i| &queues[(start + i) % queues.len()]).find(|q| usable(q));
        let fallback = (0..queues.len())
            .map(|i| &queues[(start + i) % queues.len()])
            .find(|q| Some(q.broker_name.as_str()) != last_failed);
        picked.or(fallback).or(queues.get(start % queues.len())).cloned()
    }

    fn isolate(&self, broker_name: &str) {
        lock(&self.inner.isolated).insert(broker_name.to_string(), Instant::now() + self.inner.config.isolation);
    }

    /// One send to one queue, waiting for the answer; `batch` is the encoded batch body when
    /// sending a batch.
    async fn send_to(
        &self,
        route: &TopicRoute,
        queue: &MessageQueue,
        message: &Message,
        batch: Option<Bytes>,
        unique_id: String,
    ) -> Result<SendResult> {
        let instance = &self.inner.instance;
        let (addr, cmd) = self.request_for(route, queue, message, batch)?;
        let code = cmd.code;
        let answer = instance.remoting.invoke(&addr, cmd, instance.request_timeout()).await?;
        let status = match answer.code {
            response::SUCCESS => SendStatus::SendOk,
            response::FLUSH_DISK_TIMEOUT => SendStatus::FlushDiskTimeout,
            response::FLUSH_SLAVE_TIMEOUT => SendStatus::FlushSlaveTimeout,
            response::SLAVE_NOT_AVAILABLE => SendStatus::SlaveNotAvailable,
            _ => return Err(broker_error(&addr, code, &answer)),
        };
        let header: SendMessageResponseHeader = answer.header().map_err(|source| ClientError::Header {
            addr: addr.clone(),
            request: "SEND_MESSAGE",
            source,
        })?;
        Ok(SendResult {
            status,
            msg_id: unique_id,
            offset_msg_id: header.msg_id.to_string(),
            queue: MessageQueue {
                topic: message.topic.clone(),
                broker_name: queue.broker_name.clone(),
                queue_id: header.queue_id,
            },
            queue_offset: header.queue_offset,
        })
    }

    /// The body to send and the sysFlag bits that say how: compressed when it is at least
    /// `compress_over` bytes and compressing makes it smaller (Java sends the compressed form
    /// even when it is larger; consumers read either).
    fn packed_body(&self, body: &Bytes) -> (Bytes, i32) {
        let config = &self.inner.config;
        if body.len() < config.compress_over {
            return (body.clone(), 0);
        }
        let packed = wire::message::compress_body(body, config.compress_type, config.compress_level);
        if packed.len() >= body.len() {
            return (body.clone(), 0);
        }
        (packed.into(), config.compress_type.sys_flag())
    }

    /// The broker address and the request for one send.
    fn request_for(
        &self,
        route: &TopicRoute,
        queue: &MessageQueue,
        message: &Message,
        batch: Option<Bytes>,
    ) -> Result<(String, RemotingCommand)> {
        let instance = &self.inner.instance;
        let addr = match route.master_addr(&queue.broker_name) {
            Some(addr) => addr.to_string(),
            None => instance.routes.master_addr(&queue.broker_name).ok_or_else(|| ClientError::NoRoute {
                topic: message.topic.clone(),
                reason: format!("broker {} has no master", queue.broker_name),
            })?,
        };
        let is_batch = batch.is_some();
        let (body, compressed) = match batch {
            Some(batch) => (batch, 0),
            None => self.packed_body(&message.body),
        };
        let header = SendMessageRequestHeader {
            producer_group: self.inner.group_field.clone(),
            topic: message.topic.as_str().into(),
            default_topic: ByteStr::from_static(topic::AUTO_CREATE_TOPIC_KEY),
            default_topic_queue_nums: self.inner.config.default_topic_queue_nums,
            queue_id: queue.queue_id,
            // As Java's producer: a half message of a transaction is marked prepared.
            sys_flag: compressed
                | match message.properties.get(properties::TRANSACTION_PREPARED).map(String::as_str) {
                    Some("true") => wire::message::sys_flag::TRANSACTION_PREPARED_TYPE,
                    _ => 0,
                },
            born_timestamp: now_ms(),
            flag: message.flag,
            properties: Some(message.encoded_properties()),
            reconsume_times: Some(0),
            unit_mode: Some(false),
            batch: Some(is_batch),
            max_reconsume_times: None,
            broker_name: Some(queue.broker_name.as_str().into()),
        };
        let code = if is_batch { request::SEND_BATCH_MESSAGE } else { request::SEND_MESSAGE_V2 };
        let cmd = RemotingCommand::request(code).with_header(SendMessageRequestHeaderV2::from(header)).with_body(body);
        Ok((addr, cmd))
    }
}

/// Failures another attempt may not meet: transport errors and the response codes Java's
/// producer retries on.
fn retryable(error: &ClientError) -> bool {
    match error.response_code() {
        Some(code) => matches!(
            code,
            response::SYSTEM_ERROR
                | response::SYSTEM_BUSY
                | response::TOPIC_NOT_EXIST
                | response::SERVICE_NOT_AVAILABLE
                | response::NO_PERMISSION
                | response::NO_BUYER_ID
                | response::NOT_IN_CURRENT_UNIT
        ),
        None => error.is_transport(),
    }
}

fn no_writable_queue(topic: &str) -> ClientError {
    ClientError::NoRoute { topic: topic.to_string(), reason: "no writable queue on any broker with a master".into() }
}
