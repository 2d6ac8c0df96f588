//! Errors of the `wire` crate. Each says what was wrong and where, so that a server can log one
//! line and close the offending connection.

use thiserror::Error;

/// A frame or header that cannot be decoded.
#[derive(Debug, Error)]
pub enum WireError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge { len: usize, max: usize },
    #[error("frame length field {len} is below the minimum of 4")]
    FrameTooShort { len: i64 },
    #[error("header length {header_len} does not fit in a frame of {frame_len} bytes")]
    HeaderLengthOutOfRange { header_len: usize, frame_len: usize },
    #[error("unknown serialize type {0} (0 = JSON, 1 = ROCKETMQ)")]
    UnknownSerializeType(u8),
    #[error("connection closed inside a frame: {buffered} bytes of an incomplete frame left")]
    TruncatedFrame { buffered: usize },
    #[error("{extra} bytes follow the frame")]
    TrailingBytes { extra: usize },
    #[error("JSON header: {0}")]
    JsonHeader(#[source] serde_json::Error),
    #[error("ROCKETMQ header: {what} runs past the header end (needs {needed} bytes at offset {offset}, header is {header_len})")]
    RocketMqHeaderTruncated { what: &'static str, needed: usize, offset: usize, header_len: usize },
    #[error("ROCKETMQ header: {what} has a negative length {len}")]
    RocketMqNegativeLength { what: &'static str, len: i32 },
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 { what: &'static str },
    #[error("header has more than {max} extFields entries")]
    TooManyExtFields { max: usize },
}

/// A custom header (the typed view of `extFields`) that is missing a field or has a bad value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeaderError {
    #[error("{header}: missing required field `{field}`")]
    MissingField { header: &'static str, field: &'static str },
    #[error("{header}: field `{field}` = {value:?} is not a valid {expected}")]
    BadField { header: &'static str, field: &'static str, value: String, expected: &'static str },
}

/// A body (JSON or binary) that cannot be decoded or encoded.
#[derive(Debug, Error)]
pub enum BodyError {
    #[error("{body}: invalid JSON: {source}")]
    Json { body: &'static str, source: serde_json::Error },
    #[error("{body}: {reason}")]
    Invalid { body: &'static str, reason: String },
}

/// A stored or batched message that cannot be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MessageError {
    #[error("message truncated: {what} needs {needed} bytes at offset {offset}, only {available} available")]
    Truncated { what: &'static str, needed: usize, offset: usize, available: usize },
    #[error("bad magic code {0:#010x}")]
    BadMagic(u32),
    #[error("total size field {declared} disagrees with the record's fields ({computed})")]
    SizeMismatch { declared: usize, computed: usize },
    #[error("body CRC {stored} does not match the body (computed {computed})")]
    BodyCrcMismatch { stored: u32, computed: u32 },
    #[error("{what} is too long: {len} bytes, limit {max}")]
    FieldTooLong { what: &'static str, len: usize, max: usize },
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 { what: &'static str },
    #[error("{what} has a negative length {len}")]
    NegativeLength { what: &'static str, len: i32 },
    #[error("message id {0:?} is not a valid offset message id (32 or 56 hex digits)")]
    BadMessageId(String),
    #[error("compressed body: {0}")]
    Compression(String),
}
