//! The Rust `client` crate against a real Apogee broker (with its name server in the same
//! process): producer, pull and push consumers, admin, transactions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apogee_tests::TestBroker;
use client::{
    Admin, ClientConfig, ClientError, ConsumeFrom, ConsumeResult, LocalTransactionState, Message, MessageExt,
    MessageModel, MessageQueue, Producer, ProducerConfig, PullConsumer, PullStatus, PushConsumer, PushConsumerConfig,
    SendStatus, Target, TopicSpec, TransactionListener, TransactionProducer,
};
use wire::body::JsonBody;
use wire::message::{sys_flag, CompressionType};

const WAIT: Duration = Duration::from_secs(30);

fn producer(broker: &TestBroker) -> Producer {
    Producer::start(ProducerConfig::new("PG_client_test", broker.namesrv().to_string())).expect("producer")
}

fn pull_consumer(broker: &TestBroker, group: &str) -> PullConsumer {
    PullConsumer::start(group, ClientConfig::new(broker.namesrv().to_string())).expect("pull consumer")
}

/// Every message of `topic` from offset 0, queue by queue.
async fn pull_all(consumer: &PullConsumer, topic: &str, expression: &str) -> BTreeMap<MessageQueue, Vec<MessageExt>> {
    let mut all = BTreeMap::new();
    for queue in consumer.queues(topic).await.expect("queues") {
        let mut offset = 0;
        let mut messages = Vec::new();
        loop {
            let result = consumer.pull(&queue, expression, offset, 32).await.expect("pull");
            match result.status {
                PullStatus::Found | PullStatus::NoMatchedMsg => {
                    messages.extend(result.messages);
                    offset = result.next_begin_offset;
                }
                PullStatus::NoNewMsg => break,
                PullStatus::OffsetIllegal => panic!("offset {offset} illegal in {queue:?}"),
            }
        }
        all.insert(queue, messages);
    }
    all
}

/// Waits until `done` holds, polling every 20 ms, failing after `WAIT`.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_send_kind_arrives_and_pulls_back_with_its_properties() {
    let broker = TestBroker::start();
    broker.create_topic("TopicSends", 4);
    let producer = producer(&broker);

    let mut results = Vec::new();
    for i in 0..12 {
        let message = Message::new("TopicSends", format!("sync {i}"))
            .with_tags(if i % 2 == 0 { "TagA" } else { "TagB" })
            .with_keys([format!("key-{i}")])
            .with_property("color", "blue");
        let result = producer.send(message).await.expect("send");
        assert_eq!(result.status, SendStatus::SendOk);
        results.push(result);
    }
    let queues: BTreeSet<i32> = results.iter().map(|r| r.queue.queue_id).collect();
    assert_eq!(queues.len(), 4, "round robin covers every queue");
    let handles: Vec<_> = (0..4)
        .map(|i| producer.send_async(Message::new("TopicSends", format!("async {i}")).with_tags("TagA")))
        .collect();
    for handle in handles {
        results.push(handle.await.expect("task").expect("async send"));
    }
    let batch: Vec<Message> =
        (0..5).map(|i| Message::new("TopicSends", format!("batch {i}")).with_tags("TagB")).collect();
    let batch_result = producer.send_batch(batch).await.expect("batch");
    assert_eq!(batch_result.msg_id.split(',').count(), 5);
    assert_eq!(batch_result.offset_msg_id.split(',').count(), 5);
    producer.send_oneway(Message::new("TopicSends", "oneway").with_tags("TagA")).await.expect("oneway");

    let consumer = pull_consumer(&broker, "CG_pull_all");
    let deadline = Instant::now() + WAIT;
    let all = loop {
        let all = pull_all(&consumer, "TopicSends", "*").await;
        if all.values().map(Vec::len).sum::<usize>() == 22 || Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let bodies: BTreeSet<String> =
        all.values().flatten().map(|m| String::from_utf8_lossy(m.body()).into_owned()).collect();
    assert_eq!(bodies.len(), 22, "{bodies:?}");
    assert!(bodies.contains("oneway") && bodies.contains("batch 4") && bodies.contains("async 3"));

    // The batch is stored together, in order, in one queue.
    let batch_queue = &all[&batch_result.queue];
    let in_batch: Vec<String> = batch_queue
        .iter()
        .filter(|m| m.body().starts_with(b"batch"))
        .map(|m| String::from_utf8_lossy(m.body()).into_owned())
        .collect();
    assert_eq!(in_batch, (0..5).map(|i| format!("batch {i}")).collect::<Vec<_>>());

    for (queue, messages) in &all {
        for (i, m) in messages.iter().enumerate() {
            assert_eq!(m.queue_offset(), i as i64, "offsets are dense in {queue:?}");
            assert_eq!(m.queue_id(), queue.queue_id);
            assert_eq!(m.topic(), "TopicSends");
        }
    }
    let by_id: BTreeMap<String, &MessageExt> = all.values().flatten().map(|m| (m.msg_id(), m)).collect();
    for (i, r) in results.iter().take(12).enumerate() {
        let m = by_id.get(&r.msg_id).unwrap_or_else(|| panic!("message {} pulled back", r.msg_id));
        assert_eq!(m.body().as_ref(), format!("sync {i}").as_bytes());
        assert_eq!(m.offset_msg_id(), r.offset_msg_id);
        assert_eq!(m.queue_offset(), r.queue_offset);
        assert_eq!(m.keys(), vec![format!("key-{i}").as_str()]);
        assert_eq!(m.property("color"), Some("blue"));
        assert_eq!(m.tags(), Some(if i % 2 == 0 { "TagA" } else { "TagB" }));
    }

    // Tag filters: the broker by hash, the client by exact tag.
    let tag_b = pull_all(&consumer, "TopicSends", "TagB").await;
    let tag_b: Vec<&MessageExt> = tag_b.values().flatten().collect();
    assert_eq!(tag_b.len(), 6 + 5);
    assert!(tag_b.iter().all(|m| m.tags() == Some("TagB")));

    // Offsets: commit, read back; min/max; an illegal offset is reported as such.
    let queue = batch_result.queue.clone();
    assert_eq!(
        consumer.committed_offset(&queue).await.expect("query"),
        Some(0),
        "no stored offset while the first message is in memory reads as 0"
    );
    consumer.commit_offset(&queue, 3).await.expect("commit");
    assert_eq!(consumer.committed_offset(&queue).await.expect("query"), Some(3));
    let max = consumer.max_offset(&queue).await.expect("max");
    assert_eq!(max, all[&queue].len() as i64);
    assert_eq!(consumer.min_offset(&queue).await.expect("min"), 0);
    let far = consumer.pull(&queue, "*", max + 100, 8).await.expect("pull past the end");
    assert_eq!(far.status, PullStatus::OffsetIllegal);
    // Java's correction: back to the minimum offset while it is 0.
    assert_eq!(far.next_begin_offset, 0);
    assert_eq!(far.max_offset, max);
    let first_time = all[&queue][0].store_timestamp();
    assert_eq!(consumer.offset_for_timestamp(&queue, first_time).await.expect("search"), 0);

    producer.shutdown().await;
    consumer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_to_an_unknown_topic_creates_it_and_ordered_sends_keep_their_queue() {
    let broker = TestBroker::start();
    let producer = producer(&broker);
    let first = producer.send(Message::new("TopicAuto", "created by a send")).await.expect("send creates the topic");
    assert_eq!(first.status, SendStatus::SendOk);

    let mut by_key: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for i in 0..24 {
        let key = format!("order-{}", i % 3);
        let r = producer.send_ordered(Message::new("TopicAuto", format!("{key} step {}", i / 3)), &key).await;
        by_key.entry(key).or_default().insert(r.expect("ordered send").queue.queue_id);
    }
    for (key, queues) in &by_key {
        assert_eq!(queues.len(), 1, "{key} stayed on one queue");
    }
    let consumer = pull_consumer(&broker, "CG_ordered");
    let all = pull_all(&consumer, "TopicAuto", "*").await;
    for key in by_key.keys() {
        let steps: Vec<String> = all
            .values()
            .flatten()
            .map(|m| String::from_utf8_lossy(m.body()).into_owned())
            .filter(|b| b.starts_with(&format!("{key} ")))
            .collect();
        assert_eq!(steps, (0..8).map(|s| format!("{key} step {s}")).collect::<Vec<_>>());
    }
    producer.shutdown().await;
    consumer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sends_fail_with_clear_errors() {
    let broker = TestBroker::start_in(tempfile::tempdir().expect("tempdir"), |c| c.max_message_size = 1024);
    broker.create_topic("TopicSmall", 2);
    let producer = producer(&broker);
    let err = producer.send(Message::new("bad topic!", "x")).await.expect_err("bad topic");
    assert!(matches!(err, ClientError::InvalidMessage(_)), "{err}");
    let err = producer.send(Message::new("TopicSmall", "")).await.expect_err("empty body");
    assert!(err.to_string().contains("zero"), "{err}");
    // The broker's own limit is smaller than the client's: MESSAGE_ILLEGAL, not retried. (Under
    // the 4 KiB compression threshold: compressed, 4 KiB of one byte would fit.)
    let err = producer.send(Message::new("TopicSmall", vec![b'x'; 4000])).await.expect_err("too big for the broker");
    assert_eq!(err.response_code(), Some(wire::code::response::MESSAGE_ILLEGAL), "{err}");
    producer.shutdown().await;

    let nowhere = Producer::start(ProducerConfig::new("PG_nowhere", "127.0.0.1:1")).expect("producer");
    let err = nowhere.send(Message::new("TopicSmall", "x")).await.expect_err("no name server");
    assert!(err.is_transport(), "{err}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}

type Seen = Arc<Mutex<Vec<(String, String)>>>;

async fn push_consumer(broker: &TestBroker, group: &str, model: MessageModel, seen: Seen, who: &str) -> PushConsumer {
    let mut config = PushConsumerConfig::new(group, broker.namesrv().to_string());
    config.model = model;
    config.consume_from = ConsumeFrom::FirstOffset;
    config.suspend = Duration::from_secs(2);
    config.rebalance_interval = Duration::from_secs(2);
    config.commit_interval = Duration::from_millis(200);
    // Broadcasting offsets go to a file per instance name: each consumer here its own.
    config.offset_store_dir = broker.dir.path().join("consumer-offsets");
    config.instance_name = who.to_string();
    let who = who.to_string();
    PushConsumer::start(config, &[("TopicPush", "*")], move |m: MessageExt| {
        let seen = seen.clone();
        let who = who.clone();
        async move {
            seen.lock().expect("seen").push((who, String::from_utf8_lossy(m.body()).into_owned()));
            ConsumeResult::Success
        }
    })
    .await
    .expect("push consumer")
}

fn bodies_of(seen: &Seen, who: Option<&str>) -> BTreeSet<String> {
    seen.lock().expect("seen").iter().filter(|(w, _)| who.is_none_or(|x| x == w)).map(|(_, b)| b.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clustering_rebalances_when_a_consumer_joins_and_leaves() {
    let broker = TestBroker::start();
    broker.create_topic("TopicPush", 8);
    let producer = producer(&broker);
    let seen: Seen = Arc::default();

    let a = push_consumer(&broker, "CG_cluster", MessageModel::Clustering, seen.clone(), "a").await;
    let owned = |c: &PushConsumer| c.assigned_queues().iter().filter(|q| q.topic == "TopicPush").count();
    wait_until("a owns all 8 queues", || owned(&a) == 8).await;
    for i in 0..20 {
        producer.send(Message::new("TopicPush", format!("first {i}"))).await.expect("send");
    }
    let first: BTreeSet<String> = (0..20).map(|i| format!("first {i}")).collect();
    wait_until("a consumed the first 20", || bodies_of(&seen, None).is_superset(&first)).await;

    let b = push_consumer(&broker, "CG_cluster", MessageModel::Clustering, seen.clone(), "b").await;
    wait_until("a and b own 4 queues each", || owned(&a) == 4 && owned(&b) == 4).await;
    let (qa, qb): (BTreeSet<_>, BTreeSet<_>) =
        (a.assigned_queues().into_iter().collect(), b.assigned_queues().into_iter().collect());
    assert!(qa.is_disjoint(&qb), "no queue owned twice: {qa:?} {qb:?}");
    for i in 0..40 {
        producer.send(Message::new("TopicPush", format!("second {i}"))).await.expect("send");
    }
    let second: BTreeSet<String> = (0..40).map(|i| format!("second {i}")).collect();
    wait_until("the second 40 consumed", || bodies_of(&seen, None).is_superset(&second)).await;
    let by_b: BTreeSet<String> = bodies_of(&seen, Some("b")).intersection(&second).cloned().collect();
    let by_a: BTreeSet<String> = bodies_of(&seen, Some("a")).intersection(&second).cloned().collect();
    assert!(!by_a.is_empty() && !by_b.is_empty(), "both consumed: a {} b {}", by_a.len(), by_b.len());
    assert!(bodies_of(&seen, Some("b")).is_disjoint(&first), "b never re-read what a committed");

    b.shutdown(Duration::from_secs(5)).await;
    wait_until("a owns all 8 queues again", || owned(&a) == 8).await;
    for i in 0..10 {
        producer.send(Message::new("TopicPush", format!("third {i}"))).await.expect("send");
    }
    let third: BTreeSet<String> = (0..10).map(|i| format!("third {i}")).collect();
    wait_until("a consumed the third 10", || bodies_of(&seen, Some("a")).is_superset(&third)).await;
    a.shutdown(Duration::from_secs(5)).await;
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasting_gives_every_consumer_every_message() {
    let broker = TestBroker::start();
    broker.create_topic("TopicPush", 4);
    let producer = producer(&broker);
    let seen: Seen = Arc::default();
    let a = push_consumer(&broker, "CG_broadcast", MessageModel::Broadcasting, seen.clone(), "a").await;
    let b = push_consumer(&broker, "CG_broadcast", MessageModel::Broadcasting, seen.clone(), "b").await;
    assert_eq!(a.assigned_queues().len(), 4);
    assert_eq!(b.assigned_queues().len(), 4);
    for i in 0..12 {
        producer.send(Message::new("TopicPush", format!("all {i}"))).await.expect("send");
    }
    let all: BTreeSet<String> = (0..12).map(|i| format!("all {i}")).collect();
    wait_until("both consumed all 12", || {
        bodies_of(&seen, Some("a")).is_superset(&all) && bodies_of(&seen, Some("b")).is_superset(&all)
    })
    .await;
    a.shutdown(Duration::from_secs(5)).await;
    b.shutdown(Duration::from_secs(5)).await;
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasting_consumers_resume_from_their_offsets_file_after_a_restart() {
    let broker = TestBroker::start();
    broker.create_topic("TopicPush", 4);
    let producer = producer(&broker);
    let before: BTreeSet<String> = (0..10).map(|i| format!("before {i}")).collect();
    for body in &before {
        producer.send(Message::new("TopicPush", body.clone())).await.expect("send");
    }
    let seen: Seen = Arc::default();
    let a = push_consumer(&broker, "CG_bfile", MessageModel::Broadcasting, seen.clone(), "a").await;
    wait_until("the first 10 consumed", || bodies_of(&seen, None).is_superset(&before)).await;
    a.shutdown(Duration::from_secs(5)).await;

    // Java's layout and form: <dir>/<ip>@<instanceName>/<group>/offsets.json, queue keys bare.
    let files: Vec<PathBuf> = std::fs::read_dir(broker.dir.path().join("consumer-offsets"))
        .expect("offsets dir")
        .filter_map(|e| e.ok().map(|e| e.path().join("CG_bfile").join("offsets.json")))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].parent().and_then(|p| p.parent()).is_some_and(|p| p.to_string_lossy().ends_with("@a")));
    let text = std::fs::read(&files[0]).expect("offsets file");
    let stored = wire::body::ResetOffsetBody::decode(&text).expect("OffsetSerializeWrapper").offset_table;
    assert_eq!(stored.len(), 4, "every queue: {stored:?}");
    assert_eq!(stored.values().sum::<i64>(), 10, "offsets past the 10 consumed: {stored:?}");

    let after: BTreeSet<String> = (0..10).map(|i| format!("after {i}")).collect();
    for body in &after {
        producer.send(Message::new("TopicPush", body.clone())).await.expect("send");
    }
    // Same instance: it starts where it stopped, though it is told to start from the first offset.
    let again: Seen = Arc::default();
    let a = push_consumer(&broker, "CG_bfile", MessageModel::Broadcasting, again.clone(), "a").await;
    wait_until("the next 10 consumed", || bodies_of(&again, None).is_superset(&after)).await;
    // Another instance has no file yet: it starts from the first offset.
    let b = push_consumer(&broker, "CG_bfile", MessageModel::Broadcasting, again.clone(), "b").await;
    let everything: BTreeSet<String> = before.union(&after).cloned().collect();
    wait_until("b consumed all 20", || bodies_of(&again, Some("b")) == everything).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(bodies_of(&again, Some("a")), after, "a consumed nothing twice");
    a.shutdown(Duration::from_secs(5)).await;
    b.shutdown(Duration::from_secs(5)).await;

    // A file that cannot be read, with no backup to fall back to, stops the start with an error
    // naming it, rather than consuming everything again from the first offset.
    let backup = files[0].with_file_name("offsets.json.bak");
    let _ = std::fs::remove_file(&backup);
    std::fs::write(&files[0], b"{\"offsetTable\":{{\"brokerName\"").expect("tear the file");
    let mut config = PushConsumerConfig::new("CG_bfile", broker.namesrv().to_string());
    config.model = MessageModel::Broadcasting;
    config.offset_store_dir = broker.dir.path().join("consumer-offsets");
    config.instance_name = "a".into();
    let refused =
        PushConsumer::start(config, &[("TopicPush", "*")], |_m: MessageExt| async { ConsumeResult::Success }).await;
    let err = refused.err().expect("an unreadable offsets file is an error");
    assert!(err.to_string().contains("offsets.json"), "{err}");
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_asks_a_consumer_for_its_offsets_and_has_it_handle_a_stored_message_again() {
    let broker = TestBroker::start();
    broker.create_topic("TopicPush", 4);
    let producer = producer(&broker);
    let mut ids = BTreeMap::new();
    for body in ["fine", "later", "panic"] {
        let sent = producer.send(Message::new("TopicPush", body).with_tags("TagD")).await.expect("send");
        ids.insert(body, sent.offset_msg_id);
    }
    let seen: Seen = Arc::default();
    let mut config = PushConsumerConfig::new("CG_directly", broker.namesrv().to_string());
    config.consume_from = ConsumeFrom::FirstOffset;
    config.suspend = Duration::from_secs(2);
    let record = seen.clone();
    // Set once the messages went through normally: from then on the handler fails by panicking.
    let panic_now = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let panics = panic_now.clone();
    let consumer = PushConsumer::start(config, &[("TopicPush", "*")], move |m: MessageExt| {
        let (record, panics) = (record.clone(), panics.clone());
        async move {
            let body = String::from_utf8_lossy(m.body()).into_owned();
            record.lock().expect("seen").push((m.tags().unwrap_or_default().to_string(), body.clone()));
            match body.as_str() {
                "panic" if panics.load(std::sync::atomic::Ordering::SeqCst) => panic!("the handler failed"),
                "later" if panics.load(std::sync::atomic::Ordering::SeqCst) => ConsumeResult::Later,
                _ => ConsumeResult::Success,
            }
        }
    })
    .await
    .expect("push consumer");
    wait_until("the 3 consumed", || bodies_of(&seen, None).len() == 3).await;

    let admin = Admin::start(ClientConfig::new(broker.namesrv().to_string())).expect("admin");
    let client_id = consumer.client_id().to_string();

    // Its offsets as the consumer itself reports them (mqadmin getConsumerStatus): past all 3.
    let deadline = Instant::now() + WAIT;
    loop {
        let status = admin.consumer_status("TopicPush", "CG_directly", None).await.expect("consumer status");
        let offsets = status.get(&client_id).cloned().unwrap_or_default();
        if offsets.values().sum::<i64>() == 3 {
            assert!(offsets.keys().all(|q| q.topic == "TopicPush") && offsets.len() == 4, "{offsets:?}");
            break;
        }
        assert!(Instant::now() < deadline, "consumer status never showed the 3 consumed: {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let nobody = admin.consumer_status("TopicPush", "CG_directly", Some("10.0.0.9@1#0")).await.expect("asked none");
    assert!(nobody.is_empty(), "{nobody:?}");
    let offline = admin.consumer_status("TopicPush", "CG_nobody", None).await.expect_err("no consumer online");
    assert!(offline.to_string().contains("No Any Consumer online"), "{offline}");

    panic_now.store(true, std::sync::atomic::Ordering::SeqCst);
    let before = seen.lock().expect("seen").len();
    let fine = admin.consume_message_directly("CG_directly", &client_id, &ids["fine"]).await.expect("fine");
    assert_eq!(fine["consumeResult"], "CR_SUCCESS", "{fine}");
    assert_eq!(fine["order"], false);
    assert_eq!(fine["autoCommit"], true);
    assert!(fine["spentTimeMills"].is_u64(), "{fine}");
    let later = admin.consume_message_directly("CG_directly", &client_id, &ids["later"]).await.expect("later");
    assert_eq!(later["consumeResult"], "CR_LATER", "{later}");
    // The handler got the stored message itself, its tag and body, once per call.
    let handled: Vec<(String, String)> = seen.lock().expect("seen")[before..].to_vec();
    assert!(handled.contains(&("TagD".into(), "fine".into())) && handled.contains(&("TagD".into(), "later".into())));

    let thrown = admin.consume_message_directly("CG_directly", &client_id, &ids["panic"]).await.expect("answered");
    assert_eq!(thrown["consumeResult"], "CR_THROW_EXCEPTION", "{thrown}");
    assert!(thrown["remark"].as_str().is_some_and(|r| !r.is_empty()), "{thrown}");

    // Clear errors for a consumer that is not there and a message that is not.
    let gone =
        admin.consume_message_directly("CG_directly", "10.0.0.9@1#0", &ids["fine"]).await.expect_err("no such client");
    assert!(gone.to_string().contains("not online"), "{gone}");
    let (host, offset) = wire::message::decode_offset_msg_id(&ids["fine"]).expect("offset id");
    let nowhere = wire::message::offset_msg_id(host, offset + (1 << 30));
    let missing = admin.consume_message_directly("CG_directly", &client_id, &nowhere).await.expect_err("no message");
    assert!(missing.to_string().contains("can not find message"), "{missing}");

    // The same from the command line.
    let args = [
        "-n".to_string(),
        broker.namesrv().to_string(),
        "message".into(),
        "resend".into(),
        "-i".into(),
        ids["fine"].clone(),
        "-g".into(),
        "CG_directly".into(),
        "-d".into(),
        client_id.clone(),
        "--json".into(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        apogee_tests::run_apogee(&args.iter().map(String::as_str).collect::<Vec<_>>(), "")
    })
    .await
    .expect("apogee ran");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(printed["consumeResult"], "CR_SUCCESS", "{printed}");
    admin.shutdown().await;
    consumer.shutdown(Duration::from_secs(5)).await;
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_resumes_from_its_committed_offsets_after_a_broker_restart() {
    let broker = TestBroker::start();
    broker.create_topic("TopicPush", 4);
    let producer = producer(&broker);
    for i in 0..10 {
        producer.send(Message::new("TopicPush", format!("before {i}"))).await.expect("send");
    }
    let seen: Seen = Arc::default();
    let consumer = push_consumer(&broker, "CG_resume", MessageModel::Clustering, seen.clone(), "a").await;
    let before: BTreeSet<String> = (0..10).map(|i| format!("before {i}")).collect();
    wait_until("the first 10 consumed", || bodies_of(&seen, None).is_superset(&before)).await;
    consumer.shutdown(Duration::from_secs(5)).await;
    producer.shutdown().await;

    let broker = broker.restart();
    let producer = self::producer(&broker);
    for i in 0..10 {
        producer.send(Message::new("TopicPush", format!("after {i}"))).await.expect("send");
    }
    let again: Seen = Arc::default();
    let consumer = push_consumer(&broker, "CG_resume", MessageModel::Clustering, again.clone(), "a").await;
    let after: BTreeSet<String> = (0..10).map(|i| format!("after {i}")).collect();
    wait_until("the next 10 consumed", || bodies_of(&again, None).is_superset(&after)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(bodies_of(&again, None), after, "nothing committed before the restart came again");
    consumer.shutdown(Duration::from_secs(5)).await;
    producer.shutdown().await;
}

type Delivery = (String, i32, String, i64);

/// Delay levels of one second each, so retries come back quickly.
const FAST_LEVELS: &str = "1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_handler_gets_the_message_again_then_it_goes_to_the_dlq() {
    let broker =
        TestBroker::start_in(tempfile::tempdir().expect("tempdir"), |c| c.message_delay_level = FAST_LEVELS.into());
    broker.create_topic("TopicPush", 2);
    let producer = producer(&broker);
    // (topic, reconsume times, stored topic, ms since the epoch) of each delivery.
    let deliveries: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let mut config = PushConsumerConfig::new("CG_retry", broker.namesrv().to_string());
    config.consume_from = ConsumeFrom::FirstOffset;
    config.suspend = Duration::from_secs(1);
    config.max_reconsume_times = 2;
    let log = deliveries.clone();
    let consumer = PushConsumer::start(config, &[("TopicPush", "*")], move |m: MessageExt| {
        let log = log.clone();
        async move {
            let body = String::from_utf8_lossy(m.body()).into_owned();
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
            log.lock().expect("log").push((
                m.topic().to_string(),
                m.reconsume_times(),
                m.stored_topic().to_string(),
                now,
            ));
            let fails = body == "doomed" || (body == "flaky" && m.reconsume_times() == 0);
            if fails {
                ConsumeResult::Later
            } else {
                ConsumeResult::Success
            }
        }
    })
    .await
    .expect("push consumer");
    let flaky = producer.send(Message::new("TopicPush", "flaky").with_tags("TagF")).await.expect("send");
    producer.send(Message::new("TopicPush", "doomed")).await.expect("send");

    // flaky: once from TopicPush, once more from the retry topic, with its topic restored.
    wait_until("flaky came back", || deliveries.lock().expect("log").iter().filter(|d| d.1 == 1).count() >= 2).await;
    // doomed: delivered 3 times (reconsume 0, 1, 2), then moved to %DLQ%CG_retry.
    let dlq = pull_consumer(&broker, "CG_dlq_reader");
    let deadline = Instant::now() + WAIT;
    let dead = loop {
        if let Ok(queues) = dlq.queues("%DLQ%CG_retry").await {
            let result = dlq.pull(&queues[0], "*", 0, 8).await.expect("pull the DLQ");
            if let Some(m) = result.messages.into_iter().next() {
                break m;
            }
        }
        assert!(Instant::now() < deadline, "doomed never reached the DLQ");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead.body().as_ref(), b"doomed");
    assert_eq!(dead.topic(), "TopicPush", "RETRY_TOPIC keeps the original topic");
    assert_eq!(dead.reconsume_times(), 3);
    assert!(dead.property("ORIGIN_MESSAGE_ID").is_some());
    consumer.shutdown(Duration::from_secs(5)).await;

    let log = deliveries.lock().expect("log").clone();
    let retried: Vec<_> = log.iter().filter(|d| d.1 > 0).collect();
    assert!(retried.iter().all(|d| d.0 == "TopicPush" && d.2 == "%RETRY%CG_retry"), "{log:?}");
    assert_eq!(log.iter().filter(|d| d.1 == 2).count(), 1, "only doomed came a third time: {log:?}");
    assert_eq!(log.len(), 5, "flaky twice, doomed three times: {log:?}");
    // The retry waited for its delay level (1 s here).
    let first = log.iter().find(|d| d.1 == 0).expect("first delivery").3;
    let again = log.iter().find(|d| d.1 == 1).expect("second delivery").3;
    assert!(again - first >= 900, "retried after {} ms", again - first);
    assert_eq!(flaky.status, client::SendStatus::SendOk);
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_message_arrives_no_earlier_than_its_level_even_across_a_restart() {
    let broker =
        TestBroker::start_in(tempfile::tempdir().expect("tempdir"), |c| c.message_delay_level = "1s 3s".into());
    broker.create_topic("TopicDelay", 1);
    let producer = producer(&broker);
    let now_ms =
        || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let sent_at = now_ms();
    producer.send(Message::new("TopicDelay", "in one second").with_delay_level(1)).await.expect("send");
    producer.send(Message::new("TopicDelay", "in three seconds").with_delay_level(2)).await.expect("send");
    producer.send(Message::new("TopicDelay", "now")).await.expect("send");
    let consumer = pull_consumer(&broker, "CG_delay");
    let queue = consumer.queues("TopicDelay").await.expect("queues").remove(0);
    let first = consumer.pull_blocking(&queue, "*", 0, 8, Duration::from_secs(5)).await.expect("pull");
    assert_eq!(first.messages.iter().map(|m| m.body().as_ref()).collect::<Vec<_>>(), vec![b"now".as_ref()]);
    let second = consumer.pull_blocking(&queue, "*", 1, 8, Duration::from_secs(5)).await.expect("pull");
    let arrived = now_ms();
    assert_eq!(second.messages.len(), 1);
    let delayed = &second.messages[0];
    assert_eq!(delayed.body().as_ref(), b"in one second");
    assert!(arrived - sent_at >= 990, "arrived after {} ms", arrived - sent_at);
    assert!(delayed.property("DELAY").is_none(), "the delivered copy has no delay left");
    assert_eq!(delayed.property("REAL_TOPIC"), Some("TopicDelay"));
    consumer.shutdown().await;
    producer.shutdown().await;

    // The three-second one is still parked: it survives a restart and still waits its time.
    let broker = broker.restart_with(|c| c.message_delay_level = "1s 3s".into());
    let consumer = pull_consumer(&broker, "CG_delay");
    let third = consumer.pull_blocking(&queue, "*", 2, 8, Duration::from_secs(10)).await.expect("pull");
    let arrived = now_ms();
    assert_eq!(third.messages.len(), 1, "{:?}", third.status);
    assert_eq!(third.messages[0].body().as_ref(), b"in three seconds");
    assert!(arrived - sent_at >= 2990, "arrived after {} ms", arrived - sent_at);
    consumer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_manages_topics_and_reports_progress() {
    let broker = TestBroker::start();
    let admin = Admin::start(ClientConfig::new(broker.namesrv().to_string())).expect("admin");
    let clusters = admin.cluster_info().await.expect("cluster info");
    assert_eq!(clusters.broker_addr_table.len(), 1);
    let addrs = admin.create_topic(&TopicSpec::new("TopicAdmin", 3), &Target::Cluster(None)).await.expect("create");
    assert_eq!(addrs, vec![broker.addr().to_string()]);
    let deadline = Instant::now() + WAIT;
    while !admin.topic_list().await.expect("list").contains("TopicAdmin") {
        assert!(Instant::now() < deadline, "the topic never reached the name server");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let route = admin.topic_route("TopicAdmin").await.expect("route");
    assert_eq!(route.queue_datas[0].write_queue_nums, 3);

    let mut wider = TopicSpec::new("TopicAdmin", 6);
    wider.read_queues = 6;
    admin.create_topic(&wider, &Target::Broker(broker.addr().to_string())).await.expect("update");
    let deadline = Instant::now() + WAIT;
    while admin.topic_route("TopicAdmin").await.expect("route").queue_datas[0].write_queue_nums != 6 {
        assert!(Instant::now() < deadline, "the update never reached the name server");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let producer = producer(&broker);
    for i in 0..9 {
        producer.send(Message::new("TopicAdmin", format!("m{i}"))).await.expect("send");
    }
    let stats = admin.topic_stats("TopicAdmin").await.expect("stats");
    assert_eq!(stats.offset_table.len(), 6);
    assert_eq!(stats.offset_table.values().map(|o| o.max_offset).sum::<i64>(), 9);

    let consumer = pull_consumer(&broker, "CG_admin");
    let queue = consumer.queues("TopicAdmin").await.expect("queues").remove(0);
    consumer.commit_offset(&queue, 1).await.expect("commit");
    let progress = admin.consume_stats("CG_admin", Some("TopicAdmin")).await.expect("progress");
    let total_lag: i64 = progress.offset_table.values().map(|o| o.broker_offset - o.consumer_offset).sum();
    assert!(total_lag >= 8, "lag {total_lag}: {progress:?}");
    assert!(admin.consume_stats("CG_nobody", None).await.is_err());

    let runtime = admin.broker_runtime(&broker.addr().to_string()).await.expect("runtime");
    assert!(runtime.contains_key("msgPutTotalTodayNow"), "{runtime:?}");
    let config = admin.broker_config(&broker.addr().to_string()).await.expect("config");
    assert_eq!(config.get("brokerName").map(String::as_str), Some("broker-a"), "{config:?}");

    admin.delete_topic("TopicAdmin", &Target::Cluster(None)).await.expect("delete");
    assert!(!admin.topic_list().await.expect("list").contains("TopicAdmin"));
    assert!(matches!(admin.topic_route("TopicAdmin").await, Err(ClientError::NoRoute { .. })));
    producer.shutdown().await;
    consumer.shutdown().await;
    admin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orderly_consumers_never_share_a_queue_and_keep_each_key_in_order() {
    let broker = TestBroker::start();
    broker.create_topic("TopicOrderly", 4);
    let producer = producer(&broker);
    // Queue id → the consumer handling a message of it right now.
    let active: Arc<Mutex<BTreeMap<i32, String>>> = Arc::default();
    let overlaps: Arc<Mutex<Vec<String>>> = Arc::default();
    let order: Arc<Mutex<BTreeMap<String, Vec<u32>>>> = Arc::default();
    let start = |who: &'static str| {
        let mut config = PushConsumerConfig::new("CG_orderly", broker.namesrv().to_string());
        config.orderly = true;
        config.consume_from = ConsumeFrom::FirstOffset;
        config.suspend = Duration::from_secs(1);
        config.rebalance_interval = Duration::from_millis(500);
        config.commit_interval = Duration::from_millis(100);
        let (active, overlaps, order) = (active.clone(), overlaps.clone(), order.clone());
        PushConsumer::start(config, &[("TopicOrderly", "*")], move |m: MessageExt| {
            let (active, overlaps, order) = (active.clone(), overlaps.clone(), order.clone());
            async move {
                if let Some(other) = active.lock().expect("active").insert(m.queue_id(), who.to_string()) {
                    overlaps
                        .lock()
                        .expect("overlaps")
                        .push(format!("queue {} held by {other} and {who}", m.queue_id()));
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
                let body = String::from_utf8_lossy(m.body()).into_owned();
                let (key, step) = body.split_once(' ').expect("key step");
                order.lock().expect("order").entry(key.to_string()).or_default().push(step.parse().expect("step"));
                active.lock().expect("active").remove(&m.queue_id());
                ConsumeResult::Success
            }
        })
    };
    let a = start("a").await.expect("a");
    let mut b_task = None;
    for step in 0..20u32 {
        for key in ["k0", "k1", "k2", "k3", "k4", "k5"] {
            producer.send_ordered(Message::new("TopicOrderly", format!("{key} {step}")), key).await.expect("send");
        }
        if step == 5 {
            // b joins while a is busy: the queues move over only after a lets go of them.
            let b = start("b").await.expect("b");
            b_task = Some(tokio::spawn(async move {
                let deadline = Instant::now() + WAIT;
                while b.assigned_queues().is_empty() {
                    assert!(Instant::now() < deadline, "b never got a queue lock");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                b.shutdown(Duration::from_secs(5)).await;
            }));
        }
    }
    let done = |order: &BTreeMap<String, Vec<u32>>| {
        order.len() == 6 && order.values().all(|steps| steps.iter().collect::<BTreeSet<_>>().len() == 20)
    };
    wait_until("every step of every key consumed", || done(&order.lock().expect("order"))).await;
    b_task.expect("b started").await.expect("b held queues, then left");
    assert!(overlaps.lock().expect("overlaps").is_empty(), "{:?}", overlaps.lock().expect("overlaps"));
    for (key, steps) in order.lock().expect("order").iter() {
        // A queue that moves may deliver its unfinished tail again; first deliveries stay in order.
        let mut first_seen = Vec::new();
        for s in steps {
            if !first_seen.contains(s) {
                first_seen.push(*s);
            }
        }
        assert_eq!(first_seen, (0..20).collect::<Vec<_>>(), "{key}: {steps:?}");
    }
    a.shutdown(Duration::from_secs(5)).await;
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_go_compressed_with_each_codec_and_come_back_whole() {
    let broker = TestBroker::start();
    broker.create_topic("TopicCompressed", 2);
    let large: String = (0..2000).map(|i| format!("line {i} of a body worth compressing\n")).collect();
    let mut sent = Vec::new();
    for codec in [CompressionType::Zlib, CompressionType::Lz4, CompressionType::Zstd] {
        let mut config = ProducerConfig::new(format!("PG_{codec:?}"), broker.namesrv().to_string());
        config.compress_type = codec;
        let producer = Producer::start(config).expect("producer");
        sent.push((Some(codec), producer.send(Message::new("TopicCompressed", large.clone())).await.expect("send")));
        producer.shutdown().await;
    }
    // Under the 4 KiB threshold, and incompressible above it: both stored as they are.
    let under = "u".repeat(4095);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: Vec<u8> = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    let producer = producer(&broker);
    sent.push((None, producer.send(Message::new("TopicCompressed", under.clone())).await.expect("send")));
    sent.push((None, producer.send(Message::new("TopicCompressed", noise.clone())).await.expect("send")));
    producer.shutdown().await;

    let consumer = pull_consumer(&broker, "CG_compressed");
    let pulled: Vec<MessageExt> = pull_all(&consumer, "TopicCompressed", "*").await.into_values().flatten().collect();
    assert_eq!(pulled.len(), sent.len());
    let admin = Admin::start(ClientConfig::new(broker.namesrv().to_string())).expect("admin");
    for (i, (codec, result)) in sent.iter().enumerate() {
        let m = pulled.iter().find(|m| m.msg_id() == result.msg_id).expect("every message pulled");
        let original: &[u8] = match i {
            0..=2 => large.as_bytes(),
            3 => under.as_bytes(),
            _ => &noise,
        };
        assert_eq!(m.body().as_ref(), original, "{codec:?}: the consumer gets the body as sent");
        let how = m.stored.sys_flag & (sys_flag::COMPRESSED | sys_flag::COMPRESSION_TYPE_MASK);
        // What the broker stored: the compressed form, by its BODYCRC.
        let stored_form = match codec {
            Some(codec) => {
                assert_eq!(how, codec.sys_flag(), "the sysFlag names the codec");
                wire::message::compress_body(original, *codec, 5)
            }
            None => {
                assert_eq!(how, 0, "message {i} went as it was");
                original.to_vec()
            }
        };
        assert_eq!(m.stored.body_crc, wire::message::body_crc(&stored_form), "{codec:?}");
        // Admin lookups decompress too, as Java's.
        let viewed = admin.view_message(&result.offset_msg_id).await.expect("view");
        assert_eq!(viewed.body().as_ref(), original, "{codec:?}");
    }
    admin.shutdown().await;
    consumer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocketmq_headers_work_as_well_as_json() {
    let broker = TestBroker::start();
    broker.create_topic("TopicBinary", 2);
    let mut config = ProducerConfig::new("PG_binary", broker.namesrv().to_string());
    config.client.serialize_type = client::SerializeType::RocketMq;
    let producer = Producer::start(config).expect("producer");
    let sent = producer.send(Message::new("TopicBinary", "compact").with_tags("TagR")).await.expect("send");
    let mut client_config = ClientConfig::new(broker.namesrv().to_string());
    client_config.serialize_type = client::SerializeType::RocketMq;
    let consumer = PullConsumer::start("CG_binary", client_config).expect("consumer");
    let result = consumer.pull(&sent.queue, "TagR", sent.queue_offset, 4).await.expect("pull");
    assert_eq!(result.messages.len(), 1);
    assert_eq!(result.messages[0].msg_id(), sent.msg_id);
    producer.shutdown().await;
    consumer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_fails_its_requests_and_the_next_request_reconnects() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    // A server that hangs up on the first connection and answers on the second.
    let server = std::thread::spawn(move || {
        let read_request = |stream: &mut std::net::TcpStream| {
            let mut len = [0u8; 4];
            stream.read_exact(&mut len).expect("length");
            let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
            stream.read_exact(&mut frame).expect("frame");
            let mut whole = bytes::BytesMut::from(&len[..]);
            whole.extend_from_slice(&frame);
            wire::FrameDecoder::default().decode(&mut whole).expect("valid").expect("whole frame")
        };
        let (mut first, _) = listener.accept().expect("first connection");
        read_request(&mut first);
        drop(first);
        let (mut second, _) = listener.accept().expect("second connection");
        let request = read_request(&mut second);
        let answer = wire::RemotingCommand::response_to(&request, wire::code::response::SUCCESS).with_remark("again");
        second.write_all(&wire::encode_to_bytes(&answer)).expect("answer");
        std::thread::sleep(Duration::from_millis(200));
    });
    let remoting = client::RemotingClient::new(client::RemotingConfig::default());
    let request = || wire::RemotingCommand::request(wire::code::request::GET_BROKER_RUNTIME_INFO);
    let err = remoting.invoke(&addr, request(), Duration::from_secs(5)).await.expect_err("hung up");
    assert!(matches!(err, ClientError::ConnectionClosed { .. }), "{err}");
    let answer = remoting.invoke(&addr, request(), Duration::from_secs(5)).await.expect("reconnected");
    assert_eq!(answer.remark_str(), "again");
    server.join().expect("server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_fail_over_to_the_other_broker_when_one_stops() {
    let a = TestBroker::start();
    let dir_b = tempfile::tempdir().expect("tempdir");
    let config_b = broker::BrokerConfig {
        broker_name: "broker-b".into(),
        listen_address: [127, 0, 0, 1].into(),
        listen_port: 0,
        namesrv_addr: a.namesrv().to_string(),
        store_path_root_dir: dir_b.path().join("store"),
        mapped_file_size_commit_log: 16 << 20,
        commit_log_cache_bytes: 8 << 20,
        ..Default::default()
    };
    let b = broker::BrokerServer::start(config_b, false).expect("broker-b starts");
    let admin = Admin::start(ClientConfig::new(a.namesrv().to_string())).expect("admin");
    let deadline = Instant::now() + WAIT;
    while admin.cluster_info().await.expect("cluster").broker_addr_table.len() < 2 {
        assert!(Instant::now() < deadline, "broker-b never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let brokers = admin.create_topic(&TopicSpec::new("TopicTwo", 2), &Target::Cluster(None)).await.expect("create");
    assert_eq!(brokers.len(), 2);
    while admin.topic_route("TopicTwo").await.map(|r| r.queue_datas.len()).unwrap_or(0) < 2 {
        assert!(Instant::now() < deadline, "the route never listed both brokers");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let producer = producer(&a);
    let mut used = BTreeSet::new();
    for i in 0..8 {
        used.insert(
            producer.send(Message::new("TopicTwo", format!("both {i}"))).await.expect("send").queue.broker_name,
        );
    }
    assert_eq!(used.len(), 2, "round robin reaches both brokers");

    b.stop().expect("broker-b stops");
    // Every send still succeeds: a failure on broker-b is retried on broker-a, and broker-b is
    // then passed over instead of being tried first again.
    for i in 0..10 {
        let result = producer.send(Message::new("TopicTwo", format!("after {i}"))).await.expect("send fails over");
        assert_eq!(result.queue.broker_name, "broker-a");
    }
    producer.shutdown().await;
    admin.shutdown().await;
}

/// Commits or rolls back by the body's first word; checks answer from a table the test fills.
struct Bank {
    checked: Mutex<Vec<String>>,
    on_check: Mutex<BTreeMap<String, LocalTransactionState>>,
}

impl TransactionListener for Bank {
    fn execute(&self, message: &Message, _sent: &client::SendResult) -> LocalTransactionState {
        match String::from_utf8_lossy(&message.body).split('-').next() {
            Some("commit") => LocalTransactionState::CommitMessage,
            Some("rollback") => LocalTransactionState::RollbackMessage,
            _ => LocalTransactionState::Unknown,
        }
    }

    fn check(&self, message: &MessageExt) -> LocalTransactionState {
        let body = String::from_utf8_lossy(message.body()).into_owned();
        assert_eq!(message.topic(), "TopicTx", "a check shows the message's real topic");
        self.checked.lock().expect("checked").push(body.clone());
        self.on_check.lock().expect("table").get(&body).copied().unwrap_or(LocalTransactionState::Unknown)
    }
}

fn bank(on_check: &[(&str, LocalTransactionState)]) -> Arc<Bank> {
    Arc::new(Bank {
        checked: Mutex::new(Vec::new()),
        on_check: Mutex::new(on_check.iter().map(|(b, s)| (b.to_string(), *s)).collect()),
    })
}

fn checks_of(bank: &Bank, body: &str) -> usize {
    bank.checked.lock().expect("checked").iter().filter(|b| *b == body).count()
}

async fn committed_bodies(consumer: &PullConsumer) -> BTreeSet<String> {
    let all = pull_all(consumer, "TopicTx", "*").await;
    all.values().flatten().map(|m| String::from_utf8_lossy(m.body()).into_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_commit_roll_back_and_are_checked_back_even_across_a_restart() {
    let settings = |c: &mut broker::BrokerConfig| {
        c.transaction_time_out = 1_000;
        c.transaction_check_interval = 100;
        c.transaction_check_max = 3;
    };
    let broker = TestBroker::start_in(tempfile::tempdir().expect("tempdir"), settings);
    broker.create_topic("TopicTx", 2);
    let config = || ProducerConfig::new("PG_tx", broker.namesrv().to_string());
    let listener = bank(&[("unknown-then-commit", LocalTransactionState::CommitMessage)]);
    let producer = TransactionProducer::start(config(), listener.clone()).expect("transaction producer");
    for body in ["commit-1", "rollback-1", "unknown-then-commit", "unknown-forever"] {
        let sent =
            producer.send_in_transaction(Message::new("TopicTx", body).with_keys(["tx-key"])).await.expect("send");
        assert_eq!(sent.send.status, SendStatus::SendOk);
    }
    let consumer = pull_consumer(&broker, "CG_tx");
    // The committed one at once; the open one once its check says commit.
    let mut bodies = BTreeSet::new();
    let deadline = Instant::now() + WAIT;
    while bodies.len() < 2 {
        assert!(Instant::now() < deadline, "committed messages never arrived: {bodies:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        bodies = committed_bodies(&consumer).await;
    }
    assert_eq!(bodies, BTreeSet::from(["commit-1".to_string(), "unknown-then-commit".to_string()]));
    let all = pull_all(&consumer, "TopicTx", "*").await;
    let delivered = all.values().flatten().find(|m| m.body().as_ref() == b"commit-1").expect("commit-1");
    assert_eq!(delivered.keys(), ["tx-key"]);
    assert_eq!(delivered.property("TRAN_MSG"), None, "a committed message is an ordinary one");
    assert_eq!(delivered.property("REAL_TOPIC"), None);
    assert_eq!(checks_of(&listener, "unknown-then-commit"), 1, "answered, so checked once");

    // One that stays unknown is checked transactionCheckMax times, then given up; a rolled
    // back one is never checked nor delivered.
    wait_until("three checks of the open transaction", || checks_of(&listener, "unknown-forever") >= 3).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(checks_of(&listener, "unknown-forever"), 3);
    assert_eq!(checks_of(&listener, "rollback-1") + checks_of(&listener, "commit-1"), 0);
    assert_eq!(committed_bodies(&consumer).await.len(), 2);
    producer.shutdown().await;
    consumer.shutdown().await;

    // A transaction left open when the broker stops is checked after the restart, by whichever
    // producer of the group is connected then.
    let quiet = bank(&[]);
    let producer = TransactionProducer::start(config(), quiet.clone()).expect("transaction producer");
    producer.send_in_transaction(Message::new("TopicTx", "unknown-across-restart")).await.expect("send");
    producer.shutdown().await;
    let broker = broker.restart_with(settings);
    let config = ProducerConfig::new("PG_tx", broker.namesrv().to_string());
    let resolver = bank(&[("unknown-across-restart", LocalTransactionState::CommitMessage)]);
    let producer = TransactionProducer::start(config, resolver.clone()).expect("transaction producer");
    // Heartbeats reach the broker on the first route lookup.
    producer.producer().queues("TopicTx").await.expect("route");
    let consumer = pull_consumer(&broker, "CG_tx");
    let deadline = Instant::now() + WAIT;
    while !committed_bodies(&consumer).await.contains("unknown-across-restart") {
        assert!(Instant::now() < deadline, "the open transaction was never checked after the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(committed_bodies(&consumer).await.len(), 3, "nothing committed twice, nothing rolled back shows");
    assert_eq!(checks_of(&resolver, "unknown-forever"), 0, "given up stays given up");
    producer.shutdown().await;
    consumer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_by_time_makes_online_consumers_read_again_and_running_info_reaches_them() {
    let broker = TestBroker::start();
    broker.create_topic("TopicPush", 2);
    let producer = producer(&broker);
    for i in 0..20 {
        producer.send(Message::new("TopicPush", format!("m{i}"))).await.expect("send");
    }
    let seen: Seen = Arc::default();
    let consumer = push_consumer(&broker, "CG_reset", MessageModel::Clustering, seen.clone(), "a").await;
    let count = |seen: &Seen| seen.lock().expect("seen").len();
    wait_until("every message consumed once", || count(&seen) == 20).await;
    let admin = Admin::start(ClientConfig::new(broker.namesrv().to_string())).expect("admin");
    // The commits of the consumed messages reach the broker first (a reset only moves back).
    wait_until_async("offsets committed", || async {
        let stats = admin.consume_stats("CG_reset", Some("TopicPush")).await;
        stats.is_ok_and(|s| s.lag() == 0)
    })
    .await;

    let offsets = admin.reset_offset_by_time("CG_reset", "TopicPush", 0, false).await.expect("reset");
    assert_eq!(offsets.len(), 2, "{offsets:?}");
    assert!(offsets.values().all(|o| *o == 0), "back to the first message: {offsets:?}");
    wait_until("every message consumed again", || count(&seen) == 40).await;
    let bodies: Vec<String> = seen.lock().expect("seen").iter().map(|(_, b)| b.clone()).collect();
    for i in 0..20 {
        assert_eq!(bodies.iter().filter(|b| **b == format!("m{i}")).count(), 2, "m{i} twice");
    }

    let info = admin.consumer_running_info("CG_reset", consumer.client_id()).await.expect("running info");
    assert_eq!(info["properties"]["consumerGroup"], "CG_reset", "{info}");
    let subscribed: Vec<&str> =
        info["subscriptionSet"].as_array().expect("subscriptions").iter().filter_map(|s| s["topic"].as_str()).collect();
    assert!(subscribed.contains(&"TopicPush"), "{info}");
    assert!(info["mqTable"].as_object().expect("queues").len() >= 2, "{info}");
    let unknown = admin.consumer_running_info("CG_reset", "nobody@0").await.expect_err("no such client");
    assert!(unknown.to_string().contains("not online"), "{unknown}");

    consumer.shutdown(Duration::from_secs(5)).await;
    let offline = admin.reset_offset_by_time("CG_reset", "TopicPush", -1, true).await.expect_err("nobody online");
    assert_eq!(offline.response_code(), Some(wire::code::response::CONSUMER_NOT_ONLINE), "{offline}");
    admin.shutdown().await;
    producer.shutdown().await;
}

/// Waits until the async check `done` holds, polling every 50 ms, failing after `WAIT`.
async fn wait_until_async<F: std::future::Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = Instant::now() + WAIT;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orderly_consumer_gives_up_on_a_poison_message_into_the_dlq_and_goes_on_in_order() {
    let broker = TestBroker::start();
    broker.create_topic("TopicOrderlyDlq", 1);
    let producer = producer(&broker);
    let seen: Arc<Mutex<Vec<(String, i32)>>> = Arc::default();
    let mut config = PushConsumerConfig::new("CG_orderly_dlq", broker.namesrv().to_string());
    config.orderly = true;
    config.consume_from = ConsumeFrom::FirstOffset;
    config.suspend = Duration::from_secs(1);
    config.suspend_current_queue = Duration::from_millis(50);
    config.orderly_max_reconsume_times = Some(2);
    let log = seen.clone();
    let consumer = PushConsumer::start(config, &[("TopicOrderlyDlq", "*")], move |m: MessageExt| {
        let log = log.clone();
        async move {
            let body = String::from_utf8_lossy(m.body()).into_owned();
            log.lock().expect("seen").push((body.clone(), m.reconsume_times()));
            if body == "poison" {
                ConsumeResult::Later
            } else {
                ConsumeResult::Success
            }
        }
    })
    .await
    .expect("orderly consumer");
    for body in ["before", "poison", "after"] {
        producer.send(Message::new("TopicOrderlyDlq", body)).await.expect("send");
    }
    wait_until("the message after the poison one", || seen.lock().expect("seen").iter().any(|(b, _)| b == "after"))
        .await;
    let log = seen.lock().expect("seen").clone();
    let bodies: Vec<&str> = log.iter().map(|(b, _)| b.as_str()).collect();
    assert_eq!(bodies, ["before", "poison", "poison", "poison", "after"], "in order, poison tried 3 times");
    assert_eq!(log.iter().filter(|(b, _)| b == "poison").map(|(_, n)| *n).collect::<Vec<_>>(), [0, 1, 2]);

    let dlq = pull_consumer(&broker, "CG_dlq_orderly_reader");
    let deadline = Instant::now() + WAIT;
    let dead = loop {
        if let Ok(queues) = dlq.queues("%DLQ%CG_orderly_dlq").await {
            let result = dlq.pull(&queues[0], "*", 0, 8).await.expect("pull the DLQ");
            if !result.messages.is_empty() {
                break result.messages;
            }
        }
        assert!(Instant::now() < deadline, "poison never reached the DLQ");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body().as_ref(), b"poison");
    assert_eq!(dead[0].topic(), "TopicOrderlyDlq", "RETRY_TOPIC names the original topic");
    assert!(dead[0].property("ORIGIN_MESSAGE_ID").is_some());
    consumer.shutdown(Duration::from_secs(5)).await;
    dlq.shutdown().await;
    producer.shutdown().await;
}

/// Answers checks with a commit, but slower than the broker's transactionTimeOut.
struct SlowBank {
    checks: Mutex<usize>,
}

impl TransactionListener for SlowBank {
    fn execute(&self, _message: &Message, _sent: &client::SendResult) -> LocalTransactionState {
        LocalTransactionState::Unknown
    }

    fn check(&self, _message: &MessageExt) -> LocalTransactionState {
        *self.checks.lock().expect("checks") += 1;
        std::thread::sleep(Duration::from_millis(700));
        LocalTransactionState::CommitMessage
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_answer_to_a_check_never_commits_a_transaction_twice() {
    let broker = TestBroker::start_in(tempfile::tempdir().expect("tempdir"), |c| {
        c.transaction_time_out = 300;
        c.transaction_check_interval = 100;
    });
    broker.create_topic("TopicTx", 1);
    let listener = Arc::new(SlowBank { checks: Mutex::new(0) });
    let config = ProducerConfig::new("PG_tx_slow", broker.namesrv().to_string());
    let producer = TransactionProducer::start(config, listener.clone()).expect("transaction producer");
    producer.send_in_transaction(Message::new("TopicTx", "slow-commit")).await.expect("send");
    // The broker asks again while the first answer is still on its way; both say commit.
    wait_until("a second check", || *listener.checks.lock().expect("checks") >= 2).await;
    let consumer = pull_consumer(&broker, "CG_tx_slow");
    let deadline = Instant::now() + WAIT;
    while committed_bodies(&consumer).await.is_empty() {
        assert!(Instant::now() < deadline, "never committed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(2_000)).await; // every answer is in by now
    let all = pull_all(&consumer, "TopicTx", "*").await;
    assert_eq!(all.values().flatten().count(), 1, "committed once, whatever the number of answers");
    producer.shutdown().await;
    consumer.shutdown().await;
}
