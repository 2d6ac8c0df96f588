//! The broker's runtime: the executor that owns the store, the listeners (listenPort and the
//! VIP channel at listenPort − 2), one reader and one writer task per connection, long-poll
//! holds, the name server registrar, and the periodic jobs (offset persistence, silent
//! clients). A clean stop drains requests, persists metadata, closes the store with a final
//! checkpoint and unregisters from the name servers.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Semaphore;
use glommio::{LocalExecutorBuilder, Placement};
use store::{MessageStore, RootLock};
use tracing::{debug, error, info, warn};
use wire::code::response;
use wire::{FrameDecoder, RemotingCommand};

use crate::clients::{Clients, ConnId};
use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::metadata::{self, MetaFile, Metadata};
use crate::registrar::Registrar;

const READ_CHUNK: usize = 64 * 1024;
const STOP_POLL: Duration = Duration::from_millis(50);
/// Longest a clean stop waits for requests in flight.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// One client connection: frames to send gather in `outbox`; the writer task sends them.
pub struct Conn {
    pub id: ConnId,
    pub peer: SocketAddr,
    outbox: RefCell<BytesMut>,
    wake_writer: LocalSender<()>,
    closed: Cell<bool>,
}

impl Conn {
    pub fn send(&self, cmd: &RemotingCommand) {
        if self.closed.get() {
            return;
        }
        wire::encode(cmd, &mut self.outbox.borrow_mut());
        let _ = self.wake_writer.try_send(());
    }
}

/// Suspended pulls by `(topic, queueId)`: each waits for one wake-up.
pub type PullHolds = HashMap<(String, i32), Vec<LocalSender<()>>>;

/// Everything the broker's executor owns.
pub struct Broker {
    pub config: RefCell<BrokerConfig>,
    pub store: MessageStore,
    pub meta: RefCell<Metadata>,
    pub clients: RefCell<Clients>,
    pub conns: RefCell<HashMap<ConnId, Rc<Conn>>>,
    /// Pulls suspended on a queue, woken by the next durable put to it.
    pub holds: RefCell<PullHolds>,
    /// Queue locks of orderly consumers.
    pub queue_locks: RefCell<crate::locks::QueueLocks>,
    /// Wakes the delivery of delayed messages after a put to SCHEDULE_TOPIC_XXXX.
    pub schedule: RefCell<crate::schedule::ScheduleWakers>,
    /// Half messages resolved but not yet passed by the transaction checker.
    pub transactions: RefCell<crate::transaction::Transactions>,
    /// The address in message ids and registrations (`brokerIP1:listenPort`).
    pub store_host: SocketAddr,
    pub in_flight: Cell<usize>,
    /// Of those, pulls suspended in a long poll: they wait, but cost no work.
    pub suspended: Cell<usize>,
    /// Messages stored and served since start (runtime info).
    pub puts: Cell<u64>,
    pub gets: Cell<u64>,
    pub offsets_dirty: Cell<bool>,
    pub registrar: Registrar,
    meta_writer: Semaphore,
    next_opaque: Cell<i32>,
    /// Requests the broker sent to clients, waiting for their answers, by opaque.
    client_calls: RefCell<HashMap<i32, LocalSender<RemotingCommand>>>,
    pub started: Instant,
}

impl Broker {
    /// Wakes the pulls suspended on `(topic, queue_id)`.
    pub fn notify_arrival(&self, topic: &str, queue_id: i32) {
        if self.holds.borrow().is_empty() {
            return; // the common case under load: no key to build
        }
        let waiting = self.holds.borrow_mut().remove(&(topic.to_owned(), queue_id));
        for tx in waiting.into_iter().flatten() {
            let _ = tx.try_send(());
        }
    }

    /// Persists one metadata file off the executor, in change order.
    pub async fn persist(&self, file: MetaFile) -> Result<(), BrokerError> {
        let _turn = self.meta_writer.acquire_permit(1).await.map_err(|e| BrokerError::Executor(e.to_string()))?;
        let (path, contents) = self.meta.borrow().snapshot(file);
        glommio::executor().spawn_blocking(move || metadata::persist(&path, &contents)).await
    }

    /// Sends a oneway request to every consumer of `group` that its membership changed.
    pub fn notify_consumer_ids_changed(&self, group: &str) {
        let conns = self.clients.borrow().consumer_conns(group);
        let header = wire::header::NotifyConsumerIdsChangedRequestHeader { consumer_group: group.into() };
        for id in conns {
            let Some(conn) = self.conns.borrow().get(&id).cloned() else { continue };
            let cmd = RemotingCommand::request(wire::code::request::NOTIFY_CONSUMER_IDS_CHANGED)
                .with_header(&header)
                .mark_oneway();
            self.send_request(&conn, cmd);
        }
    }

    /// Sends a request the broker originates to a client, with the next opaque; returns it.
    pub fn send_request(&self, conn: &Conn, mut cmd: RemotingCommand) -> i32 {
        let opaque = self.next_opaque.get().wrapping_add(1);
        self.next_opaque.set(opaque);
        cmd.opaque = opaque;
        conn.send(&cmd);
        opaque
    }

    /// Sends a request to a client and waits up to `timeout` for its answer (Java's
    /// `Broker2Client.callClient`); `None` when none came.
    pub async fn call_client(&self, conn: &Conn, cmd: RemotingCommand, timeout: Duration) -> Option<RemotingCommand> {
        let (tx, rx) = local_channel::new_bounded(1);
        // No await between sending and registering: the answer cannot come in between.
        let opaque = self.send_request(conn, cmd);
        self.client_calls.borrow_mut().insert(opaque, tx);
        let answer = futures_lite::future::or(async { rx.recv().await }, async {
            glommio::timer::sleep(timeout).await;
            None
        })
        .await;
        self.client_calls.borrow_mut().remove(&opaque);
        answer
    }

    /// Hands a client's answer to the call waiting for it.
    fn client_answered(&self, answer: RemotingCommand) {
        if let Some(tx) = self.client_calls.borrow_mut().remove(&answer.opaque) {
            let _ = tx.try_send(answer);
        }
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A running broker (and, with `--standalone`, its name server); stops on `stop` or drop.
pub struct BrokerServer {
    local_addr: SocketAddr,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<glommio::ExecutorJoinHandle<Result<(), String>>>,
    namesrv: Option<namesrv::NamesrvServer>,
}

impl Drop for BrokerServer {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl BrokerServer {
    /// Opens the store (recovering it), binds the ports and starts serving on a thread of its
    /// own. With `standalone`, first starts a name server on the first `namesrvAddr`.
    pub fn start(mut config: BrokerConfig, standalone: bool) -> Result<Self, BrokerError> {
        config.validate().map_err(BrokerError::Config)?;
        let namesrv = if standalone { Some(start_namesrv(&config)?) } else { None };
        if let Some(ns) = &namesrv {
            // Port 0 asks for any free port: register with the one actually bound.
            let mut addrs = config.namesrv_addrs();
            if addrs.is_empty() {
                addrs.push(String::new());
            }
            addrs[0] = ns.local_addr().to_string();
            config.namesrv_addr = addrs.join(";");
        }
        let lock = RootLock::acquire(&config.store_path_root_dir)?;
        let listeners = Listeners::check(&config)?;
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<SocketAddr, String>>();
        let handle = LocalExecutorBuilder::new(Placement::Unbound)
            .name("broker-shard-0")
            .io_memory(2 << 20)
            .spawn(move || async move { run(config, lock, listeners, ready_tx, stop_rx).await })
            .map_err(|e| BrokerError::Executor(e.to_string()))?;
        match ready_rx.recv() {
            Ok(Ok(local_addr)) => Ok(Self { local_addr, stop: Some(stop_tx), thread: Some(handle), namesrv }),
            Ok(Err(reason)) => {
                let _ = handle.join();
                Err(BrokerError::Executor(reason))
            }
            Err(_) => {
                let reason = match handle.join() {
                    Ok(Err(reason)) => reason,
                    _ => "the broker executor ended before it was ready".to_owned(),
                };
                Err(BrokerError::Executor(reason))
            }
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn namesrv_addr(&self) -> Option<SocketAddr> {
        self.namesrv.as_ref().map(|n| n.local_addr())
    }

    /// Stops cleanly (see the module comment) and waits; the error says what failed.
    pub fn stop(mut self) -> Result<(), String> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = match self.thread.take() {
            Some(thread) => thread.join().map_err(|e| format!("broker executor: {e}")).and_then(|r| r),
            None => Ok(()),
        };
        if let Some(namesrv) = self.namesrv.take() {
            namesrv.stop();
        }
        result
    }
}

fn start_namesrv(config: &BrokerConfig) -> Result<namesrv::NamesrvServer, BrokerError> {
    let first = config.namesrv_addrs().into_iter().next().unwrap_or_else(|| "127.0.0.1:9876".into());
    let addr: SocketAddr = first
        .parse()
        .map_err(|_| BrokerError::Config(format!("--standalone needs namesrvAddr as IP:port, not {first:?}")))?;
    let mut ns = namesrv::NamesrvConfig { listen_address: addr.ip(), listen_port: addr.port(), ..Default::default() };
    let dir = config.store_path_root_dir.join("namesrv");
    ns.kv_config_path = dir.join("kvConfig.json");
    ns.config_store_path = dir.join("namesrv.properties");
    let server = namesrv::NamesrvServer::start(ns)?;
    info!(addr = %server.local_addr(), "standalone name server started");
    Ok(server)
}

/// The client port and the VIP channel (listenPort − 2, which Java clients with
/// vipChannelEnabled use). Checked free before the store opens, so that a taken port fails at
/// once; bound after, so that clients of a recovering broker are refused and go elsewhere
/// rather than wait for answers, as with Java.
struct Listeners {
    main: SocketAddr,
    vip: Option<SocketAddr>,
}

impl Listeners {
    fn check(config: &BrokerConfig) -> Result<Self, BrokerError> {
        let main = config.listen_addr();
        // Port 0 (tests) asks for any free port, and has no VIP channel.
        let vip = (config.listen_port > 2).then(|| SocketAddr::new(config.listen_address, config.listen_port - 2));
        for addr in std::iter::once(main).chain(vip).filter(|a| a.port() != 0) {
            namesrv::listen::bind(addr).map(drop).map_err(|source| BrokerError::Bind { addr, source })?;
        }
        Ok(Self { main, vip })
    }

    fn bind(&self) -> Result<(glommio::net::TcpListener, Option<glommio::net::TcpListener>), String> {
        let bind = |addr: SocketAddr| {
            namesrv::listen::bind(addr)
                .map(namesrv::listen::into_glommio)
                .map_err(|e| format!("cannot listen on {addr}: {e}"))
        };
        Ok((bind(self.main)?, self.vip.map(bind).transpose()?))
    }
}

async fn run(
    config: BrokerConfig,
    lock: RootLock,
    listeners: Listeners,
    ready: mpsc::Sender<Result<SocketAddr, String>>,
    stop: mpsc::Receiver<()>,
) -> Result<(), String> {
    let fail = |ready: &mpsc::Sender<Result<SocketAddr, String>>, e: String| {
        error!("{e}");
        let _ = ready.send(Err(e.clone()));
        Err(e)
    };
    let meta = match Metadata::load(&config) {
        Ok(meta) => meta,
        Err(e) => return fail(&ready, e.to_string()),
    };
    let (store, recovery) = match MessageStore::open(config.store_config(0)).await {
        Ok(opened) => opened,
        Err(e) => return fail(&ready, format!("cannot open the store: {e}")),
    };
    info!(
        previous_stop_clean = lock.previous_stop_clean,
        records_scanned = recovery.commitlog.records,
        end = recovery.commitlog.end,
        "store open"
    );
    let (listener, vip) = match listeners.bind() {
        Ok(bound) => bound,
        Err(e) => return fail(&ready, e),
    };
    let local_addr = listener.local_addr().unwrap_or(config.listen_addr());
    let store_host = SocketAddr::new(config.broker_ip1, local_addr.port());
    let registrar = Registrar::new(&config, store_host);
    let broker = Rc::new(Broker {
        config: RefCell::new(config),
        store,
        meta: RefCell::new(meta),
        clients: RefCell::new(Clients::default()),
        conns: RefCell::new(HashMap::new()),
        holds: RefCell::new(HashMap::new()),
        queue_locks: RefCell::default(),
        schedule: RefCell::default(),
        transactions: RefCell::default(),
        store_host,
        in_flight: Cell::new(0),
        suspended: Cell::new(0),
        puts: Cell::new(0),
        gets: Cell::new(0),
        offsets_dirty: Cell::new(false),
        registrar,
        meta_writer: Semaphore::new(1),
        next_opaque: Cell::new(0),
        client_calls: RefCell::new(HashMap::new()),
        started: Instant::now(),
    });
    if let Err(e) = broker.persist(MetaFile::Topics).await {
        return fail(&ready, e.to_string());
    }
    let mut tasks = vec![glommio::spawn_local(accept_loop(listener, broker.clone()))];
    if let Some(vip) = vip {
        tasks.push(glommio::spawn_local(accept_loop(vip, broker.clone())));
    }
    tasks.push(glommio::spawn_local(crate::registrar::register_loop(broker.clone())));
    tasks.push(glommio::spawn_local(offset_flush_loop(broker.clone())));
    tasks.push(glommio::spawn_local(client_scan_loop(broker.clone())));
    tasks.push(glommio::spawn_local(crate::retention::retention_loop(broker.clone())));
    *broker.transactions.borrow_mut() = crate::transaction::load(&broker).await;
    tasks.push(glommio::spawn_local(crate::transaction::check_loop(broker.clone())));
    let (wakers, schedule_tasks) = crate::schedule::start(&broker);
    *broker.schedule.borrow_mut() = wakers;
    tasks.extend(schedule_tasks);
    info!(addr = %local_addr, store_host = %store_host, "broker listening");
    let _ = ready.send(Ok(local_addr));

    while let Err(mpsc::TryRecvError::Empty) = stop.try_recv() {
        glommio::timer::sleep(STOP_POLL).await;
    }
    info!("stopping: no new connections; draining requests in flight");
    drop(tasks);
    let drain_started = Instant::now();
    while broker.in_flight.get() > 0 && drain_started.elapsed() < DRAIN_LIMIT {
        // Suspended pulls answer now rather than at their timeout.
        let holds: Vec<LocalSender<()>> = broker.holds.borrow_mut().drain().flat_map(|(_, v)| v).collect();
        for tx in holds {
            let _ = tx.try_send(());
        }
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    let mut problems = Vec::new();
    for file in [MetaFile::Offsets, MetaFile::DelayOffsets, MetaFile::Groups, MetaFile::Topics] {
        if let Err(e) = broker.persist(file).await {
            problems.push(e.to_string());
        }
    }
    match broker.store.close().await {
        Ok(cp) => info!(end = cp.commitlog_end, "store closed with its final checkpoint"),
        Err(e) => problems.push(format!("store close: {e}")),
    }
    broker.registrar.unregister_all().await;
    for conn in broker.conns.borrow().values() {
        conn.closed.set(true);
        let _ = conn.wake_writer.try_send(());
    }
    if problems.is_empty() {
        if let Err(e) = lock.mark_clean_stop() {
            problems.push(e.to_string());
        }
    }
    if problems.is_empty() {
        info!("broker stopped cleanly");
        Ok(())
    } else {
        let all = problems.join("; ");
        error!(problems = %all, "broker stopped with errors; the next start recovers from the checkpoint");
        Err(all)
    }
}

async fn accept_loop(listener: TcpListener, broker: Rc<Broker>) {
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                glommio::spawn_local(serve_connection(stream, id, broker.clone())).detach();
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve_connection(stream: TcpStream, id: ConnId, broker: Rc<Broker>) {
    let Ok(peer) = stream.peer_addr() else { return };
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = futures_lite::io::split(stream);
    let (wake_writer, wake_rx) = local_channel::new_bounded(1);
    let conn = Rc::new(Conn { id, peer, outbox: RefCell::new(BytesMut::new()), wake_writer, closed: Cell::new(false) });
    broker.conns.borrow_mut().insert(id, conn.clone());
    debug!(%peer, id, "connection opened");
    let writer_conn = conn.clone();
    let writer_task = glommio::spawn_local(async move {
        while wake_rx.recv().await.is_some() {
            let out = writer_conn.outbox.borrow_mut().split();
            if !out.is_empty() && writer.write_all(&out).await.is_err() {
                writer_conn.closed.set(true);
                return;
            }
            if writer_conn.closed.get() && writer_conn.outbox.borrow().is_empty() {
                let _ = writer.close().await;
                return;
            }
        }
    });
    let decoder = FrameDecoder::new(broker.config.borrow().max_frame_bytes);
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut scratch = vec![0u8; READ_CHUNK];
    let reason = 'conn: loop {
        let n = match reader.read(&mut scratch).await {
            Ok(0) => break 'conn "closed by peer".to_owned(),
            Ok(n) => n,
            Err(e) => break 'conn format!("read failed: {e}"),
        };
        input.extend_from_slice(&scratch[..n]);
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(cmd)) => dispatch(&broker, &conn, cmd),
                Ok(None) => break,
                Err(e) => {
                    warn!(%peer, error = %e, "closing connection: malformed frame");
                    break 'conn format!("malformed frame: {e}");
                }
            }
        }
        if conn.closed.get() {
            break 'conn "write failed".to_owned();
        }
    };
    debug!(%peer, id, reason, "connection closed");
    conn.closed.set(true);
    let _ = conn.wake_writer.try_send(());
    broker.conns.borrow_mut().remove(&id);
    let changed = broker.clients.borrow_mut().connection_closed(id);
    for group in changed {
        info!(%peer, group, "consumer left with its connection");
        broker.notify_consumer_ids_changed(&group);
    }
    let _ = writer_task.await;
}

/// Runs one request on its own task, so a suspended pull or a send waiting for its flush
/// never holds up the requests behind it on the connection.
fn dispatch(broker: &Rc<Broker>, conn: &Rc<Conn>, cmd: RemotingCommand) {
    if cmd.is_response() {
        broker.client_answered(cmd);
        return;
    }
    let working = broker.in_flight.get() - broker.suspended.get();
    if working >= broker.config.borrow().max_pending_requests {
        if !cmd.is_oneway() {
            let busy = RemotingCommand::response_to(&cmd, response::SYSTEM_BUSY).with_remark(format!(
                "[PCBUSY_CLEAN_QUEUE]broker busy, start flow control for a while, {working} requests in flight"
            ));
            conn.send(&busy);
        }
        return;
    }
    broker.in_flight.set(broker.in_flight.get() + 1);
    let (broker, conn) = (broker.clone(), conn.clone());
    glommio::spawn_local(async move {
        let oneway = cmd.is_oneway();
        let answer = crate::processor::process(&broker, &conn, cmd).await;
        if let Some(answer) = answer.filter(|_| !oneway) {
            conn.send(&answer);
        }
        broker.in_flight.set(broker.in_flight.get() - 1);
    })
    .detach();
}

/// Consumer offsets to disk every `flushConsumerOffsetInterval`, when they changed.
async fn offset_flush_loop(broker: Rc<Broker>) {
    let interval = Duration::from_millis(broker.config.borrow().flush_consumer_offset_interval.max(100));
    loop {
        glommio::timer::sleep(interval).await;
        if broker.offsets_dirty.replace(false) {
            for file in [MetaFile::Offsets, MetaFile::DelayOffsets] {
                if let Err(e) = broker.persist(file).await {
                    broker.offsets_dirty.set(true);
                    warn!(error = %e, ?file, "offsets not persisted; retrying");
                }
            }
        }
    }
}

/// Drops clients silent for `channelExpiredTimeout` and tells their groups.
async fn client_scan_loop(broker: Rc<Broker>) {
    let timeout = Duration::from_millis(broker.config.borrow().channel_expired_timeout.max(1));
    loop {
        glommio::timer::sleep(Duration::from_secs(10).min(timeout)).await;
        let changed = broker.clients.borrow_mut().scan_expired(Instant::now(), timeout);
        for group in changed {
            warn!(group, silent_for_more_than = ?timeout, "consumer dropped: no heartbeat");
            broker.notify_consumer_ids_changed(&group);
        }
    }
}
