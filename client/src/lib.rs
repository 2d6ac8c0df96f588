//! An async Rust client for RocketMQ 4.x clusters — Apogee or Apache RocketMQ — speaking the
//! remoting protocol of the `wire` crate over tokio.
//!
//! - [`Producer`]: sync, async, oneway, batch and ordered sends, with route refresh, retries and
//!   broker isolation after failures; bodies of 4 KiB or more go compressed, as Java's do.
//! - [`TransactionProducer`]: half messages, committed or rolled back by a local transaction,
//!   and answers to the broker's checks of transactions left open.
//! - [`PullConsumer`]: explicit offsets, long polling.
//! - [`PushConsumer`]: clustering (rebalanced with the average allocation strategy) or
//!   broadcasting (offsets kept in a local file, as Java's), offsets committed every 5 s and at
//!   shutdown, failed messages sent back.
//! - [`Admin`]: topics, clusters, routes, stats, consumer progress, broker runtime and config.
//!
//! Runs on tokio: see the crate README for why.
//!
//! ```no_run
//! use client::{Message, Producer, ProducerConfig};
//!
//! # async fn run() -> client::Result<()> {
//! let producer = Producer::start(ProducerConfig::new("my-producer-group", "127.0.0.1:9876"))?;
//! let result = producer.send(Message::new("TopicTest", "hello").with_tags("TagA")).await?;
//! println!("{} at {:?} offset {}", result.msg_id, result.queue, result.queue_offset);
//! producer.shutdown().await;
//! # Ok(()) }
//! ```

mod admin;
mod consumer;
mod error;
mod instance;
mod message;
mod producer;
mod remoting;
mod route;
mod transaction;

/// Locks a mutex, ignoring poisoning: the maps it guards stay consistent across a panic.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub use admin::{Admin, Target, TopicSpec};
pub use consumer::{
    ConsumeFrom, ConsumeResult, MessageModel, PullConsumer, PullResult, PullStatus, PushConsumer, PushConsumerConfig,
};
pub use error::{ClientError, Result};
pub use instance::ClientConfig;
pub use message::{Message, MessageExt};
pub use producer::{Producer, ProducerConfig, SendResult, SendStatus};
pub use remoting::{RemotingClient, RemotingConfig, ServerRequest};
pub use route::{NameServers, TopicRoute};
pub use transaction::{LocalTransactionState, TransactionListener, TransactionProducer, TransactionSendResult};
pub use wire::body::MessageQueue;
pub use wire::message::CompressionType;
pub use wire::SerializeType;
