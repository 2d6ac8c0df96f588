//! The RocketMQ 4.x remoting protocol, as Apogee speaks it.
//!
//! A RocketMQ connection carries [`RemotingCommand`]s in length-prefixed frames. Each command has
//! a header (code, opaque, flags, remark and a string map called `extFields`) serialized as JSON
//! or in the compact ROCKETMQ binary layout, and an opaque body. Requests name what they want
//! with a [request code](code::request); responses answer with a [response code](code::response)
//! and the request's `opaque`, in the request's serialization.
//!
//! This crate knows nothing of sockets, files or executors. It gives:
//! - [`FrameDecoder`] and [`encode`]: frames over a `BytesMut` read buffer, bounded in size, with
//!   bodies and header strings sharing the read buffer instead of being copied;
//! - [`header`]: typed views of `extFields` (`SendMessageRequestHeader`, ...), with errors that
//!   name the missing or bad field;
//! - [`body`]: the JSON bodies (topic routes, heartbeats, cluster info, ...) in the shapes the Java
//!   side writes, including fastjson's unquoted map keys;
//! - [`message`]: the stored-message format that CommitLog records and PULL bodies use, batches,
//!   properties, message ids and tag hash codes.
//!
//! ```
//! use bytes::BytesMut;
//! use wire::{code, encode, FrameDecoder, RemotingCommand, SerializeType};
//! use wire::header::GetRouteInfoRequestHeader;
//!
//! let request = RemotingCommand::request(code::request::GET_ROUTEINFO_BY_TOPIC)
//!     .with_serialize_type(SerializeType::RocketMq)
//!     .with_header(&GetRouteInfoRequestHeader { topic: "TopicTest".into(), accept_standard_json_only: None });
//! let mut buf = BytesMut::new();
//! encode(&request, &mut buf);
//!
//! let decoded = FrameDecoder::default().decode(&mut buf).unwrap().unwrap();
//! let header: GetRouteInfoRequestHeader = decoded.header().unwrap();
//! assert_eq!(header.topic, "TopicTest");
//! ```

pub mod body;
mod bytestr;
pub mod code;
mod command;
mod error;
mod frame;
pub mod header;
mod json_header;
mod known_keys;
pub mod message;
mod rocketmq_header;

pub use bytestr::ByteStr;
pub use command::{
    ExtFields, LanguageCode, RemotingCommand, SerializeType, FLAG_ONEWAY, FLAG_RESPONSE, MAX_EXT_FIELDS, VERSION_4_9_4,
    VERSION_4_9_8,
};
pub use error::{BodyError, HeaderError, MessageError, WireError};
pub use frame::{decode_frame, encode, encode_head, encode_to_bytes, FrameDecoder, MAX_FRAME_BYTES_DEFAULT};
