//! Independent clients ask an Apogee name server for topic routes: npm `ali-ons` (which gets
//! fastjson's bare broker-id keys, as from Java) and the C++ client from PyPI `rocketmq`.

use apogee_tests::*;

#[test]
fn ali_ons_reads_a_topic_route() {
    let ns = TestNamesrv::start();
    let _a = FakeBroker::register(ns.addr(), "broker-a", "127.0.0.1:10911", &[("InteropTopic", 4)]);
    let _b = FakeBroker::register(ns.addr(), "broker-b", "127.0.0.1:10912", &[("InteropTopic", 2)]);
    let addr = ns.addr().to_string();
    let route = json_result(&run_node("namesrv_route.js", &[&addr, "InteropTopic"]));

    let queues = route["queueDatas"].as_array().expect("queueDatas");
    let mut seen: Vec<(String, i64)> = queues
        .iter()
        .map(|q| (q["brokerName"].as_str().unwrap_or("").to_owned(), q["readQueueNums"].as_i64().unwrap_or(-1)))
        .collect();
    seen.sort();
    assert_eq!(seen, [("broker-a".to_owned(), 4), ("broker-b".to_owned(), 2)]);
    let brokers = route["brokerDatas"].as_array().expect("brokerDatas");
    assert_eq!(brokers.len(), 2);
    assert_eq!(brokers[0]["brokerAddrs"]["0"], "127.0.0.1:10911");
    assert_eq!(brokers[1]["brokerAddrs"]["0"], "127.0.0.1:10912");
}

#[test]
fn ali_ons_sees_a_missing_topic_as_missing() {
    let ns = TestNamesrv::start();
    let addr = ns.addr().to_string();
    let out = run_node("namesrv_route.js", &[&addr, "NoSuchTopic"]);
    assert!(!out.status.success(), "a missing topic is an error for the client");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("No topic route info in name server for the topic: NoSuchTopic"), "{stderr}");
}

#[test]
fn cpp_client_reads_a_topic_route() {
    let ns = TestNamesrv::start();
    let _a = FakeBroker::register(ns.addr(), "broker-a", "127.0.0.1:10911", &[("InteropTopic", 3)]);
    let addr = ns.addr().to_string();
    let result = json_result(&run_python("namesrv_route.py", &[&addr, "InteropTopic"]));
    let queues: Vec<(String, i64)> = result["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .map(|q| (q[0].as_str().unwrap_or("").to_owned(), q[1].as_i64().unwrap_or(-1)))
        .collect();
    assert_eq!(queues, [("broker-a".to_owned(), 0), ("broker-a".to_owned(), 1), ("broker-a".to_owned(), 2)]);
}
