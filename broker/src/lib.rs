//! The Apogee broker: unmodified RocketMQ 4.x clients produce and consume through it. One
//! glommio executor per shard owns that shard's store; shard 0 also owns the metadata and the
//! client tables. Sends and pulls run on the shard that stores their queue, long polls wait
//! there, and the name servers learn of the broker and its topics by registration.

mod admin;
pub mod clients;
pub mod config;
mod error;
pub mod locks;
mod mesh;
pub mod metadata;
mod processor;
mod pull_batching;
mod registrar;
pub mod retention;
mod router;
mod schedule;
mod send_back;
pub mod server;
mod stores;
mod transaction;
pub mod view;

pub use config::BrokerConfig;
pub use error::BrokerError;
pub use server::BrokerServer;
