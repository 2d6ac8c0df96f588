//! Framing: length-prefixed commands on a byte stream.
//!
//! ```text
//! i32 total length  (= 4 + header length + body length; excludes itself)
//! i32 (serialize type << 24) | header length
//! header bytes
//! body bytes
//! ```
//! [`FrameDecoder`] works on a `BytesMut` read buffer: it leaves partial frames in place, takes
//! any number of whole frames per call, checks the declared length against its limit before
//! reserving anything, and returns bodies as slices of the buffer.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::command::{RemotingCommand, SerializeType};
use crate::error::WireError;
use crate::{json_header, rocketmq_header};

/// Default bound on one frame (length prefix excluded): 16 MiB.
pub const MAX_FRAME_BYTES_DEFAULT: usize = 16 * 1024 * 1024;
/// The header length travels in 24 bits.
const HEADER_LEN_MASK: u32 = 0x00ff_ffff;

/// Streaming decoder over a connection's read buffer.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    max_frame_bytes: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(MAX_FRAME_BYTES_DEFAULT)
    }
}

impl FrameDecoder {
    /// A decoder that rejects frames whose length field exceeds `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> Self {
        Self { max_frame_bytes }
    }

    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// Takes the next whole frame from `buf`, or returns `Ok(None)` when more bytes are needed.
    ///
    /// On error the stream is unusable (the frame boundary is lost): close the connection.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<RemotingCommand>, WireError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let declared = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let frame_len = self.check_length(declared)?;
        let wanted = 4 + frame_len;
        if buf.len() < wanted {
            buf.reserve(wanted - buf.len());
            return Ok(None);
        }
        let mut frame = buf.split_to(wanted).freeze();
        frame.advance(4);
        decode_frame_body(frame).map(Some)
    }

    /// Like [`decode`](Self::decode), for when the peer has closed: leftover bytes are an error.
    pub fn decode_eof(&self, buf: &mut BytesMut) -> Result<Option<RemotingCommand>, WireError> {
        match self.decode(buf)? {
            Some(cmd) => Ok(Some(cmd)),
            None if buf.is_empty() => Ok(None),
            None => Err(WireError::TruncatedFrame { buffered: buf.len() }),
        }
    }

    fn check_length(&self, declared: i32) -> Result<usize, WireError> {
        if declared < 4 {
            return Err(WireError::FrameTooShort { len: i64::from(declared) });
        }
        let len = declared as usize;
        if len > self.max_frame_bytes {
            return Err(WireError::FrameTooLarge { len, max: self.max_frame_bytes });
        }
        Ok(len)
    }
}

/// Decodes one frame given without its 4-byte length prefix.
fn decode_frame_body(mut frame: Bytes) -> Result<RemotingCommand, WireError> {
    let frame_len = frame.len();
    let word = frame.get_u32();
    let serialize_type = (word >> 24) as u8;
    let header_len = (word & HEADER_LEN_MASK) as usize;
    if header_len > frame.len() {
        return Err(WireError::HeaderLengthOutOfRange { header_len, frame_len });
    }
    let header = frame.split_to(header_len);
    let body = frame;
    match SerializeType::from_code(serialize_type) {
        Some(SerializeType::Json) => json_header::decode(&header, body),
        Some(SerializeType::RocketMq) => rocketmq_header::decode(&header, body),
        None => Err(WireError::UnknownSerializeType(serialize_type)),
    }
}

/// Decodes one whole frame, length prefix included (as the fixtures store them).
pub fn decode_frame(frame: Bytes, max_frame_bytes: usize) -> Result<RemotingCommand, WireError> {
    if frame.len() < 4 {
        return Err(WireError::TruncatedFrame { buffered: frame.len() });
    }
    let declared = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
    let frame_len = FrameDecoder::new(max_frame_bytes).check_length(declared)?;
    if frame.len() - 4 < frame_len {
        return Err(WireError::TruncatedFrame { buffered: frame.len() });
    }
    if frame.len() - 4 > frame_len {
        return Err(WireError::TrailingBytes { extra: frame.len() - 4 - frame_len });
    }
    decode_frame_body(frame.slice(4..))
}

/// Appends the length words and header of `cmd`, in its serialization, but not its body: a
/// writer can then send the body `Bytes` as they are (vectored write), never copying them.
pub fn encode_head(cmd: &RemotingCommand, dst: &mut BytesMut) {
    let start = dst.len();
    dst.put_u32(0);
    dst.put_u32(0);
    let header_start = dst.len();
    match cmd.serialize_type {
        SerializeType::Json => json_header::encode(cmd, dst),
        SerializeType::RocketMq => rocketmq_header::encode(cmd, dst),
    }
    let header_len = dst.len() - header_start;
    let total = 4 + header_len + cmd.body.len();
    dst[start..start + 4].copy_from_slice(&(total as u32).to_be_bytes());
    let word = (u32::from(cmd.serialize_type.code()) << 24) | (header_len as u32 & HEADER_LEN_MASK);
    dst[start + 4..start + 8].copy_from_slice(&word.to_be_bytes());
}

/// Appends the whole frame of `cmd`, body included.
pub fn encode(cmd: &RemotingCommand, dst: &mut BytesMut) {
    encode_head(cmd, dst);
    dst.put_slice(&cmd.body);
}

/// The whole frame of `cmd` as one buffer.
pub fn encode_to_bytes(cmd: &RemotingCommand) -> Bytes {
    let mut dst = BytesMut::with_capacity(256 + cmd.body.len());
    encode(cmd, &mut dst);
    dst.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::LanguageCode;

    fn sample(serialize_type: SerializeType) -> RemotingCommand {
        let mut cmd = RemotingCommand::request(310).with_serialize_type(serialize_type).with_body(&b"hello"[..]);
        cmd.opaque = 7;
        cmd.language = LanguageCode::Cpp;
        cmd.ext_fields.insert("a", "group");
        cmd.ext_fields.insert("i", "KEYS\u{1}k\u{2}TAGS\u{1}t");
        cmd
    }

    #[test]
    fn round_trips_both_serializations() {
        for st in [SerializeType::Json, SerializeType::RocketMq] {
            let cmd = sample(st);
            let bytes = encode_to_bytes(&cmd);
            let back = decode_frame(bytes, MAX_FRAME_BYTES_DEFAULT).expect("decodes");
            assert_eq!(back, cmd);
        }
    }

    #[test]
    fn partial_frames_wait_and_many_frames_per_read_all_come_out() {
        let one = encode_to_bytes(&sample(SerializeType::Json));
        let two = encode_to_bytes(&sample(SerializeType::RocketMq));
        let mut stream = BytesMut::new();
        stream.extend_from_slice(&one);
        stream.extend_from_slice(&two);
        let decoder = FrameDecoder::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in stream.chunks(3) {
            buf.extend_from_slice(chunk);
            while let Some(cmd) = decoder.decode(&mut buf).expect("valid stream") {
                out.push(cmd);
            }
        }
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].serialize_type, SerializeType::RocketMq);
        assert!(buf.is_empty());
    }

    #[test]
    fn body_is_a_slice_of_the_read_buffer() {
        let mut buf = BytesMut::from(&encode_to_bytes(&sample(SerializeType::RocketMq))[..]);
        let region = buf.as_ptr_range();
        let cmd = FrameDecoder::default().decode(&mut buf).expect("valid").expect("whole");
        assert!(region.contains(&cmd.body.as_ptr()));
    }

    #[test]
    fn oversized_length_is_rejected_before_allocating() {
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        let err = FrameDecoder::new(1024).decode(&mut buf).expect_err("too large");
        assert!(matches!(err, WireError::FrameTooLarge { len: 0x7fff_ffff, max: 1024 }));
        assert!(buf.capacity() < 1024);
    }
}
