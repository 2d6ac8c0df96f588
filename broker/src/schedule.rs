//! Delayed messages: one task per delay level delivers the level's queue of
//! SCHEDULE_TOPIC_XXXX to the messages' real topics when they are due.
//!
//! A level's messages all wait the same time, so its queue is in due order: the task sleeps on
//! a timer until its head is due, or on a wake-up from the next put to the level when the queue
//! is empty. Progress goes to `config/delayOffset.json` with the consumer offsets; after a crash
//! a level resumes from there, delivering at most the last moments' messages twice.

use std::rc::Rc;
use std::time::Duration;

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use store::GetMessageStatus;
use tracing::{debug, warn};
use wire::message::{self, properties, topic, StoredMessage};

use crate::server::{now_ms, Broker};

/// Wakes the level tasks after a put to their queue.
#[derive(Default)]
pub struct ScheduleWakers {
    by_level: Vec<LocalSender<()>>,
}

impl ScheduleWakers {
    /// Wakes the task of the level a message with `props` waits at, if it has one.
    pub fn wake_for(&self, props: &str) {
        let Some(level) =
            properties::get(props, properties::DELAY_TIME_LEVEL).and_then(|l| l.trim().parse::<usize>().ok())
        else {
            return;
        };
        if level > 0 {
            if let Some(tx) = self.by_level.get(level.min(self.by_level.len()).saturating_sub(1)) {
                let _ = tx.try_send(());
            }
        }
    }
}

/// Starts one delivery task per configured level; returns their wakers and handles.
pub fn start(broker: &Rc<Broker>) -> (ScheduleWakers, Vec<glommio::Task<()>>) {
    let levels = broker.store.config().delay_levels_ms.clone();
    let mut wakers = ScheduleWakers::default();
    let mut tasks = Vec::with_capacity(levels.len());
    for (index, delay_ms) in levels.into_iter().enumerate() {
        let (tx, rx) = local_channel::new_bounded(1);
        wakers.by_level.push(tx);
        let task = glommio::spawn_local(deliver_level(broker.clone(), index as i32 + 1, delay_ms, rx));
        tasks.push(task);
    }
    (wakers, tasks)
}

async fn deliver_level(broker: Rc<Broker>, level: i32, delay_ms: i64, wake: LocalReceiver<()>) {
    let queue_id = level - 1;
    let mut offset = broker.meta.borrow().delay_offsets.offset_table.get(&level).copied().unwrap_or(0);
    loop {
        let got = broker.store.get_message(topic::SCHEDULE_TOPIC, queue_id, offset, 1, &|_| true).await;
        let result = match got {
            Ok(result) => result,
            Err(e) => {
                warn!(level, offset, error = %e, "delayed messages unreadable; retrying in 1 s");
                glommio::timer::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        match result.status {
            GetMessageStatus::Found => {
                let parked = result
                    .messages
                    .first()
                    .and_then(|record| message::decode_stored_messages(record, false).ok().and_then(|mut v| v.pop()));
                let Some(parked) = parked else {
                    warn!(level, offset, "undecodable delayed message skipped");
                    offset = advance(&broker, level, offset + 1);
                    continue;
                };
                let wait_ms = parked.store_timestamp + delay_ms - now_ms();
                if wait_ms > 0 {
                    let timer = glommio::timer::sleep(Duration::from_millis(wait_ms as u64));
                    futures_lite::future::or(timer, async {
                        wake.recv().await;
                    })
                    .await;
                    continue;
                }
                match deliver(&broker, parked).await {
                    Ok(()) => offset = advance(&broker, level, result.next_begin_offset),
                    Err(e) => {
                        warn!(level, offset, error = %e, "delayed message not delivered; retrying in 1 s");
                        glommio::timer::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            GetMessageStatus::OffsetTooSmall
            | GetMessageStatus::OffsetOverflowBadly
            | GetMessageStatus::OffsetFoundNull
            | GetMessageStatus::NoMatchedMessage
            | GetMessageStatus::MessageWasRemoving
                if result.next_begin_offset != offset =>
            {
                offset = advance(&broker, level, result.next_begin_offset);
            }
            _ if broker.store.max_offset_in_queue(topic::SCHEDULE_TOPIC, queue_id) > offset => {
                // (SCHEDULE_TOPIC_XXXX is always shard 0's, where this runs.)
                // Stored but not yet durable: it is served within a flush.
                glommio::timer::sleep(Duration::from_millis(5)).await;
            }
            _ => {
                if wake.recv().await.is_none() {
                    return;
                }
            }
        }
    }
}

fn advance(broker: &Broker, level: i32, offset: i64) -> i64 {
    broker.meta.borrow_mut().delay_offsets.offset_table.insert(level, offset);
    broker.offsets_dirty.set(true);
    offset
}

/// Stores the parked message again under its real topic and queue, without its delay.
async fn deliver(broker: &Rc<Broker>, parked: StoredMessage) -> Result<(), store::StoreError> {
    let props = parked.properties.as_str();
    let (Some(real_topic), Some(real_queue)) = (
        properties::get(props, properties::REAL_TOPIC).map(str::to_owned),
        properties::get(props, properties::REAL_QUEUE_ID).and_then(|q| q.parse::<i32>().ok()),
    ) else {
        warn!(offset = parked.queue_offset, "delayed message without REAL_TOPIC / REAL_QID dropped");
        return Ok(());
    };
    let props = properties::without(props, properties::DELAY_TIME_LEVEL);
    let msg = StoredMessage {
        topic: real_topic.as_str().into(),
        queue_id: real_queue,
        properties: props.as_str().into(),
        store_host: broker.store_host,
        queue_offset: 0,
        physical_offset: 0,
        store_timestamp: 0,
        ..parked
    };
    broker.put_messages(vec![msg]).await?.durable?;
    debug!(topic = real_topic, queue = real_queue, "delayed message delivered");
    Ok(())
}
