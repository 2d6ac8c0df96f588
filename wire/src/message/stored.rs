//! The stored-message format of RocketMQ 4.x: one CommitLog record, and one message of a PULL
//! response body (a pull body is these records back to back, unchanged).
//!
//! ```text
//! i32 TOTALSIZE | i32 MAGICCODE (0xdaa320a7) | i32 BODYCRC | i32 QUEUEID | i32 FLAG
//! i64 QUEUEOFFSET | i64 PHYSICALOFFSET | i32 SYSFLAG | i64 BORNTIMESTAMP
//! BORNHOST (4-byte IPv4 or 16-byte IPv6 per sysflag, then i32 port) | i64 STORETIMESTAMP
//! STOREHOST (same layout) | i32 RECONSUMETIMES | i64 PREPARED TRANSACTION OFFSET
//! i32 body length | body | u8 topic length | topic | i16 properties length | properties
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{BufMut, Bytes, BytesMut};

use super::sys_flag;
use crate::bytestr::ByteStr;
use crate::error::MessageError;

/// Marks a message record.
pub const MESSAGE_MAGIC_CODE: u32 = 0xdaa3_20a7;
/// Marks the blank space that ends a CommitLog segment when the next record does not fit.
pub const BLANK_MAGIC_CODE: u32 = 0xcbd4_3194;

/// Longest topic: its length travels in one byte.
const TOPIC_MAX_BYTES: usize = u8::MAX as usize;
/// Longest properties string: its length travels in a signed 16-bit field.
const PROPERTIES_MAX_BYTES: usize = i16::MAX as usize;

/// BODYCRC: CRC32 (IEEE) of the body, masked to 31 bits as Java's `UtilAll.crc32` does.
pub fn body_crc(body: &[u8]) -> u32 {
    crc32fast::hash(body) & 0x7fff_ffff
}

/// One stored message, decoded. `body` and the strings share the buffer they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub body_crc: u32,
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub physical_offset: i64,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body: Bytes,
    pub topic: ByteStr,
    /// The raw properties string; see [`super::properties`].
    pub properties: ByteStr,
}

impl Default for StoredMessage {
    fn default() -> Self {
        let unspecified = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
        Self {
            body_crc: 0,
            queue_id: 0,
            flag: 0,
            queue_offset: 0,
            physical_offset: 0,
            sys_flag: 0,
            born_timestamp: 0,
            born_host: unspecified,
            store_timestamp: 0,
            store_host: unspecified,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: Bytes::new(),
            topic: ByteStr::default(),
            properties: ByteStr::default(),
        }
    }
}

fn host_len(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => 8,
        SocketAddr::V6(_) => 20,
    }
}

/// The fixed-size head of a record (up to BODY's length), built on the stack. 128 bytes hold
/// it with two IPv6 hosts (112).
struct Fixed {
    buf: [u8; 128],
    len: usize,
}

impl Default for Fixed {
    fn default() -> Self {
        Self { buf: [0; 128], len: 0 }
    }
}

impl Fixed {
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn put_host(&mut self, addr: &SocketAddr) {
        match addr.ip() {
            IpAddr::V4(ip) => self.put(&ip.octets()),
            IpAddr::V6(ip) => self.put(&ip.octets()),
        }
        self.put(&i32::from(addr.port()).to_be_bytes());
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl StoredMessage {
    /// The record's TOTALSIZE.
    pub fn encoded_len(&self) -> usize {
        4 + 4
            + 4
            + 4
            + 4
            + 8
            + 8
            + 4
            + 8
            + host_len(&self.born_host)
            + 8
            + host_len(&self.store_host)
            + 4
            + 8
            + 4
            + self.body.len()
            + 1
            + self.topic.len()
            + 2
            + self.properties.len()
    }

    /// The sysflag as written: the IPv6 bits follow the actual host addresses.
    pub fn effective_sys_flag(&self) -> i32 {
        let mut flag = self.sys_flag & !(sys_flag::BORNHOST_V6 | sys_flag::STOREHOST_V6);
        if self.born_host.is_ipv6() {
            flag |= sys_flag::BORNHOST_V6;
        }
        if self.store_host.is_ipv6() {
            flag |= sys_flag::STOREHOST_V6;
        }
        flag
    }

    /// Appends the record. Fails only if the topic or properties are too long for their
    /// length fields.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), MessageError> {
        if self.topic.len() > TOPIC_MAX_BYTES {
            return Err(MessageError::FieldTooLong { what: "topic", len: self.topic.len(), max: TOPIC_MAX_BYTES });
        }
        if self.properties.len() > PROPERTIES_MAX_BYTES {
            return Err(MessageError::FieldTooLong {
                what: "properties",
                len: self.properties.len(),
                max: PROPERTIES_MAX_BYTES,
            });
        }
        let total = self.encoded_len();
        dst.reserve(total);
        // The fixed-size fields are gathered on the stack and copied once: a `put_*` call per
        // field cost a library copy each, a sixth of an append.
        let mut fixed = Fixed::default();
        fixed.put(&(total as i32).to_be_bytes());
        fixed.put(&MESSAGE_MAGIC_CODE.to_be_bytes());
        fixed.put(&self.body_crc.to_be_bytes());
        fixed.put(&self.queue_id.to_be_bytes());
        fixed.put(&self.flag.to_be_bytes());
        fixed.put(&self.queue_offset.to_be_bytes());
        fixed.put(&self.physical_offset.to_be_bytes());
        fixed.put(&self.effective_sys_flag().to_be_bytes());
        fixed.put(&self.born_timestamp.to_be_bytes());
        fixed.put_host(&self.born_host);
        fixed.put(&self.store_timestamp.to_be_bytes());
        fixed.put_host(&self.store_host);
        fixed.put(&self.reconsume_times.to_be_bytes());
        fixed.put(&self.prepared_transaction_offset.to_be_bytes());
        fixed.put(&(self.body.len() as i32).to_be_bytes());
        dst.put_slice(fixed.bytes());
        dst.put_slice(&self.body);
        dst.put_u8(self.topic.len() as u8);
        dst.put_slice(self.topic.as_bytes());
        dst.put_i16(self.properties.len() as i16);
        dst.put_slice(self.properties.as_bytes());
        Ok(())
    }

    /// Decodes the record at the start of `buf`; returns it and its size. With `check_crc`, a
    /// body whose CRC does not match BODYCRC is an error (as recovery needs).
    pub fn decode(buf: &Bytes, check_crc: bool) -> Result<(Self, usize), MessageError> {
        let mut r = Cursor { buf, at: 0 };
        let total = r.len_i32("TOTALSIZE")?;
        let magic = r.u32("MAGICCODE")?;
        if magic != MESSAGE_MAGIC_CODE {
            return Err(MessageError::BadMagic(magic));
        }
        if total > buf.len() {
            return Err(MessageError::Truncated { what: "record", needed: total, offset: 0, available: buf.len() });
        }
        let stored_crc = r.u32("BODYCRC")?;
        let queue_id = r.i32("QUEUEID")?;
        let flag = r.i32("FLAG")?;
        let queue_offset = r.i64("QUEUEOFFSET")?;
        let physical_offset = r.i64("PHYSICALOFFSET")?;
        let sys_flag = r.i32("SYSFLAG")?;
        let born_timestamp = r.i64("BORNTIMESTAMP")?;
        let born_host = r.host(sys_flag & sys_flag::BORNHOST_V6 != 0, "BORNHOST")?;
        let store_timestamp = r.i64("STORETIMESTAMP")?;
        let store_host = r.host(sys_flag & sys_flag::STOREHOST_V6 != 0, "STOREHOST")?;
        let reconsume_times = r.i32("RECONSUMETIMES")?;
        let prepared_transaction_offset = r.i64("PREPAREDTRANSACTIONOFFSET")?;
        let body_len = r.len_i32("BODY length")?;
        let body = r.bytes(body_len, "BODY")?;
        let topic_len = usize::from(r.take(1, "TOPIC length")?[0]);
        let topic = r.text(topic_len, "TOPIC")?;
        let properties_len = r.i16("PROPERTIES length")?;
        let properties_len = usize::try_from(properties_len)
            .map_err(|_| MessageError::NegativeLength { what: "PROPERTIES", len: i32::from(properties_len) })?;
        let properties = r.text(properties_len, "PROPERTIES")?;
        if r.at != total {
            return Err(MessageError::SizeMismatch { declared: total, computed: r.at });
        }
        if check_crc {
            let computed = body_crc(&body);
            if computed != stored_crc {
                return Err(MessageError::BodyCrcMismatch { stored: stored_crc, computed });
            }
        }
        let msg = Self {
            body_crc: stored_crc,
            queue_id,
            flag,
            queue_offset,
            physical_offset,
            sys_flag,
            born_timestamp,
            born_host,
            store_timestamp,
            store_host,
            reconsume_times,
            prepared_transaction_offset,
            body,
            topic,
            properties,
        };
        Ok((msg, total))
    }

    /// Value of one property.
    pub fn property(&self, key: &str) -> Option<&str> {
        super::properties::get(&self.properties, key)
    }

    /// The TAGS property.
    pub fn tags(&self) -> Option<&str> {
        self.property(super::properties::TAGS)
    }

    /// The offset message id (store host + physical offset) of this record.
    pub fn offset_msg_id(&self) -> String {
        super::offset_msg_id(self.store_host, self.physical_offset)
    }
}

/// Decodes every record of a PULL body.
pub fn decode_stored_messages(buf: &Bytes, check_crc: bool) -> Result<Vec<StoredMessage>, MessageError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let rest = buf.slice(at..);
        let (msg, size) = StoredMessage::decode(&rest, check_crc).map_err(|e| match e {
            MessageError::Truncated { what, needed, offset, available } => {
                MessageError::Truncated { what, needed, offset: offset + at, available }
            }
            other => other,
        })?;
        out.push(msg);
        at += size;
    }
    Ok(out)
}

struct Cursor<'a> {
    buf: &'a Bytes,
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], MessageError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(MessageError::Truncated {
                what,
                needed: n,
                offset: self.at,
                available: self.buf.len() - self.at,
            });
        };
        let out = &self.buf[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], MessageError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, MessageError> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }
    fn i32(&mut self, what: &'static str) -> Result<i32, MessageError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, MessageError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }
    fn i64(&mut self, what: &'static str) -> Result<i64, MessageError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    fn len_i32(&mut self, what: &'static str) -> Result<usize, MessageError> {
        let len = self.i32(what)?;
        usize::try_from(len).map_err(|_| MessageError::NegativeLength { what, len })
    }

    fn bytes(&mut self, n: usize, what: &'static str) -> Result<Bytes, MessageError> {
        let start = self.at;
        self.take(n, what)?;
        Ok(self.buf.slice(start..start + n))
    }

    fn text(&mut self, n: usize, what: &'static str) -> Result<ByteStr, MessageError> {
        ByteStr::from_utf8(self.bytes(n, what)?).map_err(|_| MessageError::InvalidUtf8 { what })
    }

    fn host(&mut self, v6: bool, what: &'static str) -> Result<SocketAddr, MessageError> {
        let ip = if v6 {
            IpAddr::V6(Ipv6Addr::from(self.array::<16>(what)?))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.array::<4>(what)?))
        };
        // Java writes the port as an int; only the low 16 bits are meaningful.
        let port = self.i32(what)? as u16;
        Ok(SocketAddr::new(ip, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredMessage {
        let body = Bytes::from_static(b"hello rocketmq");
        StoredMessage {
            body_crc: body_crc(&body),
            queue_id: 3,
            queue_offset: 17,
            physical_offset: 4096,
            born_timestamp: 1_795_316_922_477,
            born_host: "127.0.0.1:57114".parse().expect("addr"),
            store_timestamp: 1_795_316_922_526,
            store_host: "[fd00::2]:10911".parse().expect("addr"),
            body,
            topic: ByteStr::from("TopicTest"),
            properties: ByteStr::from("TAGS\u{1}TagA"),
            ..StoredMessage::default()
        }
    }

    #[test]
    fn round_trips_with_mixed_host_families() {
        let msg = sample();
        let mut buf = BytesMut::new();
        msg.encode(&mut buf).expect("encodes");
        assert_eq!(buf.len(), msg.encoded_len());
        let (back, size) = StoredMessage::decode(&buf.freeze(), true).expect("decodes");
        assert_eq!(size, msg.encoded_len());
        assert_eq!(back.sys_flag & sys_flag::STOREHOST_V6, sys_flag::STOREHOST_V6);
        assert_eq!(back.sys_flag & sys_flag::BORNHOST_V6, 0);
        assert_eq!(StoredMessage { sys_flag: back.sys_flag, ..msg }, back);
        assert_eq!(back.tags(), Some("TagA"));
    }

    #[test]
    fn corruption_is_detected() {
        let mut buf = BytesMut::new();
        sample().encode(&mut buf).expect("encodes");
        let len = buf.len();
        let mut flipped = buf.clone();
        flipped[len - 25] ^= 0xff; // inside the body
        assert!(matches!(StoredMessage::decode(&flipped.freeze(), true), Err(MessageError::BodyCrcMismatch { .. })));
        let torn = buf.clone().freeze().slice(..len - 3);
        assert!(matches!(StoredMessage::decode(&torn, true), Err(MessageError::Truncated { .. })));
        let mut bad_magic = buf;
        bad_magic[4] = 0;
        assert!(matches!(StoredMessage::decode(&bad_magic.freeze(), true), Err(MessageError::BadMagic(_))));
    }
}
