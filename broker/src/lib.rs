//! The Apogee broker: unmodified RocketMQ 4.x clients produce and consume through it. One
//! glommio executor owns the store shard, the metadata and the client tables; requests run as
//! tasks on it, long polls wait on the queue they read, and the name servers learn of the
//! broker and its topics by registration.

mod admin;
pub mod clients;
pub mod config;
mod error;
pub mod locks;
pub mod metadata;
mod processor;
mod registrar;
pub mod retention;
mod schedule;
mod send_back;
pub mod server;
mod transaction;

pub use config::BrokerConfig;
pub use error::BrokerError;
pub use server::BrokerServer;
