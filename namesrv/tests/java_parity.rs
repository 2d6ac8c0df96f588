//! Replays the frames that real brokers and clients sent to the Java 4.9.8 name server
//! (`../shared/fixtures/server-frames/`) into `apogee-namesrv`, and checks each answer against the
//! one Java gave: code, remark, extFields, serialization, and the body (same route, same choice
//! of quoted or bare broker-id keys).

mod common;

use std::io::Write;
use std::path::PathBuf;

use bytes::Bytes;
use common::*;
use wire::body::{ClusterInfo, JsonBody, TopicRouteData};
use wire::{decode_frame, RemotingCommand, MAX_FRAME_BYTES_DEFAULT};

fn fixture(name: &str) -> RemotingCommand {
    let dir = std::env::var_os("APOGEE_FIXTURES").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("..").join("shared").join("fixtures")
    });
    let path = dir.join("server-frames").join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {} (set APOGEE_FIXTURES): {e}", path.display()));
    decode_frame(Bytes::from(bytes), MAX_FRAME_BYTES_DEFAULT).expect("fixture decodes")
}

/// Sends the raw request frame of `case` and returns (Java's answer, ours).
fn replay(conn: &mut Conn, case: &str) -> (RemotingCommand, RemotingCommand) {
    let request = fixture(&format!("{case}_request.bin"));
    let java = fixture(&format!("{case}_response.bin"));
    conn.stream.write_all(&wire::encode_to_bytes(&request)).expect("write");
    let ours = conn.read().expect("an answer");
    assert_eq!(ours.opaque, request.opaque, "{case}: opaque");
    assert_eq!(ours.code, java.code, "{case}: code");
    assert_eq!(ours.flag, java.flag, "{case}: flag");
    assert_eq!(ours.remark_str(), java.remark_str(), "{case}: remark");
    assert!(
        ours.ext_fields.same_entries(&java.ext_fields),
        "{case}: extFields {:?} vs Java {:?}",
        ours.ext_fields,
        java.ext_fields
    );
    assert_eq!(ours.serialize_type, java.serialize_type, "{case}: answered in the request's serialization");
    assert_eq!(ours.language, java.language, "{case}: language");
    (java, ours)
}

fn same_route(case: &str, java: &RemotingCommand, ours: &RemotingCommand) {
    let mut java_route = TopicRouteData::decode(&java.body).expect("Java route");
    let mut our_route = TopicRouteData::decode(&ours.body).expect("our route");
    java_route.queue_datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    our_route.queue_datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    assert_eq!(our_route, java_route, "{case}: route");
    let bare = |body: &[u8]| String::from_utf8_lossy(body).contains("{0:");
    assert_eq!(bare(&ours.body), bare(&java.body), "{case}: broker-id keys quoted the same way as Java");
}

#[test]
fn answers_match_the_java_name_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ns = Namesrv::start(dir.path(), "");
    let mut client = ns.connect();

    // Before any broker registered: the topics do not exist.
    replay(&mut client, "105_GET_ROUTEINFO_BY_TOPIC_java-json-topic-not-exist");
    replay(&mut client, "105_GET_ROUTEINFO_BY_TOPIC_java-rocketmq-topic-not-exist");

    // The Java broker registers (once with JSON headers, once with ROCKETMQ headers).
    let mut broker = ns.connect();
    replay(&mut broker, "103_REGISTER_BROKER_broker-json");
    replay(&mut broker, "103_REGISTER_BROKER_broker-rocketmq");

    for case in [
        "105_GET_ROUTEINFO_BY_TOPIC_java-json",
        "105_GET_ROUTEINFO_BY_TOPIC_java-json-TBW102",
        "105_GET_ROUTEINFO_BY_TOPIC_java-rocketmq",
        "105_GET_ROUTEINFO_BY_TOPIC_java-rocketmq-TBW102",
        "105_GET_ROUTEINFO_BY_TOPIC_cpp-json",
        "105_GET_ROUTEINFO_BY_TOPIC_alions-json",
    ] {
        let (java, ours) = replay(&mut client, case);
        same_route(case, &java, &ours);
    }

    for case in ["106_GET_BROKER_CLUSTER_INFO_java-json", "106_GET_BROKER_CLUSTER_INFO_java-rocketmq"] {
        let (java, ours) = replay(&mut client, case);
        let java_info = ClusterInfo::decode(&java.body).expect("Java cluster info");
        assert_eq!(ClusterInfo::decode(&ours.body).expect("our cluster info"), java_info, "{case}");
        assert!(String::from_utf8_lossy(&ours.body).contains("{0:"), "{case}: bare keys, as Java");
    }
}
