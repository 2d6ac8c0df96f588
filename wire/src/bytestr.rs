//! `ByteStr`: UTF-8 text that shares the buffer it was read from.
//!
//! Header fields (topic names, groups, extFields) are slices of the frame that carried them, so
//! decoding a header costs a reference count per field rather than an allocation per field.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// An immutable UTF-8 string backed by [`Bytes`]. Cloning is a reference-count increment.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteStr(Bytes);

impl ByteStr {
    /// A string that lives for the whole program; no allocation.
    pub const fn from_static(s: &'static str) -> Self {
        Self(Bytes::from_static(s.as_bytes()))
    }

    /// Wraps `bytes` if they are valid UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        // Header text is nearly always ASCII, and `is_ascii` on a short slice is a fraction of
        // the general validator's cost.
        if !bytes.is_ascii() {
            std::str::from_utf8(&bytes)?;
        }
        Ok(Self(bytes))
    }

    /// Wraps `bytes` if they are all ASCII (a header the fast decoders read).
    pub fn from_ascii(bytes: Bytes) -> Option<Self> {
        bytes.is_ascii().then_some(Self(bytes))
    }

    /// A `ByteStr` over the part of `owner` that `s` points into, without copying; a copy of
    /// `s` if it does not lie inside `owner`.
    pub fn slice_ref(owner: &Bytes, s: &str) -> Self {
        let range = owner.as_ptr_range();
        let inside = range.start <= s.as_ptr() && s.as_bytes().as_ptr_range().end <= range.end;
        match (s.is_empty(), inside) {
            (true, _) => Self::default(),
            (false, true) => Self(owner.slice_ref(s.as_bytes())),
            (false, false) => Self::from(s),
        }
    }

    /// The part of this string at `range`, without copying; `None` if `range` is out of bounds
    /// or splits a character.
    pub fn substr(&self, range: std::ops::Range<usize>) -> Option<Self> {
        self.as_str().get(range.clone())?;
        Some(Self(self.0.slice(range)))
    }

    /// The part of this string that `s` (borrowed from it) covers, without copying.
    pub fn slice_of(&self, s: &str) -> Self {
        Self::slice_ref(&self.0, s)
    }

    pub fn as_str(&self) -> &str {
        debug_assert!(std::str::from_utf8(&self.0).is_ok());
        // SAFETY: every constructor takes a `str` or checks the bytes with `from_utf8`, and the
        // bytes are immutable afterwards. Validating again on every access cost ~30 % of a
        // header decode + encode (measured with `cargo bench -p wire`).
        #[allow(unsafe_code)]
        unsafe {
            std::str::from_utf8_unchecked(&self.0)
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl Deref for ByteStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for ByteStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for ByteStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for ByteStr {
    fn from(s: String) -> Self {
        Self(Bytes::from(s))
    }
}

impl From<&str> for ByteStr {
    fn from(s: &str) -> Self {
        Self(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<ByteStr> for String {
    fn from(s: ByteStr) -> Self {
        s.as_str().to_owned()
    }
}

impl PartialEq<str> for ByteStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ByteStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ByteStr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ByteStr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_ref_shares_the_owner() {
        let owner = Bytes::from_static(b"topic=TopicTest");
        let text = std::str::from_utf8(&owner[6..]).expect("ascii");
        let s = ByteStr::slice_ref(&owner, text);
        assert_eq!(s, "TopicTest");
        assert_eq!(s.as_bytes().as_ptr(), owner[6..].as_ptr());
    }

    #[test]
    fn rejects_invalid_utf8() {
        assert!(ByteStr::from_utf8(Bytes::from_static(&[0xff, 0xfe])).is_err());
    }
}
