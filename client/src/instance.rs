//! What producers and consumers share: the connections, the name servers, the route cache and
//! the client's identity, with the background work Java's `MQClientInstance` does — route
//! refresh and heartbeats every 30 s, and answering the brokers' requests.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use wire::body::{ConsumerData, HeartbeatData, JsonBody, ProducerData};
use wire::code::request;
use wire::header::{NotifyConsumerIdsChangedRequestHeader, UnregisterClientRequestHeader};
use wire::{RemotingCommand, SerializeType};

use crate::error::Result;
use crate::lock;
use crate::remoting::{expect_success, RemotingClient, RemotingConfig, ServerRequest};
use crate::route::{NameServers, RouteCache, TopicRoute};

/// Settings every producer, consumer and admin client shares.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Name servers, `;`-separated.
    pub namesrv_addr: String,
    /// How long one request waits for its answer.
    pub request_timeout: Duration,
    /// JSON (Java's default) or ROCKETMQ headers.
    pub serialize_type: SerializeType,
    /// Route refresh period (`pollNameServerInterval`).
    pub poll_name_server_interval: Duration,
    /// Heartbeat period (`heartbeatBrokerInterval`).
    pub heartbeat_interval: Duration,
}

impl ClientConfig {
    pub fn new(namesrv_addr: impl Into<String>) -> Self {
        Self { namesrv_addr: namesrv_addr.into(), ..Self::default() }
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            namesrv_addr: "127.0.0.1:9876".into(),
            request_timeout: Duration::from_secs(3),
            serialize_type: SerializeType::Json,
            poll_name_server_interval: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(30),
        }
    }
}

/// Serves one group's requests from the brokers: CHECK_TRANSACTION_STATE for a producer
/// group; RESET_CONSUMER_CLIENT_OFFSET, GET_CONSUMER_RUNNING_INFO for a consumer group.
pub(crate) type Checker = Arc<dyn Fn(ServerRequest) + Send + Sync>;

pub(crate) struct ClientInstance {
    pub remoting: RemotingClient,
    pub namesrv: NameServers,
    pub routes: RouteCache,
    pub client_id: String,
    pub config: ClientConfig,
    producer_groups: Mutex<BTreeSet<String>>,
    consumers: Mutex<BTreeMap<String, ConsumerData>>,
    /// Woken when a broker says a group's consumers changed.
    rebalance_wakers: Mutex<HashMap<String, Arc<Notify>>>,
    /// Transaction checkers by producer group: they answer CHECK_TRANSACTION_STATE.
    checkers: Mutex<HashMap<String, Checker>>,
    /// Consumer groups' request handlers.
    consumer_hooks: Mutex<HashMap<String, Checker>>,
    /// Brokers that have had a heartbeat from us.
    greeted: Mutex<BTreeSet<String>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl ClientInstance {
    pub fn start(config: ClientConfig) -> Result<Arc<Self>> {
        let remoting =
            RemotingClient::new(RemotingConfig { serialize_type: config.serialize_type, ..RemotingConfig::default() });
        let namesrv = NameServers::new(remoting.clone(), &config.namesrv_addr, config.request_timeout)?;
        let instance = Arc::new(Self {
            remoting,
            namesrv,
            routes: RouteCache::default(),
            client_id: new_client_id(),
            config,
            producer_groups: Mutex::new(BTreeSet::new()),
            consumers: Mutex::new(BTreeMap::new()),
            rebalance_wakers: Mutex::new(HashMap::new()),
            checkers: Mutex::new(HashMap::new()),
            consumer_hooks: Mutex::new(HashMap::new()),
            greeted: Mutex::new(BTreeSet::new()),
            tasks: Mutex::new(Vec::new()),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        instance.remoting.set_request_handler(tx);
        let weak = Arc::downgrade(&instance);
        let tasks =
            vec![tokio::spawn(serve_broker_requests(weak.clone(), rx)), tokio::spawn(refresh_periodically(weak))];
        lock(&instance.tasks).extend(tasks);
        Ok(instance)
    }

    pub fn request_timeout(&self) -> Duration {
        self.config.request_timeout
    }

    /// Asks the name servers for the topic's route and caches it.
    pub async fn fetch_route(&self, topic: &str) -> Result<Option<Arc<TopicRoute>>> {
        match self.namesrv.topic_route(topic).await? {
            Some(data) => {
                let route = TopicRoute::new(topic, data);
                if self.routes.get(topic).is_some_and(|old| old.data != route.data) {
                    tracing::info!(topic, "topic route changed");
                }
                let route = self.routes.put(route);
                self.greet(route.master_addrs()).await;
                Ok(Some(route))
            }
            None => Ok(None),
        }
    }

    /// Sends `request` to a broker and returns the answer if it is SUCCESS.
    pub async fn call(&self, addr: &str, request: RemotingCommand) -> Result<RemotingCommand> {
        let code = request.code;
        let answer = self.remoting.invoke(addr, request, self.config.request_timeout).await?;
        expect_success(addr, code, answer)
    }

    pub fn register_producer(&self, group: &str) {
        lock(&self.producer_groups).insert(group.to_string());
    }

    pub fn register_consumer(&self, data: ConsumerData) -> Arc<Notify> {
        let waker = Arc::new(Notify::new());
        lock(&self.rebalance_wakers).insert(data.group_name.clone(), waker.clone());
        lock(&self.consumers).insert(data.group_name.clone(), data);
        waker
    }

    fn heartbeat_data(&self) -> HeartbeatData {
        HeartbeatData {
            client_id: self.client_id.clone(),
            producer_data_set: lock(&self.producer_groups)
                .iter()
                .map(|g| ProducerData { group_name: g.clone() })
                .collect(),
            consumer_data_set: lock(&self.consumers).values().cloned().collect(),
        }
    }

    /// HEART_BEAT to every master in the cached routes. Failures are logged: the next beat
    /// tries again.
    pub async fn send_heartbeat(&self) {
        self.heartbeat_to(self.routes.master_addrs()).await;
    }

    /// A heartbeat to the brokers of `addrs` that have not had one yet, so that a broker knows
    /// our groups from our first request on, as Java's clients do.
    pub async fn greet<'a>(&self, addrs: impl Iterator<Item = &'a str>) {
        let new: Vec<String> = {
            let greeted = lock(&self.greeted);
            addrs.filter(|a| !greeted.contains(*a)).map(str::to_string).collect()
        };
        if !new.is_empty() {
            self.heartbeat_to(new).await;
        }
    }

    async fn heartbeat_to(&self, addrs: Vec<String>) {
        let body = self.heartbeat_data().encode();
        for addr in addrs {
            let cmd = RemotingCommand::request(request::HEART_BEAT).with_body(body.clone());
            match self.call(&addr, cmd).await {
                Ok(_) => {
                    lock(&self.greeted).insert(addr);
                }
                Err(e) => tracing::warn!(broker = %addr, error = %e, "heartbeat failed"),
            }
        }
    }

    /// UNREGISTER_CLIENT for each group to every broker, stops the background work and closes
    /// the connections.
    pub async fn shutdown(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        let producers: Vec<String> = lock(&self.producer_groups).iter().cloned().collect();
        let consumers: Vec<String> = lock(&self.consumers).keys().cloned().collect();
        for addr in self.routes.master_addrs() {
            let headers = producers
                .iter()
                .map(|g| (Some(g.clone()), None))
                .chain(consumers.iter().map(|g| (None, Some(g.clone()))));
            for (producer_group, consumer_group) in headers {
                let header = UnregisterClientRequestHeader {
                    client_id: self.client_id.as_str().into(),
                    producer_group: producer_group.map(Into::into),
                    consumer_group: consumer_group.map(Into::into),
                };
                let cmd = RemotingCommand::request(request::UNREGISTER_CLIENT).with_header(&header);
                if let Err(e) = self.call(&addr, cmd).await {
                    tracing::debug!(broker = %addr, error = %e, "unregister failed");
                }
            }
        }
        self.remoting.close_all();
    }

    async fn refresh_routes(&self) {
        for topic in self.routes.topics() {
            match self.fetch_route(&topic).await {
                Ok(Some(_)) => {}
                Ok(None) => tracing::debug!(topic, "topic no longer routed"),
                Err(e) => tracing::warn!(topic, error = %e, "route refresh failed"),
            }
        }
    }

    /// Hands CHECK_TRANSACTION_STATE requests about `group`'s half messages to `checker`.
    pub fn register_checker(&self, group: &str, checker: Checker) {
        lock(&self.checkers).insert(group.to_string(), checker);
    }

    /// Hands the brokers' requests about consumer group `group` to `hook`.
    pub fn register_consumer_hook(&self, group: &str, hook: Checker) {
        lock(&self.consumer_hooks).insert(group.to_string(), hook);
    }

    fn handle(&self, request: ServerRequest) {
        let code = request.command.code;
        let group_field = match code {
            request::RESET_CONSUMER_CLIENT_OFFSET | request::GET_CONSUMER_STATUS_FROM_CLIENT => Some("group"),
            request::GET_CONSUMER_RUNNING_INFO | request::CONSUME_MESSAGE_DIRECTLY => Some("consumerGroup"),
            _ => None,
        };
        if let Some(field) = group_field {
            let group = request.command.ext_fields.get(field).map(str::to_owned).unwrap_or_default();
            let hook = lock(&self.consumer_hooks).get(&group).cloned();
            if let Some(hook) = hook {
                return hook(request);
            }
        }
        if code == request::CHECK_TRANSACTION_STATE {
            let group = wire::message::decode_stored_messages(&request.command.body, false)
                .ok()
                .and_then(|mut m| m.pop())
                .and_then(|m| m.property(wire::message::properties::PRODUCER_GROUP).map(str::to_owned));
            let checker = group.and_then(|g| lock(&self.checkers).get(&g).cloned());
            match checker {
                Some(checker) => checker(request),
                None => {
                    tracing::warn!(broker = %request.addr, "transaction check for a group this client does not produce for")
                }
            }
            return;
        }
        if code == request::NOTIFY_CONSUMER_IDS_CHANGED {
            if let Ok(header) = request.command.header::<NotifyConsumerIdsChangedRequestHeader>() {
                if let Some(waker) = lock(&self.rebalance_wakers).get(header.consumer_group.as_str()) {
                    waker.notify_one();
                }
            }
            return;
        }
        if !request.command.is_oneway() {
            let answer =
                RemotingCommand::response_to(&request.command, wire::code::response::REQUEST_CODE_NOT_SUPPORTED)
                    .with_remark(format!("request code {code} not supported by this client"));
            request.reply(answer);
        }
    }
}

async fn serve_broker_requests(instance: Weak<ClientInstance>, mut requests: mpsc::UnboundedReceiver<ServerRequest>) {
    while let Some(request) = requests.recv().await {
        match instance.upgrade() {
            Some(instance) => instance.handle(request),
            None => return,
        }
    }
}

async fn refresh_periodically(instance: Weak<ClientInstance>) {
    let Some(period) = instance.upgrade().map(|i| i.config.poll_name_server_interval.min(i.config.heartbeat_interval))
    else {
        return;
    };
    let mut ticker = tokio::time::interval(period);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let Some(instance) = instance.upgrade() else { return };
        instance.refresh_routes().await;
        instance.send_heartbeat().await;
    }
}

/// `ip@pid#n`: Java's `ip@instanceName`, with a per-process counter so that two clients in one
/// process are two clients to the broker (Java needs distinct instance names for that).
fn new_client_id() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{}@{}#{}", local_ip(), std::process::id(), n)
}

/// This host's address as others would see it; loopback when there is no route out.
pub(crate) fn local_ip() -> IpAddr {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("10.255.255.255:9").map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
