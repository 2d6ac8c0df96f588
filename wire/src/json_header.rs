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
use crate::command::{self, ExtFieldsReader, LanguageCode, RemotingCommand, SerializeType};
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
    match fast::decode(header, &body)? {
        Some(cmd) => Ok(cmd),
        None => general(header, body),
    }
}

/// Any JSON header, through serde.
fn general(header: &Bytes, body: Bytes) -> Result<RemotingCommand, WireError> {
    if !crate::body::fastjson::is_object(header) {
        return Err(WireError::JsonHeader(serde::de::Error::custom("header is not a JSON object")));
    }
    let parsed: JsonHeader<'_> = serde_json::from_slice(header).map_err(WireError::JsonHeader)?;
    let language = match parsed.language.and_then(|l| l.0) {
        Some(name) => LanguageCode::from_name(&name.0),
        None => LanguageCode::Java,
    };
    let remark = parsed.remark.and_then(|r| r.0).map(|r| r.into_bytestr(header));
    let mut ext_fields = ExtFieldsReader::new(ByteStr::default());
    for (k, v) in parsed.ext_fields.map(|f| f.0).unwrap_or_default() {
        let value = command::Text::Own(v.into_bytestr(header));
        match known_keys::intern(k.0.as_bytes()) {
            Some(known) => ext_fields.push_known(known, value)?,
            None => ext_fields.push(command::Text::Own(k.into_bytestr(header)), value)?,
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

/// The header as clients write it, read without serde: ASCII, no escapes, integers for the
/// numbers and strings (or null) in extFields. Anything else (`None`) goes to the general
/// decoder, which gives the same result or the error; this path is about a fifth of a send's
/// broker CPU otherwise (measured with perf).
mod fast {
    use bytes::Bytes;

    use crate::bytestr::ByteStr;
    use crate::command::{ExtFieldsReader, LanguageCode, RemotingCommand, SerializeType, Text};
    use crate::error::WireError;
    use crate::known_keys;

    use super::plain_run;

    struct Cursor<'a> {
        b: &'a [u8],
        i: usize,
    }

    impl Cursor<'_> {
        fn ws(&mut self) {
            while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.i += 1;
            }
        }

        fn eat(&mut self, c: u8) -> bool {
            self.ws();
            if self.b.get(self.i) == Some(&c) {
                self.i += 1;
                true
            } else {
                false
            }
        }

        fn peek(&mut self) -> Option<u8> {
            self.ws();
            self.b.get(self.i).copied()
        }

        /// After an opening quote: where the plain run of a string starts and ends, and the
        /// byte that ends it (a quote, a backslash or a control character).
        fn open_string(&mut self) -> Option<(usize, usize, u8)> {
            if !self.eat(b'"') {
                return None;
            }
            let start = self.i;
            let end = start + plain_run(&self.b[start..])?;
            Some((start, end, self.b[end]))
        }

        /// The bounds of a string without escapes.
        fn string(&mut self) -> Option<(usize, usize)> {
            match self.open_string()? {
                (start, end, b'"') => {
                    self.i = end + 1;
                    Some((start, end))
                }
                _ => None,
            }
        }

        fn null(&mut self) -> bool {
            self.ws();
            if self.b[self.i..].starts_with(b"null") {
                self.i += 4;
                true
            } else {
                false
            }
        }

        fn int(&mut self) -> Option<i32> {
            self.ws();
            let negative = self.b.get(self.i) == Some(&b'-');
            if negative {
                self.i += 1;
            }
            let start = self.i;
            let mut n: i64 = 0;
            while let Some(d @ b'0'..=b'9') = self.b.get(self.i) {
                n = n.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
                self.i += 1;
            }
            let digits = self.i - start;
            let leading_zero = digits > 1 && self.b[start] == b'0';
            if digits == 0 || leading_zero || matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E')) {
                return None;
            }
            i32::try_from(if negative { -n } else { n }).ok()
        }
    }

    fn text(header: &Bytes, (start, end): (usize, usize)) -> Option<ByteStr> {
        ByteStr::from_utf8(header.slice(start..end)).ok()
    }

    impl Cursor<'_> {
        /// A string value: a slice of `header` without escapes, else unescaped into a copy
        /// (message properties always carry \u0001 and \u0002).
        fn string_value(&mut self, header: &Bytes) -> Option<ByteStr> {
            match self.open_string()? {
                (start, end, b'"') => {
                    self.i = end + 1;
                    text(header, (start, end))
                }
                (start, end, b'\\') => self.unescape(start, end),
                _ => None,
            }
        }

        /// An extFields value: a range of the header without escapes, else unescaped into a copy.
        fn value_text(&mut self) -> Option<Text> {
            match self.open_string()? {
                (start, end, b'"') => {
                    self.i = end + 1;
                    Text::in_source(start, end)
                }
                (start, end, b'\\') => self.unescape(start, end).map(Text::Own),
                _ => None,
            }
        }

        /// The string from `start`, whose first escape is at `first_escape`.
        fn unescape(&mut self, start: usize, first_escape: usize) -> Option<ByteStr> {
            let mut out = Vec::with_capacity(128);
            out.extend_from_slice(&self.b[start..first_escape]);
            let mut i = first_escape;
            loop {
                let c = self.b[i];
                i += 1;
                match c {
                    b'"' => break,
                    b'\\' => {
                        let e = *self.b.get(i)?;
                        i += 1;
                        match e {
                            b'"' => out.push(b'"'),
                            b'\\' => out.push(b'\\'),
                            b'/' => out.push(b'/'),
                            b'b' => out.push(0x08),
                            b'f' => out.push(0x0c),
                            b'n' => out.push(b'\n'),
                            b'r' => out.push(b'\r'),
                            b't' => out.push(b'\t'),
                            b'u' => {
                                let unit = hex4(self.b.get(i..i + 4)?)?;
                                i += 4;
                                // Surrogates (characters beyond the BMP) go to the general decoder.
                                let ch = char::from_u32(u32::from(unit))?;
                                let mut utf8 = [0u8; 4];
                                out.extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
                            }
                            _ => return None,
                        }
                    }
                    _ => return None, // a control character
                }
                // The plain text up to the next quote, escape or control character, in one piece:
                // properties are runs of a few dozen bytes between \u0001 and \u0002.
                let plain = plain_run(self.b.get(i..)?)?;
                out.extend_from_slice(&self.b[i..i + plain]);
                i += plain;
            }
            self.i = i;
            String::from_utf8(out).ok().map(ByteStr::from)
        }
    }

    fn hex4(digits: &[u8]) -> Option<u16> {
        digits.iter().try_fold(0u16, |n, &d| Some(n << 4 | (char::from(d).to_digit(16)? as u16)))
    }

    /// `Ok(None)`: not the simple form; let the general decoder read it.
    pub(super) fn decode(header: &Bytes, body: &Bytes) -> Result<Option<RemotingCommand>, WireError> {
        let Some(source) = ByteStr::from_ascii(header.clone()) else { return Ok(None) };
        let mut c = Cursor { b: header, i: 0 };
        let mut cmd = RemotingCommand { body: body.clone(), serialize_type: SerializeType::Json, ..Default::default() };
        let mut ext_fields = ExtFieldsReader::new(source);
        let (mut seen, mut has_code) = (0u16, false);
        if !c.eat(b'{') {
            return Ok(None);
        }
        if c.peek() == Some(b'}') {
            return Ok(None); // no code: the general decoder says so
        }
        loop {
            let Some(key) = c.string() else { return Ok(None) };
            if !c.eat(b':') {
                return Ok(None);
            }
            let name = &header[key.0..key.1];
            let bit = match name {
                b"code" => 1,
                b"language" => 2,
                b"version" => 4,
                b"opaque" => 8,
                b"flag" => 16,
                b"remark" => 32,
                b"extFields" => 64,
                _ => 0,
            };
            if bit != 0 && seen & bit != 0 {
                return Ok(None); // a duplicate member: the general decoder refuses it
            }
            seen |= bit;
            let read = match name {
                b"code" => c.int().map(|v| {
                    cmd.code = v;
                    has_code = true;
                }),
                b"version" => c.int().map(|v| cmd.version = v),
                b"opaque" => c.int().map(|v| cmd.opaque = v),
                b"flag" => c.int().map(|v| cmd.flag = v),
                b"language" if c.null() => Some(()),
                b"language" => c
                    .string()
                    .map(|s| cmd.language = LanguageCode::from_name(&String::from_utf8_lossy(&header[s.0..s.1]))),
                b"remark" if c.null() => Some(()),
                b"remark" => c.string_value(header).map(|r| cmd.remark = Some(r)),
                b"extFields" if c.null() => Some(()),
                b"extFields" => match read_ext_fields(&mut c, &mut ext_fields)? {
                    true => Some(()),
                    false => None,
                },
                // Other members (serializeTypeCurrentRPC): strings only here.
                _ => c.string().map(drop),
            };
            if read.is_none() {
                return Ok(None);
            }
            if c.eat(b',') {
                continue;
            }
            if !c.eat(b'}') {
                return Ok(None);
            }
            break;
        }
        c.ws();
        if c.i != header.len() || !has_code {
            return Ok(None);
        }
        cmd.ext_fields = ext_fields.finish();
        Ok(Some(cmd))
    }

    /// Reads `{"k":"v",…}`; `Ok(false)` when it is not that simple form.
    fn read_ext_fields(c: &mut Cursor<'_>, fields: &mut ExtFieldsReader) -> Result<bool, WireError> {
        if !c.eat(b'{') {
            return Ok(false);
        }
        if c.eat(b'}') {
            return Ok(true);
        }
        loop {
            let Some(key) = c.string() else { return Ok(false) };
            if !c.eat(b':') {
                return Ok(false);
            }
            // Java drops null values from extFields; so do we.
            if !c.null() {
                let Some(value) = c.value_text() else { return Ok(false) };
                match known_keys::intern(&c.b[key.0..key.1]) {
                    Some(known) => fields.push_known(known, value)?,
                    None => {
                        let Some(key) = Text::in_source(key.0, key.1) else { return Ok(false) };
                        fields.push(key, value)?;
                    }
                }
            }
            if c.eat(b',') {
                continue;
            }
            return Ok(c.eat(b'}'));
        }
    }
}

/// How many bytes of `b` come before a quote, a backslash or a control character (the bytes a
/// JSON string must escape); `None` when none comes.
///
/// Eight bytes at a time: header values are mostly runs of a few dozen plain bytes, and this
/// scan is the inner loop of both decoding and encoding them.
fn plain_run(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    /// The high bit of each byte of `w` below `n` (n ≤ 0x80). Borrows can also flag bytes
    /// above a flagged one, never below, so the lowest flag is exact.
    fn below(w: u64, n: u8) -> u64 {
        w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH
    }
    let mut chunks = b.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let flags = below(w ^ (ONES * u64::from(b'"')), 1) | below(w ^ (ONES * u64::from(b'\\')), 1) | below(w, 0x20);
        if flags != 0 {
            return Some(at + flags.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    chunks.remainder().iter().position(|&c| must_escape(c)).map(|i| at + i)
}

/// A byte a JSON string cannot hold as it is.
fn must_escape(c: u8) -> bool {
    c == b'"' || c == b'\\' || c < 0x20
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
        let mut rest = s.as_bytes();
        while let Some(plain) = plain_run(rest) {
            self.0.put_slice(&rest[..plain]);
            let b = rest[plain];
            match b {
                b'"' => self.0.put_slice(b"\\\""),
                b'\\' => self.0.put_slice(b"\\\\"),
                b'\n' => self.0.put_slice(b"\\n"),
                b'\r' => self.0.put_slice(b"\\r"),
                b'\t' => self.0.put_slice(b"\\t"),
                _ => self.0.put_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]),
            }
            rest = &rest[plain + 1..];
        }
        self.0.put_slice(rest);
        self.0.put_u8(b'"');
    }
}

/// Decimal digits of `n` without allocating.
pub(crate) struct DecimalBuf {
    buf: [u8; 20],
    start: usize,
}

impl DecimalBuf {
    fn digits(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits and a minus sign are ever written.
        std::str::from_utf8(self.digits()).unwrap_or_default()
    }
}

pub(crate) fn itoa_buf(n: i64) -> DecimalBuf {
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

    proptest::proptest! {
        /// The word-at-a-time scan finds the first byte that needs escaping, wherever it is.
        #[test]
        fn plain_run_finds_the_first_byte_to_escape(
            text in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
        ) {
            let naive = text.iter().position(|&c| must_escape(c));
            proptest::prop_assert_eq!(plain_run(&text), naive);
        }
    }

    #[test]
    fn plain_run_sees_each_kind_at_each_position() {
        for at in 0..20 {
            for special in [b'"', b'\\', 0x00, 0x1f] {
                let mut text = vec![b'a'; 20];
                text[at] = special;
                // Bytes that come close to the special ones must not be taken for them.
                text.push(0xff);
                text.insert(0, b' ');
                assert_eq!(plain_run(&text), Some(at + 1), "{special:#x} at {at}");
            }
        }
        assert_eq!(plain_run(&[0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xe9, 0xff].repeat(3)), None);
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
        assert_eq!(cmd.ext_fields.get("d"), Some("4"));
        assert_eq!(cmd.ext_fields.get("k"), Some("false"));
        assert_eq!(cmd.ext_fields.get("g"), Some("1795314995605"));
        assert_eq!(cmd.ext_fields.get("x"), None);
        assert_eq!(cmd.ext_fields.get("s"), Some("v"));
    }

    /// The fast path and the general decoder agree on every form the fast path takes, and
    /// leave the rest to the general one.
    #[test]
    fn the_fast_path_reads_what_the_general_decoder_reads() {
        let cases: &[&[u8]] = &[
            br#"{"code":310,"extFields":{"a":"PID","b":"TopicTest","e":"-1"},"flag":0,"language":"JAVA","opaque":7,"serializeTypeCurrentRPC":"JSON","version":409}"#,
            br#" { "code" : -1 , "remark" : null , "extFields" : null , "language" : null } "#,
            br#"{"code":11,"remark":"x","extFields":{"k":null,"topic":"T"}}"#,
            br#"{"code":11,"extFields":{}}"#,
            br#"{"code":310,"remark":"a\"b\u0001\u00e9\/","extFields":{"i":"TAGS\u0001T\u0002KEYS\u0001k"}}"#,
        ];
        for raw in cases {
            let header = Bytes::from_static(raw);
            let fast = fast::decode(&header, &Bytes::new()).expect("no error").expect("the fast form");
            assert_eq!(fast, general(&header, Bytes::new()).expect("valid"), "{}", String::from_utf8_lossy(raw));
        }
        let slow_forms: &[&[u8]] = &[
            br#"{"code":310,"extFields":{"d":4}}"#,
            br#"{"code":3.0}"#,
            br#"{"code":01}"#,
            br#"{"code":1,"code":2}"#,
            br#"{"opaque":1}"#,
            br#"{"code":1,"x":[1]}"#,
            br#"{"code":1} x"#,
            "{\"code\":1,\"remark\":\"é\"}".as_bytes(),
            br#"{"code":1,"remark":"\ud83d\ude00"}"#,
            br#"{"code":1,"remark":"\x"}"#,
        ];
        for raw in slow_forms {
            let header = Bytes::from_static(raw);
            assert_eq!(
                fast::decode(&header, &Bytes::new()).expect("no error"),
                None,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        let escaped = decode(&Bytes::from_static(br#"{"code":1,"remark":"a\"b"}"#), Bytes::new()).expect("general");
        assert_eq!(escaped.remark_str(), "a\"b");
    }

    proptest::proptest! {
        /// Whatever our encoder writes, the fast path either reads exactly as the general
        /// decoder does or leaves it to it.
        #[test]
        fn fast_and_general_agree(
            code in proptest::prelude::any::<i32>(),
            opaque in proptest::prelude::any::<i32>(),
            fields in proptest::collection::vec(("[a-zA-Z]{1,8}", "[ -~\u{1}\u{2}é]{0,12}"), 0..6),
            remark in proptest::option::of("[ -~\u{1}é]{0,10}"),
        ) {
            let mut cmd = RemotingCommand::request(code);
            cmd.opaque = opaque;
            cmd.remark = remark.map(|r| ByteStr::from(r.as_str()));
            for (k, v) in &fields {
                cmd.ext_fields.insert(k.as_str(), v.as_str());
            }
            let mut out = BytesMut::new();
            encode(&cmd, &mut out);
            let header = out.freeze();
            let slow = general(&header, Bytes::new()).expect("our own header");
            if let Some(quick) = fast::decode(&header, &Bytes::new()).expect("no error") {
                proptest::prop_assert_eq!(quick, slow);
            }
        }
    }

    #[test]
    fn unescaped_strings_are_not_copied() {
        let header = Bytes::from(br#"{"code":105,"extFields":{"topic":"TopicTest"}}"#.to_vec());
        let cmd = decode(&header, Bytes::new()).expect("valid header");
        let range = header.as_ptr_range();
        let topic = cmd.ext_fields.get("topic").expect("topic");
        assert!(range.contains(&topic.as_ptr()));
        let shared = cmd.ext_fields.get_shared("topic").expect("topic");
        assert_eq!(shared, "TopicTest");
        assert!(range.contains(&shared.as_bytes().as_ptr()), "a slice of the frame, not a copy");
    }
}
