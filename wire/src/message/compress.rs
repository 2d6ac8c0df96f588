//! zlib bodies (sysflag bit 0). Java producers compress bodies above 4 KiB with `Deflater`
//! level 5; consumers inflate. The inflated size is bounded so a small body cannot expand
//! without limit.

use std::io::{Read, Write};

use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;

use crate::error::MessageError;

/// Largest body `inflate_body` produces: 64 MiB.
pub const MAX_INFLATED_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Inflates a zlib body, failing if it is corrupt or inflates past `MAX_INFLATED_BODY_BYTES`.
pub fn inflate_body(compressed: &[u8]) -> Result<Vec<u8>, MessageError> {
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).min(MAX_INFLATED_BODY_BYTES));
    let limit = MAX_INFLATED_BODY_BYTES as u64 + 1;
    ZlibDecoder::new(compressed)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| MessageError::Compression(e.to_string()))?;
    if out.len() > MAX_INFLATED_BODY_BYTES {
        return Err(MessageError::FieldTooLong { what: "inflated body", len: out.len(), max: MAX_INFLATED_BODY_BYTES });
    }
    Ok(out)
}

/// Deflates a body as the Java producer does (zlib, given level 0–9).
pub fn deflate_body(body: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::with_capacity(body.len() / 2 + 16), Compression::new(level.min(9)));
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let body = b"hello rocketmq ".repeat(1000);
        let packed = deflate_body(&body, 5);
        assert!(packed.len() < body.len());
        assert_eq!(inflate_body(&packed).expect("valid zlib"), body);
        assert!(inflate_body(b"not zlib at all").is_err());
    }
}
