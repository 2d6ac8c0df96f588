//! The broker's runtime: one executor per shard, each owning its store shard; the listeners
//! (listenPort and the VIP channel at listenPort − 2) on shard 0, which hands connections to the
//! shards in turn; one reader and one writer task per connection; long-poll holds on the shard
//! that owns the queue; and, on shard 0, the metadata, the client tables, the name server
//! registrar and the periodic jobs (offset persistence, silent clients). A clean stop drains
//! requests on every shard, persists metadata, closes each store with a final checkpoint and
//! unregisters from the name servers.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
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
use crate::mesh::{Mesh, MeshEnds, ShardMsg};
use crate::metadata::{self, MetaFile, Metadata};
use crate::registrar::Registrar;
use crate::view::{Published, View};

const READ_CHUNK: usize = 64 * 1024;
/// Frames a connection handles before it lets the executor take a turn. A read often holds
/// every producer's request (64 in the standard bench); handled in one go, all of them waited
/// for one write issued at the end, and the producers then sent again all at once, so the
/// broker and the client took turns instead of overlapping. Turns of 8 frames let the first
/// requests' write go out while later ones are handled: +25 % ASYNC and +13 % SYNC throughput
/// with 64 producers, +8 % with 16, at the same CPU a message. Turns of 2 cost more than they
/// gave (each turn is an io_uring round trip with timer re-arming).
const FRAMES_PER_TURN: usize = 8;
const STOP_POLL: Duration = Duration::from_millis(50);
/// Longest a clean stop waits for requests in flight.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// One client connection: frames to send gather in `outbox`; the writer task sends them. A
/// connection another shard serves is reached through that shard.
pub struct Conn {
    pub id: ConnId,
    pub peer: SocketAddr,
    link: Link,
}

enum Link {
    Local { outbox: RefCell<BytesMut>, wake_writer: LocalSender<()>, closed: Cell<bool> },
    Remote { shard: usize, mesh: Rc<Mesh> },
}

impl Conn {
    pub fn send(&self, cmd: &RemotingCommand) {
        match &self.link {
            Link::Local { .. } => self.write(cmd),
            Link::Remote { .. } => self.deliver(cmd.clone()),
        }
    }

    /// Sends `cmd`, moving it to the serving shard when that is another one.
    pub fn deliver(&self, cmd: RemotingCommand) {
        match &self.link {
            Link::Local { .. } => self.write(&cmd),
            Link::Remote { shard, mesh } => mesh.post(*shard, ShardMsg::ToConn { conn: self.id, cmd }),
        }
    }

    fn write(&self, cmd: &RemotingCommand) {
        if let Link::Local { outbox, wake_writer, closed } = &self.link {
            if closed.get() {
                return;
            }
            wire::encode(cmd, &mut outbox.borrow_mut());
            let _ = wake_writer.try_send(());
        }
    }

    /// The shard serving this connection.
    pub fn home(&self, here: usize) -> usize {
        match &self.link {
            Link::Local { .. } => here,
            Link::Remote { shard, .. } => *shard,
        }
    }

    fn close(&self) {
        if let Link::Local { closed, wake_writer, .. } = &self.link {
            closed.set(true);
            let _ = wake_writer.try_send(());
        }
    }

    fn is_closed(&self) -> bool {
        matches!(&self.link, Link::Local { closed, .. } if closed.get())
    }
}

/// Suspended pulls by `(topic, queueId)`: each waits for one wake-up.
pub type PullHolds = HashMap<(String, i32), Vec<LocalSender<()>>>;

/// Everything the broker's executor owns.
pub struct Broker {
    pub config: RefCell<BrokerConfig>,
    pub store: MessageStore,
    /// Topics, groups and offsets, and the clients: kept by shard 0 only; the other shards
    /// read `view`, which shard 0 publishes after each change.
    pub meta: RefCell<Metadata>,
    pub clients: RefCell<Clients>,
    pub conns: RefCell<HashMap<ConnId, Rc<Conn>>>,
    /// Pulls suspended on a queue, woken by the next durable put to it.
    pub holds: RefCell<PullHolds>,
    /// When each consumer's queue was last answered, to batch streaming pulls.
    pub pull_batching: RefCell<crate::pull_batching::PullBatching>,
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
    /// Retention passes left that delete expired segments whatever the hour
    /// (DELETE_EXPIRED_COMMITLOG).
    pub manual_deletes: Cell<u32>,
    pub registrar: Registrar,
    meta_writer: Semaphore,
    next_opaque: Cell<i32>,
    /// Requests the broker sent to clients, waiting for their answers, by opaque.
    client_calls: RefCell<HashMap<i32, LocalSender<RemotingCommand>>>,
    pub started: Instant,
    /// This shard's links to the others (`mesh.shard` is this shard's number).
    pub mesh: Rc<Mesh>,
    /// Shard 0's state as it last published it (on shard 0 itself: as it is).
    pub view: RefCell<Arc<View>>,
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

    /// Persists one metadata file off the executor, in change order. Topic and group changes
    /// are published to the other shards first; queue owners are written before the topics
    /// that use them.
    pub async fn persist(&self, file: MetaFile) -> Result<(), BrokerError> {
        if matches!(file, MetaFile::Topics | MetaFile::Groups) {
            self.publish();
        }
        let _turn = self.meta_writer.acquire_permit(1).await.map_err(|e| BrokerError::Executor(e.to_string()))?;
        let mut files = vec![self.meta.borrow().snapshot(file)];
        if file == MetaFile::Topics {
            files.insert(0, self.meta.borrow().snapshot(MetaFile::Owners));
        }
        glommio::executor()
            .spawn_blocking(move || files.iter().try_for_each(|(path, contents)| metadata::persist(path, contents)))
            .await
    }

    /// Shard 0: hands the other shards a new view of topics, groups and subscriptions, and
    /// the current settings. Call right after a change, before any await.
    pub fn publish(&self) {
        if self.mesh.shards == 1 || self.mesh.shard != 0 {
            return;
        }
        let view = Arc::new(View::build(&self.meta.borrow(), &self.clients.borrow()));
        *self.view.borrow_mut() = view.clone();
        let config = Arc::new(self.config.borrow().clone());
        for shard in 1..self.mesh.shards {
            let published = Published { view: view.clone(), config: config.clone() };
            self.mesh.post(shard, ShardMsg::Publish(published));
        }
    }

    /// Passes a client's request to `shard`; its answer goes straight to the connection.
    pub fn forward(&self, shard: usize, conn: &Conn, cmd: RemotingCommand, hops: u8) {
        let from = conn.home(self.mesh.shard);
        self.mesh.post(shard, ShardMsg::Request { from, conn: conn.id, peer: conn.peer, hops, cmd });
    }

    /// The connection `id` that shard `from` serves, as this shard reaches it; `None` when it
    /// is this shard's own and has closed.
    fn remote_conn(&self, from: usize, id: ConnId, peer: SocketAddr) -> Option<Rc<Conn>> {
        if from == self.mesh.shard {
            return self.conns.borrow().get(&id).cloned(); // passed back to where it came from
        }
        let remote = || Rc::new(Conn { id, peer, link: Link::Remote { shard: from, mesh: self.mesh.clone() } });
        if self.mesh.shard != 0 {
            return Some(remote());
        }
        // Shard 0 keeps them: it tracks clients and sends them requests.
        Some(self.conns.borrow_mut().entry(id).or_insert_with(remote).clone())
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
        let answer = crate::mesh::recv_within(&rx, timeout).await;
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
    common: Arc<Common>,
    threads: Vec<glommio::ExecutorJoinHandle<Result<(), String>>>,
    lock: Option<RootLock>,
    namesrv: Option<namesrv::NamesrvServer>,
}

/// What the shards' threads share while starting and stopping.
#[derive(Default)]
struct Common {
    /// Shards whose store is open.
    opened: AtomicUsize,
    /// A shard could not start: the others give up.
    failed: AtomicBool,
    stop: AtomicBool,
    /// Shards with no request left in flight.
    drained: AtomicUsize,
    /// The port shard 0 bound (message ids of every shard name it); 0 until then.
    port: AtomicUsize,
}

/// Armed while a shard runs: if its thread unwinds, the other shards stop instead of waiting
/// for it.
struct PanicGuard(Option<Arc<Common>>);

impl PanicGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if let Some(common) = self.0.take() {
            common.failed.store(true, Ordering::SeqCst);
            common.stop.store(true, Ordering::SeqCst);
        }
    }
}

impl Drop for BrokerServer {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl BrokerServer {
    /// Opens the store shards (recovering them), binds the ports and starts serving, one
    /// executor thread per shard. With `standalone`, first starts a name server on the first
    /// `namesrvAddr`.
    pub fn start(mut config: BrokerConfig, standalone: bool) -> Result<Self, BrokerError> {
        config.validate().map_err(BrokerError::Config)?;
        config.shards = config.shard_count();
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
        let previous_stop_clean = lock.previous_stop_clean;
        let mut listeners = Some(Listeners::check(&config)?);
        let shards = config.shards;
        let common = Arc::new(Common::default());
        let (ready_tx, ready_rx) = mpsc::channel::<Result<SocketAddr, String>>();
        let mut threads = Vec::with_capacity(shards);
        for (shard, ends) in crate::mesh::ends(shards).into_iter().enumerate() {
            let shard_config = config.clone();
            let listeners = listeners.take();
            let (shared, ready) = (common.clone(), ready_tx.clone());
            let spawned = LocalExecutorBuilder::new(Placement::Unbound)
                .name(&format!("broker-shard-{shard}"))
                .io_memory(2 << 20)
                .spawn(move || async move {
                    let setup = ShardSetup { config: shard_config, ends, listeners, previous_stop_clean };
                    let unwinding = PanicGuard(Some(shared.clone()));
                    let result = run(setup, shared.clone(), ready.clone()).await;
                    unwinding.disarm();
                    if let Err(e) = &result {
                        shared.failed.store(true, Ordering::SeqCst);
                        let _ = ready.send(Err(e.clone()));
                    }
                    result
                });
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(e) => {
                    common.failed.store(true, Ordering::SeqCst);
                    common.stop.store(true, Ordering::SeqCst);
                    return Err(BrokerError::Executor(e.to_string()));
                }
            }
        }
        drop(ready_tx);
        let server = |local_addr, threads, namesrv| Self { local_addr, common, threads, lock: Some(lock), namesrv };
        match ready_rx.recv() {
            Ok(Ok(local_addr)) => Ok(server(local_addr, threads, namesrv)),
            Ok(Err(reason)) => {
                let mut failed = server(SocketAddr::from(([0, 0, 0, 0], 0)), threads, namesrv);
                failed.lock = None; // the stop was not clean
                let _ = failed.shutdown();
                Err(BrokerError::Executor(reason))
            }
            Err(_) => Err(BrokerError::Executor("the broker executors ended before they were ready".to_owned())),
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
        self.common.stop.store(true, Ordering::SeqCst);
        let mut problems = Vec::new();
        for thread in self.threads.drain(..) {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => problems.push(e),
                Err(e) => problems.push(format!("broker executor: {e}")),
            }
        }
        if let Some(lock) = self.lock.take() {
            if problems.is_empty() {
                if let Err(e) = lock.mark_clean_stop() {
                    problems.push(e.to_string());
                }
            }
        }
        if let Some(namesrv) = self.namesrv.take() {
            namesrv.stop();
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

/// What one shard's thread starts with.
struct ShardSetup {
    config: BrokerConfig,
    ends: MeshEnds,
    /// Shard 0 listens; it hands connections to the others.
    listeners: Option<Listeners>,
    previous_stop_clean: bool,
}

/// Polls `done` every few milliseconds, for at most `limit`; whether it came true.
async fn wait_until(limit: Duration, done: impl Fn() -> bool) -> bool {
    let started = Instant::now();
    while !done() {
        if started.elapsed() >= limit {
            return false;
        }
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    true
}

async fn run(
    setup: ShardSetup,
    common: Arc<Common>,
    ready: mpsc::Sender<Result<SocketAddr, String>>,
) -> Result<(), String> {
    let ShardSetup { config, ends, listeners, previous_stop_clean } = setup;
    let shards = config.shards;
    let (mesh, receivers) = if shards > 1 { Mesh::connect(ends).await } else { (Mesh::single(), Vec::new()) };
    let shard = mesh.shard;
    let meta = Metadata::load(&config).map_err(|e| e.to_string())?;
    let (store, recovery) = MessageStore::open(config.store_config(shard as u8))
        .await
        .map_err(|e| format!("cannot open the store of shard {shard}: {e}"))?;
    info!(
        shard,
        previous_stop_clean,
        records_scanned = recovery.commitlog.records,
        end = recovery.commitlog.end,
        "store open"
    );
    common.opened.fetch_add(1, Ordering::SeqCst);
    let all_open = || common.opened.load(Ordering::SeqCst) == shards || common.failed.load(Ordering::SeqCst);
    wait_until(Duration::MAX, all_open).await;
    if common.failed.load(Ordering::SeqCst) {
        return store.close().await.map(drop).map_err(|e| e.to_string());
    }
    let bound = match &listeners {
        Some(listeners) => Some(listeners.bind()?),
        None => None,
    };
    let local_addr = match &bound {
        Some((listener, _)) => {
            let addr = listener.local_addr().map_err(|e| format!("listener address: {e}"))?;
            common.port.store(usize::from(addr.port()), Ordering::SeqCst);
            addr
        }
        None => {
            let known = || common.port.load(Ordering::SeqCst) != 0 || common.failed.load(Ordering::SeqCst);
            wait_until(Duration::MAX, known).await;
            let port = u16::try_from(common.port.load(Ordering::SeqCst)).unwrap_or(0);
            SocketAddr::new(config.listen_address, port)
        }
    };
    let store_host = SocketAddr::new(config.broker_ip1, local_addr.port());
    let registrar = Registrar::new(&config, store_host);
    let broker = Rc::new(Broker {
        config: RefCell::new(config),
        store,
        meta: RefCell::new(meta),
        clients: RefCell::new(Clients::default()),
        conns: RefCell::new(HashMap::new()),
        holds: RefCell::new(HashMap::new()),
        pull_batching: RefCell::new(Default::default()),
        queue_locks: RefCell::default(),
        schedule: RefCell::default(),
        transactions: RefCell::default(),
        store_host,
        in_flight: Cell::new(0),
        suspended: Cell::new(0),
        puts: Cell::new(0),
        gets: Cell::new(0),
        offsets_dirty: Cell::new(false),
        manual_deletes: Cell::new(0),
        registrar,
        meta_writer: Semaphore::new(1),
        next_opaque: Cell::new(0),
        client_calls: RefCell::new(HashMap::new()),
        started: Instant::now(),
        mesh,
        view: RefCell::default(),
    });
    for rx in receivers {
        let b = broker.clone();
        glommio::spawn_local(async move {
            while let Some(batch) = rx.recv().await {
                for msg in batch {
                    received(&b, msg);
                }
            }
        })
        .detach();
    }
    let mut tasks = vec![glommio::spawn_local(crate::retention::retention_loop(broker.clone()))];
    if let Some((listener, vip)) = bound {
        broker.publish();
        if let Err(e) = broker.persist(MetaFile::Topics).await {
            return Err(e.to_string());
        }
        let next = Rc::new(Cell::new(0));
        tasks.push(glommio::spawn_local(accept_loop(listener, broker.clone(), next.clone())));
        if let Some(vip) = vip {
            tasks.push(glommio::spawn_local(accept_loop(vip, broker.clone(), next)));
        }
        tasks.push(glommio::spawn_local(crate::registrar::register_loop(broker.clone())));
        tasks.push(glommio::spawn_local(offset_flush_loop(broker.clone())));
        tasks.push(glommio::spawn_local(client_scan_loop(broker.clone())));
        *broker.transactions.borrow_mut() = crate::transaction::load(&broker).await;
        tasks.push(glommio::spawn_local(crate::transaction::check_loop(broker.clone())));
        let (wakers, schedule_tasks) = crate::schedule::start(&broker);
        *broker.schedule.borrow_mut() = wakers;
        tasks.extend(schedule_tasks);
        info!(addr = %local_addr, store_host = %store_host, shards, "broker listening");
        let _ = ready.send(Ok(local_addr));
    }

    while !common.stop.load(Ordering::SeqCst) {
        glommio::timer::sleep(STOP_POLL).await;
    }
    if shard == 0 {
        info!("stopping: no new connections; draining requests in flight");
    }
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
    // Every shard drains before any store closes: a request may still need another shard.
    common.drained.fetch_add(1, Ordering::SeqCst);
    wait_until(DRAIN_LIMIT, || common.drained.load(Ordering::SeqCst) >= shards).await;
    let mut problems = Vec::new();
    if shard == 0 {
        for file in [MetaFile::Offsets, MetaFile::DelayOffsets, MetaFile::Groups, MetaFile::Topics] {
            if let Err(e) = broker.persist(file).await {
                problems.push(e.to_string());
            }
        }
    }
    match broker.store.close().await {
        Ok(cp) => info!(shard, end = cp.commitlog_end, "store closed with its final checkpoint"),
        Err(e) => problems.push(format!("store close (shard {shard}): {e}")),
    }
    if shard == 0 {
        broker.registrar.unregister_all().await;
    }
    for conn in broker.conns.borrow().values() {
        conn.close();
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// A message from another shard.
fn received(b: &Rc<Broker>, msg: ShardMsg) {
    match msg {
        ShardMsg::Request { cmd, .. } if cmd.is_response() => b.client_answered(cmd),
        ShardMsg::Request { from, conn, peer, hops, cmd } => {
            if let Some(conn) = b.remote_conn(from, conn, peer) {
                run_request(b, conn, cmd, hops);
            }
        }
        ShardMsg::ToConn { conn, cmd } => {
            let found = b.conns.borrow().get(&conn).cloned();
            if let Some(conn) = found {
                conn.deliver(cmd);
            }
        }
        ShardMsg::Accepted(stream) => {
            let id = next_conn_id();
            glommio::spawn_local(serve_connection(stream.bind_to_executor(), id, b.clone())).detach();
        }
        ShardMsg::ConnClosed { conn } => {
            b.conns.borrow_mut().remove(&conn);
            client_gone(b, conn);
        }
        ShardMsg::Call { from, id, job } => {
            let b = b.clone();
            glommio::spawn_local(async move {
                let value = job(b.clone()).await;
                b.mesh.post(from, ShardMsg::Reply { id, value });
            })
            .detach();
        }
        ShardMsg::Reply { id, value } => b.mesh.answered(id, value),
        ShardMsg::Publish(published) => {
            *b.view.borrow_mut() = published.view;
            *b.config.borrow_mut() = (*published.config).clone();
        }
        ShardMsg::CommitOffset { group, topic, queue_id, offset } => {
            b.meta.borrow_mut().commit_offset(&group, &topic, queue_id, offset);
            b.offsets_dirty.set(true);
        }
    }
}

fn next_conn_id() -> ConnId {
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Shard 0: a client's connection closed; its groups learn of it.
fn client_gone(b: &Rc<Broker>, id: ConnId) {
    let changed = b.clients.borrow_mut().connection_closed(id);
    if !changed.is_empty() {
        b.publish();
    }
    for group in changed {
        info!(id, group, "consumer left with its connection");
        b.notify_consumer_ids_changed(&group);
    }
}

/// Accepts on shard 0 and hands the connections to the shards in turn. One listening socket
/// without SO_REUSEPORT (see `namesrv::listen`) keeps a second broker from silently sharing the
/// port, and turns give an even spread where the kernel's hash of few connections may not.
async fn accept_loop(listener: TcpListener, broker: Rc<Broker>, next: Rc<Cell<usize>>) {
    let shards = broker.mesh.shards;
    loop {
        match listener.shared_accept().await {
            Ok(stream) => {
                let shard = next.get() % shards;
                next.set(shard + 1);
                if shard == 0 {
                    let id = next_conn_id();
                    glommio::spawn_local(serve_connection(stream.bind_to_executor(), id, broker.clone())).detach();
                } else {
                    broker.mesh.post(shard, ShardMsg::Accepted(stream));
                }
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
    let link = Link::Local { outbox: RefCell::new(BytesMut::new()), wake_writer, closed: Cell::new(false) };
    let conn = Rc::new(Conn { id, peer, link });
    broker.conns.borrow_mut().insert(id, conn.clone());
    debug!(%peer, id, "connection opened");
    let writer_conn = conn.clone();
    let writer_task = glommio::spawn_local(async move {
        let Link::Local { outbox, closed, .. } = &writer_conn.link else { return };
        while wake_rx.recv().await.is_some() {
            let out = outbox.borrow_mut().split();
            if !out.is_empty() && writer.write_all(&out).await.is_err() {
                closed.set(true);
                return;
            }
            if closed.get() && outbox.borrow().is_empty() {
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
        let mut this_turn = 0;
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(cmd)) => {
                    if this_turn == FRAMES_PER_TURN {
                        // Let the executor submit the writes the frames so far queued (glommio
                        // submits I/O only between turns), so that their acknowledgements do
                        // not wait for the rest of the read. A zero sleep would complete at
                        // once; one microsecond wakes this task at the next turn.
                        glommio::timer::sleep(Duration::from_micros(1)).await;
                        this_turn = 0;
                    }
                    this_turn += 1;
                    dispatch(&broker, &conn, cmd);
                }
                Ok(None) => break,
                Err(e) => {
                    warn!(%peer, error = %e, "closing connection: malformed frame");
                    break 'conn format!("malformed frame: {e}");
                }
            }
        }
        if conn.is_closed() {
            break 'conn "write failed".to_owned();
        }
    };
    debug!(%peer, id, reason, "connection closed");
    conn.close();
    broker.conns.borrow_mut().remove(&id);
    if broker.mesh.shard == 0 {
        client_gone(&broker, id);
    } else {
        broker.mesh.post(0, ShardMsg::ConnClosed { conn: id });
    }
    let _ = writer_task.await;
}

/// Sends a frame read on this shard to the shard that runs it (see `router`).
fn dispatch(broker: &Rc<Broker>, conn: &Rc<Conn>, cmd: RemotingCommand) {
    let here = broker.mesh.shard;
    if cmd.is_response() {
        // Answers to the broker's own requests, which shard 0 makes.
        if here == 0 {
            broker.client_answered(cmd);
        } else {
            broker.forward(0, conn, cmd, 0);
        }
        return;
    }
    let shard = crate::router::route(broker, &cmd);
    if shard == here {
        run_request(broker, conn.clone(), cmd, 0);
    } else if broker.mesh.backlog(shard) >= broker.config.borrow().max_pending_requests {
        busy(conn, &cmd, format!("shard {shard} is not keeping up"));
    } else {
        broker.forward(shard, conn, cmd, 0);
    }
}

/// Java's flow-control answer; oneway requests are dropped.
fn busy(conn: &Conn, cmd: &RemotingCommand, why: String) {
    if !cmd.is_oneway() {
        let answer = RemotingCommand::response_to(cmd, response::SYSTEM_BUSY)
            .with_remark(format!("[PCBUSY_CLEAN_QUEUE]broker busy, start flow control for a while, {why}"));
        conn.deliver(answer);
    }
}

/// Runs one request on its own task, so a suspended pull or a send waiting for its flush
/// never holds up the requests behind it on the connection.
fn run_request(broker: &Rc<Broker>, conn: Rc<Conn>, cmd: RemotingCommand, hops: u8) {
    let working = broker.in_flight.get() - broker.suspended.get();
    if working >= broker.config.borrow().max_pending_requests {
        busy(&conn, &cmd, format!("{working} requests in flight"));
        return;
    }
    broker.in_flight.set(broker.in_flight.get() + 1);
    let broker = broker.clone();
    glommio::spawn_local(async move {
        let oneway = cmd.is_oneway();
        let answer = crate::processor::process(&broker, &conn, cmd, hops).await;
        if let Some(answer) = answer.filter(|_| !oneway) {
            conn.deliver(answer);
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
        if !changed.is_empty() {
            broker.publish();
        }
        for group in changed {
            warn!(group, silent_for_more_than = ?timeout, "consumer dropped: no heartbeat");
            broker.notify_consumer_ids_changed(&group);
        }
    }
}
