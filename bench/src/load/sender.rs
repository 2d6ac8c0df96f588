//! The senders: each draws the next ticket, waits for its scheduled time, sends (sync, async or
//! oneway, one message or a batch) and records the outcome in its tally.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use client::{ClientError, Message, Producer, SendResult, SendStatus};
use tokio::sync::{watch, Semaphore};

use super::reporter::Phased;
use super::{SendMode, Shared};
use crate::pace::Pacer;
use crate::stamp::{self, Stamp};
use crate::stats::SharedTally;

/// Counts a sender out however it ends.
struct Running(Arc<Shared>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(crate) async fn send_loop(
    shared: Arc<Shared>,
    producer: Producer,
    pacer: Pacer,
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
        let (ticket, intended) = tokio::select! {
            next = pacer.next(&shared.tickets) => next,
            _ = stop.wait_for(|s| *s) => break,
        };
        if ticket >= shared.limit.load(Ordering::SeqCst) {
            break;
        }
        let tally = tally.pick(ticket >= shared.measure_from.load(Ordering::SeqCst)).clone();
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
            tally.success(latency, messages, bytes);
        }
        Ok((Some(status), _, _)) => tally.failure(format!("{status:?}")),
        Err(e) => tally.failure(error_kind(&e)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::tests::load;
    use crate::load::Load;
    use std::time::Duration;

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
