//! Name servers and topic routes: which brokers serve a topic, and its queues on each.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wire::body::{perm, JsonBody, MessageQueue, TopicRouteData};
use wire::code::{request, response};
use wire::header::GetRouteInfoRequestHeader;
use wire::RemotingCommand;

use crate::error::{ClientError, Result};
use crate::lock;
use crate::remoting::{broker_error, RemotingClient};

/// The name server list (`;`-separated, as `namesrvAddr`), tried in turn: a request goes to the
/// one that answered last, and on a transport failure to the next.
#[derive(Clone)]
pub struct NameServers {
    remoting: RemotingClient,
    addrs: Arc<Vec<String>>,
    current: Arc<AtomicUsize>,
    timeout: Duration,
}

impl NameServers {
    pub fn new(remoting: RemotingClient, namesrv_addr: &str, timeout: Duration) -> Result<Self> {
        let addrs: Vec<String> =
            namesrv_addr.split(';').map(str::trim).filter(|a| !a.is_empty()).map(str::to_string).collect();
        if addrs.is_empty() {
            return Err(ClientError::NoNameServer);
        }
        Ok(Self { remoting, addrs: Arc::new(addrs), current: Arc::new(AtomicUsize::new(0)), timeout })
    }

    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// Sends `request` to one name server, moving on to the next while they fail to answer.
    /// The answer is returned whatever its code.
    pub async fn invoke(&self, request: RemotingCommand) -> Result<(String, RemotingCommand)> {
        let start = self.current.load(Ordering::Relaxed);
        let mut last_error = ClientError::NoNameServer;
        for i in 0..self.addrs.len() {
            let index = (start + i) % self.addrs.len();
            let addr = &self.addrs[index];
            match self.remoting.invoke(addr, request.clone(), self.timeout).await {
                Ok(answer) => {
                    self.current.store(index, Ordering::Relaxed);
                    return Ok((addr.clone(), answer));
                }
                Err(e) if e.is_transport() => {
                    tracing::debug!(addr = %addr, error = %e, "name server unreachable; trying the next");
                    last_error = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error)
    }

    /// The topic's route, `None` when the name servers know no such topic.
    pub async fn topic_route(&self, topic: &str) -> Result<Option<TopicRouteData>> {
        let header = GetRouteInfoRequestHeader { topic: topic.into(), ..Default::default() };
        let cmd = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_header(&header);
        let (addr, answer) = self.invoke(cmd).await?;
        match answer.code {
            response::SUCCESS => TopicRouteData::decode(&answer.body).map(Some).map_err(|source| ClientError::Body {
                addr,
                request: "GET_ROUTEINFO_BY_TOPIC",
                source,
            }),
            response::TOPIC_NOT_EXIST => Ok(None),
            _ => Err(broker_error(&addr, request::GET_ROUTEINFO_BY_TOPIC, &answer)),
        }
    }
}

/// A topic's route, digested: queues to send to, queues to read, and each broker's master.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicRoute {
    pub topic: String,
    pub data: TopicRouteData,
    /// Writable queues of brokers that have a master, by broker name then queue id.
    pub write_queues: Vec<MessageQueue>,
    /// Readable queues, in the same order.
    pub read_queues: Vec<MessageQueue>,
    masters: BTreeMap<String, String>,
}

impl TopicRoute {
    pub fn new(topic: &str, data: TopicRouteData) -> Self {
        let masters: BTreeMap<String, String> = data
            .broker_datas
            .iter()
            .filter_map(|b| b.master_addr().map(|addr| (b.broker_name.clone(), addr.to_string())))
            .collect();
        let mut queue_datas = data.queue_datas.clone();
        queue_datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
        let mut write_queues = Vec::new();
        let mut read_queues = Vec::new();
        for q in &queue_datas {
            let queue =
                |id| MessageQueue { topic: topic.to_string(), broker_name: q.broker_name.clone(), queue_id: id };
            if perm::is_writeable(q.perm) && masters.contains_key(&q.broker_name) {
                write_queues.extend((0..q.write_queue_nums).map(queue));
            }
            if perm::is_readable(q.perm) {
                read_queues.extend((0..q.read_queue_nums).map(queue));
            }
        }
        Self { topic: topic.to_string(), data, write_queues, read_queues, masters }
    }

    /// The same brokers seen as a route for `topic` with at most `queues` queues per broker:
    /// what a producer sends to before a new topic exists (Java's TBW102 fallback), so that
    /// the broker creates it.
    pub fn for_new_topic(&self, topic: &str, queues: i32) -> Self {
        let mut data = self.data.clone();
        for q in &mut data.queue_datas {
            q.read_queue_nums = q.read_queue_nums.min(queues);
            q.write_queue_nums = q.write_queue_nums.min(queues);
        }
        Self::new(topic, data)
    }

    /// The master address of `broker_name`.
    pub fn master_addr(&self, broker_name: &str) -> Option<&str> {
        self.masters.get(broker_name).map(String::as_str)
    }

    /// Every master address in the route.
    pub fn master_addrs(&self) -> impl Iterator<Item = &str> {
        self.masters.values().map(String::as_str)
    }
}

/// Routes fetched so far, by topic; refreshed by whoever owns the cache (every 30 s, as Java's
/// `pollNameServerInterval`).
#[derive(Clone, Default)]
pub struct RouteCache {
    routes: Arc<Mutex<HashMap<String, Arc<TopicRoute>>>>,
}

impl RouteCache {
    pub fn get(&self, topic: &str) -> Option<Arc<TopicRoute>> {
        lock(&self.routes).get(topic).cloned()
    }

    pub fn put(&self, route: TopicRoute) -> Arc<TopicRoute> {
        let route = Arc::new(route);
        lock(&self.routes).insert(route.topic.clone(), route.clone());
        route
    }

    pub fn topics(&self) -> Vec<String> {
        lock(&self.routes).keys().cloned().collect()
    }

    /// Every broker master address of every cached route.
    pub fn master_addrs(&self) -> Vec<String> {
        let mut addrs: Vec<String> = lock(&self.routes)
            .values()
            .flat_map(|r| r.master_addrs().map(str::to_string).collect::<Vec<_>>())
            .collect();
        addrs.sort();
        addrs.dedup();
        addrs
    }

    /// The master address of `broker_name` in any cached route.
    pub fn master_addr(&self, broker_name: &str) -> Option<String> {
        lock(&self.routes).values().find_map(|r| r.master_addr(broker_name).map(str::to_string))
    }
}
