//! The RocketMQ 4.x name server: brokers register their topics here every 30 s, and clients ask
//! it where a topic's queues are. Runs on one glommio executor; embeddable (the broker's
//! standalone mode starts one in-process) and shipped as the `apogee-namesrv` binary.
//!
//! - [`config`]: the TOML configuration with Java's key names.
//! - [`route`]: the route tables and broker liveness (Java `RouteInfoManager`).
//! - [`kv`]: the persisted KV config.
//! - [`processor`]: one handler per request code.
//! - [`server`]: connections, framing and the expiry scan.
//! - [`listen`]: listening sockets that a restart can rebind at once (the broker's too).

pub mod config;
mod error;
pub mod kv;
pub mod listen;
pub mod processor;
pub mod route;
pub mod server;

pub use config::NamesrvConfig;
pub use error::NamesrvError;
pub use server::NamesrvServer;
