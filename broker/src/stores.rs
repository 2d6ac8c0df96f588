//! The store operations of the broker, on whichever shard stores the queue: run here when this
//! shard owns it, else as a call to its owner. Puts also wake the pulls waiting on the queue and
//! the delivery of delayed messages, on the shard that stored them.

use std::future::Future;
use std::rc::Rc;

use bytes::Bytes;
use store::{QueryMessageResult, StoreError};
use wire::message::{properties, topic, StoredMessage};

use crate::mesh::{Job, Value};
use crate::server::Broker;

/// Where a put went: queue and physical offset of each message, and whether it became durable.
pub struct Stored {
    pub offsets: Vec<(i64, i64)>,
    pub durable: Result<(), StoreError>,
}

/// A delayed message waits in SCHEDULE_TOPIC_XXXX and a prepared one in the half topic, both
/// stored by shard 0, where the delay and transaction machinery runs.
pub fn staged_on_shard_0(topic: &str, props: &str) -> bool {
    let delayed = properties::get(props, properties::DELAY_TIME_LEVEL).is_some_and(|l| l != "0");
    delayed && topic != topic::SCHEDULE_TOPIC
        || crate::transaction::is_prepared(props)
        || topic == topic::TRANS_HALF_TOPIC
}

impl Broker {
    /// Runs `f` with the broker of `shard`: here, or there by a call.
    pub async fn on_shard<T, F, Fut>(self: &Rc<Self>, shard: usize, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Rc<Broker>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        if shard == self.mesh.shard {
            return Ok(f(self.clone()).await);
        }
        let job: Job = Box::new(move |b| Box::pin(async move { Box::new(f(b).await) as Value }));
        match self.mesh.call(shard, job).await.map(|v| v.downcast::<T>()) {
            Some(Ok(value)) => Ok(*value),
            _ => Err(StoreError::Closed),
        }
    }

    /// The shard that stores `(topic, queue_id)`.
    pub fn owner(&self, topic: &str, queue_id: i32) -> usize {
        if self.mesh.shards == 1 {
            return 0;
        }
        self.view.borrow().owner(topic, queue_id)
    }

    /// The shard a message goes to (see [`staged_on_shard_0`]).
    fn owner_of_message(&self, msg: &StoredMessage) -> usize {
        if self.mesh.shards == 1 || staged_on_shard_0(msg.topic.as_str(), msg.properties.as_str()) {
            return 0;
        }
        self.owner(msg.topic.as_str(), msg.queue_id)
    }

    /// Appends messages of one queue and waits until they are durable (or failed to be).
    pub async fn put_messages(self: &Rc<Self>, msgs: Vec<StoredMessage>) -> Result<Stored, StoreError> {
        let Some(first) = msgs.first() else {
            return Err(StoreError::BadRecord("empty batch".into()));
        };
        let shard = self.owner_of_message(first);
        self.on_shard(shard, move |b| async move { b.put_here(msgs).await }).await?
    }

    async fn put_here(&self, msgs: Vec<StoredMessage>) -> Result<Stored, StoreError> {
        let mut offsets = Vec::with_capacity(msgs.len());
        let mut last = None;
        // A batch is one queue; the staged ones (delays, transactions) are single messages.
        let queue = msgs.first().map(|m| (m.topic.clone(), m.queue_id));
        for msg in msgs {
            let delayed = msg.properties.as_str().contains(properties::DELAY_TIME_LEVEL);
            let props = delayed.then(|| msg.properties.clone());
            let put = self.store.put_message(msg)?;
            if let Some(props) = props {
                self.schedule.borrow().wake_for(props.as_str());
            }
            offsets.push((put.queue_offset, put.durable.result().physical_offset));
            last = Some(put.durable);
        }
        let durable = match last {
            Some(last) => last.wait().await.map(drop),
            None => Ok(()),
        };
        if let Some((topic, queue_id)) = queue {
            self.notify_arrival(topic.as_str(), queue_id);
        }
        self.puts.set(self.puts.get() + offsets.len() as u64);
        Ok(Stored { offsets, durable })
    }

    /// `(min, max)` queue offsets of `(topic, queue_id)`.
    pub async fn queue_offsets(self: &Rc<Self>, topic: &str, queue_id: i32) -> (i64, i64) {
        let name = topic.to_owned();
        let shard = self.owner(topic, queue_id);
        self.on_shard(shard, move |b| async move {
            (b.store.min_offset_in_queue(&name, queue_id), b.store.max_offset_in_queue(&name, queue_id))
        })
        .await
        .unwrap_or((0, 0))
    }

    pub async fn max_offset(self: &Rc<Self>, topic: &str, queue_id: i32) -> i64 {
        self.queue_offsets(topic, queue_id).await.1
    }

    pub async fn min_offset(self: &Rc<Self>, topic: &str, queue_id: i32) -> i64 {
        self.queue_offsets(topic, queue_id).await.0
    }

    /// Whether a consumer with no committed offset starts at 0: the queue's first message is
    /// still there and in memory (Java's rule for a new queue).
    pub async fn starts_at_zero(self: &Rc<Self>, topic: &str, queue_id: i32) -> Result<bool, StoreError> {
        let name = topic.to_owned();
        let shard = self.owner(topic, queue_id);
        self.on_shard(shard, move |b| async move {
            let min = b.store.min_offset_in_queue(&name, queue_id);
            Ok(min <= 0 && !b.store.is_in_disk(&name, queue_id, 0).await?)
        })
        .await?
    }

    /// Store time of the message at queue offset `offset`.
    pub async fn store_timestamp(
        self: &Rc<Self>,
        topic: &str,
        queue_id: i32,
        offset: i64,
    ) -> Result<Option<i64>, StoreError> {
        let name = topic.to_owned();
        let shard = self.owner(topic, queue_id);
        self.on_shard(shard, move |b| async move { b.store.message_store_timestamp(&name, queue_id, offset).await })
            .await?
    }

    pub async fn earliest_time(self: &Rc<Self>, topic: &str, queue_id: i32) -> Result<Option<i64>, StoreError> {
        let name = topic.to_owned();
        let shard = self.owner(topic, queue_id);
        self.on_shard(shard, move |b| async move { b.store.earliest_message_time(&name, queue_id).await }).await?
    }

    pub async fn offset_by_time(self: &Rc<Self>, topic: &str, queue_id: i32, at: i64) -> Result<i64, StoreError> {
        let name = topic.to_owned();
        let shard = self.owner(topic, queue_id);
        self.on_shard(shard, move |b| async move { b.store.offset_in_queue_by_time(&name, queue_id, at).await }).await?
    }

    /// `(min, max, units)` of a ConsumeQueue, from its shard (see
    /// [`store::MessageStore::consume_queue_units`]).
    pub async fn consume_queue_units(
        self: &Rc<Self>,
        topic: &str,
        queue_id: i32,
        from: i64,
        count: usize,
    ) -> Result<Option<(i64, i64, Vec<store::CqUnit>)>, StoreError> {
        let name = topic.to_owned();
        let shard = self.owner(topic, queue_id);
        self.on_shard(shard, move |b| async move { b.store.consume_queue_units(&name, queue_id, from, count).await })
            .await?
    }

    /// The record at a global physical offset, from the shard its top bits name.
    pub async fn look_message(self: &Rc<Self>, physical_offset: i64) -> Result<Bytes, StoreError> {
        let shard = store::shard_of(physical_offset);
        if shard >= self.mesh.shards {
            return Err(StoreError::OffsetNotFound(physical_offset as u64));
        }
        self.on_shard(shard, move |b| async move { b.store.look_message_by_offset(physical_offset).await }).await?
    }

    /// Messages with `key`, from every shard's index: the newest `max_num`, oldest first.
    pub async fn query_messages(
        self: &Rc<Self>,
        topic: &str,
        key: &str,
        max_num: usize,
        begin: i64,
        end: i64,
    ) -> Result<QueryMessageResult, StoreError> {
        let mut all = QueryMessageResult::default();
        let mut found: Vec<(i64, Bytes)> = Vec::new();
        for shard in 0..self.mesh.shards {
            let (name, key) = (topic.to_owned(), key.to_owned());
            let part = self
                .on_shard(shard, move |b| async move { b.store.query_message(&name, &key, max_num, begin, end).await })
                .await??;
            all.index_last_update_timestamp = all.index_last_update_timestamp.max(part.index_last_update_timestamp);
            all.index_last_update_phyoffset = all.index_last_update_phyoffset.max(part.index_last_update_phyoffset);
            for record in part.messages {
                let stored_at = StoredMessage::decode(&record, false).map_or(0, |(m, _)| m.store_timestamp);
                found.push((stored_at, record));
            }
        }
        found.sort_by_key(|(at, _)| *at);
        let skip = found.len().saturating_sub(max_num);
        all.messages = found.into_iter().skip(skip).map(|(_, r)| r).collect();
        Ok(all)
    }
}
