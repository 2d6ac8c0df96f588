//! Independently written RocketMQ clients against the Apogee broker (`--standalone`, so the
//! name server runs in the same process): npm `ali-ons` (pure JavaScript) and PyPI `rocketmq`
//! (the C++ client) each send messages and consume them back with a push consumer.

use std::collections::BTreeSet;

use apogee_tests::{json_result, run_node, run_python, TestBroker};

const COUNT: usize = 20;

fn bodies(values: &serde_json::Value, key: &str) -> BTreeSet<String> {
    values[key].as_array().expect(key).iter().map(|m| m["body"].as_str().expect("body").to_owned()).collect()
}

#[test]
fn ali_ons_sends_and_consumes_through_the_broker() {
    let broker = TestBroker::start();
    // ali-ons, like the Aliyun service it was written for, needs the topic to exist first.
    broker.create_topic("TopicJs", 4);
    let ns = broker.namesrv().to_string();
    let result = json_result(&run_node("broker_roundtrip.js", &[&ns, "TopicJs", &COUNT.to_string()]));

    let sent = result["sent"].as_array().expect("sent");
    assert_eq!(sent.len(), COUNT);
    let ids: BTreeSet<&str> = sent.iter().map(|s| s["msgId"].as_str().expect("msgId")).collect();
    assert_eq!(ids.len(), COUNT, "every message id differs");
    // ali-ons reports the queue id as the header carried it: a string.
    let queues: BTreeSet<String> = sent.iter().map(|s| s["queueId"].to_string().replace('"', "")).collect();
    assert!(queues.len() > 1, "the producer spread messages over the queues: {queues:?}");
    for s in sent {
        assert_eq!(s["status"], "SEND_OK", "{s}");
    }
    let expected: BTreeSet<String> = (0..COUNT).map(|i| format!("hello from ali-ons {i}")).collect();
    assert_eq!(bodies(&result, "received"), expected);
    for m in result["received"].as_array().expect("received") {
        let body = m["body"].as_str().expect("body");
        let i: usize = body.rsplit(' ').next().and_then(|n| n.parse().ok()).expect("index");
        assert_eq!(m["tags"], if i.is_multiple_of(2) { "TagA" } else { "TagB" }, "{m}");
        assert_eq!(m["keys"], format!("key-{i}"), "{m}");
    }
}

#[test]
fn the_cpp_client_auto_creates_a_topic_sends_and_consumes() {
    let broker = TestBroker::start();
    let ns = broker.namesrv().to_string();
    let result = json_result(&run_python("broker_roundtrip.py", &[&ns, "TopicPy", &COUNT.to_string()]));
    let sent = result["sent"].as_array().expect("sent");
    assert_eq!(sent.len(), COUNT);
    for s in sent {
        assert_eq!(s["status"], 0, "SEND_OK: {s}");
    }
    let expected: BTreeSet<String> = (0..COUNT).map(|i| format!("hello from cpp {i}")).collect();
    assert_eq!(bodies(&result, "received"), expected);
    for m in result["received"].as_array().expect("received") {
        assert_eq!(m["tags"], "TagA");
    }
}
