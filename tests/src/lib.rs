//! Helpers for the interop tests: start Apogee servers on free loopback ports, talk to them
//! with the `wire` codec, and run the independent clients' scripts in `interop/`.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use namesrv::{NamesrvConfig, NamesrvServer};
use wire::body::{RegisterBrokerBody, TopicConfig};
use wire::header::RegisterBrokerRequestHeader;
use wire::{FrameDecoder, RemotingCommand};

/// How long any one client script may run.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The folder with the client scripts and their `package.json`.
pub fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// A name server on a free loopback port, with its KV file in a temporary folder.
pub struct TestNamesrv {
    pub server: NamesrvServer,
    pub dir: tempfile::TempDir,
}

impl TestNamesrv {
    pub fn start() -> TestNamesrv {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = NamesrvConfig {
            listen_address: [127, 0, 0, 1].into(),
            listen_port: 0,
            kv_config_path: dir.path().join("kvConfig.json"),
            ..Default::default()
        };
        TestNamesrv { server: NamesrvServer::start(config).expect("name server starts"), dir }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
}

/// A broker with its own name server (`--standalone`), both on free loopback ports, its
/// store in a temporary folder with small segments.
pub struct TestBroker {
    pub server: broker::BrokerServer,
    pub dir: tempfile::TempDir,
}

impl TestBroker {
    pub fn start() -> TestBroker {
        Self::start_in(tempfile::tempdir().expect("tempdir"), |_| {})
    }

    /// A broker whose store is in `dir`, its config adjusted by `adjust`.
    pub fn start_in(dir: tempfile::TempDir, adjust: impl FnOnce(&mut broker::BrokerConfig)) -> TestBroker {
        let mut config = broker::BrokerConfig {
            listen_address: [127, 0, 0, 1].into(),
            listen_port: 0,
            namesrv_addr: "127.0.0.1:0".into(),
            store_path_root_dir: dir.path().join("store"),
            mapped_file_size_commit_log: 16 << 20,
            commit_log_cache_bytes: 8 << 20,
            ..Default::default()
        };
        adjust(&mut config);
        let broker = TestBroker { server: broker::BrokerServer::start(config, true).expect("broker starts"), dir };
        broker.wait_registered();
        broker
    }

    /// Waits until the name server lists this broker (it registers in the background).
    fn wait_registered(&self) {
        let cmd = RemotingCommand::request(wire::code::request::GET_BROKER_CLUSTER_INFO);
        let me = self.addr().to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !String::from_utf8_lossy(&call(self.namesrv(), &cmd).body).contains(&me) {
            assert!(Instant::now() < deadline, "the broker never registered with its name server");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the broker cleanly and starts it again on the same store (on new ports).
    pub fn restart(self) -> TestBroker {
        self.restart_with(|_| {})
    }

    /// As [`TestBroker::restart`], the new start's config adjusted by `adjust`.
    pub fn restart_with(self, adjust: impl FnOnce(&mut broker::BrokerConfig)) -> TestBroker {
        let TestBroker { server, dir } = self;
        server.stop().expect("clean stop");
        Self::start_in(dir, adjust)
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn namesrv(&self) -> SocketAddr {
        self.server.namesrv_addr().expect("standalone name server")
    }

    /// Creates `topic` with `queues` queues (as `mqadmin updateTopic` does) and waits until
    /// the name server routes it.
    pub fn create_topic(&self, topic: &str, queues: i32) {
        let header = wire::header::CreateTopicRequestHeader::new(topic, queues);
        let cmd = RemotingCommand::request(wire::code::request::UPDATE_AND_CREATE_TOPIC).with_header(&header);
        let answer = call(self.addr(), &cmd);
        assert_eq!(answer.code, wire::code::response::SUCCESS, "topic created: {}", answer.remark_str());
        let route = RemotingCommand::request(wire::code::request::GET_ROUTEINFO_BY_TOPIC)
            .with_header(&wire::header::GetRouteInfoRequestHeader { topic: topic.into(), ..Default::default() });
        let deadline = Instant::now() + Duration::from_secs(10);
        while call(self.namesrv(), &route).code != wire::code::response::SUCCESS {
            assert!(Instant::now() < deadline, "the name server never learned of topic {topic}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One request and its answer over a fresh connection.
pub fn call(addr: SocketAddr, cmd: &RemotingCommand) -> RemotingCommand {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(&wire::encode_to_bytes(cmd)).expect("send");
    read_frame(&mut stream)
}

/// A connection that registers a broker (without being one) and keeps it registered while open.
pub struct FakeBroker {
    stream: TcpStream,
}

impl FakeBroker {
    /// Registers `broker_name` at `broker_addr` with `topics` (name, queue count).
    pub fn register(namesrv: SocketAddr, broker_name: &str, broker_addr: &str, topics: &[(&str, i32)]) -> FakeBroker {
        let mut body = RegisterBrokerBody::default();
        for (topic, queues) in topics {
            body.topic_config_serialize_wrapper
                .topic_config_table
                .insert(topic.to_string(), TopicConfig::new(*topic, *queues));
        }
        let header = RegisterBrokerRequestHeader {
            broker_name: broker_name.into(),
            broker_addr: broker_addr.into(),
            cluster_name: "DefaultCluster".into(),
            ..Default::default()
        };
        let cmd = body.to_request(header, false);
        let mut stream = TcpStream::connect(namesrv).expect("connect to name server");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        stream.write_all(&wire::encode_to_bytes(&cmd)).expect("register");
        let answer = read_frame(&mut stream);
        assert_eq!(answer.code, wire::code::response::SUCCESS, "registration accepted");
        FakeBroker { stream }
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

fn read_frame(stream: &mut TcpStream) -> RemotingCommand {
    let decoder = FrameDecoder::new(16 << 20);
    let mut buf = BytesMut::new();
    loop {
        if let Some(cmd) = decoder.decode(&mut buf).expect("valid frame") {
            return cmd;
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).expect("read");
        assert!(n > 0, "connection closed before the answer");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Runs `node interop/<script> args…`; panics with install instructions if ali-ons is missing.
pub fn run_node(script: &str, args: &[&str]) -> Output {
    let dir = interop_dir();
    assert!(
        dir.join("node_modules").join("ali-ons").exists(),
        "npm ali-ons is not installed: run `npm ci --prefix {}` (.ci/run does)",
        dir.display()
    );
    run(Command::new("node").arg(dir.join(script)).args(args))
}

/// Runs `python3 interop/<script> args…`; panics with install instructions if the client is missing.
pub fn run_python(script: &str, args: &[&str]) -> Output {
    let probe = Command::new("python3").args(["-c", "import rocketmq.client"]).output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "PyPI rocketmq is not installed: run `python3 -m pip install rocketmq==0.4.4` (.ci/run does)"
    );
    run(Command::new("python3").arg(interop_dir().join(script)).args(args))
}

/// Runs a client to completion, killing it after `CLIENT_TIMEOUT`.
fn run(cmd: &mut Command) -> Output {
    run_to_end(cmd.current_dir(interop_dir()), "", CLIENT_TIMEOUT)
}

/// Runs `cmd` with `stdin` as its input, killed (and the test failed) after `timeout`. Output
/// goes to files, not pipes: a child writing more than a pipe holds would otherwise block until
/// it is read, which is after it exits.
fn run_to_end(cmd: &mut Command, stdin: &str, timeout: Duration) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).expect("write stdin");
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} timed out after {timeout:?}\nstdout: {}\nstderr: {}",
                std::fs::read_to_string(&out_path).unwrap_or_default(),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).expect("stdout"),
        stderr: std::fs::read(&err_path).expect("stderr"),
    }
}

/// The last stdout line of a successful client run, as JSON.
pub fn json_result(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed ({})\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no JSON in: {stdout}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON {line}: {e}"))
}

/// A workspace binary next to the test executables, built (or found up to date) once per test
/// process: `cargo test` builds a package's binaries only for that package's own tests.
pub fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    static BUILT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target directory");
    let mut built = BUILT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if !built.contains(bin) {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", package, "--bin", bin])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building {bin} failed");
        built.insert(bin.to_string());
    }
    dir.join(bin)
}

/// The `apogee` CLI.
pub fn apogee_bin() -> PathBuf {
    workspace_bin("client", "apogee")
}

/// Runs `apogee args…` with `stdin` as its input, killed after `CLIENT_TIMEOUT`.
pub fn run_apogee(args: &[&str], stdin: &str) -> Output {
    run_bin(&apogee_bin(), args, stdin, CLIENT_TIMEOUT)
}

/// Runs `bin args…` with `stdin` as its input, killed (and the test failed) after `timeout`.
pub fn run_bin(bin: &Path, args: &[&str], stdin: &str, timeout: Duration) -> Output {
    run_to_end(Command::new(bin).args(args), stdin, timeout)
}
