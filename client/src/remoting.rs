//! The remoting layer: one TCP connection per server address, shared by every request to it.
//!
//! A request gets the next `opaque` and waits for the response with the same one; requests the
//! server sends to us (NOTIFY_CONSUMER_IDS_CHANGED, CHECK_TRANSACTION_STATE, …) go to the
//! handler set with [`RemotingClient::set_request_handler`]. A connection that fails is
//! dropped, failing what waits on it, and the next request to that address connects again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use wire::{code, FrameDecoder, RemotingCommand, SerializeType};

use crate::error::{request_name, response_name, ClientError, Result};
use crate::lock;

/// How the remoting layer talks.
#[derive(Debug, Clone)]
pub struct RemotingConfig {
    pub connect_timeout: Duration,
    /// Header serialization of our requests: JSON (Java's default) or the compact ROCKETMQ form.
    pub serialize_type: SerializeType,
    pub max_frame_bytes: usize,
    /// Oneway requests queued per connection and not yet written (Java's
    /// `clientOnewaySemaphoreValue`); one more waits for room, so a loop of oneway sends cannot
    /// outrun the socket and grow without bound.
    pub max_oneway_in_flight: usize,
    /// How long a oneway request waits for that room before failing with a timeout.
    pub oneway_timeout: Duration,
}

impl Default for RemotingConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            serialize_type: SerializeType::Json,
            max_frame_bytes: wire::MAX_FRAME_BYTES_DEFAULT,
            max_oneway_in_flight: 65_535,
            oneway_timeout: Duration::from_secs(3),
        }
    }
}

/// A request a server sent to this client. Answer it with [`ServerRequest::reply`] unless it is
/// oneway.
#[derive(Debug)]
pub struct ServerRequest {
    pub addr: String,
    pub command: RemotingCommand,
    connection: Weak<Connection>,
}

impl ServerRequest {
    /// Sends `response` (built with [`RemotingCommand::response_to`]) back to the server.
    pub fn reply(&self, response: RemotingCommand) {
        if let Some(connection) = self.connection.upgrade() {
            connection.send(response);
        }
    }
}

/// Cheap to clone; every clone shares the connections.
#[derive(Clone)]
pub struct RemotingClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: RemotingConfig,
    connections: Mutex<HashMap<String, Arc<Connection>>>,
    next_opaque: AtomicI32,
    request_handler: Mutex<Option<mpsc::UnboundedSender<ServerRequest>>>,
}

/// A command on its way to the writer, which encodes it straight into the buffer of its next
/// write; a oneway request holds its permit until then.
#[derive(Debug)]
struct Outgoing {
    command: RemotingCommand,
    _permit: Option<OwnedSemaphorePermit>,
}

#[derive(Debug)]
struct Connection {
    addr: String,
    outbox: mpsc::UnboundedSender<Outgoing>,
    oneway_permits: Arc<Semaphore>,
    pending: Mutex<HashMap<i32, oneshot::Sender<RemotingCommand>>>,
    closed: AtomicBool,
    /// Wakes the reader to drop the connection from our side.
    close: tokio::sync::Notify,
}

impl Connection {
    fn send(&self, command: RemotingCommand) -> bool {
        self.outbox.send(Outgoing { command, _permit: None }).is_ok()
    }

    fn forget(&self, opaque: i32) {
        lock(&self.pending).remove(&opaque);
    }

    fn shut(&self) {
        self.closed.store(true, Ordering::Release);
        lock(&self.pending).clear();
        self.close.notify_one();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for connection in lock(&self.connections).values() {
            connection.shut();
        }
    }
}

impl RemotingClient {
    pub fn new(config: RemotingConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                connections: Mutex::new(HashMap::new()),
                next_opaque: AtomicI32::new(1),
                request_handler: Mutex::new(None),
            }),
        }
    }

    pub fn config(&self) -> &RemotingConfig {
        &self.inner.config
    }

    /// Where requests from servers go from now on. Without a handler, requests that expect an
    /// answer get REQUEST_CODE_NOT_SUPPORTED.
    pub fn set_request_handler(&self, handler: mpsc::UnboundedSender<ServerRequest>) {
        *lock(&self.inner.request_handler) = Some(handler);
    }

    /// Sends `request` to `addr` and waits up to `timeout` for the answer. The answer is
    /// returned whatever its code; see [`expect_success`] for the common check.
    pub async fn invoke(&self, addr: &str, mut request: RemotingCommand, timeout: Duration) -> Result<RemotingCommand> {
        let name = request_name(request.code);
        let connection = self.connection(addr).await?;
        let opaque = self.prepare(&mut request);
        let (tx, rx) = oneshot::channel();
        lock(&connection.pending).insert(opaque, tx);
        if !connection.send(request) {
            connection.forget(opaque);
            return Err(ClientError::ConnectionClosed { addr: addr.to_string(), request: name });
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(_)) => Err(ClientError::ConnectionClosed { addr: addr.to_string(), request: name }),
            Err(_) => {
                connection.forget(opaque);
                Err(ClientError::Timeout { addr: addr.to_string(), request: name, timeout })
            }
        }
    }

    /// Sends `request` without waiting for an answer (the server sends none).
    pub async fn invoke_oneway(&self, addr: &str, request: RemotingCommand) -> Result<()> {
        let name = request_name(request.code);
        let connection = self.connection(addr).await?;
        let wait = self.inner.config.oneway_timeout;
        let permit = match tokio::time::timeout(wait, connection.oneway_permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(ClientError::ConnectionClosed { addr: addr.to_string(), request: name }),
            Err(_) => return Err(ClientError::Timeout { addr: addr.to_string(), request: name, timeout: wait }),
        };
        let mut request = request.mark_oneway();
        self.prepare(&mut request);
        let outgoing = Outgoing { command: request, _permit: Some(permit) };
        if connection.outbox.send(outgoing).is_ok() {
            Ok(())
        } else {
            Err(ClientError::ConnectionClosed { addr: addr.to_string(), request: name })
        }
    }

    /// Closes every connection; requests in flight fail with `ConnectionClosed`.
    pub fn close_all(&self) {
        let connections: Vec<_> = lock(&self.inner.connections).drain().map(|(_, c)| c).collect();
        for connection in connections {
            connection.shut();
        }
    }

    fn prepare(&self, request: &mut RemotingCommand) -> i32 {
        let opaque = self.inner.next_opaque.fetch_add(1, Ordering::Relaxed) & i32::MAX;
        request.opaque = opaque;
        request.serialize_type = self.inner.config.serialize_type;
        opaque
    }

    async fn connection(&self, addr: &str) -> Result<Arc<Connection>> {
        if let Some(existing) = lock(&self.inner.connections).get(addr) {
            if !existing.closed.load(Ordering::Acquire) {
                return Ok(existing.clone());
            }
        }
        let timeout = self.inner.config.connect_timeout;
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(ClientError::Connect { addr: addr.to_string(), source }),
            Err(_) => return Err(ClientError::ConnectTimeout { addr: addr.to_string(), timeout }),
        };
        let _ = stream.set_nodelay(true);
        let mut connections = lock(&self.inner.connections);
        if let Some(existing) = connections.get(addr) {
            // Another request connected first; use its connection and let ours drop.
            if !existing.closed.load(Ordering::Acquire) {
                return Ok(existing.clone());
            }
        }
        let (reader, writer) = stream.into_split();
        let (outbox, inbox) = mpsc::unbounded_channel();
        let connection = Arc::new(Connection {
            addr: addr.to_string(),
            outbox,
            oneway_permits: Arc::new(Semaphore::new(self.inner.config.max_oneway_in_flight.max(1))),
            pending: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            close: tokio::sync::Notify::new(),
        });
        connections.insert(addr.to_string(), connection.clone());
        drop(connections);
        tokio::spawn(write_loop(writer, inbox));
        tokio::spawn(read_loop(reader, connection.clone(), Arc::downgrade(&self.inner)));
        Ok(connection)
    }
}

/// The answer if it says SUCCESS, else the error it carries.
pub fn expect_success(addr: &str, request_code: i32, response: RemotingCommand) -> Result<RemotingCommand> {
    if response.code == code::response::SUCCESS {
        Ok(response)
    } else {
        Err(broker_error(addr, request_code, &response))
    }
}

/// The error a non-SUCCESS answer stands for.
pub fn broker_error(addr: &str, request_code: i32, response: &RemotingCommand) -> ClientError {
    ClientError::Broker {
        addr: addr.to_string(),
        request: request_name(request_code),
        code: response.code,
        code_name: response_name(response.code),
        remark: response.remark_str().to_string(),
    }
}

/// Frames gathered into one write, at most (one larger frame is written alone).
const MAX_GATHER: usize = 1 << 20;
/// The write buffer's size at rest; a larger one, grown for a big frame, is let go.
const WRITE_BUFFER: usize = 64 * 1024;

/// Writes queued commands, encoding whatever is queued into one buffer and one write; oneway
/// permits are returned once their frames are written.
async fn write_loop(mut writer: tokio::net::tcp::OwnedWriteHalf, mut inbox: mpsc::UnboundedReceiver<Outgoing>) {
    let mut gathered = BytesMut::with_capacity(WRITE_BUFFER);
    let mut written = Vec::new();
    while let Some(first) = inbox.recv().await {
        wire::encode(&first.command, &mut gathered);
        written.push(first);
        // The senders one read of answers woke run first and queue their next requests, so
        // that one write (one syscall, one segment) carries them all.
        tokio::task::yield_now().await;
        while gathered.len() < MAX_GATHER {
            match inbox.try_recv() {
                Ok(next) => {
                    wire::encode(&next.command, &mut gathered);
                    written.push(next);
                }
                Err(_) => break,
            }
        }
        let result = writer.write_all(&gathered).await;
        written.clear();
        gathered.clear();
        if gathered.capacity() > 4 * WRITE_BUFFER {
            gathered = BytesMut::with_capacity(WRITE_BUFFER);
        }
        if let Err(e) = result {
            tracing::debug!(error = %e, "write failed; connection dropped");
            return;
        }
    }
}

async fn read_loop(mut reader: tokio::net::tcp::OwnedReadHalf, connection: Arc<Connection>, client: Weak<Inner>) {
    let max = client.upgrade().map_or(wire::MAX_FRAME_BYTES_DEFAULT, |c| c.config.max_frame_bytes);
    let decoder = FrameDecoder::new(max);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    'read: loop {
        let read = tokio::select! {
            read = reader.read_buf(&mut buf) => read,
            _ = connection.close.notified() => break,
        };
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(addr = %connection.addr, error = %e, "read failed");
                break;
            }
        }
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(command)) => dispatch(&connection, &client, command),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(addr = %connection.addr, error = %e, "undecodable frame; connection dropped");
                    break 'read;
                }
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
    }
    connection.shut();
    if let Some(client) = client.upgrade() {
        let mut connections = lock(&client.connections);
        if connections.get(&connection.addr).is_some_and(|c| Arc::ptr_eq(c, &connection)) {
            connections.remove(&connection.addr);
        }
    }
}

fn dispatch(connection: &Arc<Connection>, client: &Weak<Inner>, command: RemotingCommand) {
    if command.is_response() {
        if let Some(waiter) = lock(&connection.pending).remove(&command.opaque) {
            let _ = waiter.send(command);
        }
        return;
    }
    let handler = client.upgrade().and_then(|c| lock(&c.request_handler).clone());
    let request = ServerRequest { addr: connection.addr.clone(), command, connection: Arc::downgrade(connection) };
    let unhandled = match handler {
        Some(handler) => match handler.send(request) {
            Ok(()) => return,
            Err(mpsc::error::SendError(request)) => request,
        },
        None => request,
    };
    if !unhandled.command.is_oneway() {
        let answer = RemotingCommand::response_to(&unhandled.command, code::response::REQUEST_CODE_NOT_SUPPORTED)
            .with_remark(format!("request code {} not supported by this client", unhandled.command.code));
        unhandled.reply(answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[tokio::test]
    async fn oneway_sends_wait_for_the_socket_and_time_out_when_it_never_drains() {
        // A server that accepts and never reads: the socket buffers fill, then the permits run out.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let _held = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(stream);
        });
        let client = RemotingClient::new(RemotingConfig {
            max_oneway_in_flight: 2,
            oneway_timeout: Duration::from_millis(200),
            ..RemotingConfig::default()
        });
        let body = Bytes::from(vec![0u8; 1 << 20]);
        let mut outcome = Ok(());
        for _ in 0..256 {
            let request = RemotingCommand::request(code::request::SEND_MESSAGE).with_body(body.clone());
            outcome = client.invoke_oneway(&addr, request).await;
            if outcome.is_err() {
                break;
            }
        }
        match outcome {
            Err(ClientError::Timeout { timeout, .. }) => assert_eq!(timeout, Duration::from_millis(200)),
            other => panic!("256 MiB of oneway sends to a server that reads nothing: {other:?}"),
        }
    }
}
