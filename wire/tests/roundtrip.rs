//! Property tests: random commands survive encode → decode in both serializations, however the
//! byte stream is split; random stored messages and batches survive their codecs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use wire::message::{body_crc, decode_batch, encode_batch, BatchMessage, StoredMessage};
use wire::{encode, ByteStr, ExtFields, FrameDecoder, LanguageCode, RemotingCommand, SerializeType};

fn text() -> impl Strategy<Value = String> {
    // Printable text plus the separators and escapes that headers really carry.
    prop::collection::vec(
        prop_oneof![
            6 => prop::char::range('a', 'z'),
            1 => Just('\u{1}'),
            1 => Just('\u{2}'),
            1 => Just('"'),
            1 => Just('\\'),
            1 => Just('\n'),
            1 => Just('é'),
            1 => Just('😀'),
        ],
        0..24,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn command() -> impl Strategy<Value = RemotingCommand> {
    (
        (any::<i16>(), 0u8..13, any::<i16>(), any::<i32>(), 0i32..4),
        prop::option::of(text()),
        prop::collection::btree_map(text().prop_filter("non-empty key", |k| !k.is_empty()), text(), 0..12),
        prop::bool::ANY,
        prop::collection::vec(any::<u8>(), 0..512),
    )
        .prop_map(|((code, lang, version, opaque, flag), remark, fields, rocketmq, body)| {
            let mut ext_fields = ExtFields::new();
            for (k, v) in fields {
                ext_fields.insert(k, v);
            }
            RemotingCommand {
                code: i32::from(code),
                language: LanguageCode::from_code(lang),
                version: i32::from(version),
                opaque,
                flag,
                // ROCKETMQ cannot tell an empty remark from none; JSON can.
                remark: remark.filter(|r| !r.is_empty() || !rocketmq).map(ByteStr::from),
                ext_fields,
                serialize_type: if rocketmq { SerializeType::RocketMq } else { SerializeType::Json },
                body: Bytes::from(body),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn commands_round_trip(cmds in prop::collection::vec(command(), 1..6), split in 1usize..64) {
        let mut stream = BytesMut::new();
        for cmd in &cmds {
            encode(cmd, &mut stream);
        }
        let decoder = FrameDecoder::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in stream.chunks(split) {
            buf.extend_from_slice(chunk);
            while let Some(cmd) = decoder.decode(&mut buf).expect("valid stream") {
                out.push(cmd);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(out, cmds);
    }

    #[test]
    fn stored_messages_round_trip(
        body in prop::collection::vec(any::<u8>(), 0..2048),
        topic in "[A-Za-z0-9_%-]{1,127}",
        props in text(),
        v6 in (any::<bool>(), any::<bool>()),
        nums in (any::<i32>(), any::<i64>(), any::<i64>(), any::<i32>(), any::<u16>()),
    ) {
        let host = |v6: bool, port: u16| if v6 {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)), port)
        } else {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)), port)
        };
        let body = Bytes::from(body);
        let msg = StoredMessage {
            body_crc: body_crc(&body),
            queue_id: nums.0,
            queue_offset: nums.1,
            physical_offset: nums.2,
            reconsume_times: nums.3,
            born_host: host(v6.0, nums.4),
            store_host: host(v6.1, 10911),
            topic: ByteStr::from(topic),
            properties: ByteStr::from(props),
            body,
            ..StoredMessage::default()
        };
        let mut buf = BytesMut::new();
        msg.encode(&mut buf).expect("fits");
        let (back, size) = StoredMessage::decode(&buf.freeze(), true).expect("decodes");
        prop_assert_eq!(size, msg.encoded_len());
        prop_assert_eq!(back.sys_flag, msg.effective_sys_flag());
        prop_assert_eq!(StoredMessage { sys_flag: msg.sys_flag, ..back }, msg);
    }

    #[test]
    fn batches_round_trip(items in prop::collection::vec((any::<i32>(), prop::collection::vec(any::<u8>(), 0..300), text()), 0..20)) {
        let msgs: Vec<BatchMessage> = items
            .into_iter()
            .map(|(flag, body, props)| BatchMessage { flag, body: Bytes::from(body), properties: ByteStr::from(props) })
            .collect();
        let mut buf = BytesMut::new();
        encode_batch(&msgs, &mut buf).expect("fits");
        prop_assert_eq!(decode_batch(&buf.freeze()).expect("decodes"), msgs);
    }
}
