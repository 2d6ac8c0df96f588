//! The real `apogee-broker` binary on loopback, driven over the RocketMQ protocol: Java's codes
//! and remarks for sends, pulls and offsets, long polling, consumer group notifications, bad
//! input, clean stops and kill -9 under load.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use wire::body::{ConsumerData, HeartbeatData, JsonBody, SubscriptionData, TopicConfigSerializeWrapper};
use wire::code::{request, response};
use wire::header::*;
use wire::{RemotingCommand, SerializeType};

fn create_topic(client: &mut Client, topic: &str, queues: i32) {
    let header = CreateTopicRequestHeader::new(topic, queues);
    ok(&client.call(RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC).with_header(&header)));
}

#[test]
fn sends_pulls_and_offsets_answer_with_java_codes_and_remarks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(&write_config(dir.path(), "maxMessageSize = 1024\n"));
    let mut c = Client::connect(broker.addr);

    let mut ids = Vec::new();
    for (i, tag) in ["TagA", "TagB", "TagA"].iter().enumerate() {
        let answer = c.call(send_message("TopicA", 0, &format!("m{i}"), tag));
        ok(&answer);
        let h: SendMessageResponseHeader = answer.header().expect("send response header");
        assert_eq!((h.queue_id, h.queue_offset), (0, i as i64));
        assert_eq!(h.msg_id.len(), 32, "an IPv4 offset message id");
        ids.push(h.msg_id.as_str().to_owned());
    }

    let found = c.call(pull("TopicA", 0, 0, 0, "*"));
    ok(&found);
    assert_eq!(found.remark_str(), "FOUND");
    assert_eq!(bodies(&found), ["m0", "m1", "m2"]);
    let h: PullMessageResponseHeader = found.header().expect("pull header");
    assert_eq!((h.next_begin_offset, h.min_offset, h.max_offset), (3, 0, 3));

    let tagged = c.call(pull("TopicA", 0, 0, 0, "TagB"));
    assert_eq!(bodies(&tagged), ["m1"], "only TagB");

    // "Aa" and "BB" share a hash code: the ConsumeQueue matches both, the broker only "Aa".
    assert_eq!(wire::message::tag_hash_code("Aa"), wire::message::tag_hash_code("BB"));
    for (i, tag) in ["Aa", "BB", "Aa"].iter().enumerate() {
        ok(&c.call(send_message("TopicHash", 0, &format!("h{i}"), tag)));
    }
    let exact = c.call(pull("TopicHash", 0, 0, 0, "Aa"));
    assert_eq!(bodies(&exact), ["h0", "h2"], "no message of the colliding tag");
    let h: PullMessageResponseHeader = exact.header().expect("pull header");
    assert_eq!(h.next_begin_offset, 3, "the dropped one is passed over");
    let none = c.call(pull("TopicHash", 0, 1, 0, "Aa || Zz"));
    assert_eq!(bodies(&none), ["h2"]);
    let only_collision = c.call(pull("TopicHash", 0, 1, 0, "BB"));
    assert_eq!(bodies(&only_collision), ["h1"]);

    let caught_up = c.call(pull("TopicA", 0, 3, 0, "*"));
    assert_eq!((caught_up.code, caught_up.remark_str()), (response::PULL_NOT_FOUND, "OFFSET_OVERFLOW_ONE"));
    let beyond = c.call(pull("TopicA", 0, 10, 0, "*"));
    assert_eq!((beyond.code, beyond.remark_str()), (response::PULL_OFFSET_MOVED, "OFFSET_OVERFLOW_BADLY"));
    let no_topic = c.call(pull("NoSuchTopic", 0, 0, 0, "*"));
    assert_eq!(no_topic.code, response::TOPIC_NOT_EXIST);
    assert!(no_topic.remark_str().starts_with("topic[NoSuchTopic] not exist, apply first please!"));
    let bad_queue = c.call(pull("TopicA", 99, 0, 0, "*"));
    assert_eq!(bad_queue.code, response::SYSTEM_ERROR);
    assert!(bad_queue.remark_str().starts_with("queueId[99] is illegal"), "{}", bad_queue.remark_str());

    // Bad sends: an illegal topic name, a body over maxMessageSize, a system topic.
    let bad_name = c.call(send_message("bad topic!", 0, "x", "t"));
    assert_eq!(bad_name.code, response::SYSTEM_ERROR);
    assert!(bad_name.remark_str().contains("contains illegal characters"), "{}", bad_name.remark_str());
    let big = c.call(send_message("TopicA", 0, &"x".repeat(2000), "t"));
    assert_eq!(big.code, response::MESSAGE_ILLEGAL, "{}", big.remark_str());
    let system = c.call(send_message("SCHEDULE_TOPIC_XXXX", 0, "x", "t"));
    assert_eq!(system.code, response::NO_PERMISSION);
    let bad_queue_send = c.call(send_message("TopicA", 50, "x", "t"));
    assert_eq!(bad_queue_send.code, response::SYSTEM_ERROR);

    // Offsets: a new group on a queue whose first message is in memory starts at 0.
    let query = |c: &mut Client| {
        let header = QueryConsumerOffsetRequestHeader {
            consumer_group: "G1".into(),
            topic: "TopicA".into(),
            queue_id: 0,
            broker_name: None,
        };
        c.call(RemotingCommand::request(request::QUERY_CONSUMER_OFFSET).with_header(&header))
    };
    let first = query(&mut c);
    ok(&first);
    assert_eq!(first.header::<QueryConsumerOffsetResponseHeader>().expect("offset").offset, 0);
    let update = UpdateConsumerOffsetRequestHeader {
        consumer_group: "G1".into(),
        topic: "TopicA".into(),
        queue_id: 0,
        commit_offset: 2,
        broker_name: None,
    };
    ok(&c.call(RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET).with_header(&update)));
    assert_eq!(query(&mut c).header::<QueryConsumerOffsetResponseHeader>().expect("offset").offset, 2);
    let max = c.call(
        RemotingCommand::request(request::GET_MAX_OFFSET)
            .with_header(&GetMaxOffsetRequestHeader { topic: "TopicA".into(), queue_id: 0 }),
    );
    assert_eq!(max.header::<GetMaxOffsetResponseHeader>().expect("max").offset, 3);

    // The offset message id finds the message.
    let (_, physical) = wire::message::decode_offset_msg_id(&ids[1]).expect("offset message id");
    let view = c.call(
        RemotingCommand::request(request::VIEW_MESSAGE_BY_ID)
            .with_header(&ViewMessageRequestHeader { offset: physical }),
    );
    ok(&view);
    assert_eq!(bodies(&view), ["m1"]);

    let unknown = c.call(RemotingCommand::request(9999));
    assert_eq!(unknown.code, response::REQUEST_CODE_NOT_SUPPORTED);
    assert_eq!(unknown.remark_str(), " request type 9999 not supported");

    let topics = c.call(RemotingCommand::request(request::GET_ALL_TOPIC_CONFIG));
    let table = TopicConfigSerializeWrapper::decode(&topics.body).expect("topic table");
    assert_eq!(table.topic_config_table["TopicA"].write_queue_nums, 4, "created from TBW102 with 4 queues");
}

#[test]
fn a_suspended_pull_is_woken_by_a_send_and_answered_in_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(&write_config(dir.path(), ""));
    let mut producer = Client::connect(broker.addr);
    create_topic(&mut producer, "TopicLp", 1);
    let mut consumer = Client::connect(broker.addr);
    let started = Instant::now();
    let opaque = consumer.send(pull("TopicLp", 0, 0, 20_000, "*").with_serialize_type(SerializeType::RocketMq));
    std::thread::sleep(Duration::from_millis(300));
    ok(&producer.call(send_message("TopicLp", 0, "wake", "t")));
    let answer = consumer.next().expect("pull answer");
    assert_eq!(answer.opaque, opaque);
    ok(&answer);
    assert_eq!(bodies(&answer), ["wake"]);
    assert_eq!(answer.serialize_type, SerializeType::Json, "Java answers a woken pull in JSON");
    assert!(started.elapsed() < Duration::from_secs(20), "woken by the send, not by the timeout");

    // With nothing arriving, the pull answers PULL_NOT_FOUND when its suspension ends.
    let quiet = consumer.call(pull("TopicLp", 0, 1, 200, "*"));
    assert_eq!(quiet.code, response::PULL_NOT_FOUND);
}

#[test]
fn a_streaming_queue_is_answered_once_a_window_with_what_arrived_meanwhile() {
    const WINDOW: Duration = Duration::from_secs(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!("pullBatchWindowMicros = {}\n", WINDOW.as_micros());
    let broker = start(&write_config(dir.path(), &config));
    let mut producer = Client::connect(broker.addr);
    create_topic(&mut producer, "TopicWin", 1);
    let mut consumer = Client::connect(broker.addr);

    // The first answer is not held: the queue has no answer before it.
    ok(&producer.call(send_message("TopicWin", 0, "m1", "t")));
    let first = consumer.call(pull("TopicWin", 0, 0, 20_000, "*"));
    let first_answered = Instant::now();
    assert_eq!(bodies(&first), ["m1"]);

    // The next pull is woken by m2 but held to the end of the window, so m3 joins it.
    let opaque = consumer.send(pull("TopicWin", 0, 1, 20_000, "*"));
    ok(&producer.call(send_message("TopicWin", 0, "m2", "t")));
    ok(&producer.call(send_message("TopicWin", 0, "m3", "t")));
    let held = consumer.next().expect("pull answer");
    assert_eq!(held.opaque, opaque);
    assert_eq!(bodies(&held), ["m2", "m3"], "both arrived within the window: one answer");
    assert!(first_answered.elapsed() >= WINDOW - Duration::from_millis(50), "answered before the window ended");

    // A full batch waiting is answered at once, window or not.
    ok(&producer.call(send_message("TopicWin", 0, "m4", "t")));
    ok(&producer.call(send_message("TopicWin", 0, "m5", "t")));
    let mut header: PullMessageRequestHeader = pull("TopicWin", 0, 3, 20_000, "*").header().expect("pull header");
    header.max_msg_nums = 2;
    let full = RemotingCommand::request(request::PULL_MESSAGE).with_header(&header);
    let asked = Instant::now();
    let answer = consumer.call(full);
    assert_eq!(bodies(&answer), ["m4", "m5"]);
    assert!(asked.elapsed() < WINDOW, "a full batch waited for the window");
}

fn heartbeat(client_id: &str) -> RemotingCommand {
    let data = HeartbeatData {
        client_id: client_id.into(),
        consumer_data_set: vec![ConsumerData {
            consume_from_where: wire::body::ConsumeFromWhere::CONSUME_FROM_LAST_OFFSET,
            consume_type: wire::body::ConsumeType::CONSUME_PASSIVELY,
            group_name: "GID_notify".into(),
            message_model: wire::body::MessageModel::CLUSTERING,
            subscription_data_set: vec![SubscriptionData {
                class_filter_mode: false,
                code_set: Default::default(),
                expression_type: "TAG".into(),
                filter_class_source: None,
                sub_string: "*".into(),
                sub_version: 1,
                tags_set: Default::default(),
                topic: "TopicN".into(),
            }],
            unit_mode: false,
        }],
        producer_data_set: vec![],
    };
    RemotingCommand::request(request::HEART_BEAT).with_body(data.encode())
}

fn consumer_list(client: &mut Client) -> Vec<String> {
    let header = GetConsumerListByGroupRequestHeader { consumer_group: "GID_notify".into() };
    let answer = client.call(RemotingCommand::request(request::GET_CONSUMER_LIST_BY_GROUP).with_header(&header));
    ok(&answer);
    let body: wire::body::GetConsumerListByGroupResponseBody = JsonBody::decode(&answer.body).expect("list");
    let mut ids = body.consumer_id_list;
    ids.sort();
    ids
}

fn expect_notify(client: &mut Client) {
    loop {
        let frame = client.next().expect("a frame");
        if !frame.is_response() {
            assert_eq!(frame.code, request::NOTIFY_CONSUMER_IDS_CHANGED);
            assert!(frame.is_oneway());
            let h: NotifyConsumerIdsChangedRequestHeader = frame.header().expect("notify header");
            assert_eq!(h.consumer_group.as_str(), "GID_notify");
            return;
        }
    }
}

#[test]
fn consumers_hear_when_their_group_changes_and_pull_with_the_stored_subscription() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(&write_config(dir.path(), ""));
    let mut first = Client::connect(broker.addr);
    create_topic(&mut first, "TopicN", 2);
    ok(&first.call(heartbeat("10.0.0.1@a")));
    expect_notify(&mut first); // its own arrival
    let mut second = Client::connect(broker.addr);
    ok(&second.call(heartbeat("10.0.0.2@b")));
    expect_notify(&mut first);
    assert_eq!(consumer_list(&mut second), ["10.0.0.1@a", "10.0.0.2@b"]);
    // The retry topic of the group was created with it.
    let topics = second.call(RemotingCommand::request(request::GET_ALL_TOPIC_CONFIG));
    let table = TopicConfigSerializeWrapper::decode(&topics.body).expect("topic table");
    assert!(table.topic_config_table.contains_key("%RETRY%GID_notify"));

    // A pull without its own subscription uses the heartbeat's.
    ok(&second.call(send_message("TopicN", 1, "n1", "t")));
    let mut stored = pull("TopicN", 1, 0, 0, "*");
    stored.ext_fields.insert("sysFlag", "0");
    stored.ext_fields.insert("consumerGroup", "GID_notify");
    assert_eq!(bodies(&second.call(stored)), ["n1"]);

    drop(second);
    expect_notify(&mut first);
    assert_eq!(consumer_list(&mut first), ["10.0.0.1@a"]);
}

#[test]
fn malformed_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(&write_config(dir.path(), ""));
    let mut bad = Client::connect(broker.addr);
    bad.stream.write_all(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]).expect("write");
    assert!(bad.next().is_none(), "a 2 GiB frame closes the connection");
    let mut bad_json = Client::connect(broker.addr);
    bad_json.stream.write_all(&[0, 0, 0, 9, 0, 0, 0, 5, b'{', b'x', b'x', b'x', b'}']).expect("write");
    assert!(bad_json.next().is_none(), "an unreadable header closes the connection");
    let mut good = Client::connect(broker.addr);
    ok(&good.call(send_message("TopicOk", 0, "still serving", "t")));
    assert!(broker.log().contains("malformed frame"));
}

#[test]
fn a_clean_stop_keeps_messages_offsets_and_topics_and_a_second_broker_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "");
    let broker = start(&config);
    // Another broker on the same store folder is refused, naming the lock.
    let second = Command::new(binary()).args(["-c", config.to_str().expect("path")]).output().expect("run");
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("lock"), "{}", String::from_utf8_lossy(&second.stderr));

    let mut c = Client::connect(broker.addr);
    create_topic(&mut c, "TopicKeep", 1);
    for i in 0..5 {
        ok(&c.call(send_message("TopicKeep", 0, &format!("k{i}"), "t")));
    }
    let update = UpdateConsumerOffsetRequestHeader {
        consumer_group: "GK".into(),
        topic: "TopicKeep".into(),
        queue_id: 0,
        commit_offset: 3,
        broker_name: None,
    };
    ok(&c.call(RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET).with_header(&update)));
    drop(c);
    let log_path = broker.stderr.clone();
    let status = broker.terminate();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(status.success(), "exit 0 on SIGTERM: {status}\n{log}");
    assert!(log.contains("broker stopped cleanly"), "{log}");
    assert!(log.contains("unregistered"), "{log}");
    assert!(!dir.path().join("store").join("abort").exists(), "a clean stop removes the abort marker");

    let broker = start(&config);
    assert!(broker.log().contains("records_scanned=0"), "a clean stop needs no scan:\n{}", broker.log());
    let mut c = Client::connect(broker.addr);
    assert_eq!(bodies(&c.call(pull("TopicKeep", 0, 0, 0, "*"))), ["k0", "k1", "k2", "k3", "k4"]);
    let header = QueryConsumerOffsetRequestHeader {
        consumer_group: "GK".into(),
        topic: "TopicKeep".into(),
        queue_id: 0,
        broker_name: None,
    };
    let offset = c.call(RemotingCommand::request(request::QUERY_CONSUMER_OFFSET).with_header(&header));
    assert_eq!(offset.header::<QueryConsumerOffsetResponseHeader>().expect("offset").offset, 3);
    ok(&c.call(send_message("TopicKeep", 0, "k5", "t")));
    assert_eq!(bodies(&c.call(pull("TopicKeep", 0, 5, 0, "*"))), ["k5"]);
}

#[test]
fn acknowledged_sends_survive_kill_9_under_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    // (queue id, queue offset) → body, for every acknowledged send of every round.
    let acked: Arc<Mutex<BTreeMap<(i32, i64), String>>> = Arc::default();
    for round in 0..4u32 {
        let flush = if round % 2 == 0 { "ASYNC_FLUSH" } else { "SYNC_FLUSH" };
        let config = write_config(dir.path(), &format!("flushDiskType = \"{flush}\"\n"));
        let mut broker = start(&config);
        if round == 0 {
            create_topic(&mut Client::connect(broker.addr), "TopicCrash", 4);
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let senders: Vec<_> = (0..4)
            .map(|t| {
                let (addr, acked, stop) = (broker.addr, acked.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut c = Client::connect(addr);
                    let mut i = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let body = format!("r{round}-t{t}-{i}");
                        let opaque = c.send(send_message("TopicCrash", t, &body, "t"));
                        let Some(answer) = c.next() else { return };
                        if answer.opaque == opaque && answer.code == response::SUCCESS {
                            let h: SendMessageResponseHeader = answer.header().expect("header");
                            let old = acked.lock().expect("lock").insert((h.queue_id, h.queue_offset), body);
                            assert!(old.is_none(), "queue offset {}/{} acknowledged twice", h.queue_id, h.queue_offset);
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(400 + u64::from(round) * 97 % 300));
        broker.child.kill().expect("kill -9");
        let _ = broker.child.wait();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for s in senders {
            s.join().expect("sender");
        }
        let broker = start(&config);
        assert!(broker.log().contains("previous run did not stop cleanly"), "{}", broker.log());
        let mut c = Client::connect(broker.addr);
        let acked = acked.lock().expect("lock").clone();
        assert!(!acked.is_empty());
        for q in 0..4 {
            let mut offset = 0;
            let want: Vec<(i64, String)> = acked.range((q, 0)..(q + 1, 0)).map(|((_, o), b)| (*o, b.clone())).collect();
            let Some(last) = want.last().map(|(o, _)| *o) else { continue };
            let mut got = BTreeMap::new();
            while offset <= last {
                let Some(answer) = c.try_call(pull("TopicCrash", q, offset, 0, "*")) else {
                    panic!("round {round}: the broker closed the connection; its log:\n{}", broker.log());
                };
                assert_eq!(
                    answer.code,
                    response::SUCCESS,
                    "round {round} queue {q} offset {offset}: {}",
                    answer.remark_str()
                );
                let h: PullMessageResponseHeader = answer.header().expect("pull header");
                for (i, body) in bodies(&answer).into_iter().enumerate() {
                    got.insert(offset + i as i64, body);
                }
                offset = h.next_begin_offset;
            }
            for (o, body) in want {
                assert_eq!(got.get(&o), Some(&body), "round {round}: acknowledged {q}/{o} lost");
            }
        }
        broker.terminate();
    }
}

#[test]
fn command_line_help_print_and_bad_configs() {
    let help = Command::new(binary()).arg("--help").output().expect("run");
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--standalone"));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "brokerName = \"b-print\"\n");
    let printed = Command::new(binary())
        .args(["-c", config.to_str().expect("path"), "-p", "-n", "10.1.1.1:9876"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&printed.stdout);
    assert!(printed.status.success());
    assert!(text.contains("brokerName = \"b-print\"") && text.contains("namesrvAddr = \"10.1.1.1:9876\""), "{text}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "flushDiskType = \"NEVER\"\n").expect("write");
    let out = Command::new(binary()).args(["-c", bad.to_str().expect("path")]).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("flushDiskType"));
    let missing = Command::new(binary()).args(["-c", "/nonexistent/broker.toml"]).output().expect("run");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/broker.toml"));
}

#[test]
fn admin_requests_report_topic_stats_consume_progress_and_runtime_info() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(&write_config(dir.path(), ""));
    let mut c = Client::connect(broker.addr);
    create_topic(&mut c, "TopicS", 2);
    for i in 0..3 {
        ok(&c.call(send_message("TopicS", 0, &format!("s{i}"), "t")));
    }
    let update = UpdateConsumerOffsetRequestHeader {
        consumer_group: "GS".into(),
        topic: "TopicS".into(),
        queue_id: 0,
        commit_offset: 1,
        broker_name: None,
    };
    ok(&c.call(RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET).with_header(&update)));

    let stats = c.call(
        RemotingCommand::request(request::GET_TOPIC_STATS_INFO)
            .with_header(&GetTopicStatsInfoRequestHeader { topic: "TopicS".into() }),
    );
    ok(&stats);
    let table = wire::body::TopicStatsTable::decode(&stats.body).expect("topic stats");
    let by_queue: BTreeMap<i32, (i64, i64)> =
        table.offset_table.iter().map(|(q, o)| (q.queue_id, (o.min_offset, o.max_offset))).collect();
    assert_eq!(by_queue, BTreeMap::from([(0, (0, 3)), (1, (0, 0))]));
    assert!(table.offset_table.values().any(|o| o.last_update_timestamp > 0));

    let progress = c.call(
        RemotingCommand::request(request::GET_CONSUME_STATS)
            .with_header(&GetConsumeStatsRequestHeader { consumer_group: "GS".into(), topic: None }),
    );
    ok(&progress);
    let consume = wire::body::ConsumeStats::decode(&progress.body).expect("consume stats");
    assert_eq!(consume.lag(), 2, "3 stored, 1 consumed on queue 0");

    let runtime = c.call(RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO));
    ok(&runtime);
    let info = wire::body::KvTable::decode(&runtime.body).expect("runtime info");
    assert_eq!(info.table["msgPutTotalTodayNow"], "3");
    assert_eq!(info.table["brokerVersionDesc"], "V4_9_8");

    let offline = c.call(
        RemotingCommand::request(request::GET_CONSUMER_CONNECTION_LIST)
            .with_header(&GetConsumerConnectionListRequestHeader { consumer_group: "GS".into() }),
    );
    assert_eq!(offline.code, response::CONSUMER_NOT_ONLINE);
    let no_producer = c.call(
        RemotingCommand::request(request::GET_PRODUCER_CONNECTION_LIST)
            .with_header(&GetProducerConnectionListRequestHeader { producer_group: "PX".into() }),
    );
    assert_eq!(no_producer.code, response::SYSTEM_ERROR);
}

fn commit(c: &mut Client, group: &str, topic: &str, queue_id: i32, offset: i64) {
    let update = UpdateConsumerOffsetRequestHeader {
        consumer_group: group.into(),
        topic: topic.into(),
        queue_id,
        commit_offset: offset,
        broker_name: None,
    };
    ok(&c.call(RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET).with_header(&update)));
}

/// `group`'s committed offset on `(topic, queue_id)`, as the broker's offset table has it.
fn committed(c: &mut Client, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
    let answer = c.call(RemotingCommand::request(request::GET_ALL_CONSUMER_OFFSET));
    ok(&answer);
    let table = wire::body::ConsumerOffsetSerializeWrapper::decode(&answer.body).expect("offsets").offset_table;
    table.get(&format!("{topic}@{group}")).and_then(|queues| queues.get(&queue_id)).copied()
}

#[test]
fn admin_requests_for_a_topics_groups_cloned_offsets_lag_consume_queues_time_spans_and_system_topics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(&write_config(dir.path(), ""));
    let mut c = Client::connect(broker.addr);
    create_topic(&mut c, "TopicN", 2);
    create_topic(&mut c, "TopicW", 2);
    for i in 0..5 {
        ok(&c.call(send_message("TopicW", 0, &format!("w{i}"), "t")));
    }
    commit(&mut c, "GW", "TopicW", 0, 1);
    commit(&mut c, "GW", "TopicW", 1, 4);
    commit(&mut c, "GW", "TopicN", 0, 2);
    // GID_notify is online, subscribed to TopicN, with no offsets yet.
    ok(&c.call(heartbeat("10.0.0.1@who")));

    let who = |c: &mut Client, topic: &str| {
        let header = QueryTopicConsumeByWhoRequestHeader { topic: topic.into() };
        let answer = c.call(RemotingCommand::request(request::QUERY_TOPIC_CONSUME_BY_WHO).with_header(&header));
        ok(&answer);
        wire::body::GroupList::decode(&answer.body).expect("GroupList").group_list.into_iter().collect::<Vec<_>>()
    };
    assert_eq!(who(&mut c, "TopicW"), ["GW"]);
    assert_eq!(who(&mut c, "TopicN"), ["GID_notify", "GW"]);
    assert!(who(&mut c, "TopicNobody").is_empty());

    let clone = |c: &mut Client, src: &str, dest: &str, topic: Option<&str>| {
        let header = CloneGroupOffsetRequestHeader {
            src_group: src.into(),
            dest_group: dest.into(),
            topic: topic.map(Into::into),
            offline: Some(false),
        };
        ok(&c.call(RemotingCommand::request(request::CLONE_GROUP_OFFSET).with_header(&header)));
    };
    clone(&mut c, "GW", "GW2", Some("TopicW"));
    assert_eq!((committed(&mut c, "GW2", "TopicW", 0), committed(&mut c, "GW2", "TopicW", 1)), (Some(1), Some(4)));
    assert_eq!(committed(&mut c, "GW2", "TopicN", 0), None, "only the topic named");
    clone(&mut c, "GW", "GW3", None);
    assert_eq!((committed(&mut c, "GW3", "TopicW", 1), committed(&mut c, "GW3", "TopicN", 0)), (Some(4), Some(2)));
    // An online group's topics it does not subscribe to are left alone unless offline.
    commit(&mut c, "GID_notify", "TopicW", 0, 9);
    clone(&mut c, "GID_notify", "GW4", Some("TopicW"));
    assert_eq!(committed(&mut c, "GW4", "TopicW", 0), None);

    let delay = c.call(RemotingCommand::request(request::GET_ALL_DELAY_OFFSET));
    ok(&delay);
    assert!(String::from_utf8_lossy(&delay.body).starts_with("{\"offsetTable\":{"), "{:?}", delay.body);
    wire::body::DelayOffsetSerializeWrapper::decode(&delay.body).expect("DelayOffsetSerializeWrapper");

    // Every subscription group's progress: GW is 4 behind on TopicW's queue 0.
    let group = wire::body::SubscriptionGroupConfig { group_name: "GW".into(), ..Default::default() };
    ok(&c.call(RemotingCommand::request(request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(group.encode())));
    let all = c.call(
        RemotingCommand::request(request::GET_BROKER_CONSUME_STATS)
            .with_header(&GetConsumeStatsInBrokerHeader { is_order: false }),
    );
    ok(&all);
    assert!(
        String::from_utf8_lossy(&all.body).contains(":[{\"consumeTps\""),
        "Java's shape: {}",
        String::from_utf8_lossy(&all.body)
    );
    let list = wire::body::ConsumeStatsList::decode(&all.body).expect("ConsumeStatsList");
    assert_eq!(list.broker_addr, broker.addr.to_string());
    let lag_of = |group: &str| -> Option<i64> {
        list.consume_stats_list.iter().find_map(|m| m.get(group)).map(|stats| stats.iter().map(|s| s.lag()).sum())
    };
    assert_eq!(lag_of("GW"), Some(4), "{list:?}");
    assert_eq!(
        list.total_diff,
        list.consume_stats_list.iter().flat_map(|m| m.values().flatten()).map(|s| s.lag()).sum::<i64>()
    );
    let ordered = c.call(
        RemotingCommand::request(request::GET_BROKER_CONSUME_STATS)
            .with_header(&GetConsumeStatsInBrokerHeader { is_order: true }),
    );
    let ordered = wire::body::ConsumeStatsList::decode(&ordered.body).expect("ConsumeStatsList");
    assert_eq!(ordered.total_diff, 0, "no ordered topic here");

    // ConsumeQueue units (mqadmin queryCq): three from queue offset 1, each naming its message.
    let query_cq = |c: &mut Client, queue_id: i32, index: i64, group: Option<&str>| {
        let header = QueryConsumeQueueRequestHeader {
            topic: "TopicW".into(),
            queue_id,
            index,
            count: 3,
            consumer_group: group.map(Into::into),
        };
        c.call(RemotingCommand::request(request::QUERY_CONSUME_QUEUE).with_header(&header))
    };
    let cq = query_cq(&mut c, 0, 1, Some("GID_notify"));
    ok(&cq);
    let body: serde_json::Value = serde_json::from_slice(&cq.body).expect("QueryConsumeQueueResponseBody");
    assert_eq!((body["minQueueIndex"].as_i64(), body["maxQueueIndex"].as_i64()), (Some(0), Some(5)), "{body}");
    assert_eq!(body["filterData"], "GID_notify@TopicW is not online!", "subscribed to TopicN only");
    let units = body["queueData"].as_array().expect("queueData");
    assert_eq!(units.len(), 3, "{body}");
    for (unit, expected) in units.iter().zip(["w1", "w2", "w3"]) {
        let offset = unit["physicOffset"].as_i64().expect("physicOffset");
        let view = c.call(
            RemotingCommand::request(request::VIEW_MESSAGE_BY_ID).with_header(&ViewMessageRequestHeader { offset }),
        );
        assert_eq!(bodies(&view), [expected]);
        assert_eq!(unit["physicSize"].as_i64(), Some(view.body.len() as i64));
    }
    let past = query_cq(&mut c, 0, 9, None);
    assert_eq!((past.code, past.remark_str()), (response::SUCCESS, "Index 9 of 0@TopicW is not exist!"));
    let unknown = query_cq(&mut c, 7, 0, None);
    assert_eq!((unknown.code, unknown.remark_str()), (response::SYSTEM_ERROR, "7@TopicW is not exist!"));

    // Time spans: GW consumed w0 of queue 0 and is behind from w1 on; queue 1 is empty.
    let span = |c: &mut Client, topic: &str| {
        let header = QueryConsumeTimeSpanRequestHeader { topic: topic.into(), group: "GW".into() };
        c.call(RemotingCommand::request(request::QUERY_CONSUME_TIME_SPAN).with_header(&header))
    };
    let spans = span(&mut c, "TopicW");
    ok(&spans);
    let body: serde_json::Value = serde_json::from_slice(&spans.body).expect("QueryConsumeTimeSpanBody");
    let set = body["consumeTimeSpanSet"].as_array().expect("consumeTimeSpanSet");
    assert_eq!(set.len(), 2, "{body}");
    let q0 = set.iter().find(|s| s["messageQueue"]["queueId"] == 0).expect("queue 0");
    let (min, max, consumed) =
        (q0["minTimeStamp"].as_i64(), q0["maxTimeStamp"].as_i64(), q0["consumeTimeStamp"].as_i64());
    assert!(min.is_some_and(|t| t > 0) && max >= min && consumed == min, "{q0}");
    assert!(q0["delayTime"].as_i64().is_some_and(|d| d >= 0), "{q0}");
    let q1 = set.iter().find(|s| s["messageQueue"]["queueId"] == 1).expect("queue 1");
    assert_eq!((q1["minTimeStamp"].as_i64(), q1["maxTimeStamp"].as_i64()), (Some(-1), Some(-1)), "{q1}");
    let missing = span(&mut c, "TopicNone");
    assert_eq!((missing.code, missing.remark_str()), (response::TOPIC_NOT_EXIST, "topic[TopicNone] not exist"));

    // Producers by group (the dashboard's list), from a producer's heartbeat.
    let producer = HeartbeatData {
        client_id: "10.0.0.2@producer".into(),
        consumer_data_set: vec![],
        producer_data_set: vec![wire::body::ProducerData { group_name: "PG_admin".into() }],
    };
    ok(&c.call(RemotingCommand::request(request::HEART_BEAT).with_body(producer.encode())));
    let producers = c.call(RemotingCommand::request(request::GET_ALL_PRODUCER_INFO));
    ok(&producers);
    let table: serde_json::Value = serde_json::from_slice(&producers.body).expect("ProducerTableInfo");
    let infos = table["data"]["PG_admin"].as_array().expect("PG_admin's producers");
    assert_eq!(infos.len(), 1, "{table}");
    assert_eq!(infos[0]["clientId"], "10.0.0.2@producer");
    assert!(infos[0]["remoteIP"].as_str().is_some_and(|ip| ip.starts_with("/127.0.0.1:")), "{table}");
    assert!(infos[0]["lastUpdateTimestamp"].as_i64().is_some_and(|t| t > 1_700_000_000_000), "{table}");

    let system = c.call(RemotingCommand::request(request::GET_SYSTEM_TOPIC_LIST_FROM_BROKER));
    ok(&system);
    let topics = wire::body::TopicList::decode(&system.body).expect("TopicList").topic_list;
    assert!(["TBW102", "SCHEDULE_TOPIC_XXXX", "RMQ_SYS_TRANS_HALF_TOPIC"].iter().all(|t| topics.contains(*t)));
}

#[test]
fn a_full_broker_answers_system_busy_and_suspended_pulls_do_not_fill_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(&write_config(dir.path(), "maxPendingRequests = 1\n"));
    let mut c = Client::connect(broker.addr);
    create_topic(&mut c, "TopicBusy", 1);
    // A long poll waits without taking the one slot.
    let mut poller = Client::connect(broker.addr);
    poller.send(pull("TopicBusy", 0, 0, 20_000, "*"));
    std::thread::sleep(Duration::from_millis(200));
    ok(&c.call(send_message("TopicBusy", 0, "first", "t")));
    assert_eq!(bodies(&poller.next().expect("woken pull")), ["first"]);

    // Twenty sends in one write: the first takes the slot, the rest find the broker full.
    let mut frames = Vec::new();
    for i in 0..20 {
        let mut cmd = send_message("TopicBusy", 0, &format!("b{i}"), "t");
        cmd.opaque = 1000 + i;
        frames.extend_from_slice(&wire::encode_to_bytes(&cmd));
    }
    c.stream.write_all(&frames).expect("write");
    let mut codes = BTreeMap::new();
    for _ in 0..20 {
        let answer = c.next().expect("every request is answered");
        if answer.code == response::SYSTEM_BUSY {
            assert!(answer.remark_str().contains("broker busy"), "{}", answer.remark_str());
        }
        *codes.entry(answer.code).or_insert(0) += 1;
    }
    assert!(codes.get(&response::SUCCESS).is_some_and(|n| *n >= 1), "{codes:?}");
    assert!(codes.get(&response::SYSTEM_BUSY).is_some_and(|n| *n >= 1), "{codes:?}");
}

#[test]
fn a_silent_consumer_is_dropped_after_channel_expired_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(&write_config(dir.path(), "channelExpiredTimeout = 500\n"));
    let mut quiet = Client::connect(broker.addr);
    create_topic(&mut quiet, "TopicN", 1);
    ok(&quiet.call(heartbeat("10.0.0.9@quiet")));
    assert_eq!(consumer_list(&mut quiet), ["10.0.0.9@quiet"]);
    let mut other = Client::connect(broker.addr);
    let header = GetConsumerListByGroupRequestHeader { consumer_group: "GID_notify".into() };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = other.call(RemotingCommand::request(request::GET_CONSUMER_LIST_BY_GROUP).with_header(&header));
        if answer.code == response::SYSTEM_ERROR {
            assert_eq!(answer.remark_str(), "no consumer for this group, GID_notify");
            break;
        }
        assert!(Instant::now() < deadline, "the silent consumer was never dropped");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(broker.log().contains("consumer dropped: no heartbeat"), "{}", broker.log());
}

/// A port P with P − 2 also free (for the VIP channel), found by binding both.
fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = probe.local_addr().expect("addr").port();
        if port > 1026 && std::net::TcpListener::bind(("127.0.0.1", port - 2)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair");
}

#[test]
fn the_vip_channel_at_listen_port_minus_two_serves_the_same_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port_pair();
    let config = write_config(dir.path(), "");
    let text =
        std::fs::read_to_string(&config).expect("config").replace("listenPort = 0", &format!("listenPort = {port}"));
    std::fs::write(&config, text).expect("config");
    let broker = start(&config);
    assert_eq!(broker.addr.port(), port);
    let mut vip = Client::connect(std::net::SocketAddr::from(([127, 0, 0, 1], port - 2)));
    ok(&vip.call(send_message("TopicVip", 0, "via vip", "t")));
    let mut main = Client::connect(broker.addr);
    assert_eq!(bodies(&main.call(pull("TopicVip", 0, 0, 0, "*"))), ["via vip"]);
}

#[test]
fn frames_pipelined_in_one_write_are_stored_in_order_and_all_answered() {
    // The broker handles a read's frames a few at a time (see `FRAMES_PER_TURN`), letting the
    // executor run in between: 100 sends written at once must still be stored in arrival order.
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(&write_config(dir.path(), ""));
    let mut c = Client::connect(broker.addr);
    create_topic(&mut c, "Pipelined", 1);
    let mut burst = Vec::new();
    for i in 0..100 {
        let mut cmd = send_message("Pipelined", 0, &format!("p{i}"), "");
        cmd.opaque = 1000 + i;
        burst.extend_from_slice(&wire::encode_to_bytes(&cmd));
    }
    c.stream.write_all(&burst).expect("write the burst");
    let mut offsets = BTreeMap::new();
    while offsets.len() < 100 {
        let answer = c.next().expect("an answer for every send");
        ok(&answer);
        let h: SendMessageResponseHeader = answer.header().expect("send response header");
        assert!(offsets.insert(answer.opaque - 1000, h.queue_offset).is_none(), "one answer per send");
    }
    let expected: Vec<i64> = (0..100).collect();
    assert_eq!(offsets.values().copied().collect::<Vec<_>>(), expected, "queue offsets follow the send order");
    let found = c.call(pull("Pipelined", 0, 0, 0, "*"));
    let first: Vec<String> = (0..32).map(|i| format!("p{i}")).collect();
    assert_eq!(bodies(&found), first);
}
