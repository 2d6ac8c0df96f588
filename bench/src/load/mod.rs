//! The load itself: producers sending on a schedule ([`sender`]), a push consumer receiving
//! ([`receiver`]), and a [`reporter`] that drains their tallies every 100 ms, prints a progress
//! line every second and decides when the run ends.

mod receiver;
mod reporter;
mod sender;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::{Admin, ClientConfig, Producer, ProducerConfig, SerializeType, Target, TopicSpec};
use tokio::sync::watch;

use crate::error::{BenchError, Result};
use crate::pace::Pacer;
use crate::report::{ConsumeFigures, ProduceFigures, Report, Scenario};
use crate::stamp::{self, Clock};
use crate::stats::Percentiles;
use reporter::{cost, host_figures, Phased, Reporter, Snapshot};
pub use sender::error_kind;

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Produce,
    Consume,
    /// Produce and consume in one process: end-to-end latency from intended send to delivery.
    EndToEnd,
}

impl Command {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Command::Produce => "produce",
            Command::Consume => "consume",
            Command::EndToEnd => "e2e",
        }
    }

    pub(crate) fn produces(self) -> bool {
        self != Command::Consume
    }

    pub(crate) fn consumes(self) -> bool {
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
            broker_settings: Vec::new(),
        }
    }
}

/// State the reporter and every sender share.
pub(crate) struct Shared {
    pub(crate) load: Load,
    pub(crate) clock: Clock,
    pub(crate) run: u32,
    /// Sends handed out so far; a sender stops when it draws one at or past `limit`.
    pub(crate) tickets: AtomicU64,
    pub(crate) limit: AtomicU64,
    /// The first ticket of the measured phase: a send counts in the figures when it was drawn
    /// after warm-up, whenever it completes, so `--count` is exact.
    pub(crate) measure_from: AtomicU64,
    /// Deliveries count in the figures from when this is set.
    pub(crate) measuring: AtomicBool,
    /// Messages acknowledged and delivered over the whole run, warm-up included, to find
    /// messages that never arrived.
    pub(crate) acked: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) running: AtomicUsize,
}

impl Shared {
    pub(crate) fn new(load: Load) -> Self {
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
    pub(crate) fn begin_measuring(&self) {
        let issued = self.tickets.load(Ordering::SeqCst);
        if let (Some(count), true) = (self.load.count, self.load.command.produces()) {
            let sends = count.div_ceil(self.load.batch as u64);
            self.limit.store(issued.saturating_add(sends), Ordering::SeqCst);
        }
        self.measure_from.store(issued, Ordering::SeqCst);
        self.measuring.store(true, Ordering::SeqCst);
    }
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
        true => Some(receiver::start_consumer(&shared, received.clone()).await?),
        false => None,
    };

    let mut producers = Vec::new();
    let mut sent = Vec::new();
    let mut workers = Vec::new();
    if load.command.produces() {
        for n in 0..load.connections {
            let mut config = ProducerConfig::new("apogee-bench-producer", load.namesrv.clone());
            config.client = load.client_config();
            // Bodies go as they are, so that sizes and MB/s are what the broker stores (Java's
            // benchmark Producer compresses its bodies of 4 KiB or more).
            config.compress_over = usize::MAX;
            let producer = Producer::start(config)?;
            // Route and connection before the clock starts.
            producer.queues(&load.topic).await?;
            tracing::debug!(connection = n, client = producer.client_id(), "producer ready");
            producers.push(producer);
        }
        let pacer = Pacer::new(Instant::now(), load.rate);
        for index in 0..load.producers {
            let tally = Phased::default();
            sent.push(tally.clone());
            let producer = producers[index % producers.len()].clone();
            shared.running.fetch_add(1, Ordering::SeqCst);
            workers.push(tokio::spawn(sender::send_loop(
                shared.clone(),
                producer,
                pacer.clone(),
                tally,
                stop_rx.clone(),
            )));
        }
    }

    let mut reporter = Reporter { shared: shared.clone(), sent, received, baseline, totals: Default::default() };
    let elapsed = reporter.run(stop_tx, workers).await;
    let mut missing = None;
    if load.command == Command::EndToEnd {
        missing = Some(receiver::wait_for_delivery(&shared).await);
        reporter.drain(&mut Default::default());
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
        host: host_figures(&baseline, &after),
    })
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
pub(crate) mod tests {
    use super::*;

    pub(crate) fn load() -> Load {
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
}
