//! Compressed bodies. A producer compresses a body of 4 KiB or more and sets sysFlag bit 0;
//! consumers decompress. Until 4.9.7 the codec was always zlib (Java's `Deflater`, level 5).
//! 4.9.8 producers also write LZ4 or zstd frames (`-Drocketmq.message.compressType`) and name
//! the codec in sysFlag bits 8–10, where 0 still means zlib. The decompressed size is bounded,
//! so a small body cannot expand without limit.

use std::io::{Read, Write};

use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;

use super::sys_flag;
use crate::error::MessageError;

/// Largest body decompression produces: 64 MiB.
pub const MAX_INFLATED_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The codec of a compressed body (Java's `CompressionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionType {
    /// An LZ4 frame with independent blocks, as lz4-java's `LZ4FrameOutputStream` writes and
    /// reads.
    Lz4,
    /// A Zstandard frame.
    Zstd,
    /// A zlib stream: every producer's codec before 4.9.8, and its default since.
    Zlib,
}

impl CompressionType {
    /// The codec a compressed message's sysFlag names.
    pub fn of_sys_flag(flag: i32) -> Result<Self, MessageError> {
        match (flag & sys_flag::COMPRESSION_TYPE_MASK) >> 8 {
            1 => Ok(Self::Lz4),
            2 => Ok(Self::Zstd),
            0 | 3 => Ok(Self::Zlib),
            other => Err(MessageError::Compression(format!("unknown compression type {other} in sysFlag {flag:#x}"))),
        }
    }

    /// The sysFlag bits of a body compressed with this codec: bit 0 and the codec's bits, as a
    /// 4.9.8 producer sets them (earlier consumers look at bit 0 only, and read zlib).
    pub fn sys_flag(self) -> i32 {
        sys_flag::COMPRESSED
            | match self {
                Self::Lz4 => 1 << 8,
                Self::Zstd => 2 << 8,
                Self::Zlib => 3 << 8,
            }
    }

    /// Java's names: `LZ4`, `ZSTD`, `ZLIB`, in any case.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_uppercase().as_str() {
            "LZ4" => Some(Self::Lz4),
            "ZSTD" => Some(Self::Zstd),
            "ZLIB" => Some(Self::Zlib),
            _ => None,
        }
    }
}

/// Compresses a body. `level` (0–9) matters to zlib only: zstd is written at its fastest
/// level (level 1) and LZ4 has one.
pub fn compress_body(body: &[u8], codec: CompressionType, level: u32) -> Vec<u8> {
    match codec {
        CompressionType::Zlib => deflate_body(body, level),
        CompressionType::Lz4 => {
            // Independent blocks: lz4-java reads no other kind.
            let info = lz4_flex::frame::FrameInfo::new()
                .block_mode(lz4_flex::frame::BlockMode::Independent)
                .block_size(lz4_flex::frame::BlockSize::Max64KB);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::with_capacity(body.len() / 2));
            // Writing to a Vec cannot fail.
            let _ = encoder.write_all(body);
            encoder.finish().unwrap_or_default()
        }
        CompressionType::Zstd => ruzstd::encoding::compress_to_vec(body, ruzstd::encoding::CompressionLevel::Fastest),
    }
}

/// Decompresses the body of a message whose sysFlag has the compressed bit, with the codec the
/// flag names; fails if the body is corrupt or decompresses past `MAX_INFLATED_BODY_BYTES`.
pub fn decompress_body(compressed: &[u8], sys_flag: i32) -> Result<Vec<u8>, MessageError> {
    decompress_within(compressed, sys_flag, MAX_INFLATED_BODY_BYTES)
}

fn decompress_within(compressed: &[u8], sys_flag: i32, max: usize) -> Result<Vec<u8>, MessageError> {
    let len = compressed.len();
    match CompressionType::of_sys_flag(sys_flag)? {
        CompressionType::Zlib => read_within(ZlibDecoder::new(compressed), len, "zlib", max),
        CompressionType::Lz4 => read_within(lz4_flex::frame::FrameDecoder::new(compressed), len, "lz4", max),
        CompressionType::Zstd => {
            let decoder = ruzstd::decoding::StreamingDecoder::new(compressed)
                .map_err(|e| MessageError::Compression(format!("zstd: {e}")))?;
            read_within(decoder, len, "zstd", max)
        }
    }
}

fn read_within(decoder: impl Read, compressed_len: usize, codec: &str, max: usize) -> Result<Vec<u8>, MessageError> {
    let mut out = Vec::with_capacity(compressed_len.saturating_mul(4).min(max));
    decoder
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| MessageError::Compression(format!("{codec}: {e}")))?;
    if out.len() > max {
        return Err(MessageError::FieldTooLong { what: "inflated body", len: out.len(), max });
    }
    Ok(out)
}

/// Deflates a body as the Java producer does (zlib, given level 0–9).
fn deflate_body(body: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::with_capacity(body.len() / 2 + 16), Compression::new(level.min(9)));
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: [CompressionType; 3] = [CompressionType::Zlib, CompressionType::Lz4, CompressionType::Zstd];

    #[test]
    fn round_trip_and_corruption() {
        // Bit 0 alone: a zlib body as every producer before 4.9.8 marked it.
        let body = b"hello rocketmq ".repeat(1000);
        let packed = compress_body(&body, CompressionType::Zlib, 5);
        assert!(packed.len() < body.len());
        assert_eq!(decompress_body(&packed, sys_flag::COMPRESSED).expect("valid zlib"), body);
        assert!(decompress_body(b"not zlib at all", sys_flag::COMPRESSED).is_err());
    }

    #[test]
    fn every_codec_round_trips_through_its_sys_flag() {
        // Past one 64 KiB LZ4 block and one 128 KiB zstd block, and not all alike.
        let body: Vec<u8> = (0..300_000u32).flat_map(|i| format!("{} rocketmq ", i % 977).into_bytes()).collect();
        for codec in CODECS {
            let packed = compress_body(&body, codec, 5);
            assert!(packed.len() < body.len() / 2, "{codec:?}: {} of {}", packed.len(), body.len());
            let flag = codec.sys_flag() | sys_flag::TRANSACTION_PREPARED_TYPE;
            assert_eq!(CompressionType::of_sys_flag(flag).expect("known"), codec);
            assert_eq!(decompress_body(&packed, flag).expect("decompresses"), body, "{codec:?}");
            assert!(decompress_body(b"neither zlib nor lz4 nor zstd", flag).is_err(), "{codec:?}");
            let mut cut = packed.clone();
            cut.truncate(packed.len() / 2);
            assert!(decompress_body(&cut, flag).is_err(), "{codec:?}: a truncated body is refused");
        }
    }

    #[test]
    fn the_codec_bits_follow_java() {
        // Bit 0 alone is how every producer before 4.9.8 marked a zlib body.
        assert_eq!(CompressionType::of_sys_flag(sys_flag::COMPRESSED).expect("zlib"), CompressionType::Zlib);
        assert_eq!(CompressionType::Lz4.sys_flag(), 0x101);
        assert_eq!(CompressionType::Zstd.sys_flag(), 0x201);
        assert_eq!(CompressionType::Zlib.sys_flag(), 0x301);
        let unknown = CompressionType::of_sys_flag(sys_flag::COMPRESSED | 5 << 8).expect_err("no codec 5");
        assert!(unknown.to_string().contains("unknown compression type 5"), "{unknown}");
        assert_eq!(CompressionType::from_name(" zstd"), Some(CompressionType::Zstd));
        assert_eq!(CompressionType::from_name("snappy"), None);
    }

    #[test]
    fn a_body_that_expands_past_the_bound_is_refused() {
        let zeros = vec![0u8; 100_001];
        for codec in CODECS {
            let packed = compress_body(&zeros, codec, 1);
            assert!(packed.len() < 1000, "{codec:?}");
            let refused = decompress_within(&packed, codec.sys_flag(), 100_000).expect_err("past the bound");
            assert!(matches!(refused, MessageError::FieldTooLong { len: 100_001, .. }), "{codec:?}: {refused}");
            assert_eq!(decompress_within(&packed, codec.sys_flag(), 100_001).expect("within").len(), 100_001);
        }
    }

    #[test]
    fn incompressible_bodies_round_trip_too() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        for codec in CODECS {
            let packed = compress_body(&noise, codec, 5);
            assert_eq!(decompress_body(&packed, codec.sys_flag()).expect("decompresses"), noise, "{codec:?}");
        }
    }
}
