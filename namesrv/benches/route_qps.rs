//! GET_ROUTEINFO_BY_TOPIC requests per second against the real `apogee-namesrv` binary, over 64
//! loopback connections, closed loop: each connection keeps `depth` requests in flight (1, then
//! 4 — RocketMQ clients multiplex concurrent requests on one connection by opaque).
//!
//! The load generator is one glommio executor in this process; the server is a child process.
//! On a 2-core machine both share the cores, so besides the rate this prints the server's CPU
//! time per run: rate ÷ server CPU share is what one server core sustains.
//!
//! Run: `cargo bench -p namesrv --bench route_qps` (env `ROUTE_QPS_SECS`, `ROUTE_QPS_RUNS`,
//! `ROUTE_QPS_CONNECTIONS`, `ROUTE_QPS_DEPTHS` override the defaults 5, 3, 64, "1,4";
//! `ROUTE_QPS_SPIN_US` lets the load generator spin before it parks).

use std::cell::Cell;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::{LocalExecutorBuilder, Placement};
use wire::body::{RegisterBrokerBody, TopicConfig};
use wire::code::{request, response};
use wire::header::{GetRouteInfoRequestHeader, RegisterBrokerRequestHeader};
use wire::{FrameDecoder, RemotingCommand, VERSION_4_9_8};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this too, without it: then
    // one short run checks that the harness works, and nothing is measured.
    let measuring = std::env::args().any(|a| a == "--bench");
    let (secs, runs) = if measuring { (env_or("ROUTE_QPS_SECS", 5), env_or("ROUTE_QPS_RUNS", 3)) } else { (1, 1) };
    let connections = env_or("ROUTE_QPS_CONNECTIONS", 64) as usize;
    let default_depths = if measuring { "1,4" } else { "2" };
    let depths: Vec<usize> = std::env::var("ROUTE_QPS_DEPTHS")
        .unwrap_or_else(|_| default_depths.into())
        .split(',')
        .filter_map(|d| d.trim().parse().ok())
        .collect();
    let spin = env_or("ROUTE_QPS_SPIN_US", 0);

    let dir = std::env::temp_dir().join(format!("apogee-route-qps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("namesrv.toml");
    std::fs::write(
        &config,
        format!(
            "listenAddress = \"127.0.0.1\"\nlistenPort = 0\nkvConfigPath = \"{}\"\n",
            dir.join("kv.json").display()
        ),
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_apogee-namesrv"))
        .arg("-c")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start apogee-namesrv");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("boot line");
    let addr: SocketAddr = line.rsplit(' ').next().expect("address").trim().parse().expect("address");
    let pid = child.id();

    register_brokers(addr);
    println!("route_qps: against {addr} (pid {pid})");

    for depth in depths {
        measure(addr, pid, connections, depth, secs, runs, spin);
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

fn measure(addr: SocketAddr, pid: u32, connections: usize, depth: usize, secs: u64, runs: u64, spin: u64) {
    println!("route_qps: {connections} connections × {depth} in flight, {runs} runs of {secs} s");
    let results = LocalExecutorBuilder::new(Placement::Unbound)
        .name("route-qps")
        .spin_before_park(Duration::from_micros(spin))
        .spawn(move || async move {
            let mut results = Vec::new();
            drive(addr, connections, depth, Duration::from_millis(300), pid).await; // warm-up
            for run in 1..=runs {
                let (rate, cpu) = drive(addr, connections, depth, Duration::from_secs(secs), pid).await;
                println!(
                    "  run {run}/{runs}: {rate:>9.0} req/s, server CPU {:.0} % of one core → {:.0} req/s per server core",
                    cpu * 100.0,
                    rate / cpu.max(0.01)
                );
                results.push((rate, cpu));
            }
            results
        })
        .expect("executor")
        .join()
        .expect("load generator");
    let mut rates: Vec<f64> = results.iter().map(|r| r.0).collect();
    let mut per_core: Vec<f64> = results.iter().map(|r| r.0 / r.1.max(0.01)).collect();
    rates.sort_by(f64::total_cmp);
    per_core.sort_by(f64::total_cmp);
    println!(
        "route_qps: depth {depth}: median {:.0} req/s; median {:.0} req/s per server core",
        rates[rates.len() / 2],
        per_core[per_core.len() / 2]
    );
}

/// Two brokers serving `BenchTopic` with 8 queues each; the registering connection stays open
/// for the whole run so the brokers stay in the route.
fn register_brokers(addr: SocketAddr) {
    let stream = std::net::TcpStream::connect(addr).expect("connect");
    for (name, broker_addr) in [("broker-a", "127.0.0.1:10911"), ("broker-b", "127.0.0.1:10912")] {
        let mut body = RegisterBrokerBody::default();
        body.topic_config_serialize_wrapper
            .topic_config_table
            .insert("BenchTopic".into(), TopicConfig::new("BenchTopic", 8));
        let header = RegisterBrokerRequestHeader {
            broker_name: name.into(),
            broker_addr: broker_addr.into(),
            cluster_name: "DefaultCluster".into(),
            ..Default::default()
        };
        let cmd = body.to_request(header, false);
        (&stream).write_all(&wire::encode_to_bytes(&cmd)).expect("register");
    }
    std::thread::sleep(Duration::from_millis(200));
    std::mem::forget(stream); // keep the brokers registered until the process ends
}

/// Runs `connections` closed-loop clients for `length`; returns (requests per second, server
/// CPU seconds per wall second).
async fn drive(addr: SocketAddr, connections: usize, depth: usize, length: Duration, pid: u32) -> (f64, f64) {
    let mut query = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC)
        .with_header(&GetRouteInfoRequestHeader { topic: "BenchTopic".into(), accept_standard_json_only: None });
    query.version = VERSION_4_9_8;
    let frame = wire::encode_to_bytes(&query).repeat(depth);
    let done = Rc::new(Cell::new(0u64));
    let stop = Rc::new(Cell::new(false));
    let cpu_before = cpu_seconds(pid);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (frame, done, stop) = (frame.clone(), done.clone(), stop.clone());
        tasks.push(glommio::spawn_local(async move {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let decoder = FrameDecoder::new(1 << 20);
            let mut buf = BytesMut::with_capacity(4096);
            let mut chunk = vec![0u8; 4096];
            while !stop.get() {
                stream.write_all(&frame).await.expect("write");
                for _ in 0..depth {
                    let answer = loop {
                        if let Some(cmd) = decoder.decode(&mut buf).expect("valid answer") {
                            break cmd;
                        }
                        let n = stream.read(&mut chunk).await.expect("read");
                        assert!(n > 0, "server closed the connection");
                        buf.extend_from_slice(&chunk[..n]);
                    };
                    assert_eq!(answer.code, response::SUCCESS);
                    done.set(done.get() + 1);
                }
            }
        }));
    }
    glommio::timer::sleep(length).await;
    stop.set(true);
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_before;
    let count = done.get();
    for task in tasks {
        task.await;
    }
    (count as f64 / elapsed, cpu / elapsed)
}

/// User + system CPU seconds the process has used (from /proc).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th overall.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
    ticks / 100.0 // USER_HZ is 100 on Linux
}
