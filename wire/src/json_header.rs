//! The JSON header serialization (Java `RemotingSerializable` via fastjson).
//!
//! Decoding accepts what real clients send: extFields values as strings, numbers or booleans
//! (normalised to strings, as Java would read them), `null` remarks, unknown members, trailing
//! whitespace. Encoding writes members in fastjson's sorted order and strings in extFields, as
//! the Java broker does. Strings without escapes are slices of the frame, not copies.

use std::borrow::Cow;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use std::marker::PhantomData;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::bytestr::ByteStr;
use crate::command::{ExtFieldsReader, LanguageCode, RemotingCommand, SerializeType};
use crate::error::WireError;
use crate::known_keys;

/// A JSON string, borrowed from the input when it had no escapes.
struct Text<'a>(Cow<'a, str>);

impl Text<'_> {
    fn into_bytestr(self, owner: &Bytes) -> ByteStr {
        match self.0 {
            Cow::Borrowed(s) => ByteStr::slice_ref(owner, s),
            Cow::Owned(s) => ByteStr::from(s),
        }
    }
}

/// An extFields value: any JSON scalar, normalised to text; `None` for null.
struct ScalarText<'a>(Option<Text<'a>>);

struct ScalarVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ScalarVisitor<'a> {
    type Value = ScalarText<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, number, boolean or null")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(ScalarText(Some(Text(Cow::Borrowed(v)))))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(ScalarText(Some(Text(Cow::Owned(v.to_owned())))))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(ScalarText(Some(Text(Cow::Owned(v)))))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(ScalarText(Some(Text(Cow::Owned(v.to_string())))))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(ScalarText(Some(Text(Cow::Owned(v.to_string())))))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(ScalarText(Some(Text(Cow::Owned(v.to_string())))))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(ScalarText(Some(Text(Cow::Borrowed(if v { "true" } else { "false" })))))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(ScalarText(None))
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(ScalarText(None))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ScalarText<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor(PhantomData))
    }
}

/// A JSON string or null (for `remark` and `language`).
struct OptionalText<'a>(Option<Text<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for OptionalText<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let scalar = ScalarText::deserialize(d)?;
        Ok(OptionalText(scalar.0))
    }
}

struct JsonExtFields<'a>(Vec<(Text<'a>, Text<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for JsonExtFields<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for MapVisitor<'a> {
            type Value = JsonExtFields<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of scalar values, or null")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(JsonExtFields(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(16).min(64));
                while let Some(key) = map.next_key::<ScalarText<'a>>()? {
                    let value = map.next_value::<ScalarText<'a>>()?;
                    // Java drops null values from extFields; so do we.
                    if let (Some(k), Some(v)) = (key.0, value.0) {
                        fields.push((k, v));
                    }
                }
                Ok(JsonExtFields(fields))
            }
        }
        d.deserialize_any(MapVisitor(PhantomData))
    }
}

#[derive(Deserialize)]
struct JsonHeader<'a> {
    code: i32,
    #[serde(default, borrow)]
    language: Option<OptionalText<'a>>,
    #[serde(default)]
    version: i32,
    #[serde(default)]
    opaque: i32,
    #[serde(default)]
    flag: i32,
    #[serde(default, borrow)]
    remark: Option<OptionalText<'a>>,
    #[serde(default, borrow, rename = "extFields")]
    ext_fields: Option<JsonExtFields<'a>>,
}

/// Decodes a JSON header; unescaped strings share `header`'s buffer.
pub(crate) fn decode(header: &Bytes, body: Bytes) -> Result<RemotingCommand, WireError> {
    if !crate::body::fastjson::is_object(header) {
        return Err(WireError::JsonHeader(serde::de::Error::custom("header is not a JSON object")));
    }
    let parsed: JsonHeader<'_> = serde_json::from_slice(header).map_err(WireError::JsonHeader)?;
    let language = match parsed.language.and_then(|l| l.0) {
        Some(name) => LanguageCode::from_name(&name.0),
        None => LanguageCode::Java,
    };
    let remark = parsed.remark.and_then(|r| r.0).map(|r| r.into_bytestr(header));
    let mut ext_fields = ExtFieldsReader::new();
    for (k, v) in parsed.ext_fields.map(|f| f.0).unwrap_or_default() {
        let value = v.into_bytestr(header);
        match known_keys::intern(k.0.as_bytes()) {
            Some(known) => ext_fields.push_known(known, value)?,
            None => ext_fields.push(k.into_bytestr(header), value)?,
        }
    }
    let ext_fields = ext_fields.finish();
    Ok(RemotingCommand {
        code: parsed.code,
        language,
        version: parsed.version,
        opaque: parsed.opaque,
        flag: parsed.flag,
        remark,
        ext_fields,
        serialize_type: SerializeType::Json,
        body,
    })
}

/// Appends `cmd`'s header as JSON, members in the order fastjson writes them.
pub(crate) fn encode(cmd: &RemotingCommand, dst: &mut BytesMut) {
    let mut w = Writer(dst);
    w.raw("{\"code\":");
    w.int(i64::from(cmd.code));
    if !cmd.ext_fields.is_empty() {
        w.raw(",\"extFields\":{");
        for (i, (k, v)) in cmd.ext_fields.iter().enumerate() {
            if i > 0 {
                w.raw(",");
            }
            w.string(k);
            w.raw(":");
            w.string(v);
        }
        w.raw("}");
    }
    w.raw(",\"flag\":");
    w.int(i64::from(cmd.flag));
    w.raw(",\"language\":\"");
    w.raw(cmd.language.name());
    w.raw("\",\"opaque\":");
    w.int(i64::from(cmd.opaque));
    if let Some(remark) = &cmd.remark {
        w.raw(",\"remark\":");
        w.string(remark);
    }
    w.raw(",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
    w.int(i64::from(cmd.version));
    w.raw("}");
}

struct Writer<'a>(&'a mut BytesMut);

impl Writer<'_> {
    fn raw(&mut self, s: &str) {
        self.0.put_slice(s.as_bytes());
    }

    fn int(&mut self, n: i64) {
        self.0.put_slice(itoa_buf(n).digits());
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped.
    fn string(&mut self, s: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.0.put_u8(b'"');
        let bytes = s.as_bytes();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x00..=0x1f => &[],
                _ => continue,
            };
            self.0.put_slice(&bytes[start..i]);
            if escape.is_empty() {
                self.0.put_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]);
            } else {
                self.0.put_slice(escape);
            }
            start = i + 1;
        }
        self.0.put_slice(&bytes[start..]);
        self.0.put_u8(b'"');
    }
}

/// Decimal digits of `n` without allocating.
struct DecimalBuf {
    buf: [u8; 20],
    start: usize,
}

impl DecimalBuf {
    fn digits(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn itoa_buf(n: i64) -> DecimalBuf {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    let negative = n < 0;
    let mut v = n.unsigned_abs();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if negative {
        at -= 1;
        buf[at] = b'-';
    }
    DecimalBuf { buf, start: at }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_format_like_display() {
        for n in [0i64, 7, -7, 409, i64::from(i32::MIN), i64::MAX, i64::MIN] {
            let d = itoa_buf(n);
            assert_eq!(std::str::from_utf8(d.digits()).ok(), Some(n.to_string().as_str()));
        }
    }

    #[test]
    fn escapes_control_characters_like_fastjson() {
        let mut out = BytesMut::new();
        Writer(&mut out).string("a\u{1}b\u{2}\"\\\n");
        assert_eq!(&out[..], br#""a\u0001b\u0002\"\\\n""#);
    }

    #[test]
    fn numbers_and_booleans_in_ext_fields_become_strings() {
        let header =
            Bytes::from_static(br#"{"code":310,"extFields":{"d":4,"k":false,"g":1795314995605,"x":null,"s":"v"}}"#);
        let cmd = decode(&header, Bytes::new()).expect("valid header");
        assert_eq!(cmd.ext_fields.get("d").map(|v| v.as_str()), Some("4"));
        assert_eq!(cmd.ext_fields.get("k").map(|v| v.as_str()), Some("false"));
        assert_eq!(cmd.ext_fields.get("g").map(|v| v.as_str()), Some("1795314995605"));
        assert_eq!(cmd.ext_fields.get("x"), None);
        assert_eq!(cmd.ext_fields.get("s").map(|v| v.as_str()), Some("v"));
    }

    #[test]
    fn unescaped_strings_are_not_copied() {
        let header = Bytes::from(br#"{"code":105,"extFields":{"topic":"TopicTest"}}"#.to_vec());
        let cmd = decode(&header, Bytes::new()).expect("valid header");
        let topic = cmd.ext_fields.get("topic").expect("topic");
        let range = header.as_ptr_range();
        assert!(range.contains(&topic.as_bytes().as_ptr()));
    }
}
