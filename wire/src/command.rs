//! `RemotingCommand`: one request or response of the RocketMQ remoting protocol.

use bytes::Bytes;

use crate::bytestr::ByteStr;
use crate::error::{HeaderError, WireError};
use crate::header::{CommandHeader, IntoExtFields};
use crate::known_keys::KnownKey;

/// Flag bit 0: this command is a response.
pub const FLAG_RESPONSE: i32 = 1;
/// Flag bit 1: the sender expects no response.
pub const FLAG_ONEWAY: i32 = 1 << 1;

/// `version` that Apogee puts in the commands it originates: the Java 4.9.8 value
/// (`MQVersion.Version.V4_9_8.ordinal()`), so that version checks on the other side treat us as 4.9.8.
pub const VERSION_4_9_8: i32 = 409;
/// `MQVersion.Version.V4_9_4.ordinal()`: from this client version on, the Java name server quotes
/// every map key in a topic route.
pub const VERSION_4_9_4: i32 = 401;

/// How a header is serialized: the top byte of the second length word of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SerializeType {
    #[default]
    Json,
    RocketMq,
}

impl SerializeType {
    pub fn code(self) -> u8 {
        match self {
            Self::Json => 0,
            Self::RocketMq => 1,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Json),
            1 => Some(Self::RocketMq),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::RocketMq => "ROCKETMQ",
        }
    }
}

/// The sender's language (`LanguageCode`). Names the Java enum lacks decode as `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LanguageCode {
    #[default]
    Java,
    Cpp,
    Dotnet,
    Python,
    Delphi,
    Erlang,
    Ruby,
    Other,
    Http,
    Go,
    Php,
    Oms,
    Rust,
}

const LANGUAGES: [(LanguageCode, &str); 13] = [
    (LanguageCode::Java, "JAVA"),
    (LanguageCode::Cpp, "CPP"),
    (LanguageCode::Dotnet, "DOTNET"),
    (LanguageCode::Python, "PYTHON"),
    (LanguageCode::Delphi, "DELPHI"),
    (LanguageCode::Erlang, "ERLANG"),
    (LanguageCode::Ruby, "RUBY"),
    (LanguageCode::Other, "OTHER"),
    (LanguageCode::Http, "HTTP"),
    (LanguageCode::Go, "GO"),
    (LanguageCode::Php, "PHP"),
    (LanguageCode::Oms, "OMS"),
    (LanguageCode::Rust, "RUST"),
];

impl LanguageCode {
    /// The byte used by the ROCKETMQ serialization (the Java enum's code).
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Self {
        LANGUAGES.get(code as usize).map_or(Self::Other, |(l, _)| *l)
    }

    pub fn name(self) -> &'static str {
        LANGUAGES[self as usize].1
    }

    pub fn from_name(name: &str) -> Self {
        LANGUAGES.iter().find(|(_, n)| *n == name).map_or(Self::Other, |(l, _)| *l)
    }
}

/// Most `extFields` entries a decoded header may carry. Real headers have under 20; the bound
/// keeps duplicate-key handling linear in practice and a hostile header cheap to reject.
pub const MAX_EXT_FIELDS: usize = 256;

/// The `extFields` map: custom header fields, all values strings.
///
/// Kept as a small vector in arrival order: headers have a dozen fields at most, a linear scan
/// beats hashing at that size, and the order makes re-encoding reproducible. A decoded header
/// keeps its text once (`source`) and each entry as a range of it: a SEND_MESSAGE_V2 header
/// then costs two reference counts instead of thirty (a `Bytes` slice per value, cloned and
/// dropped), and only the fields a typed header keeps as text take a slice of their own.
#[derive(Clone, Default)]
pub struct ExtFields {
    /// The decoded header text that `Text::InSource` entries point into.
    source: ByteStr,
    entries: Vec<(Text, Text)>,
}

/// Where the text of a key or value is.
#[derive(Debug, Clone)]
pub(crate) enum Text {
    /// `source[start..end]`, on character boundaries.
    InSource {
        start: u32,
        end: u32,
    },
    Own(ByteStr),
}

impl Text {
    /// `start..end` of a decoder's `source`; `None` past what a `u32` offsets (frames are far
    /// smaller, but the caller then keeps its own copy).
    pub(crate) fn in_source(start: usize, end: usize) -> Option<Self> {
        Some(Self::InSource { start: u32::try_from(start).ok()?, end: u32::try_from(end).ok()? })
    }
}

/// One `extFields` value as a typed header reads it: as text, or shared without a copy.
#[derive(Clone, Copy)]
pub struct FieldText<'a> {
    source: &'a ByteStr,
    text: &'a Text,
}

impl<'a> FieldText<'a> {
    pub fn as_str(&self) -> &'a str {
        resolve(self.source, self.text)
    }

    /// The text as a `ByteStr` sharing the frame it was read from.
    pub fn to_shared(self) -> ByteStr {
        match self.text {
            Text::Own(s) => s.clone(),
            Text::InSource { start, end } => {
                self.source.substr(*start as usize..*end as usize).unwrap_or_else(|| ByteStr::from(self.as_str()))
            }
        }
    }
}

fn resolve<'a>(source: &'a ByteStr, text: &'a Text) -> &'a str {
    match text {
        Text::Own(s) => s.as_str(),
        // Decoders record ranges on character boundaries; `get` keeps a wrong one harmless.
        Text::InSource { start, end } => source.as_str().get(*start as usize..*end as usize).unwrap_or(""),
    }
}

impl ExtFields {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Self { source: ByteStr::default(), entries: Vec::with_capacity(n) }
    }

    /// Room for `additional` more fields.
    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The value of `key` as a `ByteStr` sharing the frame it was read from.
    pub fn get_shared(&self, key: &str) -> Option<ByteStr> {
        self.entries().find(|(k, _)| *k == key).map(|(_, v)| v.to_shared())
    }

    /// Sets `key` to `value`, replacing an earlier value of the same key.
    pub fn insert(&mut self, key: impl Into<ByteStr>, value: impl Into<ByteStr>) {
        let key = key.into();
        let value = Text::Own(value.into());
        match self.position(key.as_str()) {
            Some(at) => self.entries[at].1 = value,
            None => self.entries.push((Text::Own(key), value)),
        }
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|(k, _)| resolve(&self.source, k) == key)
    }

    /// Appends without looking for an earlier value: for typed headers, whose keys are distinct
    /// by construction.
    pub(crate) fn push(&mut self, key: ByteStr, value: ByteStr) {
        self.entries.push((Text::Own(key), Text::Own(value)));
    }

    /// Drops every entry whose key appears again later, so each key keeps its last value (as
    /// Java's HashMap does). Keys are compared by a 64-bit fingerprint first, so the usual case
    /// of distinct keys costs no byte comparisons.
    fn dedup_keep_last(&mut self) {
        fn fingerprint(key: &[u8]) -> u64 {
            let mut prefix = [0u8; 8];
            let n = key.len().min(7);
            prefix[..n].copy_from_slice(&key[..n]);
            prefix[7] = key.len() as u8;
            u64::from_le_bytes(prefix)
        }
        let keys: Vec<&str> = self.entries.iter().map(|(k, _)| resolve(&self.source, k)).collect();
        let n = keys.len();
        let mut small = [0u64; 32];
        let mut large = Vec::new();
        let prints: &mut [u64] = if n <= small.len() {
            &mut small[..n]
        } else {
            large.resize(n, 0);
            &mut large
        };
        for (print, key) in prints.iter_mut().zip(&keys) {
            *print = fingerprint(key.as_bytes());
        }
        let superseded = |i: usize| (i + 1..n).any(|j| prints[i] == prints[j] && keys[i] == keys[j]);
        let Some(first) = (0..n).position(superseded) else {
            return;
        };
        let keep: Vec<bool> = (0..n).map(|i| i < first || (i > first && !superseded(i))).collect();
        let mut at = 0;
        self.entries.retain(|_| {
            at += 1;
            keep[at - 1]
        });
    }

    pub fn remove(&mut self, key: &str) -> Option<ByteStr> {
        let at = self.position(key)?;
        let value = FieldText { source: &self.source, text: &self.entries[at].1 }.to_shared();
        self.entries.remove(at);
        Some(value)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (resolve(&self.source, k), resolve(&self.source, v)))
    }

    /// Keys and values as typed headers read them.
    pub fn entries(&self) -> impl Iterator<Item = (&str, FieldText<'_>)> {
        self.entries.iter().map(|(k, v)| (resolve(&self.source, k), FieldText { source: &self.source, text: v }))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when both hold the same key/value pairs, in any order.
    pub fn same_entries(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

/// Equal when the same pairs come in the same order, wherever their text is kept.
impl PartialEq for ExtFields {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for ExtFields {}

impl std::fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Gathers the extFields entries a decoder reads off the wire: refuses more than
/// `MAX_EXT_FIELDS`, and makes a repeated key keep its last value, as Java's HashMap does.
///
/// Known keys (see `known_keys`) are tracked in a bit set, so the usual header, whose keys are
/// all known and distinct, needs no key comparisons at all.
/// Room a decoder reserves: SEND_MESSAGE_V2 carries 14 fields. At 64 bytes a field, room for 16
/// made each vector a 1 KiB block, which glibc serves from its large bins: with dozens of
/// requests in flight its per-thread cache runs dry, and each such miss consolidated the fast
/// bins (2 % of the bench's CPU). 14 keeps it a small block.
const EXPECTED_EXT_FIELDS: usize = 14;

pub(crate) struct ExtFieldsReader {
    fields: ExtFields,
    seen: u128,
    unknown: usize,
    repeated: bool,
}

impl ExtFieldsReader {
    /// A reader whose `Text::InSource` entries are ranges of `source`.
    pub(crate) fn new(source: ByteStr) -> Self {
        let fields = ExtFields { source, entries: Vec::with_capacity(EXPECTED_EXT_FIELDS) };
        Self { fields, seen: 0, unknown: 0, repeated: false }
    }

    /// Adds an entry whose key is not a known field name.
    pub(crate) fn push(&mut self, key: Text, value: Text) -> Result<(), WireError> {
        self.unknown += 1;
        self.push_entry(key, value)
    }

    pub(crate) fn push_known(&mut self, key: KnownKey, value: Text) -> Result<(), WireError> {
        let bit = 1u128 << key.id;
        self.repeated |= self.seen & bit != 0;
        self.seen |= bit;
        self.push_entry(Text::Own(key.text), value)
    }

    fn push_entry(&mut self, key: Text, value: Text) -> Result<(), WireError> {
        if self.fields.len() == MAX_EXT_FIELDS {
            return Err(WireError::TooManyExtFields { max: MAX_EXT_FIELDS });
        }
        self.fields.entries.push((key, value));
        Ok(())
    }

    pub(crate) fn finish(mut self) -> ExtFields {
        // An unknown key never equals a known one, so only a repeated known key or two unknown
        // keys can need the scan.
        if self.repeated || self.unknown > 1 {
            self.fields.dedup_keep_last();
        }
        self.fields
    }
}

impl<K: Into<ByteStr>, V: Into<ByteStr>> FromIterator<(K, V)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut fields = Self::new();
        for (k, v) in iter {
            fields.insert(k, v);
        }
        fields
    }
}

/// One request or response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemotingCommand {
    /// Request code for a request, response code for a response.
    pub code: i32,
    pub language: LanguageCode,
    pub version: i32,
    /// Matches a response to its request.
    pub opaque: i32,
    pub flag: i32,
    pub remark: Option<ByteStr>,
    pub ext_fields: ExtFields,
    /// The serialization the header arrived in, and will be encoded in.
    pub serialize_type: SerializeType,
    pub body: Bytes,
}

impl RemotingCommand {
    /// A request with the given code, sent as Apogee (Java 4.9.8, JSON header).
    pub fn request(code: i32) -> Self {
        Self { code, version: VERSION_4_9_8, ..Self::default() }
    }

    /// A response to `request`: same opaque and serialization, response flag set.
    pub fn response_to(request: &RemotingCommand, code: i32) -> Self {
        Self {
            code,
            version: VERSION_4_9_8,
            opaque: request.opaque,
            flag: FLAG_RESPONSE,
            serialize_type: request.serialize_type,
            ..Self::default()
        }
    }

    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    pub fn mark_oneway(mut self) -> Self {
        self.flag |= FLAG_ONEWAY;
        self
    }

    pub fn with_remark(mut self, remark: impl Into<ByteStr>) -> Self {
        self.remark = Some(remark.into());
        self
    }

    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub fn with_serialize_type(mut self, serialize_type: SerializeType) -> Self {
        self.serialize_type = serialize_type;
        self
    }

    /// Writes a typed header's fields into `extFields`.
    pub fn with_header(mut self, header: impl IntoExtFields) -> Self {
        header.write_into(&mut self.ext_fields);
        self
    }

    /// Reads `extFields` as a typed header.
    pub fn header<H: CommandHeader>(&self) -> Result<H, HeaderError> {
        H::read_from(&self.ext_fields)
    }

    /// The remark as text ("" when absent).
    pub fn remark_str(&self) -> &str {
        self.remark.as_deref().unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_codes_round_trip() {
        for (lang, name) in LANGUAGES {
            assert_eq!(LanguageCode::from_code(lang.code()), lang);
            assert_eq!(LanguageCode::from_name(name), lang);
        }
        assert_eq!(LanguageCode::Rust.code(), 12);
        assert_eq!(LanguageCode::from_name("COBOL"), LanguageCode::Other);
        assert_eq!(LanguageCode::from_code(200), LanguageCode::Other);
    }

    #[test]
    fn ext_fields_insert_replaces() {
        let mut f = ExtFields::new();
        f.insert("topic", "a");
        f.insert("topic", "b");
        assert_eq!(f.len(), 1);
        assert_eq!(f.get("topic"), Some("b"));
        assert_eq!(f.remove("topic").as_deref(), Some("b"));
        assert!(f.is_empty());
    }

    #[test]
    fn response_keeps_opaque_and_serialization() {
        let req =
            RemotingCommand { opaque: 42, serialize_type: SerializeType::RocketMq, ..RemotingCommand::request(105) };
        let resp = RemotingCommand::response_to(&req, 0);
        assert!(resp.is_response());
        assert_eq!(resp.opaque, 42);
        assert_eq!(resp.serialize_type, SerializeType::RocketMq);
    }
}
