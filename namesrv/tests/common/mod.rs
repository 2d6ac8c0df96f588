//! Helpers for the name server integration tests: start the real binary on a free port, talk to
//! it over loopback with the `wire` codec.

#![allow(dead_code)] // each test file uses its own subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use wire::body::{RegisterBrokerBody, TopicConfig};
use wire::header::RegisterBrokerRequestHeader;
use wire::{FrameDecoder, RemotingCommand};

pub const BIN: &str = env!("CARGO_BIN_EXE_apogee-namesrv");
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A running `apogee-namesrv`, killed on drop.
pub struct Namesrv {
    pub child: Child,
    pub addr: SocketAddr,
    pub config_path: PathBuf,
    /// The server's stderr (its log).
    pub log_path: PathBuf,
}

impl Namesrv {
    /// Starts the binary with `extra` TOML lines added to a loopback, port-0 config whose KV file
    /// lives in `dir`.
    pub fn start(dir: &Path, extra: &str) -> Namesrv {
        let config_path = dir.join("namesrv.toml");
        let kv = dir.join("kvConfig.json");
        let text =
            format!("listenAddress = \"127.0.0.1\"\nlistenPort = 0\nkvConfigPath = \"{}\"\n{extra}\n", kv.display());
        std::fs::write(&config_path, text).expect("write config");
        Self::start_with(&config_path)
    }

    pub fn start_with(config_path: &Path) -> Namesrv {
        let log_path = config_path.with_extension(format!("{}.log", std::process::id()));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).expect("log file");
        let mut child = Command::new(BIN)
            .arg("-c")
            .arg(config_path)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn apogee-namesrv");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let addr = rx.recv_timeout(TIMEOUT).expect("name server did not report its address");
        Namesrv { child, addr: addr.parse().expect("address"), config_path: config_path.to_path_buf(), log_path }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn connect(&self) -> Conn {
        Conn::open(self.addr)
    }
}

impl Drop for Namesrv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One connection speaking RemotingCommand frames.
pub struct Conn {
    pub stream: TcpStream,
    decoder: FrameDecoder,
    buf: BytesMut,
    next_opaque: i32,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Conn { stream, decoder: FrameDecoder::new(64 << 20), buf: BytesMut::new(), next_opaque: 1 }
    }

    pub fn send(&mut self, mut cmd: RemotingCommand) -> i32 {
        self.next_opaque += 1;
        cmd.opaque = self.next_opaque;
        self.stream.write_all(&wire::encode_to_bytes(&cmd)).expect("write");
        cmd.opaque
    }

    /// Reads one frame; `None` when the server closed the connection.
    pub fn read(&mut self) -> Option<RemotingCommand> {
        loop {
            if let Some(cmd) = self.decoder.decode(&mut self.buf).expect("server frame decodes") {
                return Some(cmd);
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read from name server: {e}"),
            }
        }
    }

    pub fn call(&mut self, cmd: RemotingCommand) -> RemotingCommand {
        let opaque = self.send(cmd);
        let answer = self.read().expect("answer before close");
        assert!(answer.is_response(), "answer is a response");
        assert_eq!(answer.opaque, opaque, "answer carries the request's opaque");
        answer
    }
}

/// A REGISTER_BROKER request for `topics` (name, queue count) with data version `counter`.
pub fn register_request(
    broker_name: &str,
    broker_id: i64,
    addr: &str,
    topics: &[(&str, i32)],
    counter: i64,
) -> RemotingCommand {
    let mut body = RegisterBrokerBody::default();
    body.topic_config_serialize_wrapper.data_version.counter = counter;
    body.topic_config_serialize_wrapper.data_version.timestamp = 1_700_000_000_000;
    for (topic, queues) in topics {
        body.topic_config_serialize_wrapper
            .topic_config_table
            .insert(topic.to_string(), TopicConfig::new(*topic, *queues));
    }
    let header = RegisterBrokerRequestHeader {
        broker_name: broker_name.into(),
        broker_addr: addr.into(),
        cluster_name: "DefaultCluster".into(),
        ha_server_addr: format!("{addr}-ha").as_str().into(),
        broker_id,
        ..Default::default()
    };
    body.to_request(header, false)
}

/// Polls `check` every 50 ms until it holds or `TIMEOUT` passes.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for: {what}");
}
