//! The consumer side: a push consumer whose handler records each delivery's latency since its
//! stamped send time (or born timestamp).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::{ConsumeFrom, ConsumeResult, MessageExt, PushConsumer, PushConsumerConfig};

use super::reporter::Phased;
use super::{Command, Shared};
use crate::error::{BenchError, Result};
use crate::stamp;

pub(crate) async fn start_consumer(shared: &Arc<Shared>, tally: Phased) -> Result<PushConsumer> {
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
    tally.pick(measured).success(latency, 1, message.body().len() as u64);
}

/// Waits until every acknowledged message of this run has been delivered, or until delivery
/// stalls for 5 s; returns how many never came.
pub(crate) async fn wait_for_delivery(shared: &Shared) -> u64 {
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
