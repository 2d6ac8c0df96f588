//! SEND_BATCH_MESSAGE bodies (`MessageDecoder.encodeMessages`): messages back to back, each
//!
//! ```text
//! i32 TOTALSIZE | i32 MAGICCODE (0, unused) | i32 BODYCRC (0, unused) | i32 FLAG
//! i32 body length | body | i16 properties length | properties
//! ```
//! The topic and queue come from the request header.

use bytes::{BufMut, Bytes, BytesMut};

use crate::bytestr::ByteStr;
use crate::error::MessageError;

/// One message of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchMessage {
    pub flag: i32,
    pub body: Bytes,
    pub properties: ByteStr,
}

const FIXED_LEN: usize = 4 + 4 + 4 + 4 + 4 + 2;

fn read_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// Splits a batch body into its messages; bodies and properties share `body`'s buffer.
pub fn decode_batch(body: &Bytes) -> Result<Vec<BatchMessage>, MessageError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let available = body.len() - at;
        if available < FIXED_LEN {
            return Err(MessageError::Truncated {
                what: "batch message header",
                needed: FIXED_LEN,
                offset: at,
                available,
            });
        }
        let total = read_i32(body, at);
        let total =
            usize::try_from(total).map_err(|_| MessageError::NegativeLength { what: "batch TOTALSIZE", len: total })?;
        if total < FIXED_LEN || total > available {
            return Err(MessageError::Truncated {
                what: "batch message",
                needed: total.max(FIXED_LEN),
                offset: at,
                available,
            });
        }
        let flag = read_i32(body, at + 12);
        let body_len = read_i32(body, at + 16);
        let body_len = usize::try_from(body_len)
            .map_err(|_| MessageError::NegativeLength { what: "batch body", len: body_len })?;
        let body_start = at + 20;
        if body_len > total - FIXED_LEN {
            return Err(MessageError::SizeMismatch { declared: total, computed: FIXED_LEN + body_len });
        }
        let props_at = body_start + body_len;
        let props_len = i16::from_be_bytes([body[props_at], body[props_at + 1]]);
        let props_len = usize::try_from(props_len)
            .map_err(|_| MessageError::NegativeLength { what: "batch properties", len: i32::from(props_len) })?;
        if FIXED_LEN + body_len + props_len != total {
            return Err(MessageError::SizeMismatch { declared: total, computed: FIXED_LEN + body_len + props_len });
        }
        let props_start = props_at + 2;
        let properties = ByteStr::from_utf8(body.slice(props_start..props_start + props_len))
            .map_err(|_| MessageError::InvalidUtf8 { what: "batch properties" })?;
        out.push(BatchMessage { flag, body: body.slice(body_start..body_start + body_len), properties });
        at += total;
    }
    Ok(out)
}

/// Encodes messages as a batch body, as the Java producer does.
pub fn encode_batch(messages: &[BatchMessage], dst: &mut BytesMut) -> Result<(), MessageError> {
    for m in messages {
        if m.properties.len() > i16::MAX as usize {
            return Err(MessageError::FieldTooLong {
                what: "properties",
                len: m.properties.len(),
                max: i16::MAX as usize,
            });
        }
        let total = FIXED_LEN + m.body.len() + m.properties.len();
        dst.reserve(total);
        dst.put_i32(total as i32);
        dst.put_i32(0);
        dst.put_i32(0);
        dst.put_i32(m.flag);
        dst.put_i32(m.body.len() as i32);
        dst.put_slice(&m.body);
        dst.put_i16(m.properties.len() as i16);
        dst.put_slice(m.properties.as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let msgs = vec![
            BatchMessage { flag: 0, body: Bytes::from_static(b"one"), properties: ByteStr::from("TAGS\u{1}a") },
            BatchMessage { flag: 7, body: Bytes::new(), properties: ByteStr::default() },
        ];
        let mut buf = BytesMut::new();
        encode_batch(&msgs, &mut buf).expect("encodes");
        assert_eq!(decode_batch(&buf.freeze()).expect("decodes"), msgs);
    }

    #[test]
    fn lies_are_errors() {
        let mut buf = BytesMut::new();
        encode_batch(
            &[BatchMessage { flag: 0, body: Bytes::from_static(b"abc"), properties: ByteStr::default() }],
            &mut buf,
        )
        .expect("encodes");
        let good = buf.freeze();
        assert!(decode_batch(&good.slice(..good.len() - 1)).is_err());
        let mut lying = BytesMut::from(&good[..]);
        lying[19] = 200; // body length past the record
        assert!(decode_batch(&lying.freeze()).is_err());
        let mut negative = BytesMut::from(&good[..]);
        negative[0] = 0xff;
        assert!(decode_batch(&negative.freeze()).is_err());
    }
}
