//! Starts the real `apogee-broker` binary (`--standalone`, ports chosen by the kernel) and talks
//! to it with the `wire` codec over plain sockets.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use wire::code::{request, response};
use wire::header::*;
use wire::message::StoredMessage;
use wire::{FrameDecoder, RemotingCommand};

pub struct BrokerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub namesrv: SocketAddr,
    pub stderr: PathBuf,
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config for a broker whose store lives in `dir`; `extra` lines are appended.
pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("broker.toml");
    let text = format!(
        "listenAddress = \"127.0.0.1\"\nlistenPort = 0\nnamesrvAddr = \"127.0.0.1:0\"\nstorePathRootDir = \"{}\"\n\
         mappedFileSizeCommitLog = 4194304\ncommitLogCacheBytes = 1048576\nflushIntervalConsumeQueue = 100\n{extra}",
        dir.join("store").display()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_apogee-broker")
}

/// Starts the broker and waits for its "boot success" lines.
pub fn start(config: &Path) -> BrokerProcess {
    let stderr = config.with_extension(format!("stderr.{}", std::process::id()));
    let log = std::fs::File::create(&stderr).expect("stderr file");
    let mut child = Command::new(binary())
        .args(["-c", config.to_str().expect("utf-8 path"), "--standalone"])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start apogee-broker");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut addr, mut namesrv) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while addr.is_none() || namesrv.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let log = std::fs::read_to_string(&stderr).unwrap_or_default();
            panic!("broker did not start:\n{log}");
        };
        if let Some(rest) = line.strip_prefix("The Name Server boot success. listening on ") {
            namesrv = rest.trim().parse().ok();
        } else if line.starts_with("The broker[") {
            addr = line.rsplit(", ").next().and_then(|s| s.trim_end_matches("] boot success.").parse().ok());
        }
    }
    BrokerProcess { child, addr: addr.expect("broker address"), namesrv: namesrv.expect("name server"), stderr }
}

impl BrokerProcess {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "broker did not stop on SIGTERM:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A client connection with request/response matching by opaque.
pub struct Client {
    pub stream: TcpStream,
    buf: BytesMut,
    opaque: i32,
    /// Frames that arrived while `call` waited for its answer.
    unsolicited: std::collections::VecDeque<RemotingCommand>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        Client { stream, buf: BytesMut::new(), opaque: 0, unsolicited: Default::default() }
    }

    pub fn send(&mut self, mut cmd: RemotingCommand) -> i32 {
        self.opaque += 1;
        cmd.opaque = self.opaque;
        self.stream.write_all(&wire::encode_to_bytes(&cmd)).expect("write");
        self.opaque
    }

    /// The next frame from the broker; `None` once the broker closed the connection.
    pub fn next(&mut self) -> Option<RemotingCommand> {
        if let Some(frame) = self.unsolicited.pop_front() {
            return Some(frame);
        }
        self.read_frame()
    }

    fn read_frame(&mut self) -> Option<RemotingCommand> {
        let decoder = FrameDecoder::new(64 << 20);
        loop {
            if let Some(cmd) = decoder.decode(&mut self.buf).expect("valid frame") {
                return Some(cmd);
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    pub fn call(&mut self, cmd: RemotingCommand) -> RemotingCommand {
        self.try_call(cmd).expect("an answer before the connection closed")
    }

    /// The answer to `cmd`; `None` if the broker closed the connection first.
    pub fn try_call(&mut self, cmd: RemotingCommand) -> Option<RemotingCommand> {
        let opaque = self.send(cmd);
        loop {
            let answer = self.read_frame()?;
            if answer.is_response() && answer.opaque == opaque {
                return Some(answer);
            }
            self.unsolicited.push_back(answer);
        }
    }
}

pub fn send_message(topic: &str, queue_id: i32, body: &str, tags: &str) -> RemotingCommand {
    let header = SendMessageRequestHeaderV2 {
        a: "PID_test".into(),
        b: topic.into(),
        c: "TBW102".into(),
        d: 4,
        e: queue_id,
        f: 0,
        g: 1_700_000_000_000,
        h: 0,
        i: Some(format!("TAGS\u{1}{tags}\u{2}KEYS\u{1}k-{body}").as_str().into()),
        j: Some(0),
        k: Some(false),
        l: None,
        m: Some(false),
        n: None,
    };
    RemotingCommand::request(request::SEND_MESSAGE_V2).with_header(&header).with_body(Bytes::from(body.to_owned()))
}

pub fn pull(topic: &str, queue_id: i32, offset: i64, suspend_ms: i64, expression: &str) -> RemotingCommand {
    let header = PullMessageRequestHeader {
        consumer_group: "GID_test".into(),
        topic: topic.into(),
        queue_id,
        queue_offset: offset,
        max_msg_nums: 32,
        sys_flag: pull_sys_flag::SUBSCRIPTION | if suspend_ms > 0 { pull_sys_flag::SUSPEND } else { 0 },
        commit_offset: 0,
        suspend_timeout_millis: suspend_ms,
        subscription: Some(expression.into()),
        sub_version: 1,
        expression_type: Some("TAG".into()),
        max_msg_bytes: None,
        broker_name: None,
    };
    RemotingCommand::request(request::PULL_MESSAGE).with_header(&header)
}

/// Bodies of a PULL response.
pub fn bodies(answer: &RemotingCommand) -> Vec<String> {
    wire::message::decode_stored_messages(&answer.body, true)
        .expect("stored messages")
        .iter()
        .map(|m: &StoredMessage| String::from_utf8_lossy(&m.body).into_owned())
        .collect()
}

pub fn ok(answer: &RemotingCommand) {
    assert_eq!(answer.code, response::SUCCESS, "remark: {}", answer.remark_str());
}
