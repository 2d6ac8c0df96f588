//! A broker of several shards: queues spread over the shards' stores, every connection reaches
//! every queue whichever shard serves it, lookups by id and key cross shards, the spread
//! survives a restart, and a restart with too few shards is refused.

mod common;

use std::collections::BTreeSet;

use common::*;
use wire::body::JsonBody;
use wire::code::{request, response};
use wire::header::*;
use wire::RemotingCommand;

const QUEUES: i32 = 8;

fn create_topic(client: &mut Client, topic: &str, queues: i32) {
    let header = CreateTopicRequestHeader::new(topic, queues);
    ok(&client.call(RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC).with_header(&header)));
}

fn owners(dir: &std::path::Path, topic: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(dir.join("store/config/queueOwners.json")).expect("queueOwners.json");
    let all: std::collections::BTreeMap<String, Vec<u8>> = serde_json::from_str(&text).expect("owners json");
    all.get(topic).cloned().unwrap_or_default()
}

/// Sends one message per queue from each client; returns the offset message ids by body.
fn send_everywhere(clients: &mut [Client], topic: &str, round: usize) -> Vec<(String, String)> {
    let mut sent = Vec::new();
    for (n, c) in clients.iter_mut().enumerate() {
        for queue_id in 0..QUEUES {
            let body = format!("r{round}-c{n}-q{queue_id}");
            let answer = c.call(send_message(topic, queue_id, &body, "t"));
            ok(&answer);
            let h: SendMessageResponseHeader = answer.header().expect("send header");
            assert_eq!(h.queue_id, queue_id);
            sent.push((body, h.msg_id.as_str().to_owned()));
        }
    }
    sent
}

/// Every body of every queue, each pulled through every client.
fn pull_all(clients: &mut [Client], topic: &str) -> Vec<BTreeSet<String>> {
    clients
        .iter_mut()
        .map(|c| {
            let mut seen = BTreeSet::new();
            for queue_id in 0..QUEUES {
                let answer = c.call(pull(topic, queue_id, 0, 0, "*"));
                assert_eq!(answer.code, response::SUCCESS, "queue {queue_id}: {}", answer.remark_str());
                seen.extend(bodies(&answer));
            }
            seen
        })
        .collect()
}

#[test]
fn queues_spread_over_shards_and_every_connection_reaches_every_queue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "shards = 2\n");
    let broker = start(&config);
    // Connections go to the shards in turn: four cover both, twice.
    let mut clients: Vec<Client> = (0..4).map(|_| Client::connect(broker.addr)).collect();
    create_topic(&mut clients[0], "TopicShards", QUEUES);
    let spread = owners(dir.path(), "TopicShards");
    assert_eq!(spread.len(), QUEUES as usize);
    assert_eq!(spread.iter().collect::<BTreeSet<_>>(), BTreeSet::from([&0, &1]), "{spread:?}");

    let sent = send_everywhere(&mut clients, "TopicShards", 0);
    let expected: BTreeSet<String> = sent.iter().map(|(b, _)| b.clone()).collect();
    for seen in pull_all(&mut clients, "TopicShards") {
        assert_eq!(seen, expected);
    }
    // Each shard stored its own queues' messages, and ids name the shard.
    let shards_in_ids: BTreeSet<i64> = sent
        .iter()
        .map(|(_, id)| store::shard_of(wire::message::decode_offset_msg_id(id).expect("offset id").1) as i64)
        .collect();
    assert_eq!(shards_in_ids, BTreeSet::from([0, 1]));
    // JavaScript clients read offsets as doubles: exact only below 2^53.
    assert!(sent.iter().all(|(_, id)| wire::message::decode_offset_msg_id(id).expect("id").1 < 1 << 53));
    for shard in ["shard-0", "shard-1"] {
        let segments = std::fs::read_dir(dir.path().join("store").join(shard).join("commitlog")).expect("commitlog");
        assert!(segments.count() > 0, "{shard} has no CommitLog");
    }

    // Lookups cross shards: by offset id from any connection, by key over every shard's index.
    for (body, id) in sent.iter().step_by(5) {
        let (_, offset) = wire::message::decode_offset_msg_id(id).expect("offset id");
        for c in clients.iter_mut().take(2) {
            let answer = c.call(
                RemotingCommand::request(request::VIEW_MESSAGE_BY_ID).with_header(&ViewMessageRequestHeader { offset }),
            );
            ok(&answer);
            assert_eq!(bodies(&answer), std::slice::from_ref(body));
        }
    }
    let (body, _) = &sent[QUEUES as usize + 1];
    let query = QueryMessageRequestHeader {
        topic: "TopicShards".into(),
        key: format!("k-{body}").as_str().into(),
        max_num: 32,
        begin_timestamp: 0,
        end_timestamp: i64::MAX,
        unique_key_flag: None,
    };
    let found = clients[1].call(RemotingCommand::request(request::QUERY_MESSAGE).with_header(&query));
    ok(&found);
    assert_eq!(bodies(&found), std::slice::from_ref(body));

    // Offsets and stats answer for queues of either shard.
    for queue_id in 0..QUEUES {
        let answer = clients[3].call(
            RemotingCommand::request(request::GET_MAX_OFFSET)
                .with_header(&GetMaxOffsetRequestHeader { topic: "TopicShards".into(), queue_id }),
        );
        ok(&answer);
        let h: GetMaxOffsetResponseHeader = answer.header().expect("max offset");
        assert_eq!(h.offset, 4, "queue {queue_id}: one message from each client");
    }
    let runtime = clients[1].call(RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO));
    let info = wire::body::KvTable::decode(&runtime.body).expect("runtime info");
    assert_eq!(info.table["msgPutTotalTodayNow"], (4 * QUEUES).to_string());
    assert_eq!(info.table["shards"], "2");

    assert!(broker.terminate().success());
    let broker = start(&config);
    assert_eq!(owners(dir.path(), "TopicShards"), spread, "owners are kept");
    let mut clients: Vec<Client> = (0..2).map(|_| Client::connect(broker.addr)).collect();
    let more = send_everywhere(&mut clients, "TopicShards", 1);
    let expected: BTreeSet<String> = sent.iter().chain(&more).map(|(b, _)| b.clone()).collect();
    for seen in pull_all(&mut clients, "TopicShards") {
        assert_eq!(seen, expected, "after a restart");
    }
    assert!(broker.terminate().success());

    // One shard cannot serve queues shard 1 stores: refused, with the reason.
    let text = std::fs::read_to_string(&config).expect("config").replace("shards = 2", "shards = 1");
    std::fs::write(&config, text).expect("config");
    let out = std::process::Command::new(binary())
        .args(["-c", config.to_str().expect("utf-8"), "--standalone"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is stored by shard 1, but shards = 1"), "{stderr}");
}

/// A consumer whose connection is served by one shard, long-polling a queue another shard
/// stores, is woken by a send on a third connection.
#[test]
fn a_long_poll_on_another_shards_queue_is_woken_by_a_send() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(&write_config(dir.path(), "shards = 2\n"));
    let mut admin = Client::connect(broker.addr);
    create_topic(&mut admin, "TopicPoll", QUEUES);
    let mut pollers: Vec<Client> = (0..2).map(|_| Client::connect(broker.addr)).collect();
    for (n, poller) in pollers.iter_mut().enumerate() {
        poller.send(pull("TopicPoll", n as i32, 0, 20_000, "*"));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut producer = Client::connect(broker.addr);
    for n in 0..2 {
        ok(&producer.call(send_message("TopicPoll", n, &format!("wake-{n}"), "t")));
    }
    for (n, poller) in pollers.iter_mut().enumerate() {
        let answer = poller.next().expect("woken pull");
        assert_eq!(answer.code, response::SUCCESS);
        assert_eq!(bodies(&answer), [format!("wake-{n}")]);
    }
}
