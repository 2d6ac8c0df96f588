//! fastjson compatibility.
//!
//! The Java side serializes with fastjson, which writes map keys that are not strings without
//! quotes: integer keys as bare numbers (`{0:"127.0.0.1:10911"}`) and object keys as bare objects
//! (`{{"brokerName":"a","queueId":0,"topic":"t"}:{...}}`). Neither is JSON. Reading, we first
//! rewrite every bare key into a JSON string holding its text ([`normalize_keys`]); writing, the
//! [`FastjsonFormatter`] leaves integer keys bare, and writes a string key that holds an object's
//! JSON (it starts with `{`; no topic, group or broker name can) as that bare object.

use std::borrow::Cow;
use std::io;

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter};

/// Whether `input` starts (after white space) as a JSON object. serde would also accept a struct
/// written as an array of its members; every header and body here is an object.
pub fn is_object(input: &[u8]) -> bool {
    input.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// `input` with every bare object key turned into a JSON string of its text. Borrowed when
/// there was nothing to rewrite. Malformed input passes through for the JSON parser to reject.
pub fn normalize_keys(input: &[u8]) -> Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut in_object: Vec<bool> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    while i < input.len() {
        let c = input[i];
        if expect_key && !matches!(c, b'"' | b'}') && !c.is_ascii_whitespace() {
            let end = skip_bare_key(input, i);
            let o = out.get_or_insert_with(|| Vec::with_capacity(input.len() + 64));
            o.extend_from_slice(&input[copied..i]);
            push_json_string(o, &input[i..end]);
            copied = end;
            i = end;
            expect_key = false;
            continue;
        }
        match c {
            b'"' => {
                i = skip_string(input, i);
                expect_key = false;
                continue;
            }
            b'{' => {
                in_object.push(true);
                expect_key = true;
            }
            b'[' => {
                in_object.push(false);
                expect_key = false;
            }
            b'}' | b']' => {
                in_object.pop();
                expect_key = false;
            }
            b',' => expect_key = in_object.last() == Some(&true),
            b':' => expect_key = false,
            _ => {}
        }
        i += 1;
    }
    match out {
        None => Cow::Borrowed(input),
        Some(mut o) => {
            o.extend_from_slice(&input[copied..]);
            Cow::Owned(o)
        }
    }
}

/// Index just past the string literal starting at `start` (or the end of input).
fn skip_string(input: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < input.len() {
        match input[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    input.len()
}

/// Index just past a bare key: a balanced object or array, or a scalar up to `:`.
fn skip_bare_key(input: &[u8], start: usize) -> usize {
    if matches!(input[start], b'{' | b'[') {
        let mut depth = 0usize;
        let mut i = start;
        while i < input.len() {
            match input[i] {
                b'"' => {
                    i = skip_string(input, i);
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        return input.len();
    }
    let mut i = start;
    while i < input.len() && !matches!(input[i], b':' | b',' | b'}') && !input[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

fn push_json_string(out: &mut Vec<u8>, raw: &[u8]) {
    out.push(b'"');
    for &b in raw {
        match b {
            b'"' | b'\\' => {
                out.push(b'\\');
                out.push(b);
            }
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Compact JSON, except that integer map keys are written bare, as fastjson writes them.
#[derive(Default)]
pub struct FastjsonFormatter {
    in_key: bool,
    /// The key's opening quote is held back until we know the key is a string.
    quote_pending: bool,
    key_quoted: bool,
    /// The key is an object's JSON text, written unescaped and unquoted.
    key_raw: bool,
}

impl FastjsonFormatter {
    fn key_text_starts<W: ?Sized + io::Write>(&mut self, w: &mut W, first: Option<u8>) -> io::Result<()> {
        if self.in_key && self.quote_pending {
            self.quote_pending = false;
            if first == Some(b'{') {
                self.key_raw = true;
            } else {
                self.key_quoted = true;
                w.write_all(b"\"")?;
            }
        }
        Ok(())
    }

    fn key_number_starts(&mut self) {
        if self.in_key {
            self.quote_pending = false;
            self.key_quoted = false;
        }
    }
}

macro_rules! bare_integer_keys {
    ($($method:ident: $t:ty),*) => {$(
        fn $method<W: ?Sized + io::Write>(&mut self, w: &mut W, value: $t) -> io::Result<()> {
            self.key_number_starts();
            CompactFormatter.$method(w, value)
        }
    )*};
}

impl Formatter for FastjsonFormatter {
    bare_integer_keys!(write_i8: i8, write_i16: i16, write_i32: i32, write_i64: i64, write_i128: i128,
        write_u8: u8, write_u16: u16, write_u32: u32, write_u64: u64, write_u128: u128);

    fn begin_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.in_key = true;
        CompactFormatter.begin_object_key(w, first)
    }

    fn end_object_key<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.in_key = false;
        Ok(())
    }

    fn begin_string<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        if self.in_key {
            self.quote_pending = true;
            Ok(())
        } else {
            w.write_all(b"\"")
        }
    }

    fn end_string<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        if self.in_key {
            self.key_raw = false;
            let quoted = std::mem::take(&mut self.key_quoted);
            if std::mem::take(&mut self.quote_pending) {
                return w.write_all(b"\"\"");
            }
            return if quoted { w.write_all(b"\"") } else { Ok(()) };
        }
        w.write_all(b"\"")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        self.key_text_starts(w, fragment.bytes().next())?;
        w.write_all(fragment.as_bytes())
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        escape: serde_json::ser::CharEscape,
    ) -> io::Result<()> {
        self.key_text_starts(w, None)?;
        if self.in_key && self.key_raw {
            use serde_json::ser::CharEscape;
            let raw = match escape {
                CharEscape::Quote => b'"',
                CharEscape::ReverseSolidus => b'\\',
                CharEscape::Solidus => b'/',
                CharEscape::Backspace => 0x08,
                CharEscape::FormFeed => 0x0c,
                CharEscape::LineFeed => b'\n',
                CharEscape::CarriageReturn => b'\r',
                CharEscape::Tab => b'\t',
                CharEscape::AsciiControl(c) => c,
            };
            return w.write_all(&[raw]);
        }
        CompactFormatter.write_char_escape(w, escape)
    }
}

/// Serializes `value` as fastjson would (bare integer map keys).
pub fn to_vec_fastjson<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, FastjsonFormatter::default());
    // Our body types serialize infallibly into a Vec (string keys or integer keys only).
    if value.serialize(&mut ser).is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn bare_integer_and_object_keys_become_strings() {
        let java = br#"{"a":{0:"x",1:"y"},"t":{{"brokerName":"b","queueId":0,"topic":"t"}:{"v":1}},"s":"{0:1}"}"#;
        let fixed = normalize_keys(java);
        let v: serde_json::Value = serde_json::from_slice(&fixed).expect("valid JSON now");
        assert_eq!(v["a"]["0"], "x");
        assert_eq!(v["s"], "{0:1}", "strings are left alone");
        let key = v["t"].as_object().and_then(|o| o.keys().next().cloned()).expect("one key");
        let mq: serde_json::Value = serde_json::from_str(&key).expect("key holds the object");
        assert_eq!(mq["queueId"], 0);
    }

    #[test]
    fn standard_json_is_borrowed() {
        assert!(matches!(normalize_keys(br#"{"a":{"0":"x"},"b":[1,{"c":2}]}"#), Cow::Borrowed(_)));
    }

    #[test]
    fn integer_keys_are_written_bare_and_string_keys_quoted() {
        let mut inner = BTreeMap::new();
        inner.insert(0i64, "127.0.0.1:10911");
        let mut outer = BTreeMap::new();
        outer.insert("broker-\"a\"", inner);
        let mut empty = BTreeMap::new();
        empty.insert("", 1);
        assert_eq!(to_vec_fastjson(&outer), br#"{"broker-\"a\"":{0:"127.0.0.1:10911"}}"#);
        assert_eq!(to_vec_fastjson(&empty), br#"{"":1}"#);
    }
}
