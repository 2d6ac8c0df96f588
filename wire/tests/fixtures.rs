//! Every captured frame in `../shared/fixtures/` — five real clients and the Java 4.9.8 name
//! server and broker — decodes to what the capture's decoded reference says, its body decodes to
//! the typed body, and it re-encodes to an equivalent frame (byte-identical where the Java side
//! wrote it with the ROCKETMQ serialization).

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::Bytes;
use serde_json::Value;
use wire::body::{
    ClusterInfo, GetConsumerListByGroupResponseBody, HeartbeatData, JsonBody, RegisterBrokerBody, TopicRouteData,
};
use wire::code::{request, response};
use wire::header::{
    CommandHeader, PullMessageRequestHeader, PullMessageResponseHeader, QueryConsumerOffsetRequestHeader,
    RegisterBrokerRequestHeader, SendMessageRequestHeader, SendMessageResponseHeader,
    UpdateConsumerOffsetRequestHeader,
};
use wire::message::{decode_stored_messages, properties};
use wire::{decode_frame, encode_to_bytes, RemotingCommand, SerializeType, MAX_FRAME_BYTES_DEFAULT};

fn fixtures_dir() -> PathBuf {
    let dir = std::env::var_os("APOGEE_FIXTURES").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("..").join("shared").join("fixtures")
    });
    assert!(dir.is_dir(), "fixtures not found at {} (set APOGEE_FIXTURES)", dir.display());
    dir
}

fn frames(sub: &str) -> Vec<(String, Bytes)> {
    let dir = fixtures_dir().join(sub);
    let mut out: Vec<(String, Bytes)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "bin").then_some(path)
        })
        .map(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            (name, Bytes::from(bytes))
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no frames in {}", dir.display());
    out
}

fn decode(name: &str, bytes: &Bytes) -> RemotingCommand {
    decode_frame(bytes.clone(), MAX_FRAME_BYTES_DEFAULT).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The decoded reference next to a server frame: header JSON and the body section.
struct Reference {
    header: Value,
    body_section: Vec<String>,
}

fn reference(name: &str) -> Reference {
    let path = fixtures_dir().join("server-frames/decoded").join(name.replace(".bin", ".txt"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| *l == "header:").unwrap_or_else(|| panic!("{name}: no header section"));
    let end = lines.iter().position(|l| l.starts_with("body")).unwrap_or(lines.len());
    let header = serde_json::from_str(&lines[start + 1..end].join("\n")).unwrap_or_else(|e| panic!("{name}: {e}"));
    Reference { header, body_section: lines[end..].iter().map(|l| l.to_string()).collect() }
}

/// Compares a decoded command with the reference header; extFields values as text.
fn assert_matches_reference(name: &str, cmd: &RemotingCommand, reference: &Value) {
    assert_eq!(Some(i64::from(cmd.code)), reference["code"].as_i64(), "{name}: code");
    assert_eq!(Some(i64::from(cmd.opaque)), reference["opaque"].as_i64(), "{name}: opaque");
    assert_eq!(Some(i64::from(cmd.flag)), reference["flag"].as_i64(), "{name}: flag");
    assert_eq!(Some(i64::from(cmd.version)), reference["version"].as_i64(), "{name}: version");
    assert_eq!(Some(cmd.language.name()), reference["language"].as_str(), "{name}: language");
    let remark = reference["remark"].as_str().filter(|r| !r.is_empty());
    assert_eq!(cmd.remark.as_deref().filter(|r| !r.is_empty()), remark, "{name}: remark");
    let expected: BTreeMap<String, String> = reference["extFields"]
        .as_object()
        .map(|fields| {
            fields
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                .collect()
        })
        .unwrap_or_default();
    let actual: BTreeMap<String, String> = cmd.ext_fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    assert_eq!(actual, expected, "{name}: extFields");
}

/// Re-encoding gives a frame that decodes to the same command.
fn assert_reencodes(name: &str, cmd: &RemotingCommand, original: &Bytes) -> bool {
    let again = encode_to_bytes(cmd);
    let back = decode(name, &again);
    assert_eq!(back.code, cmd.code, "{name}");
    assert_eq!(back.opaque, cmd.opaque, "{name}");
    assert_eq!(back.flag, cmd.flag, "{name}");
    assert_eq!(back.version, cmd.version, "{name}");
    assert_eq!(back.language, cmd.language, "{name}");
    assert_eq!(back.remark.as_deref().filter(|r| !r.is_empty()), cmd.remark.as_deref().filter(|r| !r.is_empty()));
    assert!(back.ext_fields.same_entries(&cmd.ext_fields), "{name}: extFields changed");
    assert_eq!(back.body, cmd.body, "{name}: body");
    assert_eq!(back.serialize_type, cmd.serialize_type, "{name}");
    again == *original
}

#[test]
fn client_frames_decode_and_reencode() {
    let mut identical = 0;
    let all = frames("client-frames");
    for (name, bytes) in &all {
        let cmd = decode(name, bytes);
        // <client>_<REQUEST...>_<code>_<serialization>.bin
        let parts: Vec<&str> = name.trim_end_matches(".bin").split('_').collect();
        let code: i32 = parts[parts.len() - 2].parse().unwrap_or_else(|_| panic!("{name}: code in name"));
        let serialization = parts[parts.len() - 1];
        assert_eq!(cmd.code, code, "{name}");
        assert_eq!(cmd.serialize_type.name(), serialization, "{name}");
        assert!(!cmd.is_response(), "{name}");
        check_typed(name, &cmd);
        identical += usize::from(assert_reencodes(name, &cmd, bytes));
    }
    // Every ROCKETMQ-serialized client frame re-encodes to the same bytes.
    let rocketmq = all.iter().filter(|(n, _)| n.ends_with("ROCKETMQ.bin")).count();
    assert!(identical >= rocketmq, "only {identical} of {} frames re-encoded byte for byte", all.len());
}

#[test]
fn server_frames_match_their_decoded_reference() {
    let all = frames("server-frames");
    let mut rocketmq_identical = 0;
    let mut rocketmq_total = 0;
    for (name, bytes) in &all {
        let cmd = decode(name, bytes);
        let reference = reference(name);
        assert_matches_reference(name, &cmd, &reference.header);
        let expected_type =
            if reference.header.get("serializeTypeCurrentRPC").and_then(Value::as_str) == Some("ROCKETMQ") {
                SerializeType::RocketMq
            } else {
                SerializeType::Json
            };
        assert_eq!(cmd.serialize_type, expected_type, "{name}");
        check_typed(name, &cmd);
        check_body(name, &cmd, &reference.body_section);
        let same = assert_reencodes(name, &cmd, bytes);
        if cmd.serialize_type == SerializeType::RocketMq {
            rocketmq_total += 1;
            rocketmq_identical += usize::from(same);
        }
    }
    assert!(rocketmq_total > 10, "expected many ROCKETMQ frames, found {rocketmq_total}");
    assert_eq!(rocketmq_identical, rocketmq_total, "ROCKETMQ frames must re-encode byte for byte");
}

fn typed<H: CommandHeader>(name: &str, cmd: &RemotingCommand) -> H {
    cmd.header().unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Typed headers read from the real frames, with the fields the captures show.
fn check_typed(name: &str, cmd: &RemotingCommand) {
    if cmd.is_response() {
        return;
    }
    match cmd.code {
        request::SEND_MESSAGE | request::SEND_MESSAGE_V2 => {
            let h = SendMessageRequestHeader::read_any(&cmd.ext_fields, cmd.code == request::SEND_MESSAGE_V2)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(h.topic.starts_with("Topic"), "{name}: topic {}", h.topic);
            assert_eq!(h.default_topic, "TBW102", "{name}");
            let props = h.properties.unwrap_or_default();
            assert_eq!(properties::get(&props, properties::TAGS), Some("TagA"), "{name}");
        }
        request::PULL_MESSAGE => {
            let h: PullMessageRequestHeader = typed(name, cmd);
            assert_eq!(h.max_msg_nums, 32, "{name}");
            assert_eq!(h.suspend_timeout_millis, 15_000, "{name}");
        }
        request::QUERY_CONSUMER_OFFSET => {
            let _: QueryConsumerOffsetRequestHeader = typed(name, cmd);
        }
        request::UPDATE_CONSUMER_OFFSET => {
            let _: UpdateConsumerOffsetRequestHeader = typed(name, cmd);
        }
        request::REGISTER_BROKER => {
            let h: RegisterBrokerRequestHeader = typed(name, cmd);
            assert_eq!(h.broker_name, "broker-a");
            // The broker's bodyCrc32 is CRC32 (IEEE) of the body masked to 31 bits, like BODYCRC.
            assert_eq!(h.body_crc32, Some(wire::message::body_crc(&cmd.body) as i32), "{name}: bodyCrc32");
            let body = RegisterBrokerBody::decode_any(&cmd.body, h.compressed.unwrap_or(false))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(body.topic_config_serialize_wrapper.topic_config_table.contains_key("TBW102"), "{name}");
        }
        request::HEART_BEAT => {
            let hb = HeartbeatData::decode(&cmd.body).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!hb.client_id.is_empty(), "{name}");
            for consumer in &hb.consumer_data_set {
                assert!(!consumer.group_name.is_empty(), "{name}");
                assert!(consumer.subscription_data_set.iter().all(|s| s.sub_version > 0), "{name}");
            }
            let again = HeartbeatData::decode(&hb.encode()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(again, hb, "{name}: heartbeat round trip");
        }
        _ => {}
    }
}

/// Bodies the Java servers answered with, decoded as their types.
fn check_body(name: &str, cmd: &RemotingCommand, section: &[String]) {
    if !cmd.is_response() || cmd.code != response::SUCCESS {
        return;
    }
    if name.starts_with("105_") {
        let route = TopicRouteData::decode(&cmd.body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(route.broker_datas[0].master_addr(), Some("127.0.0.1:10911"), "{name}");
        assert_eq!(route.queue_datas[0].broker_name, "broker-a", "{name}");
        for encoded in [route.encode(), route.encode_fastjson()] {
            assert_eq!(TopicRouteData::decode(&encoded).ok().as_ref(), Some(&route), "{name}: route round trip");
        }
    } else if name.starts_with("106_") {
        let info = ClusterInfo::decode(&cmd.body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(info.broker_addr_table["broker-a"].master_addr(), Some("127.0.0.1:10911"), "{name}");
        assert!(info.cluster_addr_table["DefaultCluster"].contains("broker-a"), "{name}");
        let java_form = info.encode_fastjson();
        assert!(String::from_utf8_lossy(&java_form).contains(r#""brokerAddrs":{0:"127.0.0.1:10911"}"#), "{name}");
        assert_eq!(ClusterInfo::decode(&java_form).ok().as_ref(), Some(&info), "{name}");
    } else if name.starts_with("38_") {
        let list = GetConsumerListByGroupResponseBody::decode(&cmd.body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(list.consumer_id_list.len(), 1, "{name}");
    } else if name.starts_with("11_") {
        let h = PullMessageResponseHeader::read_from(&cmd.ext_fields).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(h.next_begin_offset, 1, "{name}");
        let messages = decode_stored_messages(&cmd.body, true).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected: Vec<Value> = section
            .iter()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}")))
            .collect();
        assert_eq!(messages.len(), expected.len(), "{name}");
        for (m, e) in messages.iter().zip(&expected) {
            assert_eq!(Some(i64::from(m.queue_id)), e["queueId"].as_i64(), "{name}");
            assert_eq!(Some(m.queue_offset), e["queueOffset"].as_i64(), "{name}");
            assert_eq!(Some(m.physical_offset), e["physicalOffset"].as_i64(), "{name}");
            assert_eq!(Some(i64::from(m.body_crc)), e["bodyCRC"].as_i64(), "{name}");
            assert_eq!(Some(m.store_timestamp), e["storeTimestamp"].as_i64(), "{name}");
            assert_eq!(e["body"].as_str(), std::str::from_utf8(&m.body).ok(), "{name}");
            assert_eq!(e["topic"].as_str(), Some(m.topic.as_str()), "{name}");
            let props = m.properties.replace('\u{1}', "<01>").replace('\u{2}', "<02>");
            assert_eq!(e["properties"].as_str(), Some(props.as_str()), "{name}");
            assert_eq!(m.store_host.to_string(), "127.0.0.1:10911", "{name}");
            // The send response named this record by its offset message id.
            assert_eq!(&m.offset_msg_id()[..16], "7F00000100002A9F", "{name}");
        }
    } else if name.starts_with("310_") || name.starts_with("10_") {
        let h = SendMessageResponseHeader::read_from(&cmd.ext_fields).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(h.msg_id.len(), 32, "{name}");
        assert_eq!(h.msg_region.as_deref(), Some("DefaultRegion"), "{name}");
        assert_eq!(h.trace_on.as_deref(), Some("true"), "{name}");
    }
}
