//! Registration with the name servers: REGISTER_BROKER to each at start, every
//! `registerNameServerPeriod` and after topic changes; UNREGISTER_BROKER at a clean stop.
//!
//! Each name server gets one long-lived connection: the name server forgets a broker whose
//! connection closes, so registering over throwaway connections would undo itself.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use tracing::{debug, info, warn};
use wire::body::RegisterBrokerBody;
use wire::code::{request, response};
use wire::header::{RegisterBrokerRequestHeader, UnRegisterBrokerRequestHeader};
use wire::{FrameDecoder, RemotingCommand};

use crate::config::BrokerConfig;
use crate::server::Broker;

struct NameServer {
    addr: String,
    stream: RefCell<Option<TcpStream>>,
    /// Whether the last attempt worked, so a failing name server is reported once.
    healthy: std::cell::Cell<bool>,
}

pub struct Registrar {
    servers: Vec<NameServer>,
    broker_name: String,
    cluster_name: String,
    broker_id: i64,
    broker_addr: String,
    ha_addr: String,
    timeout: Duration,
    period: Duration,
    turn: Semaphore,
    wake: LocalSender<()>,
    wake_rx: RefCell<Option<LocalReceiver<()>>>,
    next_opaque: std::cell::Cell<i32>,
}

impl Registrar {
    pub fn new(config: &BrokerConfig, store_host: SocketAddr) -> Self {
        let (wake, wake_rx) = local_channel::new_bounded(1);
        Registrar {
            servers: config
                .namesrv_addrs()
                .into_iter()
                .map(|addr| NameServer { addr, stream: RefCell::new(None), healthy: std::cell::Cell::new(true) })
                .collect(),
            broker_name: config.broker_name.clone(),
            cluster_name: config.broker_cluster_name.clone(),
            broker_id: config.broker_id,
            broker_addr: store_host.to_string(),
            ha_addr: SocketAddr::new(store_host.ip(), store_host.port().wrapping_add(1)).to_string(),
            timeout: Duration::from_millis(config.register_broker_timeout_mills.max(1)),
            period: Duration::from_millis(config.register_name_server_period.max(1000)),
            turn: Semaphore::new(1),
            wake,
            wake_rx: RefCell::new(Some(wake_rx)),
            next_opaque: std::cell::Cell::new(0),
        }
    }

    /// Asks for a registration soon (topics changed).
    pub fn trigger(&self) {
        let _ = self.wake.try_send(());
    }

    async fn register_all(&self, body: &RegisterBrokerBody) {
        let _turn = self.turn.acquire_permit(1).await;
        let header = RegisterBrokerRequestHeader {
            broker_name: self.broker_name.as_str().into(),
            broker_addr: self.broker_addr.as_str().into(),
            cluster_name: self.cluster_name.as_str().into(),
            ha_server_addr: self.ha_addr.as_str().into(),
            broker_id: self.broker_id,
            ..Default::default()
        };
        for server in &self.servers {
            let cmd = body.to_request(header.clone(), false);
            match self.call(server, cmd).await {
                Ok(answer) if answer.code == response::SUCCESS => {
                    if !server.healthy.replace(true) {
                        info!(namesrv = %server.addr, "registered with the name server again");
                    }
                    debug!(namesrv = %server.addr, "registered");
                }
                Ok(answer) => self.report(server, format!("code {}: {}", answer.code, answer.remark_str())),
                Err(e) => self.report(server, e),
            }
        }
    }

    fn report(&self, server: &NameServer, reason: String) {
        if server.healthy.replace(false) {
            warn!(namesrv = %server.addr, %reason, "registration with the name server failed; retrying");
        }
    }

    /// UNREGISTER_BROKER to every name server, best effort.
    pub async fn unregister_all(&self) {
        let _turn = self.turn.acquire_permit(1).await;
        let header = UnRegisterBrokerRequestHeader {
            broker_name: self.broker_name.as_str().into(),
            broker_addr: self.broker_addr.as_str().into(),
            cluster_name: self.cluster_name.as_str().into(),
            broker_id: self.broker_id,
        };
        for server in &self.servers {
            let cmd = RemotingCommand::request(request::UNREGISTER_BROKER).with_header(&header);
            match self.call(server, cmd).await {
                Ok(_) => info!(namesrv = %server.addr, "unregistered"),
                Err(e) => warn!(namesrv = %server.addr, reason = %e, "unregistration failed"),
            }
            if let Some(stream) = server.stream.borrow_mut().take() {
                drop(stream);
            }
        }
    }

    /// One request and its answer on the server's connection, opened if needed; a failure
    /// drops the connection so the next call starts afresh.
    async fn call(&self, server: &NameServer, mut cmd: RemotingCommand) -> Result<RemotingCommand, String> {
        let opaque = self.next_opaque.get().wrapping_add(1);
        self.next_opaque.set(opaque);
        cmd.opaque = opaque;
        let stream = server.stream.borrow_mut().take();
        let attempt = async {
            let mut stream = match stream {
                Some(s) => s,
                None => {
                    let addr: SocketAddr =
                        server.addr.parse().map_err(|_| format!("{:?} is not an IP:port address", server.addr))?;
                    let s = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
                    let _ = s.set_nodelay(true);
                    s
                }
            };
            stream.write_all(&wire::encode_to_bytes(&cmd)).await.map_err(|e| format!("write: {e}"))?;
            let decoder = FrameDecoder::new(wire::MAX_FRAME_BYTES_DEFAULT);
            let mut buf = BytesMut::new();
            let mut scratch = vec![0u8; 16 * 1024];
            loop {
                while let Some(answer) = decoder.decode(&mut buf).map_err(|e| format!("bad answer: {e}"))? {
                    if answer.is_response() && answer.opaque == opaque {
                        return Ok((stream, answer));
                    }
                }
                let n = stream.read(&mut scratch).await.map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    return Err("connection closed by the name server".to_owned());
                }
                buf.extend_from_slice(&scratch[..n]);
            }
        };
        let timeout = async {
            glommio::timer::sleep(self.timeout).await;
            Err(format!("no answer within {:?}", self.timeout))
        };
        let (stream, answer) = futures_lite::future::or(attempt, timeout).await?;
        *server.stream.borrow_mut() = Some(stream);
        Ok(answer)
    }
}

/// Registers now, then every period and whenever triggered.
pub async fn register_loop(broker: Rc<Broker>) {
    let Some(wake) = broker.registrar.wake_rx.borrow_mut().take() else { return };
    loop {
        let mut topics = broker.meta.borrow().topic_wrapper();
        // A broker that is not read-write says so through its topics, as Java's does.
        let permission = broker.config.borrow().broker_permission;
        if permission & (wire::body::perm::READ | wire::body::perm::WRITE)
            != (wire::body::perm::READ | wire::body::perm::WRITE)
        {
            topics.topic_config_table.values_mut().for_each(|t| t.perm &= permission);
        }
        let body = RegisterBrokerBody { filter_server_list: Vec::new(), topic_config_serialize_wrapper: topics };
        broker.registrar.register_all(&body).await;
        let period = broker.registrar.period;
        futures_lite::future::or(
            async {
                let _ = wake.recv().await;
            },
            glommio::timer::sleep(period),
        )
        .await;
    }
}
