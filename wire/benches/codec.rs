//! Decode + encode of a SEND_MESSAGE_V2 frame with a 1 KiB body, in both serializations: the
//! per-frame protocol cost on the broker's hot path. Decoding slices the frame (no body copy);
//! encoding writes the length words and header only (`encode_head`), as a writer that sends the
//! body `Bytes` separately would.
//!
//! Run: `cargo bench -p wire --bench codec`.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wire::code::request;
use wire::header::{SendMessageRequestHeader, SendMessageRequestHeaderV2};
use wire::{decode_frame, encode_head, encode_to_bytes, RemotingCommand, SerializeType};

/// A SEND_MESSAGE_V2 request shaped like the Java 4.9.8 producer's.
fn send_v2(serialize_type: SerializeType) -> Bytes {
    let header = SendMessageRequestHeaderV2 {
        a: "PID-bench".into(),
        b: "BenchmarkTest".into(),
        c: "TBW102".into(),
        d: 4,
        e: 3,
        f: 0,
        g: 1_795_316_922_477,
        h: 0,
        i: Some(
            "KEYS\u{1}key-0\u{2}UNIQ_KEY\u{1}FD000000000000000000000000000002705430946E096CD2506D0000\u{2}WAIT\u{1}true\u{2}TAGS\u{1}TagA"
                .into(),
        ),
        j: Some(0),
        k: Some(false),
        l: None,
        m: Some(false),
        n: Some("broker-a".into()),
    };
    let mut cmd = RemotingCommand::request(request::SEND_MESSAGE_V2)
        .with_serialize_type(serialize_type)
        .with_header(&header)
        .with_body(vec![b'x'; 1024]);
    cmd.opaque = 42;
    encode_to_bytes(&cmd)
}

fn bench_codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("send_v2_1KiB");
    group.throughput(Throughput::Elements(1));
    for (name, st) in [("rocketmq", SerializeType::RocketMq), ("json", SerializeType::Json)] {
        let frame = send_v2(st);
        let mut out = BytesMut::with_capacity(1024);
        group.bench_function(format!("{name}/decode+encode_head"), |b| {
            b.iter(|| {
                let cmd = decode_frame(black_box(frame.clone()), 1 << 24).expect("valid frame");
                out.clear();
                encode_head(&cmd, &mut out);
                black_box(&out);
            })
        });
        group.bench_function(format!("{name}/decode+typed_header+encode_head"), |b| {
            b.iter(|| {
                let cmd = decode_frame(black_box(frame.clone()), 1 << 24).expect("valid frame");
                let header = SendMessageRequestHeader::read_any(&cmd.ext_fields, true).expect("valid header");
                black_box(&header);
                out.clear();
                encode_head(&cmd, &mut out);
                black_box(&out);
            })
        });
        let decoded = decode_frame(frame.clone(), 1 << 24).expect("valid frame");
        group.bench_function(format!("{name}/typed_header"), |b| {
            b.iter(|| black_box(SendMessageRequestHeader::read_any(black_box(&decoded.ext_fields), true)))
        });
        group.bench_function(format!("{name}/decode"), |b| {
            b.iter(|| black_box(decode_frame(black_box(frame.clone()), 1 << 24).expect("valid frame")))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);
