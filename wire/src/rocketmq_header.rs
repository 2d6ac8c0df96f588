//! The ROCKETMQ binary header serialization (Java `RocketMQSerializable`).
//!
//! ```text
//! i16 code | u8 language | i16 version | i32 opaque | i32 flag
//! i32 remark length | remark bytes
//! i32 extFields length | { u16 key length | key | i32 value length | value }*
//! ```
//! All integers big-endian; strings UTF-8. A zero remark length means "no remark".

use bytes::{BufMut, Bytes, BytesMut};

use crate::bytestr::ByteStr;
use crate::command::{ExtFields, LanguageCode, RemotingCommand, SerializeType};
use crate::error::WireError;

/// Fixed part: code, language, version, opaque, flag, remark length, extFields length.
const FIXED_LEN: usize = 2 + 1 + 2 + 4 + 4 + 4 + 4;

struct Reader<'a> {
    header: &'a Bytes,
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], WireError> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.header.len());
        let Some(end) = end else {
            return Err(WireError::RocketMqHeaderTruncated {
                what,
                needed: n,
                offset: self.at,
                header_len: self.header.len(),
            });
        };
        let bytes = &self.header[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, WireError> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, WireError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn len_i32(&mut self, what: &'static str) -> Result<usize, WireError> {
        let len = self.i32(what)?;
        usize::try_from(len).map_err(|_| WireError::RocketMqNegativeLength { what, len })
    }

    fn text(&mut self, len: usize, what: &'static str) -> Result<ByteStr, WireError> {
        let start = self.at;
        self.take(len, what)?;
        ByteStr::from_utf8(self.header.slice(start..start + len)).map_err(|_| WireError::InvalidUtf8 { what })
    }
}

/// Decodes a ROCKETMQ header; the strings share `header`'s buffer.
pub(crate) fn decode(header: &Bytes, body: Bytes) -> Result<RemotingCommand, WireError> {
    let mut r = Reader { header, at: 0 };
    let code = i32::from(r.i16("code")?);
    let language = LanguageCode::from_code(r.u8("language")?);
    let version = i32::from(r.i16("version")?);
    let opaque = r.i32("opaque")?;
    let flag = r.i32("flag")?;
    let remark_len = r.len_i32("remark length")?;
    let remark = if remark_len == 0 { None } else { Some(r.text(remark_len, "remark")?) };

    let ext_len = r.len_i32("extFields length")?;
    let ext_end = r.at + ext_len;
    if ext_end > header.len() {
        return Err(WireError::RocketMqHeaderTruncated {
            what: "extFields",
            needed: ext_len,
            offset: r.at,
            header_len: header.len(),
        });
    }
    let mut ext_fields = ExtFields::with_capacity(16);
    while r.at < ext_end {
        let key_len = r.i16("extFields key length")?;
        let key_len = usize::try_from(key_len)
            .map_err(|_| WireError::RocketMqNegativeLength { what: "extFields key", len: i32::from(key_len) })?;
        let key = r.text(key_len, "extFields key")?;
        let value_len = r.len_i32("extFields value length")?;
        let value = r.text(value_len, "extFields value")?;
        if r.at > ext_end {
            return Err(WireError::RocketMqHeaderTruncated {
                what: "extFields entry",
                needed: r.at - ext_end,
                offset: ext_end,
                header_len: header.len(),
            });
        }
        ext_fields.push_decoded(key, value)?;
    }
    // A repeated key keeps its last value, as Java's HashMap does.
    ext_fields.dedup_keep_last();

    Ok(RemotingCommand {
        code,
        language,
        version,
        opaque,
        flag,
        remark,
        ext_fields,
        serialize_type: SerializeType::RocketMq,
        body,
    })
}

/// Appends `cmd`'s header. Codes and versions are 16-bit on this wire, as in Java.
pub(crate) fn encode(cmd: &RemotingCommand, dst: &mut BytesMut) {
    let remark_len = cmd.remark.as_ref().map_or(0, |r| r.len());
    let ext_len: usize = cmd.ext_fields.iter().map(|(k, v)| 2 + k.len() + 4 + v.len()).sum();
    dst.reserve(FIXED_LEN + remark_len + ext_len);
    dst.put_i16(cmd.code as i16);
    dst.put_u8(cmd.language.code());
    dst.put_i16(cmd.version as i16);
    dst.put_i32(cmd.opaque);
    dst.put_i32(cmd.flag);
    match &cmd.remark {
        Some(remark) if !remark.is_empty() => {
            dst.put_i32(remark.len() as i32);
            dst.put_slice(remark.as_bytes());
        }
        _ => dst.put_i32(0),
    }
    dst.put_i32(ext_len as i32);
    for (k, v) in cmd.ext_fields.iter() {
        dst.put_u16(k.len() as u16);
        dst.put_slice(k.as_bytes());
        dst.put_i32(v.len() as i32);
        dst.put_slice(v.as_bytes());
    }
}
