//! Tag hash codes: what a ConsumeQueue unit stores and a subscription's `codeSet` holds.

/// Java's `String.hashCode()` of `tag`, widened to `long` as `MessageExtBrokerInner.tagsString2tagsCode` does.
///
/// Java hashes UTF-16 code units, so characters outside the BMP count as two units.
pub fn tag_hash_code(tag: &str) -> i64 {
    let mut h: i32 = 0;
    for unit in tag.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    i64::from(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_java_string_hash_code() {
        // Values from Java: "TagA".hashCode() == 2598919, "".hashCode() == 0.
        assert_eq!(tag_hash_code("TagA"), 2_598_919);
        assert_eq!(tag_hash_code(""), 0);
        // Overflow wraps like Java's int arithmetic: "polygenelubricants".hashCode() == Integer.MIN_VALUE.
        assert_eq!(tag_hash_code("polygenelubricants"), i64::from(i32::MIN));
        // Outside the BMP Java hashes the surrogate pair: "😀".hashCode() == 1772899.
        assert_eq!(tag_hash_code("\u{1F600}"), 1_772_899);
    }
}
