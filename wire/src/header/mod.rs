//! Typed custom headers: the fields a request or response carries in `extFields`.
//!
//! Each header is a plain struct whose fields use the Java names on the wire. Required fields
//! (Java's `@CFNotNull`) are plain types and reading fails with [`HeaderError::MissingField`]
//! when one is absent; optional ones are `Option`s. Values are parsed as Java's
//! `decodeCommandCustomHeader` does: integers strictly, booleans leniently (`"true"` or `"1"` is
//! true, anything else false). Fields a header does not name are ignored.

use crate::bytestr::ByteStr;
use crate::command::{ExtFields, FieldText};
use crate::error::HeaderError;

mod admin;
mod client;
mod namesrv;
mod offset;
mod pull;
mod query;
mod send;
mod transaction;

pub use admin::*;
pub use client::*;
pub use namesrv::*;
pub use offset::*;
pub use pull::*;
pub use query::*;
pub use send::*;
pub use transaction::*;

/// A typed view of `extFields`.
pub trait CommandHeader: Sized {
    /// The Java class name, used in error messages.
    const NAME: &'static str;
    fn read_from(fields: &ExtFields) -> Result<Self, HeaderError>;
}

/// A scalar that travels as text in `extFields`.
pub trait FieldValue: Sized {
    /// What a valid value looks like, for error messages.
    const EXPECTED: &'static str;
    fn parse(text: FieldText<'_>) -> Option<Self>;
    /// The text, giving up the value: a `ByteStr` moves instead of sharing (a clone of one
    /// made from a `String` allocates its reference count).
    fn into_text(self) -> ByteStr;
}

impl FieldValue for ByteStr {
    const EXPECTED: &'static str = "string";
    fn parse(text: FieldText<'_>) -> Option<Self> {
        Some(text.to_shared())
    }
    fn into_text(self) -> ByteStr {
        self
    }
}

macro_rules! integer_field {
    ($($t:ty => $expected:literal),*) => {$(
        impl FieldValue for $t {
            const EXPECTED: &'static str = $expected;
            fn parse(text: FieldText<'_>) -> Option<Self> {
                text.as_str().parse().ok()
            }
            fn into_text(self) -> ByteStr {
                integer_text(i64::from(self))
            }
        }
    )*};
}

/// "0" to "99", the values most integer fields carry (queue ids, flags, counts), kept as static
/// text so that writing them allocates nothing.
const SMALL_INTEGERS: &str = "0123456789\
    10111213141516171819202122232425262728293031323334353637383940414243444546474849\
    50515253545556575859606162636465666768697071727374757677787980818283848586878889\
    90919293949596979899";

fn integer_text(value: i64) -> ByteStr {
    match value {
        0..=9 => {
            let at = value as usize;
            ByteStr::from_static(&SMALL_INTEGERS[at..at + 1])
        }
        10..=99 => {
            let at = 10 + (value as usize - 10) * 2;
            ByteStr::from_static(&SMALL_INTEGERS[at..at + 2])
        }
        _ => ByteStr::from(crate::json_header::itoa_buf(value).as_str()),
    }
}
integer_field!(i32 => "32-bit integer", i64 => "64-bit integer");

impl FieldValue for bool {
    const EXPECTED: &'static str = "boolean";
    fn parse(text: FieldText<'_>) -> Option<Self> {
        let text = text.as_str();
        Some(text.eq_ignore_ascii_case("true") || text == "1")
    }
    fn into_text(self) -> ByteStr {
        ByteStr::from_static(if self { "true" } else { "false" })
    }
}

/// How a struct field maps to `extFields`: required (`T`) or optional (`Option<T>`).
pub trait HeaderField: Sized {
    fn read(header: &'static str, name: &'static str, value: Option<FieldText<'_>>) -> Result<Self, HeaderError>;
    fn write(self, name: &'static str, fields: &mut ExtFields);
}

/// What `RemotingCommand::with_header` takes: a header by reference (its text is shared) or by
/// value (its text moves into the fields, for the answers a broker writes on every send).
pub trait IntoExtFields {
    fn write_into(self, fields: &mut ExtFields);
}

fn parse_field<T: FieldValue>(
    header: &'static str,
    field: &'static str,
    text: FieldText<'_>,
) -> Result<T, HeaderError> {
    T::parse(text).ok_or_else(|| HeaderError::BadField {
        header,
        field,
        value: text.as_str().to_owned(),
        expected: T::EXPECTED,
    })
}

impl<T: FieldValue> HeaderField for T {
    fn read(header: &'static str, name: &'static str, value: Option<FieldText<'_>>) -> Result<Self, HeaderError> {
        match value {
            Some(text) => parse_field(header, name, text),
            None => Err(HeaderError::MissingField { header, field: name }),
        }
    }
    fn write(self, name: &'static str, fields: &mut ExtFields) {
        fields.push(ByteStr::from_static(name), self.into_text());
    }
}

impl<T: FieldValue> HeaderField for Option<T> {
    fn read(header: &'static str, name: &'static str, value: Option<FieldText<'_>>) -> Result<Self, HeaderError> {
        value.map(|text| parse_field(header, name, text)).transpose()
    }
    fn write(self, name: &'static str, fields: &mut ExtFields) {
        if let Some(v) = self {
            fields.push(ByteStr::from_static(name), v.into_text());
        }
    }
}

/// Declares a header struct, its wire names, its `CommandHeader` impl and the `IntoExtFields`
/// impls that write it by value and by reference.
macro_rules! header {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty = $wire:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $crate::header::CommandHeader for $name {
            const NAME: &'static str = stringify!($name);

            #[allow(unused_variables, unused_mut)]
            fn read_from(fields: &$crate::command::ExtFields) -> Result<Self, $crate::error::HeaderError> {
                // One pass over the fields, each name matched once: a send header has a dozen.
                // The first of repeated names counts, as `ExtFields::get` would find it.
                $(let mut $field: Option<$crate::command::FieldText<'_>> = None;)*
                for (key, value) in fields.entries() {
                    match key {
                        $($wire if $field.is_none() => $field = Some(value),)*
                        _ => {}
                    }
                }
                Ok(Self {
                    $($field: <$ty as $crate::header::HeaderField>::read(stringify!($name), $wire, $field)?,)*
                })
            }
        }

        impl $crate::header::IntoExtFields for $name {
            #[allow(unused_variables)]
            fn write_into(self, fields: &mut $crate::command::ExtFields) {
                fields.reserve([$($wire),*].len());
                $(<$ty as $crate::header::HeaderField>::write(self.$field, $wire, fields);)*
            }
        }

        impl $crate::header::IntoExtFields for &$name {
            fn write_into(self, fields: &mut $crate::command::ExtFields) {
                // Cloning the header clones each text once, as sharing it field by field would.
                $crate::header::IntoExtFields::write_into(self.clone(), fields);
            }
        }
    };
}
pub(crate) use header;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_bad_fields_are_named() {
        let mut fields = ExtFields::new();
        fields.insert("topic", "T");
        let err = GetMaxOffsetRequestHeader::read_from(&fields).expect_err("queueId missing");
        assert_eq!(err, HeaderError::MissingField { header: "GetMaxOffsetRequestHeader", field: "queueId" });
        assert!(err.to_string().contains("queueId"));

        fields.insert("queueId", "three");
        let err = GetMaxOffsetRequestHeader::read_from(&fields).expect_err("queueId bad");
        assert!(matches!(err, HeaderError::BadField { field: "queueId", .. }), "{err}");
    }

    #[test]
    fn integers_are_written_as_java_writes_them() {
        for value in [0, 7, 9, 10, 42, 99, 100, 1024, -1, -10, i64::MAX, i64::MIN, 1_700_000_000_000] {
            assert_eq!(integer_text(value).as_str(), value.to_string(), "{value}");
        }
        for value in [0, 5, 77, -3, i32::MAX, i32::MIN] {
            assert_eq!(value.into_text().as_str(), value.to_string(), "{value}");
        }
    }

    #[test]
    fn a_header_written_by_value_reads_as_one_written_by_reference() {
        let header = crate::header::SendMessageResponseHeader {
            msg_id: ByteStr::from(String::from("7F0000010000BEEF")),
            queue_id: 3,
            queue_offset: 1_234_567,
            transaction_id: None,
            msg_region: Some("DefaultRegion".into()),
            trace_on: Some("true".into()),
        };
        let by_reference = crate::RemotingCommand::request(0).with_header(&header);
        let by_value = crate::RemotingCommand::request(0).with_header(header.clone());
        let fields: Vec<(&str, &str)> = by_value.ext_fields.iter().collect();
        assert_eq!(fields, by_reference.ext_fields.iter().collect::<Vec<_>>());
        assert_eq!(
            fields,
            [
                ("msgId", "7F0000010000BEEF"),
                ("queueId", "3"),
                ("queueOffset", "1234567"),
                ("MSG_REGION", "DefaultRegion"),
                ("TRACE_ON", "true")
            ]
        );
        assert_eq!(by_value.header::<crate::header::SendMessageResponseHeader>(), Ok(header));
    }

    #[test]
    fn booleans_are_lenient_like_java() {
        for (text, expected) in
            [("true", true), ("TRUE", true), ("1", true), ("false", false), ("0", false), ("yes", false)]
        {
            let fields: ExtFields = [("flag", text)].into_iter().collect();
            let value = fields.entries().next().map(|(_, v)| v).expect("one field");
            assert_eq!(bool::parse(value), Some(expected), "{text}");
        }
    }
}
