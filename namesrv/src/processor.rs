//! Request handling (Java `DefaultRequestProcessor`): one function per request code, over the
//! name server's state. Everything here is synchronous; the only waits (persisting the KV
//! config) happen in `server`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use tracing::{info, warn};
use wire::body::{DataVersion, JsonBody, RegisterBrokerBody};
use wire::code::{request, response};
use wire::header::*;
use wire::{HeaderError, RemotingCommand, VERSION_4_9_4};

use crate::config::{parse_properties, NamesrvConfig};
use crate::kv::{KvConfig, NAMESPACE_ORDER_TOPIC_CONFIG};
use crate::route::{ConnectionId, Registration, RouteInfo, UnitTopics};

/// Java's remark tail for a missing topic (`FAQUrl.suggestTodo(APPLY_TOPIC_URL)`).
const APPLY_TOPIC_TIP: &str = "\nSee http://rocketmq.apache.org/docs/faq/ for further details.";

/// The name server's whole state, owned by its executor.
pub struct NamesrvState {
    pub config: NamesrvConfig,
    pub routes: RouteInfo,
    pub kv: KvConfig,
    /// Bumped on every KV change, since a route's `orderTopicConf` comes from the KV table.
    kv_generation: u64,
    route_cache: HashMap<String, CachedRoute>,
}

/// Encoded route bodies, valid while neither the routes nor the KV table change: a route query
/// is then a hash lookup and a reference count, not a JSON encode.
struct CachedRoute {
    generation: (u64, u64),
    standard: Option<Bytes>,
    fastjson: Option<Bytes>,
}

/// The outcome of a request: an answer now, or a KV change whose answer waits for the file.
pub enum Outcome {
    Reply(RemotingCommand),
    PersistKv(RemotingCommand),
    /// A oneway request, or a response sent to us: nothing to write.
    Nothing,
}

impl NamesrvState {
    pub fn new(config: NamesrvConfig, kv: KvConfig) -> Self {
        Self { config, routes: RouteInfo::default(), kv, kv_generation: 0, route_cache: HashMap::new() }
    }

    /// Handles one request from connection `conn` at `peer`.
    pub fn handle(&mut self, cmd: &RemotingCommand, conn: ConnectionId, peer: SocketAddr, now: Instant) -> Outcome {
        if cmd.is_response() {
            return Outcome::Nothing;
        }
        let result = self.dispatch(cmd, conn, peer, now);
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Reply(reply(cmd, response::SYSTEM_ERROR).with_remark(e.to_string())),
        };
        match outcome {
            Outcome::Reply(_) | Outcome::PersistKv(_) if cmd.is_oneway() => Outcome::Nothing,
            other => other,
        }
    }

    fn dispatch(
        &mut self,
        cmd: &RemotingCommand,
        conn: ConnectionId,
        peer: SocketAddr,
        now: Instant,
    ) -> Result<Outcome, HeaderError> {
        let ok = |cmd: &RemotingCommand| Outcome::Reply(reply(cmd, response::SUCCESS));
        Ok(match cmd.code {
            request::PUT_KV_CONFIG => {
                let h: PutKvConfigRequestHeader = cmd.header()?;
                self.kv.put(&h.namespace, &h.key, &h.value);
                self.kv_generation += 1;
                info!(namespace = %h.namespace, key = %h.key, value = %h.value, "KV config put");
                Outcome::PersistKv(reply(cmd, response::SUCCESS))
            }
            request::GET_KV_CONFIG => {
                let h: GetKvConfigRequestHeader = cmd.header()?;
                match self.kv.get(&h.namespace, &h.key) {
                    Some(value) => Outcome::Reply(
                        reply(cmd, response::SUCCESS)
                            .with_header(&GetKvConfigResponseHeader { value: Some(value.into()) }),
                    ),
                    None => Outcome::Reply(
                        reply(cmd, response::QUERY_NOT_FOUND)
                            .with_remark(format!("No config item, Namespace: {} Key: {}", h.namespace, h.key)),
                    ),
                }
            }
            request::DELETE_KV_CONFIG => {
                let h: DeleteKvConfigRequestHeader = cmd.header()?;
                if !self.kv.delete(&h.namespace, &h.key) {
                    return Ok(ok(cmd));
                }
                self.kv_generation += 1;
                info!(namespace = %h.namespace, key = %h.key, "KV config deleted");
                Outcome::PersistKv(reply(cmd, response::SUCCESS))
            }
            request::GET_KVLIST_BY_NAMESPACE => {
                let h: GetKvListByNamespaceRequestHeader = cmd.header()?;
                match self.kv.namespace_body(&h.namespace) {
                    Some(body) => Outcome::Reply(reply(cmd, response::SUCCESS).with_body(body)),
                    None => Outcome::Reply(
                        reply(cmd, response::QUERY_NOT_FOUND)
                            .with_remark(format!("No config item, Namespace: {}", h.namespace)),
                    ),
                }
            }
            request::REGISTER_BROKER => self.register_broker(cmd, conn, peer, now)?,
            request::UNREGISTER_BROKER => {
                let h: UnRegisterBrokerRequestHeader = cmd.header()?;
                self.routes.unregister_broker(&h.cluster_name, &h.broker_addr, &h.broker_name, h.broker_id);
                ok(cmd)
            }
            request::QUERY_DATA_VERSION => {
                let h: QueryDataVersionRequestHeader = cmd.header()?;
                let version = match DataVersion::decode(&cmd.body) {
                    Ok(version) => version,
                    Err(e) => return Ok(Outcome::Reply(reply(cmd, response::SYSTEM_ERROR).with_remark(e.to_string()))),
                };
                let changed = self.routes.is_topic_config_changed(&h.broker_addr, &version);
                if !changed {
                    self.routes.touch(&h.broker_addr, now);
                }
                let mut answer = reply(cmd, response::SUCCESS).with_header(&QueryDataVersionResponseHeader { changed });
                if let Some(ours) = self.routes.data_version(&h.broker_addr) {
                    answer = answer.with_body(ours.encode());
                }
                Outcome::Reply(answer)
            }
            request::GET_ROUTEINFO_BY_TOPIC => {
                let h: GetRouteInfoRequestHeader = cmd.header()?;
                let standard = cmd.version >= VERSION_4_9_4 || h.accept_standard_json_only == Some(true);
                match self.route_body(&h.topic, standard) {
                    Some(body) => Outcome::Reply(reply(cmd, response::SUCCESS).with_body(body)),
                    None => Outcome::Reply(reply(cmd, response::TOPIC_NOT_EXIST).with_remark(format!(
                        "No topic route info in name server for the topic: {}{APPLY_TOPIC_TIP}",
                        h.topic
                    ))),
                }
            }
            request::GET_BROKER_CLUSTER_INFO => {
                Outcome::Reply(reply(cmd, response::SUCCESS).with_body(self.routes.cluster_info().encode_fastjson()))
            }
            request::WIPE_WRITE_PERM_OF_BROKER => {
                let h: WipeWritePermOfBrokerRequestHeader = cmd.header()?;
                let wipe_topic_count = self.routes.set_write_perm(&h.broker_name, true);
                info!(broker = %h.broker_name, client = %peer, topics = wipe_topic_count, "write permission wiped");
                Outcome::Reply(
                    reply(cmd, response::SUCCESS)
                        .with_header(&WipeWritePermOfBrokerResponseHeader { wipe_topic_count }),
                )
            }
            request::ADD_WRITE_PERM_OF_BROKER => {
                let h: AddWritePermOfBrokerRequestHeader = cmd.header()?;
                let add_topic_count = self.routes.set_write_perm(&h.broker_name, false);
                info!(broker = %h.broker_name, client = %peer, topics = add_topic_count, "write permission added");
                Outcome::Reply(
                    reply(cmd, response::SUCCESS).with_header(&AddWritePermOfBrokerResponseHeader { add_topic_count }),
                )
            }
            request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => topic_list(cmd, self.routes.all_topics()),
            request::DELETE_TOPIC_IN_NAMESRV => {
                let h: DeleteTopicFromNamesrvRequestHeader = cmd.header()?;
                let cluster = h.cluster_name.as_deref().filter(|c| !c.is_empty());
                self.routes.delete_topic(&h.topic, cluster);
                info!(topic = %h.topic, cluster = cluster.unwrap_or("*"), client = %peer, "topic deleted");
                ok(cmd)
            }
            request::GET_TOPICS_BY_CLUSTER => {
                let h: GetTopicsByClusterRequestHeader = cmd.header()?;
                topic_list(cmd, self.routes.topics_by_cluster(&h.cluster))
            }
            request::GET_SYSTEM_TOPIC_LIST_FROM_NS => topic_list(cmd, self.routes.system_topics()),
            request::GET_UNIT_TOPIC_LIST => topic_list(cmd, self.routes.unit_topics(UnitTopics::Unit)),
            request::GET_HAS_UNIT_SUB_TOPIC_LIST => topic_list(cmd, self.routes.unit_topics(UnitTopics::HasUnitSub)),
            request::GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST => {
                topic_list(cmd, self.routes.unit_topics(UnitTopics::HasUnitSubNotUnit))
            }
            request::GET_NAMESRV_CONFIG => {
                Outcome::Reply(reply(cmd, response::SUCCESS).with_body(self.config.to_properties().into_bytes()))
            }
            request::UPDATE_NAMESRV_CONFIG => self.update_config(cmd, peer),
            code => Outcome::Reply(
                reply(cmd, response::REQUEST_CODE_NOT_SUPPORTED)
                    .with_remark(format!(" request type {code} not supported")),
            ),
        })
    }

    fn register_broker(
        &mut self,
        cmd: &RemotingCommand,
        conn: ConnectionId,
        peer: SocketAddr,
        now: Instant,
    ) -> Result<Outcome, HeaderError> {
        let h: RegisterBrokerRequestHeader = cmd.header()?;
        if let Some(expected) = h.body_crc32.filter(|&crc| crc != 0) {
            let actual = wire::message::body_crc(&cmd.body) as i32;
            if actual != expected {
                warn!(client = %peer, expected, actual, "REGISTER_BROKER body crc32 does not match");
                return Ok(Outcome::Reply(reply(cmd, response::SYSTEM_ERROR).with_remark("crc32 not match")));
            }
        }
        let body = if cmd.body.is_empty() {
            RegisterBrokerBody::default()
        } else {
            match RegisterBrokerBody::decode_any(&cmd.body, h.compressed.unwrap_or(false)) {
                Ok(body) => body,
                Err(e) => {
                    warn!(client = %peer, error = %e, "REGISTER_BROKER body does not decode");
                    return Ok(Outcome::Reply(
                        reply(cmd, response::SYSTEM_ERROR)
                            .with_remark(format!("Failed to decode RegisterBrokerBody: {e}")),
                    ));
                }
            }
        };
        let registration = Registration {
            cluster_name: h.cluster_name.to_string(),
            broker_addr: h.broker_addr.to_string(),
            broker_name: h.broker_name.to_string(),
            broker_id: h.broker_id,
            ha_server_addr: h.ha_server_addr.to_string(),
            topic_config: body.topic_config_serialize_wrapper,
            filter_server_list: Some(body.filter_server_list),
        };
        let result = self.routes.register_broker(registration, conn, now);
        let mut answer = reply(cmd, response::SUCCESS).with_header(&RegisterBrokerResponseHeader {
            ha_server_addr: result.ha_server_addr.map(Into::into),
            master_addr: result.master_addr.map(Into::into),
        });
        if let Some(order_topics) = self.kv.namespace_body(NAMESPACE_ORDER_TOPIC_CONFIG) {
            answer = answer.with_body(order_topics);
        }
        Ok(Outcome::Reply(answer))
    }

    fn update_config(&mut self, cmd: &RemotingCommand, peer: SocketAddr) -> Outcome {
        info!(client = %peer, "UPDATE_NAMESRV_CONFIG");
        let Ok(text) = std::str::from_utf8(&cmd.body) else {
            return Outcome::Reply(reply(cmd, response::SYSTEM_ERROR).with_remark("config body is not UTF-8"));
        };
        let properties = parse_properties(text);
        if properties.keys().any(|key| self.config.is_blacklisted(key)) {
            return Outcome::Reply(
                reply(cmd, response::NO_PERMISSION).with_remark("Can not update config in black list."),
            );
        }
        match self.config.update(&properties) {
            Ok(()) => {
                self.kv_generation += 1; // orderMessageEnable changes what routes carry
                Outcome::Reply(reply(cmd, response::SUCCESS))
            }
            Err(reason) => Outcome::Reply(reply(cmd, response::SYSTEM_ERROR).with_remark(reason)),
        }
    }

    /// The encoded route of `topic`, from the cache when nothing changed since it was built.
    fn route_body(&mut self, topic: &str, standard: bool) -> Option<Bytes> {
        let generation = (self.routes.generation(), self.kv_generation);
        let cached = self.route_cache.get(topic).filter(|c| c.generation == generation);
        if let Some(body) = cached.and_then(|c| if standard { c.standard.clone() } else { c.fastjson.clone() }) {
            return Some(body);
        }
        let mut route = self.routes.topic_route(topic)?;
        if self.config.order_message_enable {
            route.order_topic_conf = self.kv.get(NAMESPACE_ORDER_TOPIC_CONFIG, topic).map(str::to_owned);
        }
        let body = Bytes::from(if standard { route.encode() } else { route.encode_fastjson() });
        if self.route_cache.len() > 100_000 {
            self.route_cache.clear(); // bounded: topics come and go
        }
        let entry = self.route_cache.entry(topic.to_owned()).or_insert(CachedRoute {
            generation,
            standard: None,
            fastjson: None,
        });
        if entry.generation != generation {
            *entry = CachedRoute { generation, standard: None, fastjson: None };
        }
        let slot = if standard { &mut entry.standard } else { &mut entry.fastjson };
        *slot = Some(body.clone());
        Some(body)
    }

    /// The KV table as the file holds it, for persisting.
    pub fn kv_snapshot(&self) -> Vec<u8> {
        self.kv.snapshot()
    }
}

fn reply(cmd: &RemotingCommand, code: i32) -> RemotingCommand {
    RemotingCommand::response_to(cmd, code)
}

fn topic_list(cmd: &RemotingCommand, list: wire::body::TopicList) -> Outcome {
    Outcome::Reply(reply(cmd, response::SUCCESS).with_body(list.encode()))
}
