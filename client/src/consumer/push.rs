//! The push consumer: queues are shared out among a group's consumers (clustering) or all read
//! by each (broadcasting); each queue owned here has a task that long-polls it and hands the
//! messages to the application's handler, a bounded number at a time.
//!
//! Offsets follow Java's `ProcessQueue`: the offset committed for a queue is that of its
//! oldest message still being handled, or the next one to pull when none is, so a crash
//! re-delivers and never skips (at least once).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use wire::body::{
    self, ConsumeType, ConsumerData, GetConsumerStatusBody, JsonBody, LockBatchRequestBody, LockBatchResponseBody,
    MessageQueue, SubscriptionData, UnlockBatchRequestBody,
};
use wire::code::{request, response};
use wire::header::{
    ConsumeMessageDirectlyResultRequestHeader, ConsumerSendMsgBackRequestHeader, GetConsumerStatusRequestHeader,
    SendMessageRequestHeader, SendMessageRequestHeaderV2,
};
use wire::message::{properties, topic, StoredMessage};
use wire::RemotingCommand;

use super::{offset_file, PullRequest, PullStatus};
use crate::error::{ClientError, Result};
use crate::instance::{local_ip, now_ms, ClientConfig, ClientInstance};
use crate::lock;
use crate::message::MessageExt;
use crate::remoting::ServerRequest;

/// What the handler says of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeResult {
    Success,
    /// Failed: in clustering, the broker delivers it again after the next delay level (and
    /// to `%DLQ%group` after `max_reconsume_times`).
    Later,
}

/// How a group's consumers share a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageModel {
    /// Each queue is read by one consumer of the group; offsets live at the broker.
    Clustering,
    /// Every consumer reads every queue; offsets live in the consumer.
    Broadcasting,
}

/// Where a group with no committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeFrom {
    LastOffset,
    FirstOffset,
    /// The first message stored at or after this time (ms since the epoch).
    Timestamp(i64),
}

/// Push consumer settings, with Java `DefaultMQPushConsumer`'s defaults.
#[derive(Debug, Clone)]
pub struct PushConsumerConfig {
    pub group: String,
    pub client: ClientConfig,
    pub model: MessageModel,
    pub consume_from: ConsumeFrom,
    /// Messages handled at once, across queues (`consumeThreadMax`).
    pub concurrency: usize,
    /// Messages per pull (`pullBatchSize`).
    pub pull_batch_size: i32,
    /// Pulling from a queue pauses while this many of its messages are unfinished
    /// (`pullThresholdForQueue`).
    pub pull_threshold_per_queue: usize,
    /// Deliveries of a failing message before it goes to the DLQ (`maxReconsumeTimes`).
    pub max_reconsume_times: i32,
    /// How long the broker may hold a pull while the queue is empty.
    pub suspend: Duration,
    /// Rebalance period (`rebalanceInterval`); a NOTIFY_CONSUMER_IDS_CHANGED rebalances at once.
    pub rebalance_interval: Duration,
    /// Offset commit period (`persistConsumerOffsetInterval`).
    pub commit_interval: Duration,
    /// Pause after a failed pull (`pullTimeDelayMillsWhenException` is 3 s in Java).
    pub pull_error_delay: Duration,
    /// Orderly consumption (Java's `MessageListenerOrderly`): a queue is consumed only while
    /// this consumer holds its lock at the broker (LOCK_BATCH_MQ, renewed at each rebalance),
    /// one message at a time in queue order; a failed message is handled again here after
    /// `suspend_current_queue` instead of being sent back, so nothing overtakes it.
    pub orderly: bool,
    /// Pause before handling a failed message again in orderly mode.
    pub suspend_current_queue: Duration,
    /// Orderly mode: retries of a failing message before it goes to the group's DLQ (sent to
    /// the retry topic with its retries counted, which the broker turns into the DLQ, as Java's
    /// orderly consumer does). `None`: retry for ever, Java's default for orderly listeners.
    pub orderly_max_reconsume_times: Option<i32>,
    /// Broadcasting: the directory that keeps this consumer's offsets between runs, in
    /// `<dir>/<ip>@<instance_name>/<group>/offsets.json` as Java's `LocalFileOffsetStore`
    /// (`rocketmq.client.localOffsetStoreDir`; `~/.rocketmq_offsets` by default).
    pub offset_store_dir: PathBuf,
    /// Java's `instanceName` as it names the broadcasting offsets file: `DEFAULT` unless two
    /// broadcasting consumers of one group run on one host, which need a name each.
    pub instance_name: String,
}

impl PushConsumerConfig {
    pub fn new(group: impl Into<String>, namesrv_addr: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            client: ClientConfig::new(namesrv_addr),
            model: MessageModel::Clustering,
            consume_from: ConsumeFrom::LastOffset,
            concurrency: 20,
            pull_batch_size: 32,
            pull_threshold_per_queue: 1000,
            max_reconsume_times: 16,
            suspend: Duration::from_secs(15),
            rebalance_interval: Duration::from_secs(20),
            commit_interval: Duration::from_secs(5),
            pull_error_delay: Duration::from_secs(1),
            orderly: false,
            suspend_current_queue: Duration::from_secs(1),
            orderly_max_reconsume_times: None,
            offset_store_dir: offset_file::default_dir(),
            instance_name: "DEFAULT".into(),
        }
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = ConsumeResult> + Send>>;
type Handler = Arc<dyn Fn(MessageExt) -> BoxFuture + Send + Sync>;

/// A push consumer (Java's `DefaultMQPushConsumer` with a concurrent listener).
pub struct PushConsumer {
    inner: Arc<Inner>,
}

struct Inner {
    config: PushConsumerConfig,
    instance: Arc<ClientInstance>,
    /// By topic, the retry topic included in clustering.
    subscriptions: BTreeMap<String, SubscriptionData>,
    handler: Handler,
    permits: Arc<Semaphore>,
    workers: Mutex<BTreeMap<MessageQueue, Worker>>,
    /// Broadcasting keeps offsets here, and in `offset_file` between runs.
    local_offsets: Mutex<BTreeMap<MessageQueue, i64>>,
    /// Broadcasting: the offsets file, and what it holds now.
    offset_file: Option<(PathBuf, Mutex<BTreeMap<MessageQueue, i64>>)>,
    rebalance_now: Arc<Notify>,
    stopping: AtomicBool,
    background: Mutex<Vec<JoinHandle<()>>>,
}

struct Worker {
    progress: Arc<Progress>,
    stop: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Worker {
    fn stop_now(&self) {
        self.progress.stopped.store(true, Ordering::Release);
        self.stop.notify_one();
    }
}

/// What a queue's worker has pulled and what is still being handled.
struct Progress {
    queue: MessageQueue,
    state: Mutex<ProgressState>,
    /// Set when the queue is let go; an orderly worker stops between messages.
    stopped: AtomicBool,
}

#[derive(Default)]
struct ProgressState {
    started: bool,
    next_offset: i64,
    in_flight: BTreeSet<i64>,
    committed: Option<i64>,
}

impl Progress {
    fn commit_point(&self) -> Option<i64> {
        let state = lock(&self.state);
        state.started.then(|| state.in_flight.first().copied().unwrap_or(state.next_offset))
    }

    fn in_flight(&self) -> usize {
        lock(&self.state).in_flight.len()
    }

    fn advance(&self, next_offset: i64, pulled: impl IntoIterator<Item = i64>) {
        let mut state = lock(&self.state);
        state.started = true;
        state.next_offset = next_offset;
        state.in_flight.extend(pulled);
    }

    fn done(&self, offset: i64) {
        lock(&self.state).in_flight.remove(&offset);
    }
}

impl PushConsumer {
    /// Subscribes to `subscriptions` (topic, tag expression) and starts handing messages to
    /// `handler`.
    pub async fn start<F, Fut>(config: PushConsumerConfig, subscriptions: &[(&str, &str)], handler: F) -> Result<Self>
    where
        F: Fn(MessageExt) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ConsumeResult> + Send + 'static,
    {
        if config.group.is_empty() {
            return Err(ClientError::InvalidArgument("the consumer group is empty".into()));
        }
        if subscriptions.is_empty() {
            return Err(ClientError::InvalidArgument("subscribe to at least one topic".into()));
        }
        let version = now_ms();
        let mut subs: BTreeMap<String, SubscriptionData> = subscriptions
            .iter()
            .map(|(t, e)| (t.to_string(), SubscriptionData::from_tag_expression(t, e, version)))
            .collect();
        if config.model == MessageModel::Clustering {
            let retry = topic::retry_topic(&config.group);
            subs.insert(retry.clone(), SubscriptionData::from_tag_expression(&retry, body::SUB_ALL, version));
        }
        let offset_file = match config.model {
            MessageModel::Broadcasting => {
                let client_name = format!("{}@{}", local_ip(), config.instance_name);
                let path = offset_file::path(&config.offset_store_dir, &client_name, &config.group);
                let load_from = path.clone();
                let table = tokio::task::spawn_blocking(move || offset_file::load(&load_from))
                    .await
                    .map_err(|e| ClientError::OffsetFile { path: path.clone(), reason: e.to_string() })??;
                tracing::info!(file = %path.display(), queues = table.len(), "broadcasting offsets loaded");
                Some((path, table))
            }
            MessageModel::Clustering => None,
        };
        let instance = ClientInstance::start(config.client.clone())?;
        let rebalance_now = instance.register_consumer(ConsumerData {
            consume_from_where: match config.consume_from {
                ConsumeFrom::LastOffset => body::ConsumeFromWhere::CONSUME_FROM_LAST_OFFSET,
                ConsumeFrom::FirstOffset => body::ConsumeFromWhere::CONSUME_FROM_FIRST_OFFSET,
                ConsumeFrom::Timestamp(_) => body::ConsumeFromWhere::CONSUME_FROM_TIMESTAMP,
            },
            consume_type: ConsumeType::CONSUME_PASSIVELY,
            group_name: config.group.clone(),
            message_model: match config.model {
                MessageModel::Clustering => body::MessageModel::CLUSTERING,
                MessageModel::Broadcasting => body::MessageModel::BROADCASTING,
            },
            subscription_data_set: subs.values().cloned().collect(),
            unit_mode: false,
        });
        let handler: Handler = Arc::new(move |m| Box::pin(handler(m)) as BoxFuture);
        let inner = Arc::new(Inner {
            permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
            config,
            instance,
            subscriptions: subs,
            handler,
            workers: Mutex::new(BTreeMap::new()),
            local_offsets: Mutex::new(offset_file.as_ref().map(|(_, table)| table.clone()).unwrap_or_default()),
            offset_file: offset_file.map(|(path, table)| (path, Mutex::new(table))),
            rebalance_now,
            stopping: AtomicBool::new(false),
            background: Mutex::new(Vec::new()),
        });
        for topic_name in inner.subscriptions.keys() {
            let fetched = inner.instance.fetch_route(topic_name).await;
            if let Err(e) = &fetched {
                tracing::warn!(topic = %topic_name, error = %e, "no route yet; the next rebalance tries again");
            }
        }
        let weak = Arc::downgrade(&inner);
        inner.instance.register_consumer_hook(
            &inner.config.group,
            Arc::new(move |request: ServerRequest| {
                if let Some(inner) = weak.upgrade() {
                    tokio::spawn(async move { inner.serve(request).await });
                }
            }),
        );
        inner.instance.send_heartbeat().await;
        inner.rebalance().await;
        let tasks = vec![tokio::spawn(rebalance_loop(inner.clone())), tokio::spawn(commit_loop(inner.clone()))];
        lock(&inner.background).extend(tasks);
        Ok(Self { inner })
    }

    pub fn client_id(&self) -> &str {
        &self.inner.instance.client_id
    }

    /// The queues this consumer reads now.
    pub fn assigned_queues(&self) -> Vec<MessageQueue> {
        lock(&self.inner.workers).keys().cloned().collect()
    }

    /// Rebalances now instead of at the next period.
    pub async fn rebalance(&self) {
        self.inner.rebalance().await;
    }

    /// Stops pulling, waits up to `grace` for the handlers in flight, commits the offsets and
    /// unregisters from the brokers, so the group's other consumers take the queues over.
    pub async fn shutdown(&self, grace: Duration) {
        let inner = &self.inner;
        inner.stopping.store(true, Ordering::Release);
        for task in lock(&inner.background).drain(..) {
            task.abort();
        }
        let workers: Vec<Worker> = std::mem::take(&mut *lock(&inner.workers)).into_values().collect();
        for worker in &workers {
            worker.stop_now();
        }
        let deadline = tokio::time::Instant::now() + grace;
        let mut released = BTreeSet::new();
        for worker in workers {
            let _ = tokio::time::timeout_at(deadline, worker.task).await;
            while !inner.config.orderly && worker.progress.in_flight() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            inner.commit(&worker.progress).await;
            released.insert(worker.progress.queue.clone());
        }
        inner.store_local_offsets().await;
        if inner.config.orderly {
            inner.unlock_queues(&released).await;
        }
        inner.instance.shutdown().await;
    }
}

impl Drop for PushConsumer {
    /// Without [`PushConsumer::shutdown`], the background work stops and nothing is committed:
    /// the unfinished messages are delivered again.
    fn drop(&mut self) {
        self.inner.stopping.store(true, Ordering::Release);
        for task in lock(&self.inner.background).drain(..) {
            task.abort();
        }
        for (_, worker) in std::mem::take(&mut *lock(&self.inner.workers)) {
            worker.task.abort();
        }
    }
}

impl Inner {
    /// A broker's request about this group.
    async fn serve(self: Arc<Self>, request: ServerRequest) {
        let command = &request.command;
        match command.code {
            request::RESET_CONSUMER_CLIENT_OFFSET => match body::ResetOffsetBody::decode(&command.body) {
                Ok(reset) => self.reset_offsets(reset.offset_table).await,
                Err(e) => tracing::warn!(broker = %request.addr, error = %e, "unreadable offset reset ignored"),
            },
            request::GET_CONSUMER_RUNNING_INFO => {
                let answer = RemotingCommand::response_to(command, response::SUCCESS).with_body(self.running_info());
                request.reply(answer);
            }
            request::GET_CONSUMER_STATUS_FROM_CLIENT => {
                let answer = match command.header::<GetConsumerStatusRequestHeader>() {
                    Ok(h) => {
                        let body = GetConsumerStatusBody {
                            message_queue_table: self.offsets_on(h.topic.as_str()),
                            ..Default::default()
                        };
                        RemotingCommand::response_to(command, response::SUCCESS).with_body(body.encode_fastjson())
                    }
                    Err(e) => RemotingCommand::response_to(command, response::SYSTEM_ERROR).with_remark(e.to_string()),
                };
                request.reply(answer);
            }
            request::CONSUME_MESSAGE_DIRECTLY => {
                let answer = match self.consume_directly(command).await {
                    Ok(result) => RemotingCommand::response_to(command, response::SUCCESS).with_body(result),
                    Err(reason) => RemotingCommand::response_to(command, response::SYSTEM_ERROR).with_remark(reason),
                };
                request.reply(answer);
            }
            code if !command.is_oneway() => {
                let answer = RemotingCommand::response_to(command, response::REQUEST_CODE_NOT_SUPPORTED)
                    .with_remark(format!("request code {code} not supported by this consumer"));
                request.reply(answer);
            }
            _ => {}
        }
    }

    /// RESET_CONSUMER_CLIENT_OFFSET: the queues named start again at the given offsets. Their
    /// workers stop without committing (that would undo the reset) and start over from there.
    async fn reset_offsets(self: &Arc<Self>, table: BTreeMap<MessageQueue, i64>) {
        let stopped: Vec<Worker> = {
            let mut workers = lock(&self.workers);
            table.keys().filter_map(|q| workers.remove(q)).collect()
        };
        for worker in &stopped {
            worker.stop_now();
            worker.task.abort();
        }
        for (queue, offset) in &table {
            match self.config.model {
                MessageModel::Broadcasting => drop(lock(&self.local_offsets).insert(queue.clone(), *offset)),
                MessageModel::Clustering if stopped.iter().any(|w| &w.progress.queue == queue) => {
                    if let Err(e) = super::update_offset(&self.instance, &self.config.group, queue, *offset).await {
                        tracing::warn!(?queue, offset, error = %e, "reset offset not committed");
                    }
                }
                MessageModel::Clustering => {}
            }
        }
        tracing::info!(queues = table.len(), "consumer offsets reset by the broker");
        self.rebalance().await;
    }

    /// This consumer's offsets on `topic`'s queues (GET_CONSUMER_STATUS_FROM_CLIENT, Java's
    /// `cloneOffsetTable`): where each queue it reads would be committed now, and in
    /// broadcasting also the kept offsets of queues it no longer reads.
    fn offsets_on(&self, topic: &str) -> BTreeMap<MessageQueue, i64> {
        let mut table: BTreeMap<MessageQueue, i64> = match self.config.model {
            MessageModel::Broadcasting => lock(&self.local_offsets).clone(),
            MessageModel::Clustering => BTreeMap::new(),
        };
        for (queue, worker) in lock(&self.workers).iter() {
            if let Some(offset) = worker.progress.commit_point() {
                table.insert(queue.clone(), offset);
            }
        }
        table.retain(|queue, _| queue.topic == topic);
        table
    }

    /// CONSUME_MESSAGE_DIRECTLY (`mqadmin queryMsgById -g -d`, the dashboard's "resend"): the
    /// handler gets the message the broker sent along, outside of any queue's progress, and the
    /// answer says how it went (Java's `ConsumeMessageDirectlyResult`). Nothing is committed or
    /// sent back, whatever the handler says, as in Java.
    async fn consume_directly(&self, command: &RemotingCommand) -> Result<Vec<u8>, String> {
        let header: ConsumeMessageDirectlyResultRequestHeader = command.header().map_err(|e| e.to_string())?;
        if header.consumer_group.as_str() != self.config.group {
            return Err(format!("The Consumer Group <{}> not exist in this consumer", header.consumer_group));
        }
        let (stored, _) = StoredMessage::decode(&command.body, false).map_err(|e| format!("the message sent: {e}"))?;
        let broker_name = header.broker_name.as_ref().map_or("", |n| n.as_str());
        let message = MessageExt::decompressed(stored, broker_name).map_err(|e| format!("the message sent: {e}"))?;
        let began = std::time::Instant::now();
        let handler = self.handler.clone();
        // A panicking handler is reported, as Java reports a listener's exception.
        let outcome = tokio::spawn(async move { handler(message).await }).await;
        let (consume_result, remark) = match outcome {
            Ok(ConsumeResult::Success) => ("CR_SUCCESS", None),
            Ok(ConsumeResult::Later) => ("CR_LATER", None),
            Err(e) => ("CR_THROW_EXCEPTION", Some(e.to_string())),
        };
        let result = serde_json::json!({
            "order": self.config.orderly,
            "autoCommit": true,
            "consumeResult": consume_result,
            "remark": remark,
            "spentTimeMills": began.elapsed().as_millis() as u64,
        });
        Ok(serde_json::to_vec(&result).unwrap_or_default())
    }

    /// GET_CONSUMER_RUNNING_INFO: Java's `ConsumerRunningInfo` (properties, subscriptions and,
    /// per queue, the commit offset and what is cached).
    fn running_info(&self) -> Vec<u8> {
        let mut mq_table = serde_json::Map::new();
        for (queue, worker) in lock(&self.workers).iter() {
            let commit_offset = worker.progress.commit_point().unwrap_or(-1);
            let state = lock(&worker.progress.state);
            let info = serde_json::json!({
                "commitOffset": commit_offset,
                "cachedMsgCount": state.in_flight.len(),
                "cachedMsgMinOffset": state.in_flight.first().copied().unwrap_or(0),
                "cachedMsgMaxOffset": state.in_flight.last().copied().unwrap_or(0),
                "locked": self.config.orderly,
                "droped": false,
            });
            drop(state);
            mq_table.insert(serde_json::to_string(queue).unwrap_or_default(), info);
        }
        let info = serde_json::json!({
            "properties": {
                "consumerGroup": self.config.group,
                "consumeType": "CONSUME_PASSIVELY",
                "messageModel": match self.config.model {
                    MessageModel::Clustering => "CLUSTERING",
                    MessageModel::Broadcasting => "BROADCASTING",
                },
                "PROP_CONSUMEORDERLY": self.config.orderly.to_string(),
                "PROP_CLIENT_VERSION": "V4_9_8",
                "PROP_NAMESERVER_ADDR": self.config.client.namesrv_addr,
                "PROP_THREADPOOL_CORE_SIZE": self.config.concurrency.to_string(),
            },
            "subscriptionSet": self.subscriptions.values().collect::<Vec<_>>(),
            "mqTable": mq_table,
            "statusTable": {},
            "jstack": "",
        });
        wire::body::fastjson::to_vec_fastjson(&info)
    }

    /// Takes the queues this consumer should own and lets go of the rest.
    async fn rebalance(self: &Arc<Self>) {
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        let mut wanted = BTreeSet::new();
        for topic_name in self.subscriptions.keys() {
            match self.allocate(topic_name).await {
                Ok(queues) => wanted.extend(queues),
                Err(e) => {
                    // Keep what we have for this topic rather than drop it on a passing failure.
                    tracing::debug!(topic = %topic_name, error = %e, "rebalance skipped the topic");
                    wanted.extend(lock(&self.workers).keys().filter(|q| &q.topic == topic_name).cloned());
                }
            }
        }
        if self.config.orderly {
            // Only queues whose lock we hold (newly taken or renewed) are consumed.
            wanted = self.lock_queues(&wanted).await;
        }
        let removed: Vec<Worker> = {
            let mut workers = lock(&self.workers);
            let gone: Vec<MessageQueue> = workers.keys().filter(|q| !wanted.contains(*q)).cloned().collect();
            gone.iter().filter_map(|q| workers.remove(q)).collect()
        };
        for worker in removed {
            tracing::info!(queue = ?worker.progress.queue, "queue handed over");
            worker.stop_now();
            let inner = self.clone();
            tokio::spawn(async move {
                let _ = worker.task.await;
                inner.commit(&worker.progress).await;
                if inner.config.orderly {
                    inner.unlock_queues(&BTreeSet::from([worker.progress.queue.clone()])).await;
                }
            });
        }
        let mut workers = lock(&self.workers);
        for queue in wanted {
            if workers.contains_key(&queue) {
                continue;
            }
            tracing::info!(?queue, "queue taken");
            let progress = Arc::new(Progress {
                queue: queue.clone(),
                state: Mutex::new(ProgressState::default()),
                stopped: AtomicBool::new(false),
            });
            let stop = Arc::new(Notify::new());
            let task = tokio::spawn(run_queue(self.clone(), progress.clone(), stop.clone()));
            workers.insert(queue, Worker { progress, stop, task });
        }
    }

    /// LOCK_BATCH_MQ at each queue's broker; returns the queues this client holds now.
    async fn lock_queues(&self, queues: &BTreeSet<MessageQueue>) -> BTreeSet<MessageQueue> {
        let mut locked = BTreeSet::new();
        for (broker_name, mq_set) in by_broker(queues) {
            let body = LockBatchRequestBody {
                client_id: self.instance.client_id.clone(),
                consumer_group: self.config.group.clone(),
                mq_set,
            };
            match self.queue_lock_call(&broker_name, request::LOCK_BATCH_MQ, body.encode()).await {
                Ok(answer) => match LockBatchResponseBody::decode(&answer.body) {
                    Ok(response) => locked.extend(response.lock_ok_mq_set),
                    Err(e) => tracing::warn!(broker = %broker_name, error = %e, "bad LOCK_BATCH_MQ answer"),
                },
                Err(e) => tracing::warn!(broker = %broker_name, error = %e, "queue lock failed"),
            }
        }
        locked
    }

    /// UNLOCK_BATCH_MQ at each queue's broker, so another consumer can take them at once.
    async fn unlock_queues(&self, queues: &BTreeSet<MessageQueue>) {
        for (broker_name, mq_set) in by_broker(queues) {
            let body = UnlockBatchRequestBody {
                client_id: self.instance.client_id.clone(),
                consumer_group: self.config.group.clone(),
                mq_set,
            };
            if let Err(e) = self.queue_lock_call(&broker_name, request::UNLOCK_BATCH_MQ, body.encode()).await {
                tracing::warn!(broker = %broker_name, error = %e, "queue unlock failed; the lock lapses in 60 s");
            }
        }
    }

    async fn queue_lock_call(&self, broker_name: &str, code: i32, body: Vec<u8>) -> Result<RemotingCommand> {
        let addr = self.instance.routes.master_addr(broker_name).ok_or_else(|| ClientError::NoRoute {
            topic: String::new(),
            reason: format!("broker {broker_name} has no master"),
        })?;
        self.instance.call(&addr, RemotingCommand::request(code).with_body(body)).await
    }

    /// Runs the handler on `message` until it succeeds, pausing between attempts; false when
    /// the queue was let go first (the message stays unfinished, for the next owner).
    async fn consume_orderly(&self, progress: &Progress, message: &MessageExt) -> bool {
        let mut attempt = message.clone();
        loop {
            let handler = self.handler.clone();
            let this_try = attempt.clone();
            let result = tokio::spawn(async move { handler(this_try).await }).await.unwrap_or(ConsumeResult::Later);
            if result == ConsumeResult::Success {
                return true;
            }
            if progress.stopped.load(Ordering::Acquire) || self.stopping.load(Ordering::Acquire) {
                return false;
            }
            if let Some(max) = self.config.orderly_max_reconsume_times {
                if attempt.stored.reconsume_times >= max {
                    match self.give_up(&attempt).await {
                        Ok(()) => return true,
                        Err(e) => {
                            tracing::warn!(msg_id = %attempt.msg_id(), error = %e, "dead-lettering failed; retrying")
                        }
                    }
                } else {
                    attempt.stored.reconsume_times += 1;
                }
            }
            tokio::time::sleep(self.config.suspend_current_queue).await;
        }
    }

    /// An orderly consumer gives up on a message: it goes to the retry topic with its retries
    /// counted, which the broker turns into the DLQ (Java's `ConsumeMessageOrderlyService`
    /// `sendMessageBack`).
    async fn give_up(&self, message: &MessageExt) -> Result<()> {
        let queue = MessageQueue {
            topic: message.stored_topic().to_string(),
            broker_name: message.broker_name.clone(),
            queue_id: message.queue_id(),
        };
        let addr = super::broker_addr(&self.instance, &queue).await?;
        let mut props = message.stored.properties.as_str().to_owned();
        if properties::get(&props, properties::RETRY_TOPIC).is_none() {
            props = properties::with(&props, properties::RETRY_TOPIC, message.topic());
        }
        if properties::get(&props, properties::ORIGIN_MESSAGE_ID).is_none() {
            props = properties::with(&props, properties::ORIGIN_MESSAGE_ID, &message.msg_id());
        }
        props = properties::without(&props, properties::TRANSACTION_PREPARED);
        let reconsume_times = message.stored.reconsume_times;
        props = properties::with(&props, properties::DELAY_TIME_LEVEL, &(3 + reconsume_times).to_string());
        let header = SendMessageRequestHeader {
            producer_group: self.config.group.as_str().into(),
            topic: topic::retry_topic(&self.config.group).as_str().into(),
            default_topic: topic::AUTO_CREATE_TOPIC_KEY.into(),
            default_topic_queue_nums: 1,
            queue_id: 0,
            sys_flag: 0,
            born_timestamp: now_ms(),
            flag: message.stored.flag,
            properties: Some(props.as_str().into()),
            reconsume_times: Some(reconsume_times),
            unit_mode: Some(false),
            batch: Some(false),
            max_reconsume_times: self.config.orderly_max_reconsume_times,
            broker_name: Some(message.broker_name.as_str().into()),
        };
        let cmd = RemotingCommand::request(request::SEND_MESSAGE_V2)
            .with_header(SendMessageRequestHeaderV2::from(header))
            .with_body(message.body().clone());
        self.instance.call(&addr, cmd).await.map(|_| ())
    }

    /// This consumer's share of `topic_name`'s queues.
    async fn allocate(&self, topic_name: &str) -> Result<Vec<MessageQueue>> {
        let route = self.instance.fetch_route(topic_name).await?.ok_or_else(|| ClientError::NoRoute {
            topic: topic_name.into(),
            reason: "the name servers know no such topic".into(),
        })?;
        let queues = route.read_queues.clone();
        if self.config.model == MessageModel::Broadcasting {
            return Ok(queues);
        }
        let addr = route.master_addrs().next().map(str::to_string).ok_or_else(|| ClientError::NoRoute {
            topic: topic_name.into(),
            reason: "no broker has a master".into(),
        })?;
        let mut ids = super::consumer_ids(&self.instance, &addr, &self.config.group).await?;
        ids.sort();
        Ok(allocate_averagely(&queues, &ids, &self.instance.client_id))
    }

    /// Where a queue's consumption starts: the committed offset, else by `consume_from`.
    async fn start_offset(&self, queue: &MessageQueue) -> Result<i64> {
        let committed = match self.config.model {
            MessageModel::Clustering => super::query_offset(&self.instance, &self.config.group, queue).await?,
            MessageModel::Broadcasting => lock(&self.local_offsets).get(queue).copied(),
        };
        if let Some(offset) = committed.filter(|o| *o >= 0) {
            return Ok(offset);
        }
        let is_retry = queue.topic.starts_with(topic::RETRY_GROUP_TOPIC_PREFIX);
        match self.config.consume_from {
            _ if is_retry => Ok(0),
            ConsumeFrom::LastOffset => super::max_offset(&self.instance, queue).await,
            ConsumeFrom::FirstOffset => super::min_offset(&self.instance, queue).await,
            ConsumeFrom::Timestamp(ms) => super::search_offset(&self.instance, queue, ms).await,
        }
    }

    /// Broadcasting: writes the offsets to the offsets file when they changed since it was
    /// last written. A failure is logged and tried again next period.
    async fn store_local_offsets(&self) {
        let Some((path, stored)) = &self.offset_file else { return };
        let table = lock(&self.local_offsets).clone();
        if *lock(stored) == table {
            return;
        }
        let (at, written) = (path.clone(), table.clone());
        match tokio::task::spawn_blocking(move || offset_file::store(&at, &written)).await {
            Ok(Ok(())) => *lock(stored) = table,
            Ok(Err(e)) => tracing::warn!(error = %e, "broadcasting offsets not stored"),
            Err(e) => tracing::warn!(file = %path.display(), error = %e, "broadcasting offsets not stored"),
        }
    }

    async fn commit(&self, progress: &Progress) {
        let Some(offset) = progress.commit_point() else { return };
        if lock(&progress.state).committed == Some(offset) {
            return;
        }
        let stored = match self.config.model {
            MessageModel::Broadcasting => {
                lock(&self.local_offsets).insert(progress.queue.clone(), offset);
                Ok(())
            }
            MessageModel::Clustering => {
                super::update_offset(&self.instance, &self.config.group, &progress.queue, offset).await
            }
        };
        match stored {
            Ok(()) => lock(&progress.state).committed = Some(offset),
            Err(e) => tracing::warn!(queue = ?progress.queue, offset, error = %e, "offset commit failed"),
        }
    }

    /// Asks the broker to deliver `message` again later (CONSUMER_SEND_MSG_BACK).
    async fn send_back(&self, message: &MessageExt) -> Result<()> {
        let addr = super::broker_addr(
            &self.instance,
            &MessageQueue {
                topic: message.stored_topic().to_string(),
                broker_name: message.broker_name.clone(),
                queue_id: message.queue_id(),
            },
        )
        .await?;
        let header = ConsumerSendMsgBackRequestHeader {
            offset: message.stored.physical_offset,
            group: self.config.group.as_str().into(),
            delay_level: 0,
            origin_msg_id: Some(message.msg_id().into()),
            origin_topic: Some(message.topic().into()),
            unit_mode: Some(false),
            max_reconsume_times: Some(self.config.max_reconsume_times),
        };
        let cmd = RemotingCommand::request(request::CONSUMER_SEND_MSG_BACK).with_header(&header);
        self.instance.call(&addr, cmd).await.map(|_| ())
    }

    /// Runs the handler on one message until it is done with: handled, sent back, or (when the
    /// broker cannot take it back) handled again here after a pause.
    async fn consume(&self, message: MessageExt) {
        loop {
            let handler = self.handler.clone();
            let attempt = message.clone();
            // A panicking handler counts as a failure, not as the end of the consumer.
            let result = tokio::spawn(async move { handler(attempt).await }).await.unwrap_or(ConsumeResult::Later);
            if result == ConsumeResult::Success || self.config.model == MessageModel::Broadcasting {
                return;
            }
            match self.send_back(&message).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(msg_id = %message.msg_id(), error = %e, "send back failed; consuming again here");
                    if self.stopping.load(Ordering::Acquire) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

async fn run_queue(inner: Arc<Inner>, progress: Arc<Progress>, stop: Arc<Notify>) {
    let queue = progress.queue.clone();
    let Some(subscription) = inner.subscriptions.get(&queue.topic).cloned() else { return };
    let config = &inner.config;
    let mut offset = loop {
        let attempt = tokio::select! {
            offset = inner.start_offset(&queue) => offset,
            _ = stop.notified() => return,
        };
        match attempt {
            Ok(offset) => break offset,
            Err(e) => {
                tracing::warn!(?queue, error = %e, "start offset unknown; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(config.pull_error_delay) => {}
                    _ = stop.notified() => return,
                }
            }
        }
    };
    progress.advance(offset, []);
    loop {
        if progress.in_flight() >= config.pull_threshold_per_queue {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
                _ = stop.notified() => return,
            }
        }
        let commit = match config.model {
            MessageModel::Clustering => progress.commit_point(),
            MessageModel::Broadcasting => None,
        };
        let request = PullRequest {
            queue: &queue,
            subscription: &subscription,
            offset,
            max_nums: config.pull_batch_size,
            suspend: Some(config.suspend),
            commit_offset: commit,
        };
        let pulled = tokio::select! {
            pulled = super::pull(&inner.instance, &config.group, request) => pulled,
            _ = stop.notified() => return,
        };
        let result = match pulled {
            Ok(result) => result,
            Err(e) => {
                tracing::debug!(?queue, error = %e, "pull failed");
                tokio::select! {
                    _ = tokio::time::sleep(config.pull_error_delay) => continue,
                    _ = stop.notified() => return,
                }
            }
        };
        if result.status == PullStatus::OffsetIllegal {
            tracing::warn!(?queue, offset, next = result.next_begin_offset, "offset out of range; moved");
        }
        offset = result.next_begin_offset;
        progress.advance(offset, result.messages.iter().map(MessageExt::queue_offset));
        if config.orderly {
            for message in result.messages {
                if progress.stopped.load(Ordering::Acquire) || !inner.consume_orderly(&progress, &message).await {
                    return;
                }
                progress.done(message.queue_offset());
            }
            continue;
        }
        for message in result.messages {
            let permit = tokio::select! {
                permit = inner.permits.clone().acquire_owned() => permit,
                _ = stop.notified() => return,
            };
            let Ok(permit) = permit else { return };
            let inner = inner.clone();
            let progress = progress.clone();
            tokio::spawn(async move {
                let queue_offset = message.queue_offset();
                inner.consume(message).await;
                progress.done(queue_offset);
                drop(permit);
            });
        }
    }
}

async fn rebalance_loop(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(inner.config.rebalance_interval) => {}
            _ = inner.rebalance_now.notified() => {}
        }
        inner.rebalance().await;
    }
}

async fn commit_loop(inner: Arc<Inner>) {
    loop {
        tokio::time::sleep(inner.config.commit_interval).await;
        let progresses: Vec<Arc<Progress>> = lock(&inner.workers).values().map(|w| w.progress.clone()).collect();
        for progress in progresses {
            inner.commit(&progress).await;
        }
        inner.store_local_offsets().await;
    }
}

fn by_broker(queues: &BTreeSet<MessageQueue>) -> BTreeMap<String, BTreeSet<MessageQueue>> {
    let mut grouped: BTreeMap<String, BTreeSet<MessageQueue>> = BTreeMap::new();
    for queue in queues {
        grouped.entry(queue.broker_name.clone()).or_default().insert(queue.clone());
    }
    grouped
}

/// Java's `AllocateMessageQueueAveragely`: consecutive runs of queues, the first
/// `queues % consumers` consumers taking one more. `queues` and `consumer_ids` sorted.
pub(crate) fn allocate_averagely(queues: &[MessageQueue], consumer_ids: &[String], me: &str) -> Vec<MessageQueue> {
    let Some(index) = consumer_ids.iter().position(|c| c == me) else { return Vec::new() };
    let (n, c) = (queues.len(), consumer_ids.len());
    if n == 0 {
        return Vec::new();
    }
    let rem = n % c;
    let average = if n <= c {
        1
    } else if rem > 0 && index < rem {
        n / c + 1
    } else {
        n / c
    };
    let start = if rem > 0 && index < rem { index * average } else { index * average + rem };
    let range = average.min(n.saturating_sub(start));
    (0..range).map(|i| queues[(start + i) % n].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(n: i32) -> Vec<MessageQueue> {
        (0..n).map(|i| MessageQueue { topic: "T".into(), broker_name: "b".into(), queue_id: i }).collect()
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    fn owned(q: &[MessageQueue], c: &[String], me: usize) -> Vec<i32> {
        allocate_averagely(q, c, &c[me]).iter().map(|q| q.queue_id).collect()
    }

    #[test]
    fn average_allocation_matches_java() {
        // 8 queues, 3 consumers: 3, 3, 2.
        let (q, c) = (queues(8), ids(3));
        assert_eq!(owned(&q, &c, 0), vec![0, 1, 2]);
        assert_eq!(owned(&q, &c, 1), vec![3, 4, 5]);
        assert_eq!(owned(&q, &c, 2), vec![6, 7]);
        // More consumers than queues: the last ones get nothing.
        let (q, c) = (queues(2), ids(3));
        assert_eq!(owned(&q, &c, 0), vec![0]);
        assert_eq!(owned(&q, &c, 1), vec![1]);
        assert!(owned(&q, &c, 2).is_empty());
        // Every queue owned exactly once.
        for (nq, nc) in [(16, 5), (4, 4), (7, 2), (1, 1)] {
            let (q, c) = (queues(nq), ids(nc));
            let mut all: Vec<i32> = (0..nc).flat_map(|i| owned(&q, &c, i)).collect();
            all.sort();
            assert_eq!(all, (0..nq).collect::<Vec<_>>());
        }
        assert!(allocate_averagely(&queues(4), &ids(2), "stranger").is_empty());
    }
}
