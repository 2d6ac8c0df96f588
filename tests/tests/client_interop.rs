//! The Rust client and npm `ali-ons` on one broker: each consumes what the other produced.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apogee_tests::{json_result, run_node, TestBroker};
use client::{
    ConsumeFrom, ConsumeResult, Message, MessageExt, Producer, ProducerConfig, PushConsumer, PushConsumerConfig,
};

const COUNT: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ali_ons_consumes_what_the_rust_client_produced() {
    let broker = TestBroker::start();
    broker.create_topic("TopicRustToJs", 4);
    let producer = Producer::start(ProducerConfig::new("PG_rust", broker.namesrv().to_string())).expect("producer");
    let mut ids = BTreeSet::new();
    for i in 0..COUNT {
        let message = Message::new("TopicRustToJs", format!("from rust {i}"))
            .with_tags("TagRust")
            .with_keys([format!("rust-key-{i}")]);
        ids.insert(producer.send(message).await.expect("send").msg_id);
    }
    producer.shutdown().await;

    let ns = broker.namesrv().to_string();
    let out = tokio::task::spawn_blocking(move || {
        run_node("cross.js", &["consume", &ns, "TopicRustToJs", &COUNT.to_string(), "GID_from_rust"])
    })
    .await
    .expect("node");
    let result = json_result(&out);
    let received = result["received"].as_array().expect("received");
    let bodies: BTreeSet<String> = received.iter().map(|m| m["body"].as_str().expect("body").to_string()).collect();
    assert_eq!(bodies, (0..COUNT).map(|i| format!("from rust {i}")).collect());
    for m in received {
        assert_eq!(m["tags"], "TagRust", "{m}");
        let i: usize =
            m["body"].as_str().and_then(|b| b.rsplit(' ').next()).and_then(|n| n.parse().ok()).expect("index");
        // ali-ons gives the keys as the property's text.
        assert_eq!(m["keys"], format!("rust-key-{i}"), "{m}");
        assert!(ids.contains(m["uniqKey"].as_str().expect("UNIQ_KEY")), "ali-ons sees our unique id: {m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_consumes_what_ali_ons_produced() {
    let broker = TestBroker::start();
    broker.create_topic("TopicJsToRust", 4);
    let ns = broker.namesrv().to_string();
    let out = tokio::task::spawn_blocking(move || {
        run_node("cross.js", &["produce", &ns, "TopicJsToRust", &COUNT.to_string()])
    })
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
    let mut config = PushConsumerConfig::new("CG_from_js", broker.namesrv().to_string());
    config.consume_from = ConsumeFrom::FirstOffset;
    config.suspend = Duration::from_secs(2);
    let sink = seen.clone();
    let consumer = PushConsumer::start(config, &[("TopicJsToRust", "TagJs")], move |m: MessageExt| {
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
    let seen = seen.lock().expect("seen");
    let bodies: BTreeSet<String> = seen.iter().map(|m| String::from_utf8_lossy(m.body()).into_owned()).collect();
    assert_eq!(bodies, (0..COUNT).map(|i| format!("from ali-ons {i}")).collect());
    for m in seen.iter() {
        assert_eq!(m.tags(), Some("TagJs"));
        assert_eq!(m.topic(), "TopicJsToRust");
        assert!(m.keys()[0].starts_with("js-key-"), "{:?}", m.keys());
        assert!(sent_ids.contains(&m.msg_id()), "ali-ons's id {} is ours too", m.msg_id());
    }
}
