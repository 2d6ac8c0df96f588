//! The name server's network side: one glommio executor that accepts connections, decodes
//! frames, hands them to the processor and writes the answers; plus the expiry scan.
//!
//! The state lives in an `Rc<RefCell<_>>` owned by that one executor: no locks, and no borrow is
//! held across an await.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Semaphore;
use glommio::{LocalExecutorBuilder, Placement};
use tracing::{debug, info, warn};
use wire::code::response;
use wire::{FrameDecoder, RemotingCommand};

use crate::config::NamesrvConfig;
use crate::error::NamesrvError;
use crate::kv::{self, KvConfig};
use crate::processor::{NamesrvState, Outcome};
use crate::route::ConnectionId;

/// How much one socket read takes at most.
const READ_CHUNK: usize = 64 * 1024;

/// How often the executor looks for a stop request.
const STOP_POLL: Duration = Duration::from_millis(50);

/// A running name server; it stops when `stop` is called or the value is dropped.
pub struct NamesrvServer {
    local_addr: SocketAddr,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<glommio::ExecutorJoinHandle<()>>,
}

impl Drop for NamesrvServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl NamesrvServer {
    /// Loads the KV config, binds the port and starts serving on a thread of its own.
    pub fn start(config: NamesrvConfig) -> Result<Self, NamesrvError> {
        let kv = KvConfig::load(&config.kv_config_path)?;
        let addr = config.listen_addr();
        let listener = crate::listen::bind(addr).map_err(|source| NamesrvError::Bind { addr, source })?;
        let local_addr = listener.local_addr().unwrap_or(addr);

        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let handle = LocalExecutorBuilder::new(Placement::Unbound)
            .name("namesrv")
            // No DMA files here: a small registered-buffer area keeps RLIMIT_MEMLOCK needs low.
            .io_memory(512 * 1024)
            .spawn(move || async move {
                let listener = crate::listen::into_glommio(listener);
                let _ = started_tx.send(());
                info!(addr = %local_addr, "name server listening");
                let state = Rc::new(Shared {
                    state: RefCell::new(NamesrvState::new(config, kv)),
                    kv_writer: Semaphore::new(1),
                });
                let acceptor = glommio::spawn_local(accept_loop(listener, state.clone()));
                let scanner = glommio::spawn_local(expiry_scan(state.clone()));
                // The stop signal comes from a plain thread; a few checks a second cost nothing.
                while let Err(mpsc::TryRecvError::Empty) = stop_rx.try_recv() {
                    glommio::timer::sleep(STOP_POLL).await;
                }
                drop(acceptor);
                drop(scanner);
                info!("name server stopped");
            })
            .map_err(|e| NamesrvError::Executor(e.to_string()))?;
        started_rx.recv().map_err(|_| NamesrvError::Executor("the executor ended before serving".into()))?;
        Ok(Self { local_addr, stop: Some(stop_tx), thread: Some(handle) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and serving, and waits for the executor thread to end.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Blocks until the server stops (it only stops through `stop`, so: forever).
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Shared {
    state: RefCell<NamesrvState>,
    /// One KV file write at a time, so writes land in the order of the changes they carry.
    kv_writer: Semaphore,
}

async fn accept_loop(listener: TcpListener, shared: Rc<Shared>) {
    let mut next_id: ConnectionId = 0;
    loop {
        match listener.accept().await {
            Ok(stream) => {
                next_id += 1;
                let id = next_id;
                let shared = shared.clone();
                glommio::spawn_local(async move { serve_connection(stream, id, shared).await }).detach();
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve_connection(mut stream: TcpStream, id: ConnectionId, shared: Rc<Shared>) {
    let peer = match stream.peer_addr() {
        Ok(peer) => peer,
        Err(e) => {
            debug!(error = %e, "connection gone before it was served");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    debug!(%peer, id, "connection opened");
    let max_frame = shared.state.borrow().config.max_frame_bytes;
    let decoder = FrameDecoder::new(max_frame);
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut scratch = vec![0u8; READ_CHUNK];
    let mut output = BytesMut::new();
    let reason = 'conn: loop {
        let n = match stream.read(&mut scratch).await {
            Ok(0) => break 'conn "closed by peer".to_owned(),
            Ok(n) => n,
            Err(e) => break 'conn format!("read failed: {e}"),
        };
        input.extend_from_slice(&scratch[..n]);
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(cmd)) => {
                    if let Some(answer) = process(&shared, &cmd, id, peer).await {
                        wire::encode(&answer, &mut output);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    warn!(%peer, error = %e, "closing connection: malformed frame");
                    let _ = stream.write_all(&output).await;
                    break 'conn format!("malformed frame: {e}");
                }
            }
        }
        if !output.is_empty() {
            if let Err(e) = stream.write_all(&output).await {
                break 'conn format!("write failed: {e}");
            }
            output.clear();
        }
    };
    debug!(%peer, id, reason, "connection closed");
    if let Some(addr) = shared.state.borrow_mut().routes.on_connection_closed(id) {
        warn!(broker = %addr, %peer, "broker removed: its connection closed");
    }
}

async fn process(
    shared: &Shared,
    cmd: &RemotingCommand,
    id: ConnectionId,
    peer: SocketAddr,
) -> Option<RemotingCommand> {
    let outcome = shared.state.borrow_mut().handle(cmd, id, peer, Instant::now());
    match outcome {
        Outcome::Nothing => None,
        Outcome::Reply(answer) => Some(answer),
        Outcome::PersistKv(answer) => match persist_kv(shared).await {
            Ok(()) => Some(answer),
            Err(e) => {
                warn!(error = %e, "KV config not persisted");
                Some(RemotingCommand::response_to(cmd, response::SYSTEM_ERROR).with_remark(e.to_string()))
            }
        },
    }
}

/// Writes the current KV table to its file off the executor. The snapshot is taken once the
/// writer slot is ours, so it includes every change made before.
async fn persist_kv(shared: &Shared) -> Result<(), NamesrvError> {
    let _slot = shared.kv_writer.acquire_permit(1).await.map_err(|e| NamesrvError::Executor(e.to_string()))?;
    let (path, contents) = {
        let state = shared.state.borrow();
        (state.config.kv_config_path.clone(), state.kv_snapshot())
    };
    glommio::executor().spawn_blocking(move || kv::persist(&path, &contents)).await
}

async fn expiry_scan(shared: Rc<Shared>) {
    loop {
        let interval = shared.state.borrow().config.scan_interval();
        glommio::timer::sleep(interval).await;
        let mut state = shared.state.borrow_mut();
        let expiry = state.config.broker_expiry();
        for addr in state.routes.scan_not_active(Instant::now(), expiry) {
            warn!(broker = %addr, silent_for_more_than = ?expiry, "broker removed: no registration in time");
        }
    }
}
