//! The route tables (Java `RouteInfoManager`): which brokers are alive, which broker names form
//! which cluster, and which queues each topic has on each broker.
//!
//! Plain data owned by the name server's executor; time is passed in, so tests drive expiry
//! without sleeping.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use tracing::info;
use wire::body::{perm, BrokerData, ClusterInfo, DataVersion, QueueData, TopicConfig, TopicList, TopicRouteData};
use wire::body::{TopicConfigSerializeWrapper, MASTER_ID};

/// Identifies the connection a broker registered over, so closing it removes the broker.
pub type ConnectionId = u64;

/// `TopicSysFlag` bits.
const FLAG_UNIT: i32 = 0x1;
const FLAG_UNIT_SUB: i32 = 0x2;

#[derive(Debug, Clone)]
pub struct BrokerLiveInfo {
    pub last_update: Instant,
    pub data_version: DataVersion,
    pub connection: ConnectionId,
    pub ha_server_addr: String,
}

/// A REGISTER_BROKER request, decoded.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    pub cluster_name: String,
    pub broker_addr: String,
    pub broker_name: String,
    pub broker_id: i64,
    pub ha_server_addr: String,
    pub topic_config: TopicConfigSerializeWrapper,
    /// `None` leaves the broker's filter servers as they are (old-style registration).
    pub filter_server_list: Option<Vec<String>>,
}

/// What a slave learns from its registration: where its master is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterResult {
    pub ha_server_addr: Option<String>,
    pub master_addr: Option<String>,
}

#[derive(Debug, Default)]
pub struct RouteInfo {
    topic_queue_table: HashMap<String, BTreeMap<String, QueueData>>,
    broker_addr_table: BTreeMap<String, BrokerData>,
    cluster_addr_table: BTreeMap<String, BTreeSet<String>>,
    broker_live_table: HashMap<String, BrokerLiveInfo>,
    filter_server_table: HashMap<String, Vec<String>>,
    /// Bumped on every change a route or cluster answer can see; caches compare it.
    generation: u64,
}

impl RouteInfo {
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn changed(&mut self) {
        self.generation += 1;
    }

    pub fn register_broker(&mut self, reg: Registration, connection: ConnectionId, now: Instant) -> RegisterResult {
        let Registration { cluster_name, broker_addr, broker_name, broker_id, ha_server_addr, topic_config, .. } = reg;
        if self.cluster_addr_table.entry(cluster_name.clone()).or_default().insert(broker_name.clone()) {
            self.changed();
        }

        let mut first = false;
        let broker_data = self.broker_addr_table.entry(broker_name.clone()).or_insert_with(|| {
            first = true;
            BrokerData { cluster: cluster_name.clone(), broker_name: broker_name.clone(), ..Default::default() }
        });
        // One address has one id: a slave promoted to master first drops its old id.
        let before = broker_data.broker_addrs.len();
        broker_data.broker_addrs.retain(|&id, addr| !(*addr == broker_addr && id != broker_id));
        let moved = broker_data.broker_addrs.len() != before;
        let old_addr = broker_data.broker_addrs.insert(broker_id, broker_addr.clone());
        if moved || old_addr.as_deref() != Some(broker_addr.as_str()) {
            self.changed();
        }
        if broker_id == MASTER_ID {
            if let Some(old) = old_addr.as_ref().filter(|old| **old != broker_addr) {
                info!(broker = %broker_name, old = %old, new = %broker_addr, "master address changed");
            }
        }
        first |= old_addr.is_none();

        if broker_id == MASTER_ID && (first || self.is_topic_config_changed(&broker_addr, &topic_config.data_version)) {
            for config in topic_config.topic_config_table.values() {
                self.create_or_update_queue_data(&broker_name, config);
            }
        }

        let live =
            BrokerLiveInfo { last_update: now, data_version: topic_config.data_version, connection, ha_server_addr };
        if self.broker_live_table.insert(broker_addr.clone(), live).is_none() {
            info!(cluster = %cluster_name, broker = %broker_name, id = broker_id, addr = %broker_addr, "new broker registered");
        }

        if let Some(servers) = reg.filter_server_list {
            let changed = if servers.is_empty() {
                self.filter_server_table.remove(&broker_addr).is_some()
            } else {
                self.filter_server_table.insert(broker_addr.clone(), servers.clone()) != Some(servers)
            };
            if changed {
                self.changed();
            }
        }

        let mut result = RegisterResult::default();
        if broker_id != MASTER_ID {
            let master = self.broker_addr_table.get(&broker_name).and_then(|b| b.master_addr());
            if let Some(master) = master {
                if let Some(live) = self.broker_live_table.get(master) {
                    result.ha_server_addr = Some(live.ha_server_addr.clone());
                    result.master_addr = Some(master.to_owned());
                }
            }
        }
        result
    }

    fn create_or_update_queue_data(&mut self, broker_name: &str, config: &TopicConfig) {
        let queue_data = QueueData {
            broker_name: broker_name.to_owned(),
            perm: config.perm,
            read_queue_nums: config.read_queue_nums,
            topic_sys_flag: config.topic_sys_flag,
            write_queue_nums: config.write_queue_nums,
        };
        let queues = self.topic_queue_table.entry(config.topic_name.clone()).or_default();
        match queues.insert(broker_name.to_owned(), queue_data.clone()) {
            None => info!(topic = %config.topic_name, broker = broker_name, "new topic registered"),
            Some(old) if old != queue_data => {
                info!(topic = %config.topic_name, broker = broker_name, ?old, new = ?queue_data, "topic queues changed")
            }
            Some(_) => return,
        }
        self.changed();
    }

    /// True when the broker's last registration carried another data version (or none).
    pub fn is_topic_config_changed(&self, broker_addr: &str, version: &DataVersion) -> bool {
        self.broker_live_table.get(broker_addr).is_none_or(|live| live.data_version != *version)
    }

    pub fn data_version(&self, broker_addr: &str) -> Option<DataVersion> {
        self.broker_live_table.get(broker_addr).map(|live| live.data_version)
    }

    /// Marks the broker alive (QUERY_DATA_VERSION with an unchanged version counts as a heartbeat).
    pub fn touch(&mut self, broker_addr: &str, now: Instant) {
        if let Some(live) = self.broker_live_table.get_mut(broker_addr) {
            live.last_update = now;
        }
    }

    pub fn unregister_broker(&mut self, cluster_name: &str, broker_addr: &str, broker_name: &str, broker_id: i64) {
        let live = self.broker_live_table.remove(broker_addr);
        self.filter_server_table.remove(broker_addr);
        info!(addr = broker_addr, found = live.is_some(), "unregister broker");
        let mut remove_name = false;
        if let Some(data) = self.broker_addr_table.get_mut(broker_name) {
            data.broker_addrs.remove(&broker_id);
            if data.broker_addrs.is_empty() {
                self.broker_addr_table.remove(broker_name);
                remove_name = true;
            }
        }
        if remove_name {
            if let Some(names) = self.cluster_addr_table.get_mut(cluster_name) {
                names.remove(broker_name);
                if names.is_empty() {
                    self.cluster_addr_table.remove(cluster_name);
                }
            }
            self.remove_topics_of(broker_name);
        }
        self.changed();
    }

    /// Removes the broker that registered over `connection`, if any; returns its address.
    pub fn on_connection_closed(&mut self, connection: ConnectionId) -> Option<String> {
        let addr = self.broker_live_table.iter().find(|(_, live)| live.connection == connection)?.0.clone();
        self.remove_broker_addr(&addr);
        Some(addr)
    }

    /// Removes brokers silent for longer than `expiry`; returns their addresses.
    pub fn scan_not_active(&mut self, now: Instant, expiry: Duration) -> Vec<String> {
        let expired: Vec<String> = self
            .broker_live_table
            .iter()
            .filter(|(_, live)| now.saturating_duration_since(live.last_update) > expiry)
            .map(|(addr, _)| addr.clone())
            .collect();
        for addr in &expired {
            self.remove_broker_addr(addr);
        }
        expired
    }

    /// Forgets everything about one broker address (Java `onChannelDestroy`).
    fn remove_broker_addr(&mut self, addr: &str) {
        self.broker_live_table.remove(addr);
        self.filter_server_table.remove(addr);
        let mut found = None;
        for (name, data) in &mut self.broker_addr_table {
            let before = data.broker_addrs.len();
            data.broker_addrs.retain(|_, a| a != addr);
            if data.broker_addrs.len() != before {
                found = Some((name.clone(), data.broker_addrs.is_empty()));
                break;
            }
        }
        let Some((name, now_empty)) = found else {
            return;
        };
        if now_empty {
            self.broker_addr_table.remove(&name);
            self.cluster_addr_table.retain(|_, names| {
                names.remove(&name);
                !names.is_empty()
            });
            self.remove_topics_of(&name);
        }
        self.changed();
    }

    fn remove_topics_of(&mut self, broker_name: &str) {
        self.topic_queue_table.retain(|topic, queues| {
            if queues.remove(broker_name).is_some() {
                info!(topic = %topic, broker = broker_name, "topic queues removed with their broker");
            }
            !queues.is_empty()
        });
        self.changed();
    }

    /// The route of `topic`; `None` when no live broker serves it.
    pub fn topic_route(&self, topic: &str) -> Option<TopicRouteData> {
        let queues = self.topic_queue_table.get(topic)?;
        let mut route = TopicRouteData { queue_datas: queues.values().cloned().collect(), ..Default::default() };
        for name in queues.keys() {
            let Some(data) = self.broker_addr_table.get(name) else {
                continue;
            };
            if !self.filter_server_table.is_empty() {
                for addr in data.broker_addrs.values() {
                    if let Some(servers) = self.filter_server_table.get(addr) {
                        route.filter_server_table.insert(addr.clone(), servers.clone());
                    }
                }
            }
            route.broker_datas.push(data.clone());
        }
        (!route.broker_datas.is_empty()).then_some(route)
    }

    pub fn cluster_info(&self) -> ClusterInfo {
        ClusterInfo {
            broker_addr_table: self.broker_addr_table.clone(),
            cluster_addr_table: self.cluster_addr_table.clone(),
        }
    }

    /// WIPE_WRITE_PERM_OF_BROKER (`wipe`) or ADD_WRITE_PERM_OF_BROKER; returns how many topics
    /// the broker serves.
    pub fn set_write_perm(&mut self, broker_name: &str, wipe: bool) -> i32 {
        let mut count = 0;
        for queues in self.topic_queue_table.values_mut() {
            if let Some(queue_data) = queues.get_mut(broker_name) {
                queue_data.perm = if wipe { queue_data.perm & !perm::WRITE } else { perm::READ | perm::WRITE };
                count += 1;
            }
        }
        self.changed();
        count
    }

    /// DELETE_TOPIC_IN_NAMESRV: everywhere, or only on the brokers of `cluster`.
    pub fn delete_topic(&mut self, topic: &str, cluster: Option<&str>) {
        match cluster {
            None => {
                self.topic_queue_table.remove(topic);
            }
            Some(cluster) => {
                let Some(names) = self.cluster_addr_table.get(cluster) else {
                    return;
                };
                if let Some(queues) = self.topic_queue_table.get_mut(topic) {
                    queues.retain(|name, _| !names.contains(name));
                    if queues.is_empty() {
                        self.topic_queue_table.remove(topic);
                    }
                }
            }
        }
        self.changed();
    }

    pub fn all_topics(&self) -> TopicList {
        TopicList { topic_list: self.topic_queue_table.keys().cloned().collect(), broker_addr: None }
    }

    pub fn topics_by_cluster(&self, cluster: &str) -> TopicList {
        let names = self.cluster_addr_table.get(cluster);
        let topic_list = self
            .topic_queue_table
            .iter()
            .filter(|(_, queues)| names.is_some_and(|names| queues.keys().any(|n| names.contains(n))))
            .map(|(topic, _)| topic.clone())
            .collect();
        TopicList { topic_list, broker_addr: None }
    }

    /// Cluster and broker names (each is also a topic on its brokers) and one broker address.
    pub fn system_topics(&self) -> TopicList {
        let mut topic_list = BTreeSet::new();
        for (cluster, names) in &self.cluster_addr_table {
            topic_list.insert(cluster.clone());
            topic_list.extend(names.iter().cloned());
        }
        let broker_addr = self.broker_addr_table.values().find_map(|data| data.broker_addrs.values().next().cloned());
        TopicList { topic_list, broker_addr }
    }

    /// Topics whose (first) queue data carries the unit flag, the unit-sub flag, or unit-sub
    /// without unit: GET_UNIT_TOPIC_LIST and its siblings.
    pub fn unit_topics(&self, pick: UnitTopics) -> TopicList {
        let topic_list = self
            .topic_queue_table
            .iter()
            .filter(|(_, queues)| {
                queues.values().next().is_some_and(|qd| {
                    let unit = qd.topic_sys_flag & FLAG_UNIT != 0;
                    let unit_sub = qd.topic_sys_flag & FLAG_UNIT_SUB != 0;
                    match pick {
                        UnitTopics::Unit => unit,
                        UnitTopics::HasUnitSub => unit_sub,
                        UnitTopics::HasUnitSubNotUnit => unit_sub && !unit,
                    }
                })
            })
            .map(|(topic, _)| topic.clone())
            .collect();
        TopicList { topic_list, broker_addr: None }
    }

    pub fn live_brokers(&self) -> impl Iterator<Item = (&String, &BrokerLiveInfo)> {
        self.broker_live_table.iter()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitTopics {
    Unit,
    HasUnitSub,
    HasUnitSubNotUnit,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(name: &str, id: i64, addr: &str, topics: &[(&str, i32)], counter: i64) -> Registration {
        let mut topic_config =
            TopicConfigSerializeWrapper { data_version: DataVersion { counter, timestamp: 1 }, ..Default::default() };
        for (topic, queues) in topics {
            topic_config.topic_config_table.insert(topic.to_string(), TopicConfig::new(*topic, *queues));
        }
        Registration {
            cluster_name: "DefaultCluster".into(),
            broker_addr: addr.into(),
            broker_name: name.into(),
            broker_id: id,
            ha_server_addr: format!("{addr}-ha"),
            topic_config,
            filter_server_list: Some(Vec::new()),
        }
    }

    #[test]
    fn registration_builds_routes_and_slaves_learn_their_master() {
        let mut routes = RouteInfo::default();
        let now = Instant::now();
        let master = routes.register_broker(registration("broker-a", 0, "10.0.0.1:10911", &[("T", 4)], 1), 1, now);
        assert_eq!(master, RegisterResult::default());
        let slave = routes.register_broker(registration("broker-a", 1, "10.0.0.2:10911", &[("T", 4)], 1), 2, now);
        assert_eq!(slave.master_addr.as_deref(), Some("10.0.0.1:10911"));
        assert_eq!(slave.ha_server_addr.as_deref(), Some("10.0.0.1:10911-ha"));

        let route = routes.topic_route("T").expect("route");
        assert_eq!(route.queue_datas.len(), 1);
        assert_eq!(route.queue_datas[0].write_queue_nums, 4);
        assert_eq!(route.broker_datas[0].broker_addrs.len(), 2);
        assert!(routes.topic_route("missing").is_none());
        assert_eq!(routes.cluster_info().cluster_addr_table["DefaultCluster"].len(), 1);
    }

    #[test]
    fn topics_change_only_with_a_new_data_version() {
        let mut routes = RouteInfo::default();
        let now = Instant::now();
        routes.register_broker(registration("broker-a", 0, "a:1", &[("T", 4)], 1), 1, now);
        let generation = routes.generation();
        routes.register_broker(registration("broker-a", 0, "a:1", &[("T", 8)], 1), 1, now);
        assert_eq!(routes.topic_route("T").expect("route").queue_datas[0].write_queue_nums, 4);
        assert_eq!(routes.generation(), generation, "a repeated registration changes nothing");
        routes.register_broker(registration("broker-a", 0, "a:1", &[("T", 8)], 2), 1, now);
        assert_eq!(routes.topic_route("T").expect("route").queue_datas[0].write_queue_nums, 8);
        assert!(routes.generation() > generation);
    }

    #[test]
    fn expiry_and_disconnect_remove_brokers_and_their_topics() {
        let mut routes = RouteInfo::default();
        let t0 = Instant::now();
        routes.register_broker(registration("broker-a", 0, "a:1", &[("T", 4)], 1), 1, t0);
        routes.register_broker(registration("broker-b", 0, "b:1", &[("T", 4), ("U", 2)], 1), 2, t0);
        let expiry = Duration::from_secs(120);
        assert!(routes.scan_not_active(t0 + Duration::from_secs(60), expiry).is_empty());
        routes.touch("a:1", t0 + Duration::from_secs(100));
        assert_eq!(routes.scan_not_active(t0 + Duration::from_secs(121), expiry), vec!["b:1".to_owned()]);
        assert!(routes.topic_route("U").is_none());
        assert_eq!(routes.topic_route("T").expect("route").broker_datas.len(), 1);

        assert_eq!(routes.on_connection_closed(2), None);
        assert_eq!(routes.on_connection_closed(1).as_deref(), Some("a:1"));
        assert!(routes.topic_route("T").is_none());
        assert!(routes.cluster_info().cluster_addr_table.is_empty());
        assert!(routes.all_topics().topic_list.is_empty());
    }

    #[test]
    fn permissions_deletion_and_lists() {
        let mut routes = RouteInfo::default();
        let now = Instant::now();
        let mut reg = registration("broker-a", 0, "a:1", &[("T", 4), ("Unit", 1)], 1);
        if let Some(config) = reg.topic_config.topic_config_table.get_mut("Unit") {
            config.topic_sys_flag = FLAG_UNIT | FLAG_UNIT_SUB;
        }
        routes.register_broker(reg, 1, now);
        assert_eq!(routes.set_write_perm("broker-a", true), 2);
        assert_eq!(routes.topic_route("T").expect("route").queue_datas[0].perm, perm::READ);
        assert_eq!(routes.set_write_perm("broker-a", false), 2);
        assert_eq!(routes.topic_route("T").expect("route").queue_datas[0].perm, perm::READ | perm::WRITE);
        assert_eq!(routes.set_write_perm("nobody", true), 0);

        assert_eq!(routes.unit_topics(UnitTopics::Unit).topic_list.len(), 1);
        assert_eq!(routes.unit_topics(UnitTopics::HasUnitSubNotUnit).topic_list.len(), 0);
        assert_eq!(routes.topics_by_cluster("DefaultCluster").topic_list.len(), 2);
        assert!(routes.topics_by_cluster("Other").topic_list.is_empty());
        let system = routes.system_topics();
        assert!(system.topic_list.contains("DefaultCluster") && system.topic_list.contains("broker-a"));
        assert_eq!(system.broker_addr.as_deref(), Some("a:1"));

        routes.delete_topic("T", Some("Other"));
        assert!(routes.topic_route("T").is_some());
        routes.delete_topic("T", Some("DefaultCluster"));
        assert!(routes.topic_route("T").is_none());
        routes.delete_topic("Unit", None);
        assert!(routes.all_topics().topic_list.is_empty());
    }

    #[test]
    fn unregister_removes_the_broker_name_with_its_last_address() {
        let mut routes = RouteInfo::default();
        let now = Instant::now();
        routes.register_broker(registration("broker-a", 0, "a:1", &[("T", 4)], 1), 1, now);
        routes.register_broker(registration("broker-a", 1, "a:2", &[("T", 4)], 1), 2, now);
        routes.unregister_broker("DefaultCluster", "a:1", "broker-a", 0);
        assert_eq!(routes.topic_route("T").expect("slave still serves").broker_datas[0].broker_addrs.len(), 1);
        routes.unregister_broker("DefaultCluster", "a:2", "broker-a", 1);
        assert!(routes.topic_route("T").is_none());
        assert!(routes.cluster_info().broker_addr_table.is_empty());
    }
}
