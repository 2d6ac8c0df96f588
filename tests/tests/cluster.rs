//! A two-host cluster on one machine, from `deploy/examples/cluster/`: two name servers and two
//! brokers, each on its own loopback address (127.0.0.2–127.0.0.5), started as the real
//! binaries. A producer keeps sending while broker-b is killed (kill -9), restarted, and hung
//! (SIGSTOP, so that only the name servers' expiry can notice); every acknowledged message is in
//! the brokers at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apogee_tests::workspace_bin;
use broker::BrokerConfig;
use client::{Admin, ClientConfig, Message, Producer, ProducerConfig, Target, TopicSpec};
use namesrv::NamesrvConfig;

const TOPIC: &str = "ClusterTest";
/// Name servers forget a broker that has not registered for this long (Java: 120 s).
const EXPIRY_MS: u64 = 3_000;
/// How long any one state change may take to show.
const WAIT: Duration = Duration::from_secs(20);

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/cluster").join(name)
}

/// A free port on `ip` whose port − 2 is free too (a broker's VIP channel).
fn free_port(ip: IpAddr, with_vip: bool) -> u16 {
    for _ in 0..100 {
        let port = TcpListener::bind((ip, 0)).and_then(|l| l.local_addr()).expect("bind").port();
        if !with_vip || (port > 2 && TcpListener::bind((ip, port - 2)).is_ok()) {
            return port;
        }
    }
    panic!("no free port pair on {ip}");
}

/// A server process, killed when dropped; its output goes to files in the test's folder.
struct Server {
    name: String,
    child: Child,
}

impl Server {
    fn start(bin: &Path, config: &Path, log_dir: &Path, name: &str) -> Server {
        let stderr = std::fs::File::create(log_dir.join(format!("{name}.log"))).expect("log file");
        let mut child = Command::new(bin)
            .arg("-c")
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        reader.read_line(&mut line).expect("boot line");
        if !line.contains("boot success") {
            let _ = child.kill();
            let log = std::fs::read_to_string(log_dir.join(format!("{name}.log"))).unwrap_or_default();
            panic!("{name} did not start: {line:?}\n{log}");
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        Server { name: name.to_owned(), child }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill {signal} {}", self.name);
    }

    fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Cluster {
    dir: tempfile::TempDir,
    namesrvs: Vec<SocketAddr>,
    broker_configs: BTreeMap<String, PathBuf>,
}

impl Cluster {
    /// Writes the example configs with this machine's addresses, ports and folders.
    fn configure() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let namesrvs: Vec<SocketAddr> = [[127, 0, 0, 2], [127, 0, 0, 3]]
            .into_iter()
            .map(|ip| {
                let ip = IpAddr::from(ip);
                SocketAddr::new(ip, free_port(ip, false))
            })
            .collect();
        let namesrv_list = namesrvs.iter().map(ToString::to_string).collect::<Vec<_>>().join(";");
        for (i, addr) in namesrvs.iter().enumerate() {
            let (mut config, _) = NamesrvConfig::load(&example("namesrv.toml")).expect("example namesrv.toml");
            config.listen_address = addr.ip();
            config.listen_port = addr.port();
            config.kv_config_path = dir.path().join(format!("namesrv-{i}/kvConfig.json"));
            config.broker_channel_expired_time = EXPIRY_MS;
            config.scan_not_active_broker_interval = 250;
            std::fs::write(dir.path().join(format!("namesrv-{i}.toml")), config.to_toml()).expect("write");
        }
        let mut broker_configs = BTreeMap::new();
        for (name, ip) in [("broker-a", [127, 0, 0, 4]), ("broker-b", [127, 0, 0, 5])] {
            let (mut config, _) = BrokerConfig::load(&example(&format!("{name}.toml"))).expect("example broker config");
            assert_eq!(config.broker_name, name);
            let ip = IpAddr::from(ip);
            config.listen_address = ip;
            config.broker_ip1 = ip;
            config.listen_port = free_port(ip, true);
            config.namesrv_addr = namesrv_list.clone();
            config.store_path_root_dir = dir.path().join(name);
            config.register_name_server_period = 500;
            config.mapped_file_size_commit_log = 16 << 20;
            config.commit_log_cache_bytes = 8 << 20;
            let path = dir.path().join(format!("{name}.toml"));
            std::fs::write(&path, config.to_toml()).expect("write");
            broker_configs.insert(name.to_owned(), path);
        }
        Cluster { dir, namesrvs, broker_configs }
    }

    fn start_namesrv(&self, i: usize) -> Server {
        let config = self.dir.path().join(format!("namesrv-{i}.toml"));
        let bin = workspace_bin("namesrv", "apogee-namesrv");
        Server::start(&bin, &config, self.dir.path(), &format!("namesrv-{i}"))
    }

    fn start_broker(&self, name: &str) -> Server {
        let bin = workspace_bin("broker", "apogee-broker");
        Server::start(&bin, &self.broker_configs[name], self.dir.path(), name)
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }
}

/// The brokers each name server routes the topic to.
async fn routed_brokers(admins: &[Admin]) -> Vec<BTreeSet<String>> {
    let mut seen = Vec::new();
    for admin in admins {
        let route = admin.topic_route(TOPIC).await.map(|r| r.broker_datas).unwrap_or_default();
        seen.push(route.into_iter().map(|b| b.broker_name).collect());
    }
    seen
}

/// Waits until every name server routes the topic to exactly `brokers`; returns how long it took.
async fn wait_for_routes(admins: &[Admin], brokers: &[&str], while_waiting: &mut Sending) -> Duration {
    let want: BTreeSet<String> = brokers.iter().map(|b| b.to_string()).collect();
    let start = Instant::now();
    loop {
        let seen = routed_brokers(admins).await;
        if seen.iter().all(|s| *s == want) {
            return start.elapsed();
        }
        assert!(start.elapsed() < WAIT, "routes never became {want:?}; they are {seen:?}");
        while_waiting.send_one().await;
    }
}

/// The producer's side of the test: every send must succeed; acknowledgements are counted per
/// broker.
struct Sending {
    producer: Producer,
    sent: usize,
    acked: BTreeMap<String, i64>,
    recent: Vec<String>,
}

impl Sending {
    async fn send_one(&mut self) {
        let body = format!("message {}", self.sent);
        self.sent += 1;
        let result = self.producer.send(Message::new(TOPIC, body)).await.unwrap_or_else(|e| {
            panic!("send {} failed; acknowledged so far per broker: {:?}: {e}", self.sent, self.acked)
        });
        *self.acked.entry(result.queue.broker_name.clone()).or_default() += 1;
        self.recent.push(result.queue.broker_name);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    /// Sends `n` more and returns the brokers that took them.
    async fn send(&mut self, n: usize) -> BTreeSet<String> {
        self.recent.clear();
        for _ in 0..n {
            self.send_one().await;
        }
        self.recent.iter().cloned().collect()
    }

    /// Sends until a message lands on `broker`.
    async fn until_on(&mut self, broker: &str) {
        let start = Instant::now();
        self.recent.clear();
        while !self.recent.iter().any(|b| b == broker) {
            assert!(start.elapsed() < WAIT, "no send reached {broker}; recent: {:?}", self.recent);
            self.send_one().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_rides_out_a_broker_crash_a_hang_and_a_restart() {
    let cluster = Cluster::configure();
    let _ns = [cluster.start_namesrv(0), cluster.start_namesrv(1)];
    let _broker_a = cluster.start_broker("broker-a");
    let broker_b = cluster.start_broker("broker-b");

    let namesrv_list = cluster.namesrvs.iter().map(ToString::to_string).collect::<Vec<_>>().join(";");
    let admins: Vec<Admin> =
        cluster.namesrvs.iter().map(|ns| Admin::start(ClientConfig::new(ns.to_string())).expect("admin")).collect();
    let deadline = Instant::now() + WAIT;
    for admin in &admins {
        while admin.cluster_info().await.map(|c| c.broker_addr_table.len()).unwrap_or(0) < 2 {
            assert!(Instant::now() < deadline, "both brokers never registered with both name servers");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // autoCreateTopicEnable is off in the example, as in production: create the topic first.
    let created = admins[0].create_topic(&TopicSpec::new(TOPIC, 4), &Target::Cluster(None)).await.expect("create");
    assert_eq!(created.len(), 2, "topic created on both brokers");

    let mut config = ProducerConfig::new("PG_cluster", namesrv_list);
    config.client.poll_name_server_interval = Duration::from_millis(500);
    config.client.request_timeout = Duration::from_secs(1);
    config.isolation = Duration::from_secs(1);
    let mut sending = Sending {
        producer: Producer::start(config).expect("producer"),
        sent: 0,
        acked: BTreeMap::new(),
        recent: vec![],
    };
    wait_for_routes(&admins, &["broker-a", "broker-b"], &mut sending).await;
    let used = sending.send(20).await;
    assert_eq!(used.len(), 2, "sends reach both brokers: {used:?}");

    // kill -9: the connections close, so both name servers drop broker-b at once, and the
    // producer's failed attempt on broker-b is retried on broker-a.
    broker_b.kill_9();
    let took = wait_for_routes(&admins, &["broker-a"], &mut sending).await;
    eprintln!("broker-b left the routes {took:?} after kill -9");
    sending.send(20).await;
    let used = sending.send(20).await;
    assert_eq!(used, BTreeSet::from(["broker-a".to_owned()]), "after its route refresh the producer uses broker-a");
    for i in 0..2 {
        assert!(cluster.log(&format!("namesrv-{i}")).contains("its connection closed"), "namesrv-{i} saw the close");
    }

    // Restarted on the same store: back in the routes, and taking sends again.
    let broker_b = cluster.start_broker("broker-b");
    let took = wait_for_routes(&admins, &["broker-a", "broker-b"], &mut sending).await;
    eprintln!("broker-b back in the routes {took:?} after restart");
    sending.until_on("broker-b").await;

    // A hung broker keeps its connections open: only the expiry removes it.
    broker_b.signal("-STOP");
    let took = wait_for_routes(&admins, &["broker-a"], &mut sending).await;
    eprintln!("the hung broker-b left the routes {took:?} after SIGSTOP (expiry {EXPIRY_MS} ms)");
    for i in 0..2 {
        assert!(cluster.log(&format!("namesrv-{i}")).contains("no registration in time"), "namesrv-{i} expired it");
    }
    broker_b.signal("-CONT");
    let took = wait_for_routes(&admins, &["broker-a", "broker-b"], &mut sending).await;
    eprintln!("broker-b back in the routes {took:?} after SIGCONT");
    sending.until_on("broker-b").await;

    // Every acknowledged message is stored, on the broker that acknowledged it, across the
    // kill -9 (SYNC_FLUSH, as in the example). A broker may hold a few more: an attempt that
    // timed out against the hung broker-b (or was cut off by the kill after it was written) was
    // retried on broker-a, and broker-b stored it when it went on: at-least-once, as in Java.
    let stats = admins[0].topic_stats(TOPIC).await.expect("topic stats");
    let mut stored: BTreeMap<String, i64> = BTreeMap::new();
    for (queue, offsets) in &stats.offset_table {
        *stored.entry(queue.broker_name.clone()).or_default() += offsets.max_offset - offsets.min_offset;
    }
    eprintln!("{} sends acknowledged {:?}; stored {stored:?}", sending.sent, sending.acked);
    for (broker, acked) in &sending.acked {
        let kept = stored.get(broker).copied().unwrap_or(0);
        assert!(kept >= *acked, "{broker} acknowledged {acked} but stores {kept}");
        assert!(kept - acked <= 10, "{broker} stores {kept}, far more than the {acked} it acknowledged");
    }
    sending.producer.shutdown().await;
    for admin in admins {
        admin.shutdown().await;
    }
}
