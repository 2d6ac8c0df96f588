//! How shards talk: one bounded cross-core channel for each ordered pair of shards, fed by a
//! local queue and a pump task so that posting never waits and messages from one shard to
//! another arrive in the order they were posted (a snapshot posted before a forwarded request
//! is seen before it). The pump sends what gathered while it waited as one batch: each item
//! on a cross-core channel costs a wake-up of the other executor, so under load one wake-up
//! serves many messages. Calls run a job on another shard and wait for its answer.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::channels::shared_channel::{self, ConnectedReceiver, SharedReceiver, SharedSender};
use glommio::net::AcceptedTcpStream;
use wire::RemotingCommand;

use crate::clients::ConnId;
use crate::server::Broker;
use crate::view::Published;

/// Batches in flight from one shard to another before the sender waits for room.
const CHANNEL_DEPTH: usize = 1024;
/// Longest a call waits for the other shard (it only fails to answer while stopping).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub type Value = Box<dyn Any + Send>;
/// Work for another shard: built here, run there with that shard's broker.
pub type Job = Box<dyn FnOnce(Rc<Broker>) -> Pin<Box<dyn Future<Output = Value>>> + Send>;

pub enum ShardMsg {
    /// A client's request for this shard to run; the answer goes to `conn` on shard `from`.
    Request {
        from: usize,
        conn: ConnId,
        peer: SocketAddr,
        hops: u8,
        cmd: RemotingCommand,
    },
    /// A frame for a connection the receiving shard serves.
    ToConn {
        conn: ConnId,
        cmd: RemotingCommand,
    },
    /// A connection this shard accepted for the receiving shard to serve.
    Accepted(AcceptedTcpStream),
    /// A connection of shard `from` closed (to shard 0, which tracks clients).
    ConnClosed {
        conn: ConnId,
    },
    Call {
        from: usize,
        id: u64,
        job: Job,
    },
    Reply {
        id: u64,
        value: Value,
    },
    /// Shard 0's new view and settings.
    Publish(Published),
    /// A consumer offset a pull committed on the queue's shard (to shard 0, which keeps them).
    CommitOffset {
        group: String,
        topic: String,
        queue_id: i32,
        offset: i64,
    },
}

/// One shard's ends of the mesh, made on the starting thread and moved to its executor.
pub struct MeshEnds {
    shard: usize,
    senders: Vec<Option<SharedSender<Vec<ShardMsg>>>>,
    receivers: Vec<Option<SharedReceiver<Vec<ShardMsg>>>>,
}

/// The ends for `shards` shards, in shard order.
pub fn ends(shards: usize) -> Vec<MeshEnds> {
    let mut all: Vec<MeshEnds> = (0..shards)
        .map(|shard| MeshEnds {
            shard,
            senders: (0..shards).map(|_| None).collect(),
            receivers: (0..shards).map(|_| None).collect(),
        })
        .collect();
    for from in 0..shards {
        for to in (0..shards).filter(|&to| to != from) {
            let (tx, rx) = shared_channel::new_bounded(CHANNEL_DEPTH);
            all[from].senders[to] = Some(tx);
            all[to].receivers[from] = Some(rx);
        }
    }
    all
}

/// Messages waiting for the pump to one shard.
struct Outbox {
    queued: RefCell<Vec<ShardMsg>>,
    wake_pump: LocalSender<()>,
}

pub struct Mesh {
    pub shard: usize,
    pub shards: usize,
    out: Vec<Option<Outbox>>,
    calls: RefCell<HashMap<u64, LocalSender<Value>>>,
    next_call: Cell<u64>,
}

impl Mesh {
    /// Connects this shard's ends (every shard must do so at the same time) and starts the
    /// pumps; returns the mesh and the receivers, one per other shard.
    pub async fn connect(ends: MeshEnds) -> (Rc<Mesh>, Vec<ConnectedReceiver<Vec<ShardMsg>>>) {
        let shards = ends.senders.len();
        let mut senders = Vec::new();
        for (to, tx) in ends.senders.into_iter().enumerate() {
            if let Some(tx) = tx {
                senders.push((to, glommio::spawn_local(tx.connect())));
            }
        }
        let mut receivers = Vec::new();
        for rx in ends.receivers.into_iter().flatten() {
            receivers.push(glommio::spawn_local(rx.connect()));
        }
        let mut out: Vec<Option<Outbox>> = (0..shards).map(|_| None).collect();
        let mut pumps = Vec::new();
        for (to, connecting) in senders {
            let remote = connecting.await;
            let (wake_pump, woken): (LocalSender<()>, LocalReceiver<()>) = local_channel::new_bounded(1);
            out[to] = Some(Outbox { queued: RefCell::default(), wake_pump });
            pumps.push((to, remote, woken));
        }
        let mesh = Rc::new(Mesh { shard: ends.shard, shards, out, calls: RefCell::default(), next_call: Cell::new(0) });
        for (to, remote, woken) in pumps {
            let mesh = Rc::downgrade(&mesh);
            glommio::spawn_local(async move {
                while woken.recv().await.is_some() {
                    let Some(mesh) = mesh.upgrade() else { return };
                    let Some(outbox) = &mesh.out[to] else { return };
                    let batch = std::mem::take(&mut *outbox.queued.borrow_mut());
                    drop(mesh);
                    if !batch.is_empty() && remote.send(batch).await.is_err() {
                        return; // that shard stopped
                    }
                }
            })
            .detach();
        }
        let mut connected = Vec::new();
        for rx in receivers {
            connected.push(rx.await);
        }
        (mesh, connected)
    }

    /// A mesh of one shard: nothing to post to.
    pub fn single() -> Rc<Mesh> {
        Rc::new(Mesh { shard: 0, shards: 1, out: vec![None], calls: RefCell::default(), next_call: Cell::new(0) })
    }

    /// Queues `msg` for `shard`; dropped only when that shard has stopped.
    pub fn post(&self, shard: usize, msg: ShardMsg) {
        if let Some(Some(outbox)) = self.out.get(shard) {
            outbox.queued.borrow_mut().push(msg);
            // Full means the pump is already due to run and will take this one too.
            let _ = outbox.wake_pump.try_send(());
        }
    }

    /// Messages waiting to leave for `shard`: they pile up only when that shard is not
    /// taking them, which the router turns into SYSTEM_BUSY.
    pub fn backlog(&self, shard: usize) -> usize {
        self.out.get(shard).and_then(Option::as_ref).map_or(0, |o| o.queued.borrow().len())
    }

    /// Runs `job` on `shard` and waits for its value; `None` when that shard did not answer.
    pub async fn call(&self, shard: usize, job: Job) -> Option<Value> {
        let (tx, rx) = local_channel::new_bounded(1);
        let id = self.next_call.get().wrapping_add(1);
        self.next_call.set(id);
        self.calls.borrow_mut().insert(id, tx);
        self.post(shard, ShardMsg::Call { from: self.shard, id, job });
        let value = recv_within(&rx, CALL_TIMEOUT).await;
        self.calls.borrow_mut().remove(&id);
        value
    }

    /// Hands a call's value to the task waiting for it.
    pub fn answered(&self, id: u64, value: Value) {
        if let Some(tx) = self.calls.borrow_mut().remove(&id) {
            let _ = tx.try_send(value);
        }
    }
}

/// The next value from `rx`, or `None` after `timeout`.
pub async fn recv_within<T>(rx: &LocalReceiver<T>, timeout: Duration) -> Option<T> {
    futures_lite::future::or(async { rx.recv().await }, async {
        glommio::timer::sleep(timeout).await;
        None
    })
    .await
}
