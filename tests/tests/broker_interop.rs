//! Independently written RocketMQ clients against the Apogee broker (`--standalone`, so the
//! name server runs in the same process): npm `ali-ons` (pure JavaScript) and PyPI `rocketmq`
//! (the C++ client) each send messages and consume them back with a push consumer; ali-ons
//! retries into the DLQ, the C++ client's delayed messages and its obedience to offset resets.

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

#[test]
fn a_cpp_push_consumer_reads_again_after_an_offset_reset() {
    let broker = TestBroker::start();
    broker.create_topic("TopicCppReset", 2);
    let ns = broker.namesrv().to_string();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _context = runtime.enter(); // clients start their background tasks on it
    let admin = client::Admin::start(client::ClientConfig::new(ns.clone())).expect("admin");
    runtime.block_on(async {
        let producer =
            client::Producer::start(client::ProducerConfig::new("PG_cpp_reset", ns.clone())).expect("producer");
        for i in 0..10 {
            producer.send(client::Message::new("TopicCppReset", format!("reset me {i}"))).await.expect("send");
        }
        producer.shutdown().await;
    });
    let consumer_ns = ns.clone();
    let consumer = std::thread::spawn(move || {
        run_python("consumer_reset.py", &[&consumer_ns, "TopicCppReset", "GID_cpp_reset", "10"])
    });
    // The C++ consumer commits every 5 s; the reset moves the group back from there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    runtime.block_on(async {
        loop {
            let stats = admin.consume_stats("GID_cpp_reset", Some("TopicCppReset")).await;
            if stats.is_ok_and(|s| s.lag() == 0 && !s.offset_table.is_empty()) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the C++ consumer never committed its offsets");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let offsets = admin.reset_offset_by_time("GID_cpp_reset", "TopicCppReset", 0, true).await.expect("reset");
        assert!(offsets.values().all(|o| *o == 0), "{offsets:?}");
    });
    let result = json_result(&consumer.join().expect("consumer thread"));
    let all: Vec<&str> = result["all"].as_array().expect("all").iter().map(|b| b.as_str().expect("body")).collect();
    for i in 0..10 {
        let body = format!("reset me {i}");
        assert_eq!(all.iter().filter(|b| **b == body).count(), 2, "{body} before and after the reset: {all:?}");
    }
    runtime.block_on(admin.shutdown());
}

const FAST_LEVELS: &str = "1s 3s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s";

#[test]
fn ali_ons_retries_a_failed_message_after_its_delay_and_gives_up_into_the_dlq() {
    let broker = TestBroker::start_in(tempfile::tempdir().expect("tempdir"), |c| {
        c.message_delay_level = FAST_LEVELS.into();
    });
    broker.create_topic("TopicRetryJs", 2);
    let ns = broker.namesrv().to_string();
    let result = json_result(&run_node("retry.js", &[&ns, "TopicRetryJs", "GID_retry_js"]));
    let deliveries = result["deliveries"].as_array().expect("deliveries");
    let of = |body: &str| -> Vec<&serde_json::Value> { deliveries.iter().filter(|d| d["body"] == body).collect() };
    let times = |ds: &[&serde_json::Value]| -> Vec<i64> {
        ds.iter().map(|d| d["reconsumeTimes"].as_i64().expect("n")).collect()
    };
    assert_eq!(times(&of("flaky")), [0, 1], "flaky fails once, then succeeds: {deliveries:?}");
    assert_eq!(times(&of("doomed")), [0, 1, 2], "doomed is tried maxReconsumeTimes + 1 times: {deliveries:?}");
    assert!(deliveries.iter().all(|d| d["topic"] == "TopicRetryJs"), "the real topic is restored: {deliveries:?}");
    // The retry waited for its level (the broker picks 3 + reconsume times: 1 s here).
    let at = |d: &serde_json::Value| d["at"].as_i64().expect("at");
    let flaky = of("flaky");
    assert!(at(flaky[1]) - at(flaky[0]) >= 900, "retried after {} ms", at(flaky[1]) - at(flaky[0]));

    // doomed lies in the group's DLQ, readable by a pull.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _context = runtime.enter();
    let dlq = client::PullConsumer::start("CG_dlq_js", client::ClientConfig::new(ns)).expect("pull consumer");
    let dead = runtime.block_on(async {
        let queues = dlq.queues("%DLQ%GID_retry_js").await.expect("the DLQ is routed");
        let result = dlq.pull(&queues[0], "*", 0, 8).await.expect("pull the DLQ");
        dlq.shutdown().await;
        result.messages
    });
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body().as_ref(), b"doomed");
}

#[test]
fn the_cpp_client_gets_a_delayed_message_no_earlier_than_its_level() {
    let broker = TestBroker::start_in(tempfile::tempdir().expect("tempdir"), |c| {
        c.message_delay_level = FAST_LEVELS.into();
    });
    broker.create_topic("TopicDelayPy", 1);
    let ns = broker.namesrv().to_string();
    let result = json_result(&run_python("delay.py", &[&ns, "TopicDelayPy", "2"]));
    let sent_at = result["sentAt"].as_i64().expect("sentAt");
    let received = result["received"].as_array().expect("received");
    let bodies: Vec<&str> = received.iter().map(|m| m["body"].as_str().expect("body")).collect();
    assert_eq!(bodies, ["now", "later"], "the undelayed one first");
    let later = received[1]["at"].as_i64().expect("at") - sent_at;
    assert!(later >= 2990, "level 2 is 3 s here; it came after {later} ms");
}
