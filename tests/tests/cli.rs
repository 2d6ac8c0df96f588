//! The `apogee` CLI against a real broker: topic administration, a send / consume round trip,
//! finding messages by key, unique key and offset id (before and after a restart), and errors that say what went wrong with a nonzero exit.

use std::process::Output;

use apogee_tests::{run_apogee, TestBroker};
use serde_json::Value;

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "apogee failed: {}\nstdout: {stdout}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).expect("one JSON document")
}

fn json_lines(out: &Output) -> Vec<Value> {
    ok(out).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

#[test]
fn topics_are_created_listed_routed_and_deleted() {
    let broker = TestBroker::start();
    let ns = broker.namesrv().to_string();
    let created = json(&run_apogee(&["-n", &ns, "topic", "create", "-t", "CliTopic", "-q", "3", "--json"], ""));
    assert_eq!(created["brokers"][0], broker.addr().to_string());

    let table = ok(&run_apogee(&["-n", &ns, "cluster", "list"], ""));
    assert!(table.starts_with("CLUSTER"), "{table}");
    assert!(table.contains(&broker.addr().to_string()), "{table}");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let topics = json(&run_apogee(&["-n", &ns, "topic", "list", "--json"], ""));
        if topics.as_array().expect("array").iter().any(|t| t == "CliTopic") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "CliTopic never listed: {topics}");
    }
    let route = json(&run_apogee(&["-n", &ns, "topic", "route", "-t", "CliTopic", "--json"], ""));
    assert_eq!(route["queueDatas"][0]["writeQueueNums"], 3, "{route}");
    let updated =
        run_apogee(&["-n", &ns, "topic", "update", "-t", "CliTopic", "-q", "5", "-b", &broker.addr().to_string()], "");
    assert!(ok(&updated).contains("CliTopic"));

    let config = json(&run_apogee(&["-n", &ns, "broker", "config", "-b", &broker.addr().to_string(), "--json"], ""));
    assert_eq!(config["brokerName"], "broker-a");
    let runtime = ok(&run_apogee(&["-n", &ns, "broker", "runtime", "-b", &broker.addr().to_string()], ""));
    assert!(runtime.contains("msgPutTotalTodayNow"), "{runtime}");

    ok(&run_apogee(&["-n", &ns, "topic", "delete", "-t", "CliTopic"], ""));
    let topics = json(&run_apogee(&["-n", &ns, "topic", "list", "--json"], ""));
    assert!(!topics.as_array().expect("array").iter().any(|t| t == "CliTopic"), "{topics}");
}

#[test]
fn send_then_consume_round_trips_with_tags_keys_and_properties() {
    let broker = TestBroker::start();
    broker.create_topic("CliRoundTrip", 2);
    let ns = broker.namesrv().to_string();
    let sent = json_lines(&run_apogee(
        &[
            "-n",
            &ns,
            "send",
            "-t",
            "CliRoundTrip",
            "--tags",
            "TagCli",
            "-k",
            "k1,k2",
            "-p",
            "color=green",
            "--json",
            "first",
            "second",
        ],
        "",
    ));
    assert_eq!(sent.len(), 2);
    let piped = json_lines(&run_apogee(
        &["-n", &ns, "send", "-t", "CliRoundTrip", "--json"],
        "line one\nline two\nline three\n",
    ));
    assert_eq!(piped.len(), 3);
    assert!(sent.iter().chain(&piped).all(|s| s["status"] == "SendOk"));

    let got = json_lines(&run_apogee(
        &["-n", &ns, "consume", "-t", "CliRoundTrip", "--from-beginning", "--count", "5", "--timeout", "20", "--json"],
        "",
    ));
    assert_eq!(got.len(), 5);
    let mut bodies: Vec<&str> = got.iter().map(|m| m["body"].as_str().expect("body")).collect();
    bodies.sort();
    assert_eq!(bodies, ["first", "line one", "line three", "line two", "second"]);
    let first = got.iter().find(|m| m["body"] == "first").expect("first");
    assert_eq!(first["tags"], "TagCli");
    assert_eq!(first["keys"], serde_json::json!(["k1", "k2"]));
    assert_eq!(first["properties"]["color"], "green");
    assert_eq!(first["msgId"], sent[0]["msgId"]);

    let stats = json(&run_apogee(&["-n", &ns, "topic", "stats", "-t", "CliRoundTrip", "--json"], ""));
    let total: i64 = stats.as_array().expect("rows").iter().map(|r| r["maxOffset"].as_i64().expect("max")).sum();
    assert_eq!(total, 5);

    // From a time: every message stored since the epoch; from an offset: the rest of each queue.
    let since = json_lines(&run_apogee(
        &["-n", &ns, "consume", "-t", "CliRoundTrip", "--from-time", "0", "--count", "5", "--timeout", "20", "--json"],
        "",
    ));
    assert_eq!(since.len(), 5);
    let from_one = json_lines(&run_apogee(
        &[
            "-n",
            &ns,
            "consume",
            "-t",
            "CliRoundTrip",
            "--from-offset",
            "1",
            "--count",
            "3",
            "--timeout",
            "20",
            "--json",
        ],
        "",
    ));
    assert!(from_one.iter().all(|m| m["queueOffset"].as_i64().expect("offset") >= 1), "{from_one:?}");

    // Tag filter, and a plain-text listing.
    let tagged = ok(&run_apogee(
        &[
            "-n",
            &ns,
            "consume",
            "-t",
            "CliRoundTrip",
            "--from-beginning",
            "--tags",
            "TagCli",
            "--count",
            "2",
            "--timeout",
            "20",
        ],
        "",
    ));
    assert_eq!(tagged.lines().count(), 2, "{tagged}");
    assert!(tagged.lines().all(|l| l.contains("tags=TagCli")), "{tagged}");
}

#[test]
fn messages_are_found_by_key_unique_key_and_offset_id_also_after_a_restart() {
    let broker = TestBroker::start();
    broker.create_topic("CliQuery", 4);
    let ns = broker.namesrv().to_string();
    let mut sent = Vec::new();
    for i in 0..40 {
        let keys = format!("order-{i},shared");
        let body = format!("body {i}");
        let args = ["-n", &ns, "send", "-t", "CliQuery", "-k", &keys, "--json", &body];
        sent.extend(json_lines(&run_apogee(&args, "")));
    }
    assert_eq!(sent.len(), 40);

    let check = |ns: &str| {
        let by_key =
            json_lines(&run_apogee(&["-n", ns, "message", "key", "-t", "CliQuery", "-k", "order-7", "--json"], ""));
        assert_eq!(by_key.len(), 1, "{by_key:?}");
        assert_eq!(by_key[0]["body"], "body 7");
        assert_eq!(by_key[0]["msgId"], sent[7]["msgId"]);
        let shared =
            json_lines(&run_apogee(&["-n", ns, "message", "key", "-t", "CliQuery", "-k", "shared", "--json"], ""));
        assert_eq!(shared.len(), 40, "every message with the shared key");
        let limited = json_lines(&run_apogee(
            &["-n", ns, "message", "key", "-t", "CliQuery", "-k", "shared", "--max", "3", "--json"],
            "",
        ));
        let bodies: Vec<&str> = limited.iter().map(|m| m["body"].as_str().expect("body")).collect();
        assert_eq!(bodies, ["body 37", "body 38", "body 39"], "the newest, oldest first");
        let id = sent[21]["msgId"].as_str().expect("msgId");
        let by_id = json_lines(&run_apogee(&["-n", ns, "message", "id", "-t", "CliQuery", "-i", id, "--json"], ""));
        assert_eq!((by_id.len(), &by_id[0]["body"]), (1, &Value::from("body 21")));
        let missing = run_apogee(&["-n", ns, "message", "key", "-t", "CliQuery", "-k", "order-40"], "");
        assert!(!missing.status.success());
        assert!(String::from_utf8_lossy(&missing.stderr).contains("no message matches"));
    };
    check(&ns);
    // The offset id names this broker's address, which a restart changes (new ports).
    let offset_id = sent[33]["offsetMsgId"].as_str().expect("offsetMsgId");
    let viewed = json_lines(&run_apogee(&["-n", &ns, "message", "offset-id", "-i", offset_id, "--json"], ""));
    assert_eq!(viewed[0]["body"], "body 33");

    // On the wire: QUERY_NOT_FOUND with Java's remark and the index's last update.
    let header = wire::header::QueryMessageRequestHeader {
        topic: "CliQuery".into(),
        key: "nobody".into(),
        max_num: 32,
        begin_timestamp: 0,
        end_timestamp: i64::MAX,
        unique_key_flag: None,
    };
    let cmd = wire::RemotingCommand::request(wire::code::request::QUERY_MESSAGE).with_header(&header);
    let answer = apogee_tests::call(broker.addr(), &cmd);
    assert_eq!(answer.code, wire::code::response::QUERY_NOT_FOUND);
    assert_eq!(answer.remark_str(), "can not find message, maybe time range not correct");
    let head: wire::header::QueryMessageResponseHeader = answer.header().expect("response header");
    assert!(head.index_last_update_timestamp > 0, "{head:?}");

    let broker = broker.restart();
    check(&broker.namesrv().to_string());
}

#[test]
fn errors_say_what_went_wrong_and_exit_nonzero() {
    let broker = TestBroker::start();
    let ns = broker.namesrv().to_string();
    let failures: [(&[&str], &str); 4] = [
        (&["-n", &ns, "topic", "create", "-t", "bad name!"], "not a valid topic name"),
        (&["-n", "127.0.0.1:1", "topic", "list"], "127.0.0.1:1"),
        (&["-n", &ns, "topic", "route", "-t", "NoSuchTopic"], "no route for topic NoSuchTopic"),
        (&["-n", &ns, "consume", "-t", "NoSuchTopic", "--count", "1"], "NoSuchTopic"),
    ];
    for (args, expected) in failures {
        let out = run_apogee(args, "");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr.contains("error:") && stderr.contains(expected), "{args:?}: {stderr}");
    }
    broker.create_topic("CliQuiet", 1);
    let out = run_apogee(&["-n", &ns, "consume", "-t", "CliQuiet", "--count", "1", "--timeout", "1"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only 0 of 1 messages arrived"));
}

#[test]
fn a_running_broker_takes_setting_changes_and_a_read_only_broker_refuses_sends() {
    let broker = TestBroker::start();
    broker.create_topic("CliPerm", 2);
    let ns = broker.namesrv().to_string();
    let addr = broker.addr().to_string();
    let send = || run_apogee(&["-n", &ns, "send", "-t", "CliPerm", "hello"], "");
    ok(&send());

    let result = ok(&run_apogee(&["-n", &ns, "broker", "update", "-b", &addr, "brokerPermission=4"], ""));
    assert!(result.contains("applied: brokerPermission"), "{result}");
    let config = json(&run_apogee(&["-n", &ns, "broker", "config", "-b", &addr, "--json"], ""));
    assert_eq!(config["brokerPermission"], "4");
    // Refused by the broker, or not even tried once the route says read-only.
    let refused = send();
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(why.contains("forbidden") || why.contains("no writable queue"), "{why}");
    // The name server learns it at once: the topic's queues are read-only in its route.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let route = json(&run_apogee(&["-n", &ns, "topic", "route", "-t", "CliPerm", "--json"], ""));
        if route["queueDatas"][0]["perm"] == 4 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the route never turned read-only: {route}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let later =
        ok(&run_apogee(&["-n", &ns, "broker", "update", "-b", &addr, "brokerPermission=6", "listenPort=10911"], ""));
    assert!(later.contains("effective after a restart: listenPort"), "{later}");
    ok(&send());
    for (bad, why) in [
        ("noSuchSetting=1", "unknown setting"),
        ("brokerPermission=rw", "not an integer"),
        ("defaultTopicQueueNums=0", "defaultTopicQueueNums"),
    ] {
        let out = run_apogee(&["-n", &ns, "broker", "update", "-b", &addr, bad], "");
        assert!(!out.status.success(), "{bad} accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains(why), "{bad}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
