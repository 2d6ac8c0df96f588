//! The real `apogee-namesrv` binary on loopback, driven with the `wire` codec: registration,
//! routes, expiry, disconnects, KV persistence, config, and bad input.

mod common;

use std::io::Write;
use std::process::Command;

use common::*;
use wire::body::{ClusterInfo, DataVersion, JsonBody, KvTable, TopicList, TopicRouteData};
use wire::code::{request, response};
use wire::header::*;
use wire::{RemotingCommand, VERSION_4_9_8};

fn route_request(topic: &str, version: i32) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC)
        .with_header(&GetRouteInfoRequestHeader { topic: topic.into(), accept_standard_json_only: None });
    cmd.version = version;
    cmd
}

#[test]
fn registered_topics_are_routed_and_listed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ns = Namesrv::start(dir.path(), "");
    let mut broker = ns.connect();
    let answer = broker.call(register_request("broker-a", 0, "127.0.0.1:10911", &[("TopicA", 4), ("TopicB", 2)], 1));
    assert_eq!(answer.code, response::SUCCESS);
    let slave = broker.call(register_request("broker-a", 1, "127.0.0.1:10921", &[("TopicA", 4)], 1));
    let h: RegisterBrokerResponseHeader = slave.header().expect("register response header");
    assert_eq!(h.master_addr.as_deref(), Some("127.0.0.1:10911"));
    assert_eq!(h.ha_server_addr.as_deref(), Some("127.0.0.1:10911-ha"));

    let mut client = ns.connect();
    // A 4.9.8 client gets standard JSON, an older one fastjson's bare integer keys.
    let modern = client.call(route_request("TopicA", VERSION_4_9_8));
    assert_eq!(modern.code, response::SUCCESS);
    let text = String::from_utf8(modern.body.to_vec()).expect("utf8");
    assert!(text.contains(r#""brokerAddrs":{"0":"127.0.0.1:10911","1":"127.0.0.1:10921"}"#), "{text}");
    let route = TopicRouteData::decode(&modern.body).expect("route");
    assert_eq!(route.queue_datas.len(), 1);
    assert_eq!(route.queue_datas[0].read_queue_nums, 4);
    assert_eq!(route.broker_datas[0].broker_name, "broker-a");
    assert!(text.contains(r#""topicSysFlag":0"#) && text.contains(r#""enableActingMaster":false"#), "{text}");

    let old = client.call(route_request("TopicA", 63));
    let text = String::from_utf8(old.body.to_vec()).expect("utf8");
    assert!(text.contains(r#"{0:"127.0.0.1:10911",1:"127.0.0.1:10921"}"#), "{text}");
    assert_eq!(TopicRouteData::decode(&old.body).expect("route"), route);

    let missing = client.call(route_request("Nope", VERSION_4_9_8));
    assert_eq!(missing.code, response::TOPIC_NOT_EXIST);
    assert_eq!(
        missing.remark_str(),
        "No topic route info in name server for the topic: Nope\nSee http://rocketmq.apache.org/docs/faq/ for further details."
    );

    let info = client.call(RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO));
    let info = ClusterInfo::decode(&info.body).expect("cluster info");
    assert!(info.cluster_addr_table["DefaultCluster"].contains("broker-a"));
    assert_eq!(info.broker_addr_table["broker-a"].broker_addrs.len(), 2);

    let all = client.call(RemotingCommand::request(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER));
    let all = TopicList::decode(&all.body).expect("topic list");
    assert_eq!(all.topic_list.iter().map(String::as_str).collect::<Vec<_>>(), ["TopicA", "TopicB"]);
    let by_cluster = client.call(
        RemotingCommand::request(request::GET_TOPICS_BY_CLUSTER)
            .with_header(&GetTopicsByClusterRequestHeader { cluster: "DefaultCluster".into() }),
    );
    assert_eq!(TopicList::decode(&by_cluster.body).expect("list").topic_list.len(), 2);
    let system = client.call(RemotingCommand::request(request::GET_SYSTEM_TOPIC_LIST_FROM_NS));
    let system = TopicList::decode(&system.body).expect("list");
    assert!(system.topic_list.contains("DefaultCluster") && system.topic_list.contains("broker-a"));
    assert!(system.broker_addr.is_some());
    for code in [
        request::GET_UNIT_TOPIC_LIST,
        request::GET_HAS_UNIT_SUB_TOPIC_LIST,
        request::GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST,
    ] {
        let list = client.call(RemotingCommand::request(code));
        assert_eq!(list.code, response::SUCCESS);
        assert!(TopicList::decode(&list.body).expect("list").topic_list.is_empty());
    }
}

#[test]
fn data_version_write_perm_and_topic_deletion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ns = Namesrv::start(dir.path(), "");
    let mut broker = ns.connect();
    broker.call(register_request("broker-a", 0, "127.0.0.1:10911", &[("TopicA", 4)], 7));

    let query = |version: DataVersion| {
        RemotingCommand::request(request::QUERY_DATA_VERSION)
            .with_header(&QueryDataVersionRequestHeader {
                broker_name: "broker-a".into(),
                broker_addr: "127.0.0.1:10911".into(),
                cluster_name: "DefaultCluster".into(),
                broker_id: 0,
            })
            .with_body(version.encode())
    };
    let same = broker.call(query(DataVersion { counter: 7, timestamp: 1_700_000_000_000 }));
    let h: QueryDataVersionResponseHeader = same.header().expect("header");
    assert!(!h.changed);
    assert_eq!(DataVersion::decode(&same.body).expect("version").counter, 7);
    let other = broker.call(query(DataVersion { counter: 8, timestamp: 1_700_000_000_000 }));
    assert!(other.header::<QueryDataVersionResponseHeader>().expect("header").changed);

    let wipe = broker.call(
        RemotingCommand::request(request::WIPE_WRITE_PERM_OF_BROKER)
            .with_header(&WipeWritePermOfBrokerRequestHeader { broker_name: "broker-a".into() }),
    );
    assert_eq!(wipe.header::<WipeWritePermOfBrokerResponseHeader>().expect("header").wipe_topic_count, 1);
    let route = TopicRouteData::decode(&broker.call(route_request("TopicA", VERSION_4_9_8)).body).expect("route");
    assert_eq!(route.queue_datas[0].perm, wire::body::perm::READ);
    let add = broker.call(
        RemotingCommand::request(request::ADD_WRITE_PERM_OF_BROKER)
            .with_header(&AddWritePermOfBrokerRequestHeader { broker_name: "broker-a".into() }),
    );
    assert_eq!(add.header::<AddWritePermOfBrokerResponseHeader>().expect("header").add_topic_count, 1);
    let route = TopicRouteData::decode(&broker.call(route_request("TopicA", VERSION_4_9_8)).body).expect("route");
    assert_eq!(route.queue_datas[0].perm, wire::body::perm::READ | wire::body::perm::WRITE);

    let delete = broker.call(
        RemotingCommand::request(request::DELETE_TOPIC_IN_NAMESRV)
            .with_header(&DeleteTopicFromNamesrvRequestHeader { topic: "TopicA".into(), cluster_name: None }),
    );
    assert_eq!(delete.code, response::SUCCESS);
    assert_eq!(broker.call(route_request("TopicA", VERSION_4_9_8)).code, response::TOPIC_NOT_EXIST);

    let unregister =
        broker.call(RemotingCommand::request(request::UNREGISTER_BROKER).with_header(&UnRegisterBrokerRequestHeader {
            broker_name: "broker-a".into(),
            broker_addr: "127.0.0.1:10911".into(),
            cluster_name: "DefaultCluster".into(),
            broker_id: 0,
        }));
    assert_eq!(unregister.code, response::SUCCESS);
    let info = ClusterInfo::decode(&broker.call(RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO)).body)
        .expect("cluster info");
    assert!(info.broker_addr_table.is_empty());
}

#[test]
fn bad_body_crc_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ns = Namesrv::start(dir.path(), "");
    let mut broker = ns.connect();
    let mut cmd = register_request("broker-a", 0, "127.0.0.1:10911", &[("TopicA", 4)], 1);
    cmd.ext_fields.insert("bodyCrc32", "12345");
    let answer = broker.call(cmd);
    assert_eq!(answer.code, response::SYSTEM_ERROR);
    assert_eq!(answer.remark_str(), "crc32 not match");
    assert_eq!(broker.call(route_request("TopicA", VERSION_4_9_8)).code, response::TOPIC_NOT_EXIST);
}

#[test]
fn a_broker_leaves_when_its_connection_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ns = Namesrv::start(dir.path(), "");
    let mut broker = ns.connect();
    broker.call(register_request("broker-a", 0, "127.0.0.1:10911", &[("TopicA", 4)], 1));
    let mut client = ns.connect();
    assert_eq!(client.call(route_request("TopicA", VERSION_4_9_8)).code, response::SUCCESS);
    drop(broker);
    eventually("route removed after disconnect", || {
        client.call(route_request("TopicA", VERSION_4_9_8)).code == response::TOPIC_NOT_EXIST
    });
    eventually("disconnect logged", || ns.log().contains("broker removed: its connection closed"));
}

#[test]
fn a_silent_broker_expires() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ns = Namesrv::start(dir.path(), "brokerChannelExpiredTime = 600\nscanNotActiveBrokerInterval = 100\n");
    let mut broker = ns.connect();
    broker.call(register_request("broker-a", 0, "127.0.0.1:10911", &[("TopicA", 4)], 1));
    let mut client = ns.connect();
    assert_eq!(client.call(route_request("TopicA", VERSION_4_9_8)).code, response::SUCCESS);
    // The broker's connection stays open; only its silence removes it.
    eventually("silent broker expired", || {
        client.call(route_request("TopicA", VERSION_4_9_8)).code == response::TOPIC_NOT_EXIST
    });
    eventually("expiry logged", || ns.log().contains("broker removed: no registration in time"));
    let answer = broker.call(register_request("broker-a", 0, "127.0.0.1:10911", &[("TopicA", 4)], 1));
    assert_eq!(answer.code, response::SUCCESS);
    assert_eq!(client.call(route_request("TopicA", VERSION_4_9_8)).code, response::SUCCESS, "registers again");
}

fn put_kv(namespace: &str, key: &str, value: &str) -> RemotingCommand {
    RemotingCommand::request(request::PUT_KV_CONFIG).with_header(&PutKvConfigRequestHeader {
        namespace: namespace.into(),
        key: key.into(),
        value: value.into(),
    })
}

fn get_kv(namespace: &str, key: &str) -> RemotingCommand {
    RemotingCommand::request(request::GET_KV_CONFIG)
        .with_header(&GetKvConfigRequestHeader { namespace: namespace.into(), key: key.into() })
}

#[test]
fn kv_config_persists_across_restarts_and_feeds_order_topics() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let ns = Namesrv::start(dir.path(), "orderMessageEnable = true");
        let mut c = ns.connect();
        assert_eq!(c.call(put_kv("ORDER_TOPIC_CONFIG", "TopicA", "broker-a:4")).code, response::SUCCESS);
        assert_eq!(c.call(put_kv("ns", "gone", "soon")).code, response::SUCCESS);
        let delete = RemotingCommand::request(request::DELETE_KV_CONFIG)
            .with_header(&DeleteKvConfigRequestHeader { namespace: "ns".into(), key: "gone".into() });
        assert_eq!(c.call(delete).code, response::SUCCESS);
        // kill -9: what was acknowledged must already be on disk.
    }
    let ns = Namesrv::start(dir.path(), "orderMessageEnable = true");
    let mut c = ns.connect();
    let got = c.call(get_kv("ORDER_TOPIC_CONFIG", "TopicA"));
    assert_eq!(got.code, response::SUCCESS);
    assert_eq!(got.header::<GetKvConfigResponseHeader>().expect("header").value.as_deref(), Some("broker-a:4"));
    let gone = c.call(get_kv("ns", "gone"));
    assert_eq!(gone.code, response::QUERY_NOT_FOUND);
    assert_eq!(gone.remark_str(), "No config item, Namespace: ns Key: gone");
    let list = c.call(
        RemotingCommand::request(request::GET_KVLIST_BY_NAMESPACE)
            .with_header(&GetKvListByNamespaceRequestHeader { namespace: "ORDER_TOPIC_CONFIG".into() }),
    );
    assert_eq!(KvTable::decode(&list.body).expect("kv table").table["TopicA"], "broker-a:4");

    // A registering broker learns the order topics; routes carry orderTopicConf.
    let registered = c.call(register_request("broker-a", 0, "127.0.0.1:10911", &[("TopicA", 4)], 1));
    assert_eq!(KvTable::decode(&registered.body).expect("kv table").table["TopicA"], "broker-a:4");
    let route = TopicRouteData::decode(&c.call(route_request("TopicA", VERSION_4_9_8)).body).expect("route");
    assert_eq!(route.order_topic_conf.as_deref(), Some("broker-a:4"));
}

#[test]
fn corrupt_kv_file_stops_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("kvConfig.json"), "{\"configTable\":{").expect("write");
    let config = dir.path().join("namesrv.toml");
    std::fs::write(
        &config,
        format!(
            "listenAddress = \"127.0.0.1\"\nlistenPort = 0\nkvConfigPath = \"{}\"\n",
            dir.path().join("kvConfig.json").display()
        ),
    )
    .expect("write");
    let out = Command::new(BIN).arg("-c").arg(&config).output().expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("corrupt") && stderr.contains("kvConfig.json"), "{stderr}");
}

#[test]
fn command_line_and_config_errors() {
    let help = Command::new(BIN).arg("--help").output().expect("run");
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("-c"));

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("namesrv.toml");
    std::fs::write(&config, "listenPort = 9999\norderMessageEnable = true\n").expect("write");
    let printed = Command::new(BIN).arg("-c").arg(&config).arg("-p").output().expect("run");
    assert!(printed.status.success());
    let text = String::from_utf8_lossy(&printed.stdout);
    assert!(text.contains("listenPort = 9999") && text.contains("orderMessageEnable = true"), "{text}");

    std::fs::write(&config, "listenPort = \"many\"\n").expect("write");
    let bad = Command::new(BIN).arg("-c").arg(&config).output().expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("listenPort"));

    let missing = Command::new(BIN).arg("-c").arg(dir.path().join("absent.toml")).output().expect("run");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("absent.toml"));
}

#[test]
fn a_port_in_use_is_refused_not_shared() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Namesrv::start(dir.path(), "");
    let second_dir = tempfile::tempdir().expect("tempdir");
    let config = second_dir.path().join("namesrv.toml");
    let mut file = std::fs::File::create(&config).expect("create");
    writeln!(
        file,
        "listenAddress = \"127.0.0.1\"\nlistenPort = {}\nkvConfigPath = \"{}\"",
        first.addr.port(),
        second_dir.path().join("kv.json").display()
    )
    .expect("write");
    let out = Command::new(BIN).arg("-c").arg(&config).output().expect("run");
    assert!(!out.status.success(), "a second name server must not share the port");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot listen") && stderr.contains(&first.addr.port().to_string()), "{stderr}");
}

#[test]
fn config_can_be_read_and_updated_but_not_the_blacklisted_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ns = Namesrv::start(dir.path(), "");
    let mut c = ns.connect();
    let update =
        |body: &str| RemotingCommand::request(request::UPDATE_NAMESRV_CONFIG).with_body(body.as_bytes().to_vec());
    assert_eq!(c.call(update("orderMessageEnable=true\n")).code, response::SUCCESS);
    let refused = c.call(update("kvConfigPath=/tmp/elsewhere\n"));
    assert_eq!(refused.code, response::NO_PERMISSION);
    assert_eq!(refused.remark_str(), "Can not update config in black list.");
    assert_eq!(c.call(update("scanNotActiveBrokerInterval=soon\n")).code, response::SYSTEM_ERROR);
    let config = c.call(RemotingCommand::request(request::GET_NAMESRV_CONFIG));
    let text = String::from_utf8(config.body.to_vec()).expect("utf8");
    assert!(text.contains("orderMessageEnable=true\n"), "{text}");
    assert!(text.contains("kvConfigPath=") && !text.contains("/tmp/elsewhere"), "{text}");
}

#[test]
fn bad_input_is_answered_or_closed_and_others_keep_being_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ns = Namesrv::start(dir.path(), "");
    let mut healthy = ns.connect();
    healthy.call(register_request("broker-a", 0, "127.0.0.1:10911", &[("TopicA", 4)], 1));

    // An unknown code is answered, not dropped.
    let unknown = healthy.call(RemotingCommand::request(9999));
    assert_eq!(unknown.code, response::REQUEST_CODE_NOT_SUPPORTED);
    assert_eq!(unknown.remark_str(), " request type 9999 not supported");
    // A missing header field names the field.
    let bad_header = healthy.call(RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC));
    assert_eq!(bad_header.code, response::SYSTEM_ERROR);
    assert!(bad_header.remark_str().contains("topic"), "{}", bad_header.remark_str());
    // A oneway request gets no answer: the next answer is for the next request.
    healthy.send(put_kv("ns", "k", "v").mark_oneway());
    let next = healthy.call(get_kv("ns", "k"));
    assert_eq!(next.code, response::SUCCESS);

    let garbage = |bytes: &[u8]| {
        let mut conn = ns.connect();
        conn.stream.write_all(bytes).expect("write");
        assert!(conn.read().is_none(), "connection closed after {bytes:02x?}");
    };
    garbage(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]); // 2 GiB frame: refused before allocating
    garbage(&[0, 0, 0, 12, 0, 0, 0, 4, b'{', b'x', b'y', b'z', 0, 0, 0, 0]); // invalid JSON header
    garbage(&[0, 0, 0, 8, 9, 0, 0, 1, 0, 0, 0, 0]); // unknown serialize type
    garbage(&[0, 0, 0, 1]); // length below the minimum

    assert_eq!(healthy.call(route_request("TopicA", VERSION_4_9_8)).code, response::SUCCESS);
    assert_eq!(ns.connect().call(route_request("TopicA", VERSION_4_9_8)).code, response::SUCCESS);
}

#[test]
fn a_compressed_registration_is_understood() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ns = Namesrv::start(dir.path(), "");
    let plain = register_request("broker-a", 0, "127.0.0.1:10911", &[("Zipped", 6)], 1);
    let body = wire::body::RegisterBrokerBody::decode_any(&plain.body, false).expect("body");
    let header: RegisterBrokerRequestHeader = plain.header().expect("header");
    let cmd = body.to_request(header, true);
    let mut broker = ns.connect();
    assert_eq!(broker.call(cmd).code, response::SUCCESS);
    let route = TopicRouteData::decode(&broker.call(route_request("Zipped", VERSION_4_9_8)).body).expect("route");
    assert_eq!(route.queue_datas[0].write_queue_nums, 6);

    // A body that claims compression but is not: an error answer, and the connection lives on.
    let mut bogus = register_request("broker-b", 0, "127.0.0.1:10912", &[("Other", 1)], 1);
    bogus.ext_fields.insert("compressed", "true");
    let answer = broker.call(bogus);
    assert_eq!(answer.code, response::SYSTEM_ERROR);
    assert!(answer.remark_str().contains("RegisterBrokerBody"), "{}", answer.remark_str());
    assert_eq!(broker.call(route_request("Zipped", VERSION_4_9_8)).code, response::SUCCESS);
}
