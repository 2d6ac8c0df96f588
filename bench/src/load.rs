//! The load itself: producers sending on a schedule, a push consumer receiving, a reporter that
//! drains their tallies every 100 ms, prints a progress line every second and decides when
//! the run ends.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::{
    Admin, ClientConfig, ClientError, ConsumeFrom, ConsumeResult, Message, MessageExt, Producer, ProducerConfig,
    PushConsumer, PushConsumerConfig, SendResult, SendStatus, SerializeType, Target, TopicSpec,
};
use tokio::sync::{watch, Semaphore};

use crate::error::{BenchError, Result};
use crate::pace::Pacer;
use crate::report::{ConsumeFigures, ProcessFigures, ProduceFigures, Report, Scenario};
use crate::stamp::{self, Clock, Stamp};
use crate::stats::{ms, Percentiles, SharedTally, Tally};
use crate::usage::{self, Usage};

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Produce,
    Consume,
    /// Produce and consume in one process: end-to-end latency from intended send to delivery.
    EndToEnd,
}

impl Command {
    fn name(self) -> &'static str {
        match self {
            Command::Produce => "produce",
            Command::Consume => "consume",
            Command::EndToEnd => "e2e",
        }
    }

    fn produces(self) -> bool {
        self != Command::Consume
    }

    fn consumes(self) -> bool {
        self != Command::Produce
    }
}

/// How each producer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendMode {
    /// One send at a time, each waiting for its answer.
    Sync,
    /// Up to `inflight` sends outstanding per producer.
    Async,
    /// No answer asked for; the latency is the time to hand the frame to the connection.
    Oneway,
}

impl SendMode {
    fn name(self) -> &'static str {
        match self {
            SendMode::Sync => "sync",
            SendMode::Async => "async",
            SendMode::Oneway => "oneway",
        }
    }
}

/// Everything a run needs to know.
#[derive(Debug, Clone)]
pub struct Load {
    pub command: Command,
    pub namesrv: String,
    pub topic: String,
    /// Queues a missing topic is created with.
    pub queues: i32,
    pub size: usize,
    pub producers: usize,
    /// Client connections the producers share (each its own client instance).
    pub connections: usize,
    /// Outstanding sends per producer in async mode.
    pub inflight: usize,
    /// Sends per second offered by all producers together; 0 = as fast as possible.
    pub rate: f64,
    pub duration: Duration,
    /// Stop after this many messages (sent, or received by `consume`) instead of `duration`.
    pub count: Option<u64>,
    pub batch: usize,
    pub mode: SendMode,
    pub tags: Option<String>,
    pub serialize: SerializeType,
    pub warmup: Duration,
    pub request_timeout: Duration,
    pub group: String,
    pub from_beginning: bool,
    /// Messages the push consumer handles at once.
    pub consumers: usize,
    pub pull_batch: i32,
    /// Broker processes whose CPU and memory to report.
    pub broker_pids: Vec<u32>,
    pub embedded: bool,
    /// Print the progress line every second.
    pub progress: bool,
}

impl Load {
    pub fn validate(&self) -> Result<()> {
        let invalid = |m: &str| Err(BenchError::Invalid(m.to_string()));
        if self.command.produces() {
            if self.producers == 0 || self.connections == 0 || self.batch == 0 || self.inflight == 0 {
                return invalid("--producers, --connections, --batch and --inflight must be at least 1");
            }
            if self.size == 0 {
                return invalid("--size must be at least 1 byte");
            }
            if self.mode == SendMode::Oneway && self.batch > 1 {
                return invalid("oneway sends carry one message each; drop --batch or use --mode sync|async");
            }
            if self.rate.is_nan() || self.rate < 0.0 {
                return invalid("--rate must be 0 (unpaced) or a positive number of sends per second");
            }
        }
        if self.command == Command::EndToEnd && self.size < stamp::STAMP_LEN {
            return Err(BenchError::Invalid(format!(
                "e2e needs bodies of at least {} bytes to carry their send time",
                stamp::STAMP_LEN
            )));
        }
        if self.count == Some(0) {
            return invalid("--count must be at least 1");
        }
        Ok(())
    }

    fn client_config(&self) -> ClientConfig {
        ClientConfig {
            request_timeout: self.request_timeout,
            serialize_type: self.serialize,
            ..ClientConfig::new(self.namesrv.clone())
        }
    }

    fn scenario(&self) -> Scenario {
        Scenario {
            command: self.command.name().into(),
            namesrv: self.namesrv.clone(),
            topic: self.topic.clone(),
            size: self.size,
            producers: if self.command.produces() { self.producers } else { 0 },
            connections: self.connections,
            rate: self.rate,
            batch: self.batch,
            mode: self.mode.name().into(),
            serialize: format!("{:?}", self.serialize).to_lowercase(),
            tags: self.tags.clone(),
            warmup_s: self.warmup.as_secs_f64(),
            embedded: self.embedded,
        }
    }
}

/// State the reporter and every sender share.
struct Shared {
    load: Load,
    clock: Clock,
    run: u32,
    /// Sends handed out so far; a sender stops when it draws one at or past `limit`.
    tickets: AtomicU64,
    limit: AtomicU64,
    /// The first ticket of the measured phase: a send counts in the figures when it was drawn
    /// after warm-up, whenever it completes, so `--count` is exact.
    measure_from: AtomicU64,
    /// Deliveries count in the figures from when this is set.
    measuring: AtomicBool,
    /// Messages acknowledged and delivered over the whole run, warm-up included, to find
    /// messages that never arrived.
    acked: AtomicU64,
    delivered: AtomicU64,
    running: AtomicUsize,
}

impl Shared {
    fn new(load: Load) -> Self {
        Shared {
            load,
            clock: Clock::new(),
            run: run_id(),
            tickets: AtomicU64::new(0),
            limit: AtomicU64::new(u64::MAX),
            measure_from: AtomicU64::new(u64::MAX),
            measuring: AtomicBool::new(false),
            acked: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            running: AtomicUsize::new(0),
        }
    }

    /// Ends the warm-up: from here on sends and deliveries count, and `--count` sends are
    /// handed out.
    fn begin_measuring(&self) {
        let issued = self.tickets.load(Ordering::SeqCst);
        if let (Some(count), true) = (self.load.count, self.load.command.produces()) {
            let sends = count.div_ceil(self.load.batch as u64);
            self.limit.store(issued.saturating_add(sends), Ordering::SeqCst);
        }
        self.measure_from.store(issued, Ordering::SeqCst);
        self.measuring.store(true, Ordering::SeqCst);
    }
}

/// A sender's or the consumer's tallies: warm-up results only feed the progress line.
#[derive(Clone, Default)]
struct Phased {
    warmup: SharedTally,
    measured: SharedTally,
}

impl Phased {
    fn pick(&self, measured: bool) -> &SharedTally {
        if measured {
            &self.measured
        } else {
            &self.warmup
        }
    }
}

/// Resource use of the broker processes and of this one.
#[derive(Clone)]
struct Snapshot {
    brokers: Vec<Option<Usage>>,
    bench: Option<Usage>,
}

impl Snapshot {
    fn take(load: &Load) -> Self {
        Self { brokers: load.broker_pids.iter().map(|pid| usage::of(*pid)).collect(), bench: usage::of_self() }
    }
}

/// CPU spent between two snapshots per message handled, and memory at the end.
fn cost(before: &[Option<Usage>], after: &[Option<Usage>], handled: u64) -> Option<ProcessFigures> {
    if before.is_empty() {
        return None;
    }
    let mut cpu = Duration::ZERO;
    let mut rss = 0;
    for (b, a) in before.iter().zip(after) {
        let (b, a) = ((*b)?, (*a)?);
        cpu += a.cpu.saturating_sub(b.cpu);
        rss += a.rss_bytes;
    }
    Some(ProcessFigures {
        cpu_s: cpu.as_secs_f64(),
        cpu_us_per_msg: if handled == 0 { 0.0 } else { cpu.as_secs_f64() * 1e6 / handled as f64 },
        rss_mb: rss as f64 / 1e6,
    })
}

/// Runs the load and returns its figures.
pub async fn run(load: Load) -> Result<Report> {
    load.validate()?;
    let admin = Admin::start(load.client_config())?;
    wait_for_brokers(&admin).await?;
    if load.command.produces() {
        ensure_topic(&admin, &load.topic, load.queues).await?;
    }
    admin.shutdown().await;

    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared::new(load));
    let load = &shared.load;
    let mut baseline = None;
    if load.warmup.is_zero() {
        baseline = Some(Snapshot::take(load));
        shared.begin_measuring();
    }

    let received = Phased::default();
    let consumer = match load.command.consumes() {
        true => Some(start_consumer(&shared, received.clone()).await?),
        false => None,
    };

    let mut producers = Vec::new();
    let mut sent = Vec::new();
    let mut workers = Vec::new();
    if load.command.produces() {
        for n in 0..load.connections {
            let mut config = ProducerConfig::new("apogee-bench-producer", load.namesrv.clone());
            config.client = load.client_config();
            let producer = Producer::start(config)?;
            // Route and connection before the clock starts.
            producer.queues(&load.topic).await?;
            tracing::debug!(connection = n, client = producer.client_id(), "producer ready");
            producers.push(producer);
        }
        let start = Instant::now();
        for index in 0..load.producers {
            let tally = Phased::default();
            sent.push(tally.clone());
            let pacer = Pacer::new(start, load.rate, index, load.producers);
            let producer = producers[index % producers.len()].clone();
            shared.running.fetch_add(1, Ordering::SeqCst);
            workers.push(tokio::spawn(send_loop(shared.clone(), producer, pacer, tally, stop_rx.clone())));
        }
    }

    let mut reporter = Reporter { shared: shared.clone(), sent, received, baseline, totals: Default::default() };
    let elapsed = reporter.run(stop_tx, workers).await;
    let mut missing = None;
    if load.command == Command::EndToEnd {
        missing = Some(wait_for_delivery(&shared).await);
        reporter.drain();
    }
    let after = Snapshot::take(load);
    if let Some(consumer) = consumer {
        consumer.shutdown(Duration::from_secs(1)).await;
    }
    for producer in &producers {
        producer.shutdown().await;
    }
    let (sent, received) = &reporter.totals;
    let baseline = reporter.baseline.unwrap_or_else(|| after.clone());
    let handled = sent.messages + received.messages;
    let seconds = elapsed.as_secs_f64().max(1e-9);
    Ok(Report {
        scenario: load.scenario(),
        elapsed_s: elapsed.as_secs_f64(),
        produce: load.command.produces().then(|| ProduceFigures {
            messages: sent.messages,
            bytes: sent.bytes,
            msgs_per_s: sent.messages as f64 / seconds,
            mb_per_s: sent.bytes as f64 / seconds / 1e6,
            errors: sent.errors.clone(),
            latency: Percentiles::of(&sent.latency),
        }),
        consume: load.command.consumes().then(|| ConsumeFigures {
            messages: received.messages,
            bytes: received.bytes,
            msgs_per_s: received.messages as f64 / seconds,
            mb_per_s: received.bytes as f64 / seconds / 1e6,
            end_to_end: Percentiles::of(&received.latency),
            missing,
        }),
        broker: cost(&baseline.brokers, &after.brokers, handled),
        bench: cost(&[baseline.bench], &[after.bench], handled).unwrap_or_default(),
    })
}

/// Drains the tallies every 100 ms, prints the progress line every second, ends the warm-up
/// and then the run.
struct Reporter {
    shared: Arc<Shared>,
    sent: Vec<Phased>,
    received: Phased,
    /// Resource use when measuring began.
    baseline: Option<Snapshot>,
    /// The measured phase's sends and deliveries.
    totals: (Tally, Tally),
}

impl Reporter {
    /// Everything recorded since the last drain (for the progress line); the measured part
    /// also goes to the totals.
    fn drain(&mut self) -> (Tally, Tally) {
        let mut interval = (Tally::default(), Tally::default());
        for tally in &self.sent {
            let measured = tally.measured.drain();
            self.totals.0.merge(&measured);
            interval.0.merge(&measured);
            interval.0.merge(&tally.warmup.drain());
        }
        let measured = self.received.measured.drain();
        self.totals.1.merge(&measured);
        interval.1.merge(&measured);
        interval.1.merge(&self.received.warmup.drain());
        interval
    }

    /// Runs until the duration, the count or the senders are done; returns the length of the
    /// measured phase.
    async fn run(&mut self, stop: watch::Sender<bool>, workers: Vec<tokio::task::JoinHandle<()>>) -> Duration {
        let shared = self.shared.clone();
        let load = &shared.load;
        let began = Instant::now();
        let mut since = self.baseline.as_ref().map(|_| began);
        let mut second = (Tally::default(), Tally::default());
        let mut next_line = began + Duration::from_secs(1);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let elapsed = loop {
            tick.tick().await;
            let now = Instant::now();
            let (sent, received) = self.drain();
            second.0.merge(&sent);
            second.1.merge(&received);
            if since.is_none() && now >= began + load.warmup {
                self.baseline = Some(Snapshot::take(load));
                shared.begin_measuring();
                since = Some(now);
            }
            if load.progress && now >= next_line {
                eprintln!("{}", progress_line(now - began, since.is_none(), &second.0, &second.1, load.command));
                second = (Tally::default(), Tally::default());
                next_line += Duration::from_secs(1);
            }
            let Some(since) = since else { continue };
            let producers_done = load.command.produces() && shared.running.load(Ordering::SeqCst) == 0;
            let done = match (load.count, load.command) {
                (Some(count), Command::Consume) => self.totals.1.messages >= count,
                (Some(_), _) => producers_done,
                (None, _) => now >= since + load.duration || producers_done,
            };
            if done {
                break now - since;
            }
        };
        let _ = stop.send(true);
        for worker in workers {
            let _ = worker.await;
        }
        self.drain();
        elapsed
    }
}

fn progress_line(at: Duration, warming: bool, sent: &Tally, received: &Tally, command: Command) -> String {
    let mut line = format!("[{:>4}s]{}", at.as_secs(), if warming { " warm-up" } else { "" });
    if command.produces() {
        let p99 = Percentiles::of(&sent.latency).p99_us;
        line += &format!(
            " sent {:>8} msg/s {:>7.1} MB/s p99 {:>9} errors {}",
            sent.messages,
            sent.bytes as f64 / 1e6,
            ms(p99),
            sent.error_count()
        );
    }
    if command.consumes() {
        let p99 = Percentiles::of(&received.latency).p99_us;
        line += &format!(
            " | received {:>8} msg/s {:>7.1} MB/s e2e p99 {:>9}",
            received.messages,
            received.bytes as f64 / 1e6,
            ms(p99)
        );
    }
    line
}

/// Counts a sender out however it ends.
struct Running(Arc<Shared>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn send_loop(
    shared: Arc<Shared>,
    producer: Producer,
    mut pacer: Pacer,
    tally: Phased,
    mut stop: watch::Receiver<bool>,
) {
    let _running = Running(shared.clone());
    let load = &shared.load;
    let permits = Arc::new(Semaphore::new(load.inflight));
    loop {
        // A send that completes without waiting (oneway into an empty socket buffer) must
        // still let the reporter and the other senders run.
        tokio::task::coop::consume_budget().await;
        if *stop.borrow() {
            break;
        }
        let ticket = shared.tickets.fetch_add(1, Ordering::SeqCst);
        if ticket >= shared.limit.load(Ordering::SeqCst) {
            break;
        }
        let tally = tally.pick(ticket >= shared.measure_from.load(Ordering::SeqCst)).clone();
        let intended = match pacer.next_intended() {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                at
            }
            None => Instant::now(),
        };
        let messages = batch(&shared, intended);
        match load.mode {
            SendMode::Sync => {
                let outcome = send(&producer, messages).await;
                record(&shared, &tally, intended, outcome);
            }
            SendMode::Async => {
                let Ok(permit) = permits.clone().acquire_owned().await else { break };
                let (shared, producer) = (shared.clone(), producer.clone());
                tokio::spawn(async move {
                    let outcome = send(&producer, messages).await;
                    record(&shared, &tally, intended, outcome);
                    drop(permit);
                });
            }
            SendMode::Oneway => {
                let bytes = messages.iter().map(|m| m.body.len() as u64).sum();
                let outcome = match messages.into_iter().next() {
                    Some(message) => producer.send_oneway(message).await.map(|()| (None, 1, bytes)),
                    None => continue,
                };
                record(&shared, &tally, intended, outcome);
            }
        }
    }
    // Async sends still out finish before this sender counts as done.
    let _ = permits.acquire_many(load.inflight as u32).await;
}

fn batch(shared: &Shared, intended: Instant) -> Vec<Message> {
    let load = &shared.load;
    let stamp = Stamp { run: shared.run, epoch_us: shared.clock.epoch_us(intended) };
    (0..load.batch)
        .map(|_| {
            let message = Message::new(load.topic.clone(), stamp::body(load.size, stamp));
            match &load.tags {
                Some(tags) => message.with_tags(tags.clone()),
                None => message,
            }
        })
        .collect()
}

/// A send's result: the broker's status when it answered, the messages and bytes it covered.
type Outcome = client::Result<(Option<SendStatus>, u64, u64)>;

async fn send(producer: &Producer, mut messages: Vec<Message>) -> Outcome {
    let count = messages.len() as u64;
    let bytes = messages.iter().map(|m| m.body.len() as u64).sum();
    let result: client::Result<SendResult> = if messages.len() == 1 {
        match messages.pop() {
            Some(message) => producer.send(message).await,
            None => return Ok((None, 0, 0)),
        }
    } else {
        producer.send_batch(messages).await
    };
    result.map(|r| (Some(r.status), count, bytes))
}

fn record(shared: &Shared, tally: &SharedTally, intended: Instant, outcome: Outcome) {
    let latency = intended.elapsed();
    match outcome {
        Ok((None | Some(SendStatus::SendOk), messages, bytes)) => {
            shared.acked.fetch_add(messages, Ordering::Relaxed);
            tally.lock().success(latency, messages, bytes);
        }
        Ok((Some(status), _, _)) => tally.lock().failure(format!("{status:?}")),
        Err(e) => tally.lock().failure(error_kind(&e)),
    }
}

/// How a failed send is counted: by response code, or by the kind of transport failure.
pub fn error_kind(e: &ClientError) -> String {
    if let Some(code) = e.response_code() {
        return format!("{} ({code})", wire::code::response_name(code).unwrap_or("UNKNOWN"));
    }
    match e {
        ClientError::Timeout { .. } => "timeout".into(),
        ClientError::Connect { .. } | ClientError::ConnectTimeout { .. } | ClientError::ConnectionClosed { .. } => {
            "connection".into()
        }
        other => format!("client: {other}"),
    }
}

async fn start_consumer(shared: &Arc<Shared>, tally: Phased) -> Result<PushConsumer> {
    let load = &shared.load;
    let mut config = PushConsumerConfig::new(load.group.clone(), load.namesrv.clone());
    config.client = load.client_config();
    config.concurrency = load.consumers.max(1);
    config.pull_batch_size = load.pull_batch.max(1);
    config.consume_from = if load.command == Command::EndToEnd {
        // Only this run's messages matter; earlier ones are skipped by the broker's time index.
        ConsumeFrom::Timestamp(shared.clock.epoch_us(Instant::now()) as i64 / 1000 - 1000)
    } else if load.from_beginning {
        ConsumeFrom::FirstOffset
    } else {
        ConsumeFrom::LastOffset
    };
    let only_run = (load.command == Command::EndToEnd).then_some(shared.run);
    let expression = load.tags.clone().unwrap_or_else(|| "*".into());
    let handler_shared = shared.clone();
    let consumer = PushConsumer::start(config, &[(load.topic.as_str(), expression.as_str())], move |m: MessageExt| {
        let (shared, tally) = (handler_shared.clone(), tally.clone());
        async move {
            deliver(&shared, &tally, only_run, &m);
            ConsumeResult::Success
        }
    })
    .await?;
    // The consumer reads once it owns queues; sending before that could outrun it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while consumer.assigned_queues().is_empty() {
        if Instant::now() > deadline {
            return Err(BenchError::Invalid(format!(
                "the consumer of group {} got no queue of {} within 10 s (does the topic exist?)",
                load.group, load.topic
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(consumer)
}

fn deliver(shared: &Shared, tally: &Phased, only_run: Option<u32>, message: &MessageExt) {
    let now = stamp::epoch_us();
    let sent_at = match (stamp::read(message.body()), only_run) {
        (Some(s), Some(run)) if s.run != run => return,
        (Some(s), _) => s.epoch_us,
        (None, Some(_)) => return,
        (None, None) => (message.born_timestamp().max(0) as u64) * 1000,
    };
    shared.delivered.fetch_add(1, Ordering::Relaxed);
    let latency = Duration::from_micros(now.saturating_sub(sent_at));
    let measured = shared.measuring.load(Ordering::Relaxed);
    tally.pick(measured).lock().success(latency, 1, message.body().len() as u64);
}

/// Waits until every acknowledged message of this run has been delivered, or until delivery
/// stalls for 5 s; returns how many never came.
async fn wait_for_delivery(shared: &Shared) -> u64 {
    let mut last = (shared.delivered.load(Ordering::Relaxed), Instant::now());
    loop {
        let (acked, delivered) = (shared.acked.load(Ordering::Relaxed), shared.delivered.load(Ordering::Relaxed));
        if delivered >= acked {
            return 0;
        }
        if delivered != last.0 {
            last = (delivered, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(5) {
            return acked - delivered;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_brokers(admin: &Admin) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match admin.cluster_info().await {
            Ok(info) if !info.broker_addr_table.is_empty() => return Ok(()),
            Ok(_) if Instant::now() < deadline => {}
            Ok(_) => return Err(BenchError::Invalid("the name server knows no broker".into())),
            Err(e) if Instant::now() >= deadline => return Err(e.into()),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates the topic on every master when the name servers have no route for it.
async fn ensure_topic(admin: &Admin, topic: &str, queues: i32) -> Result<()> {
    if admin.topic_route(topic).await.is_ok() {
        return Ok(());
    }
    let brokers = admin.create_topic(&TopicSpec::new(topic, queues), &Target::Cluster(None)).await?;
    tracing::info!(topic, queues, ?brokers, "created the topic");
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin.topic_route(topic).await.is_err() {
        if Instant::now() > deadline {
            return Err(BenchError::Invalid(format!("topic {topic} was created but has no route after 10 s")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Tells this run's messages from earlier runs' on the same topic.
fn run_id() -> u32 {
    std::process::id().rotate_left(16) ^ (stamp::epoch_us() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load() -> Load {
        Load {
            command: Command::Produce,
            namesrv: "127.0.0.1:9876".into(),
            topic: "BenchmarkTest".into(),
            queues: 8,
            size: 1024,
            producers: 4,
            connections: 1,
            inflight: 8,
            rate: 0.0,
            duration: Duration::from_secs(1),
            count: None,
            batch: 1,
            mode: SendMode::Sync,
            tags: None,
            serialize: SerializeType::Json,
            warmup: Duration::ZERO,
            request_timeout: Duration::from_secs(3),
            group: "g".into(),
            from_beginning: false,
            consumers: 8,
            pull_batch: 32,
            broker_pids: Vec::new(),
            embedded: false,
            progress: false,
        }
    }

    #[test]
    fn contradictory_loads_are_refused_with_a_reason() {
        assert!(load().validate().is_ok());
        let oneway_batch = Load { mode: SendMode::Oneway, batch: 4, ..load() };
        assert!(oneway_batch.validate().expect_err("refused").to_string().contains("oneway"));
        let tiny_e2e = Load { command: Command::EndToEnd, size: 8, ..load() };
        assert!(tiny_e2e.validate().expect_err("refused").to_string().contains("at least 16 bytes"));
        assert!(Load { producers: 0, ..load() }.validate().is_err());
        assert!(Load { rate: -1.0, ..load() }.validate().is_err());
        assert!(Load { count: Some(0), ..load() }.validate().is_err());
        // A consumer needs no producer settings.
        assert!(Load { command: Command::Consume, producers: 0, ..load() }.validate().is_ok());
    }

    #[test]
    fn failures_are_counted_by_code_or_transport_kind() {
        let busy = ClientError::Broker {
            addr: "b".into(),
            request: "SEND_MESSAGE",
            code: 2,
            code_name: "SYSTEM_BUSY",
            remark: "full".into(),
        };
        assert_eq!(error_kind(&busy), "SYSTEM_BUSY (2)");
        let timeout =
            ClientError::Timeout { addr: "b".into(), request: "SEND_MESSAGE", timeout: Duration::from_secs(3) };
        assert_eq!(error_kind(&timeout), "timeout");
        let closed = ClientError::ConnectionClosed { addr: "b".into(), request: "SEND_MESSAGE" };
        assert_eq!(error_kind(&closed), "connection");
    }

    #[test]
    fn batches_are_stamped_with_the_intended_time_and_tagged() {
        let mut shared = Shared::new(Load { batch: 3, tags: Some("TagA".into()), ..load() });
        shared.run = 42;
        let at = Instant::now();
        let messages = batch(&shared, at);
        assert_eq!(messages.len(), 3);
        for m in &messages {
            assert_eq!(m.body.len(), 1024);
            assert_eq!(m.tags(), Some("TagA"));
            assert_eq!(stamp::read(&m.body), Some(Stamp { run: 42, epoch_us: shared.clock.epoch_us(at) }));
        }
    }
}
