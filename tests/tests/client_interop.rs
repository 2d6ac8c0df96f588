//! The Rust client and npm `ali-ons` on one broker: each consumes what the other produced, with
//! short bodies and with bodies large enough that both producers send them zlib-compressed. And
//! the C++ client (PyPI `rocketmq`) consuming the Rust client's compressed bodies.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apogee_tests::{json_result, run_node, run_python, TestBroker};
use client::{
    ConsumeFrom, ConsumeResult, Message, MessageExt, Producer, ProducerConfig, PushConsumer, PushConsumerConfig,
};
use wire::message::sys_flag;

const COUNT: usize = 10;
/// Past both producers' 4 KiB compression threshold.
const LARGE: usize = 16 * 1024;

/// Body number `i`: its text, padded to `size` bytes when that is longer (`cross.js` pads the
/// same way).
fn body(from: &str, i: usize, size: usize) -> String {
    let text = format!("from {from} {i} ");
    let pad = size.saturating_sub(text.len());
    text + &"x".repeat(pad)
}

/// The message index a body starts with.
fn index_of(body: &str) -> usize {
    body.split(' ').nth(2).and_then(|n| n.parse().ok()).expect("index")
}

async fn ali_ons_consumes_what_the_rust_client_produced(topic: &str, size: usize) {
    let broker = TestBroker::start();
    broker.create_topic(topic, 4);
    let producer = Producer::start(ProducerConfig::new("PG_rust", broker.namesrv().to_string())).expect("producer");
    let mut ids = BTreeSet::new();
    for i in 0..COUNT {
        let message =
            Message::new(topic, body("rust", i, size)).with_tags("TagRust").with_keys([format!("rust-key-{i}")]);
        ids.insert(producer.send(message).await.expect("send").msg_id);
    }
    producer.shutdown().await;

    let ns = broker.namesrv().to_string();
    let args = ["consume", &ns, topic, &COUNT.to_string(), "GID_from_rust"].map(str::to_owned);
    let out = tokio::task::spawn_blocking(move || run_node("cross.js", &args.each_ref().map(String::as_str)))
        .await
        .expect("node");
    let result = json_result(&out);
    let received = result["received"].as_array().expect("received");
    let bodies: BTreeSet<String> = received.iter().map(|m| m["body"].as_str().expect("body").to_string()).collect();
    assert_eq!(bodies, (0..COUNT).map(|i| body("rust", i, size)).collect(), "ali-ons reads every body whole");
    for m in received {
        assert_eq!(m["tags"], "TagRust", "{m}");
        let i = index_of(m["body"].as_str().expect("body"));
        // ali-ons gives the keys as the property's text.
        assert_eq!(m["keys"], format!("rust-key-{i}"), "{m}");
        assert!(ids.contains(m["uniqKey"].as_str().expect("UNIQ_KEY")), "ali-ons sees our unique id: {m}");
    }
}

/// Consumes what ali-ons sent with bodies of `size` bytes; returns the messages.
async fn the_rust_client_consumes_what_ali_ons_produced(topic: &str, size: usize) -> Vec<MessageExt> {
    let broker = TestBroker::start();
    broker.create_topic(topic, 4);
    let ns = broker.namesrv().to_string();
    let args = ["produce", &ns, topic, &COUNT.to_string(), &size.to_string()].map(str::to_owned);
    let out = tokio::task::spawn_blocking(move || run_node("cross.js", &args.each_ref().map(String::as_str)))
        .await
        .expect("node");
    let result = json_result(&out);
    let sent_ids: BTreeSet<String> = result["sent"]
        .as_array()
        .expect("sent")
        .iter()
        .map(|s| s["msgId"].as_str().expect("msgId").to_string())
        .collect();
    assert_eq!(sent_ids.len(), COUNT);

    let seen: Arc<Mutex<Vec<MessageExt>>> = Arc::default();
    let mut config = PushConsumerConfig::new(format!("CG_{topic}"), broker.namesrv().to_string());
    config.consume_from = ConsumeFrom::FirstOffset;
    config.suspend = Duration::from_secs(2);
    let sink = seen.clone();
    let consumer = PushConsumer::start(config, &[(topic, "TagJs")], move |m: MessageExt| {
        sink.lock().expect("seen").push(m);
        async { ConsumeResult::Success }
    })
    .await
    .expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().expect("seen").len() < COUNT {
        assert!(Instant::now() < deadline, "only {} of {COUNT} consumed", seen.lock().expect("seen").len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    consumer.shutdown(Duration::from_secs(5)).await;
    let seen = std::mem::take(&mut *seen.lock().expect("seen"));
    let bodies: BTreeSet<String> = seen.iter().map(|m| String::from_utf8_lossy(m.body()).into_owned()).collect();
    assert_eq!(bodies, (0..COUNT).map(|i| body("ali-ons", i, size)).collect(), "every body whole");
    for m in &seen {
        assert_eq!(m.tags(), Some("TagJs"));
        assert_eq!(m.topic(), topic);
        assert!(m.keys()[0].starts_with("js-key-"), "{:?}", m.keys());
        assert!(sent_ids.contains(&m.msg_id()), "ali-ons's id {} is ours too", m.msg_id());
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ali_ons_consumes_short_bodies_the_rust_client_produced() {
    ali_ons_consumes_what_the_rust_client_produced("TopicRustToJs", 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ali_ons_consumes_large_bodies_the_rust_client_compressed() {
    ali_ons_consumes_what_the_rust_client_produced("TopicRustToJsLarge", LARGE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_consumes_short_bodies_ali_ons_produced() {
    let seen = the_rust_client_consumes_what_ali_ons_produced("TopicJsToRust", 0).await;
    assert!(seen.iter().all(|m| m.stored.sys_flag & sys_flag::COMPRESSED == 0), "short bodies go as they are");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_consumes_large_bodies_ali_ons_compressed() {
    let seen = the_rust_client_consumes_what_ali_ons_produced("TopicJsToRustLarge", LARGE).await;
    for m in &seen {
        assert_ne!(m.stored.sys_flag & sys_flag::COMPRESSED, 0, "ali-ons compressed a {LARGE}-byte body");
        assert!(m.stored.body_crc != wire::message::body_crc(m.body()), "the broker stored the compressed form");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cpp_client_consumes_large_bodies_the_rust_client_compressed() {
    let broker = TestBroker::start();
    broker.create_topic("TopicRustToCpp", 2);
    let producer = Producer::start(ProducerConfig::new("PG_rust_cpp", broker.namesrv().to_string())).expect("producer");
    for i in 0..COUNT {
        let sent = producer.send(Message::new("TopicRustToCpp", body("rust", i, LARGE)).with_tags("TagZ")).await;
        sent.expect("send");
    }
    producer.shutdown().await;
    let ns = broker.namesrv().to_string();
    let args = [ns, "TopicRustToCpp".into(), "GID_rust_cpp".into(), COUNT.to_string()];
    let out = tokio::task::spawn_blocking(move || run_python("consume.py", &args.each_ref().map(String::as_str)))
        .await
        .expect("python");
    let result = json_result(&out);
    let received = result["received"].as_array().expect("received");
    let bodies: BTreeSet<String> = received.iter().map(|m| m["body"].as_str().expect("body").to_string()).collect();
    assert_eq!(bodies, (0..COUNT).map(|i| body("rust", i, LARGE)).collect(), "the C++ client inflates every body");
    assert!(received.iter().all(|m| m["tags"] == "TagZ"));
}
