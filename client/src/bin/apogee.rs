//! `apogee`: the daily jobs of `mqadmin` and `tools.sh` against any RocketMQ 4.x cluster.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use client::{
    Admin, ClientConfig, ClientError, Message, MessageExt, MessageQueue, Producer, ProducerConfig, PullConsumer,
    PullStatus, SendResult, Target, TopicSpec,
};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(name = "apogee", version, about = "Administer, feed and read a RocketMQ 4.x cluster (Apogee or Java)")]
struct Cli {
    /// Name server addresses, `;`-separated [env: NAMESRV_ADDR; default 127.0.0.1:9876].
    #[arg(short = 'n', long = "namesrv", global = true)]
    namesrv: Option<String>,
    /// Machine-readable output: JSON documents for listings, one JSON object per line for
    /// send and consume.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create, update, delete, list and inspect topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Clusters and their brokers.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Consumer groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// One broker's runtime figures and configuration.
    #[command(subcommand)]
    Broker(BrokerCommand),
    /// Send messages: the BODY arguments, or one message per line of standard input.
    Send(SendArgs),
    /// Print a topic's messages, from the end (new ones), the beginning, an offset or a time.
    Consume(ConsumeArgs),
    /// Find stored messages by key, unique key (msgId) or offset message id.
    #[command(subcommand)]
    Message(MessageCommand),
}

#[derive(Subcommand)]
enum MessageCommand {
    /// Messages with a key (QUERY_MESSAGE, as `mqadmin queryMsgByKey`).
    Key {
        #[arg(short = 't', long)]
        topic: String,
        #[arg(short = 'k', long)]
        key: String,
        /// Most messages per broker (the broker caps it at 64).
        #[arg(long, default_value_t = 64)]
        max: i32,
        /// Stored at or after this time (ms since the epoch).
        #[arg(long, default_value_t = 0)]
        begin: i64,
        /// Stored at or before this time (ms since the epoch).
        #[arg(long, default_value_t = i64::MAX)]
        end: i64,
    },
    /// Messages with a unique key: the msgId a producer reports (`mqadmin queryMsgByUniqueKey`).
    Id {
        #[arg(short = 't', long)]
        topic: String,
        #[arg(short = 'i', long)]
        id: String,
    },
    /// The message with an offset message id (VIEW_MESSAGE_BY_ID, `mqadmin queryMsgById`).
    OffsetId {
        #[arg(short = 'i', long)]
        id: String,
    },
    /// Have one consumer of a group handle the message with an offset message id again
    /// (CONSUME_MESSAGE_DIRECTLY, `mqadmin queryMsgById -i ID -g GROUP -d CLIENT_ID`).
    Resend {
        #[arg(short = 'i', long)]
        id: String,
        #[arg(short = 'g', long)]
        group: String,
        /// The consumer's client id, as the broker lists it for the group.
        #[arg(short = 'd', long = "client-id")]
        client_id: String,
    },
}

#[derive(Subcommand)]
enum TopicCommand {
    /// Create a topic (UPDATE_AND_CREATE_TOPIC on every master of the cluster or one broker).
    Create(TopicSpecArgs),
    /// Change a topic's queue counts or permission (same request as create).
    Update(TopicSpecArgs),
    /// Delete a topic from the brokers and the name servers.
    Delete {
        #[arg(short = 't', long)]
        topic: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Every topic the name servers know.
    List,
    /// Which brokers serve a topic, with its queues.
    Route {
        #[arg(short = 't', long)]
        topic: String,
    },
    /// Min and max offsets of each queue of a topic.
    Stats {
        #[arg(short = 't', long)]
        topic: String,
    },
}

#[derive(Args)]
struct TopicSpecArgs {
    #[arg(short = 't', long)]
    topic: String,
    /// Write queues (and read queues unless --read-queues says otherwise).
    #[arg(short = 'q', long = "queues", default_value_t = 8)]
    queues: i32,
    #[arg(short = 'r', long = "read-queues")]
    read_queues: Option<i32>,
    /// Permission bits: 2 write, 4 read, 6 both.
    #[arg(short = 'p', long, default_value_t = 6)]
    perm: i32,
    /// Mark the topic ordered.
    #[arg(short = 'o', long)]
    order: bool,
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(Args)]
struct TargetArgs {
    /// Cluster whose masters get the change (default: every cluster).
    #[arg(short = 'c', long, conflicts_with = "broker")]
    cluster: Option<String>,
    /// One broker address instead of a cluster.
    #[arg(short = 'b', long)]
    broker: Option<String>,
}

impl TargetArgs {
    fn target(&self) -> Target {
        match &self.broker {
            Some(addr) => Target::Broker(addr.clone()),
            None => Target::Cluster(self.cluster.clone()),
        }
    }
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Clusters, brokers and their addresses.
    List,
}

#[derive(Subcommand)]
enum GroupCommand {
    /// A consumer group's offsets and lag per queue.
    Progress {
        #[arg(short = 'g', long)]
        group: String,
        #[arg(short = 't', long)]
        topic: Option<String>,
    },
}

#[derive(Subcommand)]
enum BrokerCommand {
    /// GET_BROKER_RUNTIME_INFO.
    Runtime {
        #[arg(short = 'b', long)]
        broker: String,
    },
    /// GET_BROKER_CONFIG.
    Config {
        #[arg(short = 'b', long)]
        broker: String,
    },
    /// UPDATE_BROKER_CONFIG: change settings of a running broker (KEY=VALUE …).
    Update {
        #[arg(short = 'b', long)]
        broker: String,
        #[arg(required = true, value_parser = parse_property)]
        settings: Vec<(String, String)>,
    },
}

#[derive(Args)]
struct SendArgs {
    #[arg(short = 't', long)]
    topic: String,
    #[arg(long)]
    tags: Option<String>,
    /// Message keys, comma-separated.
    #[arg(short = 'k', long, value_delimiter = ',')]
    keys: Vec<String>,
    /// A user property, KEY=VALUE; repeat for more.
    #[arg(short = 'p', long = "property", value_parser = parse_property)]
    properties: Vec<(String, String)>,
    /// Delay level (1 = 1s, 2 = 5s, … by the broker's messageDelayLevel).
    #[arg(long)]
    delay_level: Option<i32>,
    #[arg(short = 'g', long, default_value = "apogee-cli-producer")]
    group: String,
    /// Message bodies; without any, each line of standard input is one message.
    bodies: Vec<String>,
}

#[derive(Args)]
struct ConsumeArgs {
    #[arg(short = 't', long)]
    topic: String,
    /// Start at each queue's first message.
    #[arg(long, conflicts_with_all = ["from_offset", "from_time"])]
    from_beginning: bool,
    /// Start at this offset in every queue.
    #[arg(long, conflicts_with = "from_time")]
    from_offset: Option<i64>,
    /// Start at the first message stored at or after this time (ms since the epoch).
    #[arg(long)]
    from_time: Option<i64>,
    /// Stop after this many messages.
    #[arg(long)]
    count: Option<usize>,
    /// Fail when --count messages have not arrived within this many seconds.
    #[arg(long)]
    timeout: Option<u64>,
    /// Tag expression: `*` or `TagA || TagB`.
    #[arg(long, default_value = "*")]
    tags: String,
    /// The consumer group the pulls are made in (no offsets are committed).
    #[arg(short = 'g', long, default_value = "apogee-cli-consumer")]
    group: String,
}

/// Prints a line to standard output; a closed pipe (`apogee … | head`) ends the program quietly.
macro_rules! emit {
    () => { emit_line(format_args!("")) };
    ($($arg:tt)*) => { emit_line(format_args!($($arg)*)) };
}

fn emit_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{args}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to standard output: {e}");
        std::process::exit(1);
    }
}

/// What can make a command fail.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("reading standard input: {0}")]
    Stdin(#[from] std::io::Error),
    #[error("{0}")]
    Incomplete(String),
    #[error("{0}")]
    NotFound(String),
}

fn parse_property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("APOGEE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let namesrv = cli
        .namesrv
        .clone()
        .or_else(|| std::env::var("NAMESRV_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:9876".to_string());
    let config = ClientConfig::new(namesrv);
    let out = Output { json: cli.json };
    match cli.command {
        Command::Topic(command) => topic(config, command, &out).await,
        Command::Cluster(ClusterCommand::List) => cluster_list(config, &out).await,
        Command::Group(GroupCommand::Progress { group, topic }) => group_progress(config, &group, topic, &out).await,
        Command::Broker(BrokerCommand::Runtime { broker }) => {
            let admin = Admin::start(config)?;
            out.key_values(&admin.broker_runtime(&broker).await?);
            Ok(())
        }
        Command::Broker(BrokerCommand::Config { broker }) => {
            let admin = Admin::start(config)?;
            out.key_values(&admin.broker_config(&broker).await?);
            Ok(())
        }
        Command::Broker(BrokerCommand::Update { broker, settings }) => {
            let admin = Admin::start(config)?;
            let remark = admin.update_broker_config(&broker, &settings.into_iter().collect()).await?;
            out.done(&remark, json!({ "broker": broker, "result": remark }));
            Ok(())
        }
        Command::Send(args) => send(config, args, &out).await,
        Command::Consume(args) => consume(config, args, &out).await,
        Command::Message(command) => find_messages(config, command, &out).await,
    }
}

async fn find_messages(config: ClientConfig, command: MessageCommand, out: &Output) -> Result<(), CliError> {
    let admin = Admin::start(config)?;
    if let MessageCommand::Resend { id, group, client_id } = &command {
        let result = admin.consume_message_directly(group, client_id, id).await;
        admin.shutdown().await;
        let result = result?;
        let verdict = result["consumeResult"].as_str().unwrap_or("?").to_string();
        let remark = result["remark"].as_str().map(|r| format!(": {r}")).unwrap_or_default();
        out.done(&format!("{client_id} handled {id}: {verdict}{remark}"), result);
        return Ok(());
    }
    let found = match command {
        MessageCommand::Resend { .. } => Vec::new(),
        MessageCommand::Key { topic, key, max, begin, end } => {
            admin.query_message(&topic, &key, max, begin, end).await?
        }
        MessageCommand::Id { topic, id } => admin.query_message_by_unique_key(&topic, &id).await?,
        MessageCommand::OffsetId { id } => vec![admin.view_message(&id).await?],
    };
    admin.shutdown().await;
    if found.is_empty() {
        return Err(CliError::NotFound("no message matches".into()));
    }
    found.iter().for_each(|m| out.message(m));
    Ok(())
}

async fn topic(config: ClientConfig, command: TopicCommand, out: &Output) -> Result<(), CliError> {
    let admin = Admin::start(config)?;
    match command {
        TopicCommand::Create(args) | TopicCommand::Update(args) => {
            let spec = TopicSpec {
                name: args.topic.clone(),
                read_queues: args.read_queues.unwrap_or(args.queues),
                write_queues: args.queues,
                perm: args.perm,
                order: args.order,
            };
            let brokers = admin.create_topic(&spec, &args.target.target()).await?;
            out.done(
                &format!("topic {} set on {}", spec.name, brokers.join(", ")),
                json!({"topic": spec.name, "brokers": brokers}),
            );
        }
        TopicCommand::Delete { topic, target } => {
            let brokers = admin.delete_topic(&topic, &target.target()).await?;
            out.done(
                &format!("topic {topic} deleted from {}", brokers.join(", ")),
                json!({"topic": topic, "brokers": brokers}),
            );
        }
        TopicCommand::List => {
            let topics = admin.topic_list().await?;
            if out.json {
                print_json(&json!(topics));
            } else {
                for topic in topics {
                    emit!("{topic}");
                }
            }
        }
        TopicCommand::Route { topic } => {
            let route = admin.topic_route(&topic).await?;
            if out.json {
                print_json(&serde_json::to_value(&route).unwrap_or_default());
            } else {
                let brokers = route.broker_datas.iter().map(|b| {
                    let addrs: Vec<String> = b.broker_addrs.iter().map(|(id, a)| format!("{id}={a}")).collect();
                    vec![b.cluster.clone(), b.broker_name.clone(), addrs.join(" ")]
                });
                print_table(&["CLUSTER", "BROKER", "ADDRESSES (id=addr)"], brokers.collect());
                emit!();
                let queues = route.queue_datas.iter().map(|q| {
                    vec![
                        q.broker_name.clone(),
                        q.read_queue_nums.to_string(),
                        q.write_queue_nums.to_string(),
                        q.perm.to_string(),
                    ]
                });
                print_table(&["BROKER", "READ QUEUES", "WRITE QUEUES", "PERM"], queues.collect());
            }
        }
        TopicCommand::Stats { topic } => {
            let stats = admin.topic_stats(&topic).await?;
            let rows: Vec<Value> = stats
                .offset_table
                .iter()
                .map(|(q, o)| {
                    json!({"brokerName": q.broker_name, "queueId": q.queue_id, "minOffset": o.min_offset,
                           "maxOffset": o.max_offset, "lastUpdateTimestamp": o.last_update_timestamp})
                })
                .collect();
            if out.json {
                print_json(&json!(rows));
            } else {
                let table = stats.offset_table.iter().map(|(q, o)| {
                    vec![
                        q.broker_name.clone(),
                        q.queue_id.to_string(),
                        o.min_offset.to_string(),
                        o.max_offset.to_string(),
                        o.last_update_timestamp.to_string(),
                    ]
                });
                print_table(&["BROKER", "QUEUE", "MIN OFFSET", "MAX OFFSET", "LAST UPDATE (ms)"], table.collect());
            }
        }
    }
    admin.shutdown().await;
    Ok(())
}

async fn cluster_list(config: ClientConfig, out: &Output) -> Result<(), CliError> {
    let admin = Admin::start(config)?;
    let info = admin.cluster_info().await?;
    let mut rows = Vec::new();
    for (cluster, names) in &info.cluster_addr_table {
        for name in names {
            if let Some(broker) = info.broker_addr_table.get(name) {
                for (id, addr) in &broker.broker_addrs {
                    rows.push(json!({"cluster": cluster, "brokerName": name, "brokerId": id, "addr": addr}));
                }
            }
        }
    }
    if out.json {
        print_json(&json!(rows));
    } else {
        let table = rows.iter().map(|r| {
            ["cluster", "brokerName", "brokerId", "addr"]
                .iter()
                .map(|k| r[*k].as_str().map_or_else(|| r[*k].to_string(), str::to_string))
                .collect()
        });
        print_table(&["CLUSTER", "BROKER", "ID", "ADDRESS"], table.collect());
    }
    admin.shutdown().await;
    Ok(())
}

async fn group_progress(
    config: ClientConfig,
    group: &str,
    topic: Option<String>,
    out: &Output,
) -> Result<(), CliError> {
    let admin = Admin::start(config)?;
    let stats = admin.consume_stats(group, topic.as_deref()).await?;
    let lag: i64 = stats.offset_table.values().map(|o| (o.broker_offset - o.consumer_offset).max(0)).sum();
    if out.json {
        let queues: Vec<Value> = stats
            .offset_table
            .iter()
            .map(|(q, o)| {
                json!({"topic": q.topic, "brokerName": q.broker_name, "queueId": q.queue_id,
                       "brokerOffset": o.broker_offset, "consumerOffset": o.consumer_offset,
                       "lag": (o.broker_offset - o.consumer_offset).max(0), "lastTimestamp": o.last_timestamp})
            })
            .collect();
        print_json(&json!({"group": group, "consumeTps": stats.consume_tps, "totalLag": lag, "queues": queues}));
    } else {
        let table = stats.offset_table.iter().map(|(q, o)| {
            vec![
                q.topic.clone(),
                q.broker_name.clone(),
                q.queue_id.to_string(),
                o.broker_offset.to_string(),
                o.consumer_offset.to_string(),
                (o.broker_offset - o.consumer_offset).max(0).to_string(),
            ]
        });
        print_table(&["TOPIC", "BROKER", "QUEUE", "BROKER OFFSET", "CONSUMER OFFSET", "LAG"], table.collect());
        emit!("\nconsume TPS: {:.2}  total lag: {lag}", stats.consume_tps);
    }
    admin.shutdown().await;
    Ok(())
}

async fn send(config: ClientConfig, args: SendArgs, out: &Output) -> Result<(), CliError> {
    let producer = Producer::start(ProducerConfig { client: config, ..ProducerConfig::new(args.group.clone(), "") })?;
    let message = |body: String| {
        let mut message = Message::new(args.topic.clone(), body);
        if let Some(tags) = &args.tags {
            message = message.with_tags(tags.clone());
        }
        if !args.keys.is_empty() {
            message = message.with_keys(&args.keys);
        }
        if let Some(level) = args.delay_level {
            message = message.with_delay_level(level);
        }
        for (k, v) in &args.properties {
            message = message.with_property(k.clone(), v.clone());
        }
        message
    };
    let bodies: Box<dyn Iterator<Item = std::io::Result<String>>> = if args.bodies.is_empty() {
        Box::new(std::io::stdin().lock().lines())
    } else {
        Box::new(args.bodies.clone().into_iter().map(Ok))
    };
    let mut result = Ok(());
    for body in bodies {
        result = match body {
            Ok(body) => producer.send(message(body)).await.map(|r| out.sent(&r)).map_err(CliError::from),
            Err(e) => Err(e.into()),
        };
        if result.is_err() {
            break;
        }
    }
    producer.shutdown().await;
    result
}

async fn consume(config: ClientConfig, args: ConsumeArgs, out: &Output) -> Result<(), CliError> {
    let consumer = PullConsumer::start(args.group.clone(), config)?;
    let queues = consumer.queues(&args.topic).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<MessageExt, ClientError>>(1024);
    for queue in queues {
        let start = match (args.from_beginning, args.from_offset, args.from_time) {
            (true, _, _) => consumer.min_offset(&queue).await?,
            (_, Some(offset), _) => offset,
            (_, _, Some(ms)) => consumer.offset_for_timestamp(&queue, ms).await?,
            _ => consumer.max_offset(&queue).await?,
        };
        tokio::spawn(tail_queue(consumer.clone(), queue, args.tags.clone(), start, tx.clone()));
    }
    drop(tx);
    let deadline = args.timeout.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut printed = 0;
    let result = loop {
        if args.count.is_some_and(|n| printed >= n) {
            break Ok(());
        }
        let next = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    break Err(CliError::Incomplete(format!(
                        "only {printed} of {} messages arrived within {} s",
                        args.count.map_or_else(|| "the".into(), |n| n.to_string()),
                        args.timeout.unwrap_or(0)
                    )))
                }
            },
            None => rx.recv().await,
        };
        match next {
            Some(Ok(message)) => {
                out.message(&message);
                printed += 1;
            }
            Some(Err(e)) => break Err(e.into()),
            None => break Ok(()),
        }
    };
    consumer.shutdown().await;
    result
}

/// Long-polls one queue from `offset`, passing its messages on in order.
async fn tail_queue(
    consumer: PullConsumer,
    queue: MessageQueue,
    tags: String,
    mut offset: i64,
    tx: tokio::sync::mpsc::Sender<Result<MessageExt, ClientError>>,
) {
    let mut failures = 0;
    loop {
        match consumer.pull_blocking(&queue, &tags, offset, 32, Duration::from_secs(5)).await {
            Ok(result) => {
                failures = 0;
                if result.status == PullStatus::OffsetIllegal {
                    tracing::warn!(?queue, offset, next = result.next_begin_offset, "offset out of range");
                }
                offset = result.next_begin_offset;
                for message in result.messages {
                    if tx.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) if e.is_transport() && failures < 3 => {
                failures += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

struct Output {
    json: bool,
}

impl Output {
    fn done(&self, text: &str, value: Value) {
        if self.json {
            print_json(&value);
        } else {
            emit!("{text}");
        }
    }

    fn key_values(&self, map: &BTreeMap<String, String>) {
        if self.json {
            print_json(&json!(map));
        } else {
            print_table(&["KEY", "VALUE"], map.iter().map(|(k, v)| vec![k.clone(), v.clone()]).collect());
        }
    }

    fn sent(&self, r: &SendResult) {
        if self.json {
            emit!(
                "{}",
                json!({"status": format!("{:?}", r.status), "msgId": r.msg_id, "offsetMsgId": r.offset_msg_id,
                       "brokerName": r.queue.broker_name, "queueId": r.queue.queue_id, "queueOffset": r.queue_offset})
            );
        } else {
            emit!(
                "{:?} msgId={} broker={} queue={} offset={}",
                r.status,
                r.msg_id,
                r.queue.broker_name,
                r.queue.queue_id,
                r.queue_offset
            );
        }
    }

    fn message(&self, m: &MessageExt) {
        let body = String::from_utf8_lossy(m.body());
        if self.json {
            let properties: BTreeMap<&str, &str> = m.properties().collect();
            emit!(
                "{}",
                json!({"topic": m.topic(), "brokerName": m.broker_name, "queueId": m.queue_id(),
                       "queueOffset": m.queue_offset(), "msgId": m.msg_id(), "offsetMsgId": m.offset_msg_id(),
                       "tags": m.tags(), "keys": m.keys(), "bornTimestamp": m.born_timestamp(),
                       "storeTimestamp": m.store_timestamp(), "reconsumeTimes": m.reconsume_times(),
                       "properties": properties, "body": body})
            );
        } else {
            emit!(
                "queue={} offset={} msgId={} tags={} keys={} body={}",
                m.queue_id(),
                m.queue_offset(),
                m.msg_id(),
                m.tags().unwrap_or("-"),
                m.keys().join(","),
                body
            );
        }
    }
}

fn print_json(value: &Value) {
    emit!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// Columns padded to their widest cell.
fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        emit!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}
