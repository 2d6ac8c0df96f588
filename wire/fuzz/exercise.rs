// Shared by the fuzz target and by `wire/tests/fuzz_corpus.rs`: everything a server does with
// untrusted bytes. None of it may panic; errors are fine.
fn exercise(data: &[u8]) {
    use bytes::{Bytes, BytesMut};
    use wire::body::{ClusterInfo, HeartbeatData, JsonBody, RegisterBrokerBody, TopicRouteData, TopicStatsTable};
    use wire::header::{CommandHeader, PullMessageRequestHeader, SendMessageRequestHeader};

    let decoder = wire::FrameDecoder::new(1 << 20);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(cmd)) = decoder.decode(&mut buf) {
        let _ = SendMessageRequestHeader::read_any(&cmd.ext_fields, cmd.code == 310);
        let _ = PullMessageRequestHeader::read_from(&cmd.ext_fields);
        let _ = HeartbeatData::decode(&cmd.body);
        let _ = TopicRouteData::decode(&cmd.body);
        let _ = ClusterInfo::decode(&cmd.body);
        let _ = TopicStatsTable::decode(&cmd.body);
        let _ = RegisterBrokerBody::decode_any(&cmd.body, false);
        let _ = wire::message::decode_stored_messages(&cmd.body, true);
        let _ = wire::message::decode_batch(&cmd.body);
        // What we decoded must encode and decode again to the same command.
        let again = wire::encode_to_bytes(&cmd);
        let back = wire::decode_frame(again, 1 << 21).expect("re-encoded frame decodes");
        assert_eq!(back.code as i16, cmd.code as i16);
        assert_eq!(back.body, cmd.body);
        assert!(back.ext_fields.same_entries(&cmd.ext_fields));
    }
    let _ = decoder.decode_eof(&mut buf);
    let raw = Bytes::copy_from_slice(data);
    let _ = wire::message::decode_stored_messages(&raw, true);
    let _ = wire::message::decode_batch(&raw);
    let _ = wire::body::fastjson::normalize_keys(data);
}
