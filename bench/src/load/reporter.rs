//! The reporter: drains every tally every 100 ms, prints the progress line every second, ends
//! the warm-up and then the run; and the resource snapshots the figures are costed with.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Command, Load, Shared};
use crate::report::{HostFigures, ProcessFigures};
use crate::stats::{ms, Percentiles, SharedTally, Tally};
use crate::usage::{self, HostCpu, Usage};

/// A sender's or the consumer's tallies: warm-up results only feed the progress line.
#[derive(Clone, Default)]
pub(crate) struct Phased {
    pub(crate) warmup: SharedTally,
    pub(crate) measured: SharedTally,
}

impl Phased {
    pub(crate) fn pick(&self, measured: bool) -> &SharedTally {
        if measured {
            &self.measured
        } else {
            &self.warmup
        }
    }
}

/// Resource use of the broker processes, of this one and of the machine.
#[derive(Clone)]
pub(crate) struct Snapshot {
    pub(crate) brokers: Vec<Option<Usage>>,
    pub(crate) bench: Option<Usage>,
    pub(crate) host: Option<HostCpu>,
}

impl Snapshot {
    pub(crate) fn take(load: &Load) -> Self {
        Self {
            brokers: load.broker_pids.iter().map(|pid| usage::of(*pid)).collect(),
            bench: usage::of_self(),
            host: usage::host(),
        }
    }
}

/// The machine's busy and stolen shares between two snapshots.
pub(crate) fn host_figures(before: &Snapshot, after: &Snapshot) -> Option<HostFigures> {
    after.host?.shares_since(&before.host?)
}

/// CPU spent between two snapshots per message handled, and memory at the end.
pub(crate) fn cost(before: &[Option<Usage>], after: &[Option<Usage>], handled: u64) -> Option<ProcessFigures> {
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

/// Drains the tallies every 100 ms, prints the progress line every second, ends the warm-up
/// and then the run.
pub(crate) struct Reporter {
    pub(crate) shared: Arc<Shared>,
    pub(crate) sent: Vec<Phased>,
    pub(crate) received: Phased,
    /// Resource use when measuring began.
    pub(crate) baseline: Option<Snapshot>,
    /// The measured phase's sends and deliveries.
    pub(crate) totals: (Tally, Tally),
}

impl Reporter {
    /// Moves everything recorded since the last drain into `second` (for the progress line);
    /// the measured part also goes to the totals.
    pub(crate) fn drain(&mut self, second: &mut (Tally, Tally)) {
        for tally in &self.sent {
            tally.measured.drain_into(&mut [&mut self.totals.0, &mut second.0]);
            tally.warmup.drain_into(&mut [&mut second.0]);
        }
        self.received.measured.drain_into(&mut [&mut self.totals.1, &mut second.1]);
        self.received.warmup.drain_into(&mut [&mut second.1]);
    }

    /// Runs until the duration, the count or the senders are done; returns the length of the
    /// measured phase.
    pub(crate) async fn run(
        &mut self,
        stop: watch::Sender<bool>,
        workers: Vec<tokio::task::JoinHandle<()>>,
    ) -> Duration {
        let shared = self.shared.clone();
        let load = &shared.load;
        let began = Instant::now();
        let mut since = self.baseline.as_ref().map(|_| began);
        let mut second = (Tally::default(), Tally::default());
        let mut next_line = began + Duration::from_secs(1);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut host_at_line = usage::host();
        let elapsed = loop {
            tick.tick().await;
            let now = Instant::now();
            let warmup_ends = since.is_none() && now >= began + load.warmup;
            self.drain(&mut second);
            if warmup_ends {
                self.baseline = Some(Snapshot::take(load));
                shared.begin_measuring();
                since = Some(now);
            }
            if load.progress && now >= next_line {
                let host = usage::host();
                let steal = host.zip(host_at_line).and_then(|(now, then)| now.shares_since(&then));
                host_at_line = host;
                let mut line = progress_line(now - began, since.is_none(), &second.0, &second.1, load.command);
                if let Some(shares) = steal {
                    line += &format!(" | steal {:.0}%", shares.steal_pct);
                }
                eprintln!("{line}");
                second.0.clear();
                second.1.clear();
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
        self.drain(&mut second);
        elapsed
    }
}

fn progress_line(at: Duration, warming: bool, sent: &Tally, received: &Tally, command: Command) -> String {
    let mut line = format!("[{:>4}s]{}", at.as_secs(), if warming { " warm-up" } else { "" });
    if command.produces() {
        line += &format!("{} errors {}", rate_part(" sent", sent, "p99"), sent.error_count());
    }
    if command.consumes() {
        line += &rate_part(" | received", received, "e2e p99");
    }
    line
}

/// One second's messages, megabytes and 99th percentile latency.
fn rate_part(label: &str, tally: &Tally, latency_label: &str) -> String {
    let p99 = Percentiles::of(&tally.latency).p99_us;
    format!("{label} {:>8} msg/s {:>7.1} MB/s {latency_label} {:>9}", tally.messages, tally.bytes as f64 / 1e6, ms(p99))
}
