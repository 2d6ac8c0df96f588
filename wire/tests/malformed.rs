//! Malformed input returns a typed error and never panics: truncated frames, lying lengths,
//! header lengths past the frame, invalid JSON, invalid UTF-8, oversized frames, unknown
//! serialize types, and corrupt bodies.

use bytes::{BufMut, Bytes, BytesMut};
use wire::body::{HeartbeatData, JsonBody, RegisterBrokerBody, TopicRouteData};
use wire::message::{decode_batch, decode_stored_messages};
use wire::{decode_frame, encode_to_bytes, FrameDecoder, RemotingCommand, SerializeType, WireError};

fn frame(serialize_type: u8, header: &[u8], body: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u32((4 + header.len() + body.len()) as u32);
    b.put_u32((u32::from(serialize_type) << 24) | header.len() as u32);
    b.put_slice(header);
    b.put_slice(body);
    b.freeze()
}

fn decode(bytes: Bytes) -> Result<RemotingCommand, WireError> {
    decode_frame(bytes, 1024 * 1024)
}

#[test]
fn lying_lengths() {
    // Total length below the 4-byte minimum, negative, or past the limit.
    for declared in [0i32, 3, -1, i32::MIN] {
        let mut buf = BytesMut::new();
        buf.put_i32(declared);
        buf.put_u32(0);
        assert!(matches!(FrameDecoder::default().decode(&mut buf), Err(WireError::FrameTooShort { .. })), "{declared}");
    }
    let mut buf = BytesMut::new();
    buf.put_i32(16 * 1024 * 1024 + 1);
    assert!(matches!(FrameDecoder::default().decode(&mut buf), Err(WireError::FrameTooLarge { .. })));

    // Header length past the frame.
    let mut b = BytesMut::new();
    b.put_u32(4 + 2);
    b.put_u32(100);
    b.put_slice(b"{}");
    assert!(matches!(decode(b.freeze()), Err(WireError::HeaderLengthOutOfRange { header_len: 100, .. })));
}

#[test]
fn truncated_frames_wait_then_fail_at_eof() {
    let whole = encode_to_bytes(&RemotingCommand::request(105).with_body(&b"body"[..]));
    for cut in 1..whole.len() {
        let mut buf = BytesMut::from(&whole[..cut]);
        let decoder = FrameDecoder::default();
        assert!(decoder.decode(&mut buf).expect("a prefix is not an error yet").is_none(), "cut {cut}");
        assert!(matches!(decoder.decode_eof(&mut buf), Err(WireError::TruncatedFrame { .. })), "cut {cut}");
        assert!(decode(whole.slice(..cut)).is_err(), "cut {cut}");
    }
    let mut extra = BytesMut::from(&whole[..]);
    extra.put_u8(0);
    assert!(matches!(decode(extra.freeze()), Err(WireError::TrailingBytes { extra: 1 })));
}

#[test]
fn unknown_serialize_type() {
    assert!(matches!(decode(frame(2, b"{}", b"")), Err(WireError::UnknownSerializeType(2))));
    assert!(matches!(decode(frame(0xff, b"{}", b"")), Err(WireError::UnknownSerializeType(0xff))));
}

#[test]
fn invalid_json_headers() {
    for header in [
        &b""[..],
        b"{",
        b"not json",
        b"[1,2]",
        b"{\"opaque\":1}",                        // no code
        b"{\"code\":\"ten\"}",                    // code not a number
        b"{\"code\":1,\"extFields\":[1]}",        // extFields not an object
        b"{\"code\":1,\"extFields\":{\"a\":{}}}", // a non-scalar value
        b"{\"code\":1} trailing",
        b"{\"code\":1,\"remark\":\"\xff\xfe\"}", // invalid UTF-8 in a string
        b"\xff\xfe{\"code\":1}",
    ] {
        let err = decode(frame(0, header, b"")).expect_err(&String::from_utf8_lossy(header));
        assert!(matches!(err, WireError::JsonHeader(_)), "{err}");
    }
}

#[test]
fn invalid_rocketmq_headers() {
    let good = encode_to_bytes(&{
        let mut c = RemotingCommand::request(310).with_serialize_type(SerializeType::RocketMq).with_remark("r");
        c.ext_fields.insert("topic", "T");
        c
    });
    let header_len = (u32::from_be_bytes([good[4], good[5], good[6], good[7]]) & 0xffffff) as usize;
    let header = &good[8..8 + header_len];
    // Every truncation of the header is an error.
    for cut in 0..header.len() {
        assert!(decode(frame(1, &header[..cut], b"")).is_err(), "cut {cut}");
    }
    // A remark length longer than the header.
    let mut lying = header.to_vec();
    lying[13..17].copy_from_slice(&1000i32.to_be_bytes());
    assert!(matches!(decode(frame(1, &lying, b"")), Err(WireError::RocketMqHeaderTruncated { .. })));
    // A negative extFields length.
    let mut negative = header.to_vec();
    let ext_at = 17 + 1;
    negative[ext_at..ext_at + 4].copy_from_slice(&(-5i32).to_be_bytes());
    assert!(matches!(decode(frame(1, &negative, b"")), Err(WireError::RocketMqNegativeLength { .. })));
    // Invalid UTF-8 in a key.
    let mut bad_utf8 = header.to_vec();
    let key_at = ext_at + 4 + 2;
    bad_utf8[key_at] = 0xff;
    assert!(matches!(decode(frame(1, &bad_utf8, b"")), Err(WireError::InvalidUtf8 { .. })));
}

#[test]
fn corrupt_bodies() {
    for body in [&b""[..], b"{", b"[]", b"{\"brokerDatas\":7}", b"\xff"] {
        assert!(TopicRouteData::decode(body).is_err(), "{}", String::from_utf8_lossy(body));
    }
    assert!(HeartbeatData::decode(b"{\"clientID\":\"c\",\"consumerDataSet\":[{\"consumeType\":9}]}").is_err());
    assert!(RegisterBrokerBody::decode_any(b"garbage", true).is_err());
    assert!(decode_stored_messages(&Bytes::from_static(&[0, 0, 0, 200, 0xda, 0xa3, 0x20, 0xa7]), true).is_err());
    assert!(decode_batch(&Bytes::from_static(&[0, 0, 0, 1])).is_err());
}

/// Deterministic pseudo-random garbage (xorshift), so failures reproduce.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn random_garbage_never_panics() {
    let decoder = FrameDecoder::new(64 * 1024);
    for seed in 0..2000u64 {
        let mut bytes = garbage(seed, (seed % 300) as usize);
        // Make about half of them plausible frames with random headers.
        if seed % 2 == 0 && bytes.len() >= 8 {
            let len = (bytes.len() - 4) as u32;
            bytes[..4].copy_from_slice(&len.to_be_bytes());
            bytes[4] = (seed % 3) as u8;
        }
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = decoder.decode(&mut buf) {}
        let _ = decode_stored_messages(&Bytes::from(bytes.clone()), true);
        let _ = decode_batch(&Bytes::from(bytes.clone()));
        let _ = TopicRouteData::decode(&bytes);
    }
}

#[test]
fn repeated_keys_keep_the_last_value_and_huge_headers_are_refused() {
    let json = frame(0, br#"{"code":11,"extFields":{"queueId":"1","queueId":"2"}}"#, b"");
    let cmd = decode(json).expect("valid");
    assert_eq!(cmd.ext_fields.len(), 1);
    assert_eq!(cmd.ext_fields.get("queueId"), Some("2"));
    // Keys that are not typed-header field names take the other path through the decoder.
    let json = frame(0, br#"{"code":11,"extFields":{"zz":"1","topic":"T","yy":"3","zz":"2"}}"#, b"");
    let cmd = decode(json).expect("valid");
    assert_eq!(cmd.ext_fields.len(), 3);
    assert_eq!(cmd.ext_fields.get("zz"), Some("2"));
    assert_eq!(cmd.ext_fields.get("yy"), Some("3"));

    let mut many = String::from(r#"{"code":11,"extFields":{"#);
    for i in 0..=wire::MAX_EXT_FIELDS {
        many.push_str(&format!(r#""k{i}":"v","#));
    }
    many.push_str(r#""last":"v"}}"#);
    assert!(matches!(decode(frame(0, many.as_bytes(), b"")), Err(WireError::TooManyExtFields { .. })));

    let mut header = BytesMut::new();
    header.put_slice(&[0, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let mut fields = BytesMut::new();
    for (key, value) in [("k", "1"), ("kk", "2"), ("k", "3"), ("kk", "4"), ("kx", "5")] {
        fields.put_u16(key.len() as u16);
        fields.put_slice(key.as_bytes());
        fields.put_i32(value.len() as i32);
        fields.put_slice(value.as_bytes());
    }
    header.put_i32(fields.len() as i32);
    header.put_slice(&fields);
    let cmd = decode(frame(1, &header, b"")).expect("valid");
    assert_eq!(cmd.ext_fields.len(), 3);
    assert_eq!(cmd.ext_fields.get("k"), Some("3"));
    assert_eq!(cmd.ext_fields.get("kk"), Some("4"));
    assert_eq!(cmd.ext_fields.get("kx"), Some("5"));
}
