//! `apogee-bench produce | consume | e2e | compare`: see the crate README.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bench::embedded::{parse_setting, Embedded, EmbeddedOptions};
use bench::load::{self, Command, Load, SendMode};
use bench::report::{self, Report};
use bench::{BenchError, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use client::SerializeType;

/// mimalloc instead of glibc's allocator: each send allocates a few dozen small blocks, and
/// glibc's bins were 14 % of the bench's CPU, CPU the broker under test shares.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "apogee-bench", version, about = "Measure a RocketMQ 4.x cluster (Apogee or Java) under load")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send messages as fast as possible or at a fixed rate; send latency and throughput.
    Produce {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        produce: ProduceArgs,
    },
    /// Receive with a push consumer; delivery throughput and latency since each message was
    /// sent (its stamp, or its born timestamp).
    Consume {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        consume: ConsumeArgs,
        #[command(flatten)]
        backlog: BacklogArgs,
    },
    /// Produce and consume in one process: end-to-end latency from intended send to delivery.
    E2e {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        produce: ProduceArgs,
        #[command(flatten)]
        consume: ConsumeArgs,
    },
    /// Print every figure of two `--json` reports and their ratio (OTHER / BASE).
    Compare { base: PathBuf, other: PathBuf },
}

#[derive(Args)]
struct CommonArgs {
    /// Name server addresses, `;`-separated [env: NAMESRV_ADDR; default 127.0.0.1:9876].
    #[arg(short = 'n', long = "namesrv")]
    namesrv: Option<String>,
    #[arg(short = 't', long, default_value = "BenchmarkTest")]
    topic: String,
    /// Length of the measured phase (after warm-up): 30s, 500ms, 2m.
    #[arg(short = 'd', long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Stop after this many messages instead (sent; received for `consume`).
    #[arg(long)]
    count: Option<u64>,
    /// Load run before measuring, its figures dropped.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    warmup: Duration,
    /// Header encoding of every request.
    #[arg(long, value_enum, default_value = "json")]
    serialize: Serialize,
    /// How long one request waits for its answer.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    timeout: Duration,
    /// Tag of every message sent; tag expression of the consumer (`a || b`).
    #[arg(long)]
    tags: Option<String>,
    /// Write every figure to FILE as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Report the CPU time and memory of this broker process (repeatable; local brokers only).
    #[arg(long = "broker-pid", value_name = "PID")]
    broker_pids: Vec<u32>,
    /// Start a standalone Apogee (apogee-broker --standalone) on free loopback ports and
    /// measure it.
    #[arg(long)]
    embedded: bool,
    /// The embedded broker's binary [default: next to apogee-bench, then PATH].
    #[arg(long, value_name = "PATH", requires = "embedded")]
    broker_bin: Option<PathBuf>,
    /// Folder for the embedded broker's temporary store (not tmpfs: O_DIRECT).
    #[arg(long, value_name = "DIR", requires = "embedded")]
    store_dir: Option<PathBuf>,
    /// Flush mode of the embedded broker.
    #[arg(long, value_enum, requires = "embedded")]
    flush: Option<Flush>,
    /// Any other setting of the embedded broker, with RocketMQ key names (repeatable).
    #[arg(long = "broker-set", value_name = "KEY=VALUE", value_parser = parse_setting, requires = "embedded")]
    broker_settings: Vec<(String, String)>,
    /// Worker threads of this program [default: one per core; with --embedded, half of them,
    /// leaving the rest to the broker].
    #[arg(long)]
    threads: Option<usize>,
    /// No progress line.
    #[arg(short = 'q', long)]
    quiet: bool,
}

#[derive(Args)]
struct ProduceArgs {
    /// Body size in bytes.
    #[arg(short = 's', long, default_value_t = 1024)]
    size: usize,
    /// Concurrent senders.
    #[arg(short = 'p', long, default_value_t = 64)]
    producers: usize,
    /// Connections the senders share (one client instance each).
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Sends per second offered by all senders together; 0 = as fast as possible. Latency is
    /// then measured from each send's intended time.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Messages per send (SEND_BATCH_MESSAGE when above 1).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[arg(long, value_enum, default_value = "sync")]
    mode: Mode,
    /// Outstanding sends per sender in async mode.
    #[arg(long, default_value_t = 16)]
    inflight: usize,
    /// Queues of the topic when it has to be created.
    #[arg(long, default_value_t = 8)]
    queues: i32,
}

#[derive(Args)]
struct ConsumeArgs {
    /// Consumer group [default: apogee-bench-consumer; a new group per run for e2e].
    #[arg(short = 'g', long)]
    group: Option<String>,
    /// Start a group with no committed offset at the oldest message instead of the newest.
    #[arg(long)]
    from_beginning: bool,
    /// Messages handled at once.
    #[arg(long, default_value_t = 64)]
    consumers: usize,
    /// Messages per pull.
    #[arg(long, default_value_t = 32)]
    pull_batch: i32,
}

#[derive(Args)]
struct BacklogArgs {
    /// First send N messages as fast as possible, then consume them from the oldest in a new
    /// group: the figures are those of reading a backlog (and `--count` defaults to N).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    backlog: Option<u64>,
    /// Body size of the backlog's messages.
    #[arg(long, default_value_t = 1024, requires = "backlog")]
    backlog_size: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum Serialize {
    Json,
    Rocketmq,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Sync,
    Async,
    Oneway,
}

#[derive(Clone, Copy, ValueEnum)]
enum Flush {
    Async,
    Sync,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let outcome = match cli.command {
        Cmd::Compare { base, other } => compare(&base, &other),
        Cmd::Produce { common, produce } => measure(Command::Produce, common, Some(produce), None, None),
        Cmd::Consume { common, consume, backlog } => {
            measure(Command::Consume, common, None, Some(consume), Some(backlog))
        }
        Cmd::E2e { common, produce, consume } => measure(Command::EndToEnd, common, Some(produce), Some(consume), None),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("apogee-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn compare(base: &std::path::Path, other: &std::path::Path) -> Result<ExitCode> {
    print!("{}", report::compare(&report::load(base)?, &report::load(other)?));
    Ok(ExitCode::SUCCESS)
}

fn measure(
    command: Command,
    common: CommonArgs,
    produce: Option<ProduceArgs>,
    consume: Option<ConsumeArgs>,
    backlog: Option<BacklogArgs>,
) -> Result<ExitCode> {
    let backlog = backlog.and_then(|b| b.backlog.map(|n| (n, b.backlog_size)));
    if backlog.is_some() && !common.warmup.is_zero() {
        return Err(BenchError::Invalid("--backlog reads the whole backlog: leave out --warmup".into()));
    }
    // An embedded broker shares this machine's cores: more sender threads than it leaves free
    // cost wake-ups and work stealing, and slow both sides down.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = common.threads.unwrap_or(if common.embedded { (cores / 2).max(1) } else { cores }).max(1);
    let broker_settings = embedded_settings(common.flush, &common.broker_settings, cores, threads);
    let embedded = if common.embedded {
        let options = EmbeddedOptions {
            broker_bin: common.broker_bin.clone(),
            parent_dir: common.store_dir.clone(),
            settings: broker_settings.clone(),
        };
        Some(Embedded::start(&options)?)
    } else {
        None
    };
    let namesrv = match (&embedded, &common.namesrv) {
        (Some(e), _) => e.namesrv_addr.clone(),
        (None, Some(n)) => n.clone(),
        (None, None) => std::env::var("NAMESRV_ADDR").unwrap_or_else(|_| "127.0.0.1:9876".into()),
    };
    let mut broker_pids = common.broker_pids.clone();
    broker_pids.extend(embedded.as_ref().map(Embedded::pid));
    let produce = produce.unwrap_or(ProduceArgs {
        size: 0,
        producers: 0,
        connections: 1,
        rate: 0.0,
        batch: 1,
        mode: Mode::Sync,
        inflight: 1,
        queues: 8,
    });
    let consume = consume.unwrap_or(ConsumeArgs { group: None, from_beginning: false, consumers: 1, pull_batch: 32 });
    let group = consume.group.unwrap_or_else(|| match (command, backlog) {
        (Command::EndToEnd, _) => format!("apogee-bench-e2e-{}", std::process::id()),
        (_, Some(_)) => format!("apogee-bench-backlog-{}", std::process::id()),
        _ => "apogee-bench-consumer".into(),
    });
    let mut load = Load {
        command,
        namesrv,
        topic: common.topic,
        queues: produce.queues,
        size: produce.size,
        producers: produce.producers,
        connections: produce.connections,
        inflight: produce.inflight,
        rate: produce.rate,
        duration: common.duration,
        count: common.count,
        batch: produce.batch,
        mode: match produce.mode {
            Mode::Sync => SendMode::Sync,
            Mode::Async => SendMode::Async,
            Mode::Oneway => SendMode::Oneway,
        },
        tags: common.tags,
        serialize: match common.serialize {
            Serialize::Json => SerializeType::Json,
            Serialize::Rocketmq => SerializeType::RocketMq,
        },
        warmup: common.warmup,
        request_timeout: common.timeout,
        group,
        from_beginning: consume.from_beginning,
        consumers: consume.consumers,
        pull_batch: consume.pull_batch,
        broker_pids,
        embedded: embedded.is_some(),
        progress: !common.quiet,
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.worker_threads(threads);
    let runtime = runtime.enable_all().build().map_err(|e| BenchError::io("starting the runtime", e))?;
    if let Some((messages, _)) = backlog {
        load.from_beginning = true;
        load.count = load.count.or(Some(messages));
    }
    let outcome = runtime.block_on(async {
        if let Some((messages, size)) = backlog {
            fill_backlog(&load, messages, size).await?;
        }
        load::run(load).await
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    let mut report: Report = match outcome {
        Ok(report) => report,
        Err(e) => {
            if let Some(embedded) = &embedded {
                eprintln!("the embedded broker's last log lines:\n{}", embedded.log_tail());
            }
            return Err(e);
        }
    };
    if let Some(embedded) = embedded {
        embedded.stop(Duration::from_secs(30));
        report.scenario.broker_settings = broker_settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
    }
    print!("{}", report.render());
    if let Some(path) = &common.json {
        report.write_json(path)?;
    }
    let produced = report.produce.as_ref().map_or(0, |p| p.messages);
    let consumed = report.consume.as_ref().map_or(0, |c| c.messages);
    // Nothing at all got through: a script should notice without reading the figures.
    let failed = (report.produce.is_some() && produced == 0) || (command == Command::EndToEnd && consumed == 0);
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The embedded broker's settings: the flush mode asked for, one shard per core this program
/// leaves free (unless `shards` is among `extra`), then `extra`. On the 2-core machine kind a
/// second shard on the core the load generator runs on doubled the broker's CPU a message
/// (9.3 → 18 µs at 64 producers): every request for the other shard's queues crossed cores,
/// and both executors kept parking and waking each other.
fn embedded_settings(
    flush: Option<Flush>,
    extra: &[(String, String)],
    cores: usize,
    threads: usize,
) -> Vec<(String, String)> {
    let mut settings = Vec::new();
    if let Some(flush) = flush {
        let value = match flush {
            Flush::Async => "ASYNC_FLUSH",
            Flush::Sync => "SYNC_FLUSH",
        };
        settings.push(("flushDiskType".to_string(), value.to_string()));
    }
    if !extra.iter().any(|(key, _)| key == "shards") {
        settings.push(("shards".to_string(), cores.saturating_sub(threads).max(1).to_string()));
    }
    settings.extend(extra.iter().cloned());
    settings
}

/// Sends the backlog a `consume --backlog` run reads: `messages` bodies of `size` bytes, in
/// batches, as fast as the cluster takes them.
async fn fill_backlog(consume: &Load, messages: u64, size: usize) -> Result<()> {
    let fill = Load {
        command: Command::Produce,
        size,
        producers: BACKLOG_SENDERS,
        // A divisor of the count, so that the backlog is exactly `messages` long.
        batch: (1..=BACKLOG_BATCH).rev().find(|b| messages.is_multiple_of(*b as u64)).unwrap_or(1),
        count: Some(messages),
        duration: Duration::from_secs(24 * 3600),
        ..consume.clone()
    };
    let started = std::time::Instant::now();
    let report = load::run(fill).await?;
    let sent = report.produce.as_ref().map_or(0, |p| p.messages);
    if sent < messages {
        return Err(BenchError::Invalid(format!("the backlog is short: {sent} of {messages} messages were accepted")));
    }
    eprintln!("backlog: {sent} messages of {size} bytes sent in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Senders, and most messages per send, that fill a backlog quickly.
const BACKLOG_SENDERS: usize = 16;
const BACKLOG_BATCH: usize = 32;

/// `30s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("not a duration: {text:?} (try 30s, 500ms, 2m)"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {text:?} (ms, s, m or h)")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_usual_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3 days").is_err());
    }

    #[test]
    fn the_embedded_broker_gets_the_cores_this_program_leaves_free() {
        let pairs = |s: &[(&str, &str)]| s.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        assert_eq!(
            embedded_settings(Some(Flush::Sync), &[], 8, 4),
            pairs(&[("flushDiskType", "SYNC_FLUSH"), ("shards", "4")])
        );
        assert_eq!(embedded_settings(None, &[], 2, 1), pairs(&[("shards", "1")]));
        // Never none, even when this program takes every core.
        assert_eq!(embedded_settings(None, &[], 2, 2), pairs(&[("shards", "1")]));
        // A shard count asked for wins, and the key appears once (the config is TOML).
        let asked = pairs(&[("shards", "2"), ("maxMessageSize", "4194304")]);
        assert_eq!(embedded_settings(None, &asked, 2, 1), asked);
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
