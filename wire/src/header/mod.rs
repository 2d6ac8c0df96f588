//! Typed custom headers: the fields a request or response carries in `extFields`.
//!
//! Each header is a plain struct whose fields use the Java names on the wire. Required fields
//! (Java's `@CFNotNull`) are plain types and reading fails with [`HeaderError::MissingField`]
//! when one is absent; optional ones are `Option`s. Values are parsed as Java's
//! `decodeCommandCustomHeader` does: integers strictly, booleans leniently (`"true"` or `"1"` is
//! true, anything else false). Fields a header does not name are ignored.

use crate::bytestr::ByteStr;
use crate::command::ExtFields;
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
    fn write_to(&self, fields: &mut ExtFields);
}

/// A scalar that travels as text in `extFields`.
pub trait FieldValue: Sized {
    /// What a valid value looks like, for error messages.
    const EXPECTED: &'static str;
    fn parse(text: &ByteStr) -> Option<Self>;
    fn to_text(&self) -> ByteStr;
}

impl FieldValue for ByteStr {
    const EXPECTED: &'static str = "string";
    fn parse(text: &ByteStr) -> Option<Self> {
        Some(text.clone())
    }
    fn to_text(&self) -> ByteStr {
        self.clone()
    }
}

macro_rules! integer_field {
    ($($t:ty => $expected:literal),*) => {$(
        impl FieldValue for $t {
            const EXPECTED: &'static str = $expected;
            fn parse(text: &ByteStr) -> Option<Self> {
                text.parse().ok()
            }
            fn to_text(&self) -> ByteStr {
                ByteStr::from(self.to_string())
            }
        }
    )*};
}
integer_field!(i32 => "32-bit integer", i64 => "64-bit integer");

impl FieldValue for bool {
    const EXPECTED: &'static str = "boolean";
    fn parse(text: &ByteStr) -> Option<Self> {
        Some(text.eq_ignore_ascii_case("true") || text.as_str() == "1")
    }
    fn to_text(&self) -> ByteStr {
        ByteStr::from_static(if *self { "true" } else { "false" })
    }
}

/// How a struct field maps to `extFields`: required (`T`) or optional (`Option<T>`).
pub trait HeaderField: Sized {
    fn read(header: &'static str, name: &'static str, value: Option<&ByteStr>) -> Result<Self, HeaderError>;
    fn write(&self, name: &'static str, fields: &mut ExtFields);
}

fn parse_field<T: FieldValue>(header: &'static str, field: &'static str, text: &ByteStr) -> Result<T, HeaderError> {
    T::parse(text).ok_or_else(|| HeaderError::BadField {
        header,
        field,
        value: text.to_string(),
        expected: T::EXPECTED,
    })
}

impl<T: FieldValue> HeaderField for T {
    fn read(header: &'static str, name: &'static str, value: Option<&ByteStr>) -> Result<Self, HeaderError> {
        match value {
            Some(text) => parse_field(header, name, text),
            None => Err(HeaderError::MissingField { header, field: name }),
        }
    }
    fn write(&self, name: &'static str, fields: &mut ExtFields) {
        fields.push(ByteStr::from_static(name), self.to_text());
    }
}

impl<T: FieldValue> HeaderField for Option<T> {
    fn read(header: &'static str, name: &'static str, value: Option<&ByteStr>) -> Result<Self, HeaderError> {
        value.map(|text| parse_field(header, name, text)).transpose()
    }
    fn write(&self, name: &'static str, fields: &mut ExtFields) {
        if let Some(v) = self {
            fields.push(ByteStr::from_static(name), v.to_text());
        }
    }
}

/// Declares a header struct, its wire names and its `CommandHeader` impl.
macro_rules! header {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty = $wire:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $crate::header::CommandHeader for $name {
            const NAME: &'static str = stringify!($name);

            #[allow(unused_variables)]
            fn read_from(fields: &$crate::command::ExtFields) -> Result<Self, $crate::error::HeaderError> {
                Ok(Self {
                    $($field: <$ty as $crate::header::HeaderField>::read(stringify!($name), $wire, fields.get($wire))?,)*
                })
            }

            #[allow(unused_variables)]
            fn write_to(&self, fields: &mut $crate::command::ExtFields) {
                $(<$ty as $crate::header::HeaderField>::write(&self.$field, $wire, fields);)*
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
    fn booleans_are_lenient_like_java() {
        for (text, expected) in
            [("true", true), ("TRUE", true), ("1", true), ("false", false), ("0", false), ("yes", false)]
        {
            assert_eq!(bool::parse(&ByteStr::from(text)), Some(expected), "{text}");
        }
    }
}
