//! Broker configuration: a TOML file with the Java property names (`brokerClusterName`,
//! `namesrvAddr`, `listenPort`, `storePathRootDir`, `flushDiskType`, …), so the keys of a
//! user's `broker.conf` carry over. Keys Apogee does not know are reported, not fatal.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use store::{FlushDiskType, MessageStoreConfig};

use crate::error::BrokerError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerConfig {
    pub broker_cluster_name: String,
    pub broker_name: String,
    /// 0 = master.
    pub broker_id: i64,
    /// `;`-separated name server addresses.
    pub namesrv_addr: String,
    /// Address to listen on; Java binds every interface.
    pub listen_address: IpAddr,
    /// Clients connect here; the "VIP channel" is this port − 2.
    pub listen_port: u16,
    /// The address registered with the name servers and written into message ids.
    #[serde(rename = "brokerIP1")]
    pub broker_ip1: IpAddr,
    pub store_path_root_dir: PathBuf,
    /// ASYNC_FLUSH or SYNC_FLUSH.
    pub flush_disk_type: String,
    pub auto_create_topic_enable: bool,
    pub auto_create_subscription_group: bool,
    pub default_topic_queue_nums: i32,
    /// Largest message body accepted, in bytes.
    pub max_message_size: usize,
    /// 6 = read and write, 4 = read only, 2 = write only.
    pub broker_permission: i32,
    /// Segment size of the CommitLog.
    pub mapped_file_size_commit_log: u64,
    pub flush_interval_commit_log: u64,
    pub sync_flush_timeout: u64,
    /// Bytes per ConsumeQueue file (20-byte units).
    pub mapped_file_size_consume_queue: u64,
    pub flush_interval_consume_queue: u64,
    /// Keep the key index (QUERY_MESSAGE by key and unique key).
    pub message_index_enable: bool,
    /// Hash slots of one index file.
    pub max_hash_slot_num: u32,
    /// Entries of one index file.
    pub max_index_num: u32,
    /// QUERY_MESSAGE by unique key returns at most this many messages.
    pub default_query_max_num: i32,
    pub message_delay_level: String,
    /// Milliseconds a half message waits before its producer is asked about it.
    pub transaction_time_out: u64,
    /// Checks of one half message before it is given up.
    pub transaction_check_max: u32,
    /// Milliseconds between passes of the transaction checker.
    pub transaction_check_interval: u64,
    pub reject_transaction_message: bool,
    pub long_polling_enable: bool,
    /// Wait of a suspended pull when long polling is off.
    pub short_polling_time_mills: u64,
    /// A streaming queue is answered at most once in this many microseconds (Apogee).
    pub pull_batch_window_micros: u64,
    pub flush_consumer_offset_interval: u64,
    pub register_name_server_period: u64,
    pub register_broker_timeout_mills: u64,
    /// Clients silent for this long are dropped (Java: 120 s).
    pub channel_expired_timeout: u64,
    /// Hours a CommitLog segment is kept after its last write.
    pub file_reserved_time: f64,
    /// `;`-separated hours (UTC) at which expired segments are deleted.
    pub delete_when: String,
    /// Disk usage (percent) above which expired segments go at any hour.
    pub disk_max_used_space_ratio: u32,
    /// Above 85 % disk usage, delete the oldest segments even before they expire.
    pub clean_file_forcibly_enable: bool,
    /// Milliseconds between retention checks.
    pub clean_resource_interval: u64,
    /// Bytes of the CommitLog tail kept in memory for reads (Apogee).
    pub commit_log_cache_bytes: usize,
    /// Segments retention keeps for reuse.
    pub commit_log_spare_segments: usize,
    /// Executor threads, each storing a share of the queues (Apogee); 0 = one per core.
    pub shards: usize,
    /// Largest frame accepted from a peer, checked before allocating (Apogee).
    pub max_frame_bytes: usize,
    /// Requests waiting for the store at once before SYSTEM_BUSY (Apogee).
    pub max_pending_requests: usize,
}

const MAX_SHARDS: usize = store::MAX_SHARDS;
const MAX_PULL_BATCH_WINDOW_MICROS: u64 = 1_000_000;

impl Default for BrokerConfig {
    fn default() -> Self {
        let home =
            std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        Self {
            broker_cluster_name: "DefaultCluster".into(),
            broker_name: "broker-a".into(),
            broker_id: 0,
            namesrv_addr: "127.0.0.1:9876".into(),
            listen_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            listen_port: 10911,
            broker_ip1: IpAddr::V4(Ipv4Addr::LOCALHOST),
            store_path_root_dir: home.join("store"),
            flush_disk_type: "ASYNC_FLUSH".into(),
            auto_create_topic_enable: true,
            auto_create_subscription_group: true,
            default_topic_queue_nums: 8,
            max_message_size: 4 * 1024 * 1024,
            broker_permission: 6,
            mapped_file_size_commit_log: 1 << 30,
            flush_interval_commit_log: 500,
            sync_flush_timeout: 5_000,
            mapped_file_size_consume_queue: 300_000 * 20,
            flush_interval_consume_queue: 1_000,
            message_index_enable: true,
            max_hash_slot_num: 5_000_000,
            max_index_num: 20_000_000,
            default_query_max_num: 32,
            message_delay_level: store::DEFAULT_DELAY_LEVELS.into(),
            transaction_time_out: 6_000,
            transaction_check_max: 15,
            transaction_check_interval: 60_000,
            reject_transaction_message: false,
            long_polling_enable: true,
            short_polling_time_mills: 1_000,
            pull_batch_window_micros: 1_000,
            flush_consumer_offset_interval: 5_000,
            register_name_server_period: 30_000,
            register_broker_timeout_mills: 6_000,
            channel_expired_timeout: 120_000,
            file_reserved_time: 72.0,
            delete_when: "04".into(),
            disk_max_used_space_ratio: 75,
            clean_file_forcibly_enable: true,
            clean_resource_interval: 10_000,
            commit_log_cache_bytes: 256 << 20,
            commit_log_spare_segments: 8,
            shards: 0,
            max_frame_bytes: wire::MAX_FRAME_BYTES_DEFAULT,
            max_pending_requests: 10_000,
        }
    }
}

/// What each setting does, for the configuration reference (`docs/configuration.md`, generated
/// from this table and the defaults above; a unit test keeps the table and the fields in step).
const MEANINGS: &[(&str, &str)] = &[
    ("brokerClusterName", "Cluster this broker belongs to, as registered with the name servers."),
    ("brokerName", "Broker name; brokers with the same name form a master/slave set (Apogee runs masters only)."),
    ("brokerId", "0 for a master. Apogee has no replication, so keep 0."),
    ("namesrvAddr", "Name servers to register with, `;`-separated `host:port` list. `-n` on the command line overrides it."),
    ("listenAddress", "Address to listen on (Apogee). Java binds every interface; name one address to narrow it."),
    ("listenPort", "Client port. The VIP channel some Java clients use listens on `listenPort - 2`. 0 picks a free port (tests)."),
    ("brokerIP1", "Address registered with the name servers and written into message ids: clients connect to it, so it must be reachable from them."),
    ("storePathRootDir", "Store directory: CommitLog, ConsumeQueues, checkpoint, lock file and the `config/` JSON files. One broker per directory."),
    ("flushDiskType", "`ASYNC_FLUSH`: a send is acknowledged once written (survives a process crash; fdatasync every `flushIntervalCommitLog`). `SYNC_FLUSH`: acknowledged after an fdatasync that covers it (survives power loss)."),
    ("autoCreateTopicEnable", "A send to an unknown topic creates it from the TBW102 template."),
    ("autoCreateSubscriptionGroup", "A consumer group that is not configured is created on first use."),
    ("defaultTopicQueueNums", "Queues of a topic created by a send (1 to 1024)."),
    ("maxMessageSize", "Largest message body accepted, in bytes; larger sends get MESSAGE_ILLEGAL."),
    ("brokerPermission", "6 = read and write, 4 = read only, 2 = write only."),
    ("mappedFileSizeCommitLog", "Size of one CommitLog segment file, in bytes. Segments are created and filled ahead of need."),
    ("flushIntervalCommitLog", "ASYNC_FLUSH: milliseconds between fdatasyncs of the CommitLog."),
    ("syncFlushTimeout", "SYNC_FLUSH: milliseconds a send waits for its fdatasync before answering FLUSH_DISK_TIMEOUT."),
    ("mappedFileSizeConsumeQueue", "Size of one ConsumeQueue file, in bytes (20-byte units; 300,000 units by default)."),
    ("flushIntervalConsumeQueue", "Milliseconds between flushes of the ConsumeQueues; a crash rebuilds what was not flushed from the CommitLog."),
    ("messageIndexEnable", "Keep the key index: message keys and unique keys (the msgId users see) of every message, for QUERY_MESSAGE (`mqadmin queryMsgByKey`, `queryMsgByUniqueKey`)."),
    ("maxHashSlotNum", "Hash slots of one index file (4 bytes each, held in memory for the file being filled)."),
    ("maxIndexNum", "Entries (24 bytes each) of one index file; a full file is sealed and the next one started."),
    ("defaultQueryMaxNum", "Most messages a query by unique key returns."),
    ("messageDelayLevel", "Delay of each level of delayed messages and consumer retries, space-separated (`s`, `m`, `h`, `d`)."),
    ("transactionTimeOut", "Milliseconds a half (prepared) transactional message waits for END_TRANSACTION before its producer group is asked with CHECK_TRANSACTION_STATE."),
    ("transactionCheckMax", "Times one half message is checked before it is given up (logged, never delivered)."),
    ("transactionCheckInterval", "Milliseconds between passes of the transaction checker over the half messages."),
    ("rejectTransactionMessage", "Refuse transactional sends with NO_PERMISSION."),
    ("longPollingEnable", "A pull that finds nothing waits (up to the client's suspend timeout) for a new message instead of answering at once."),
    ("shortPollingTimeMills", "With long polling off: milliseconds an empty pull waits before it is answered."),
    ("pullBatchWindowMicros", "A held pull of a queue answered with messages less than this many microseconds ago waits out the rest, so that the messages arriving meanwhile share one answer, unless a full batch is already there (Apogee). A streaming consumer's pulls then cost the broker 3× less at 1 ms; a queue whose messages come further apart is not delayed. At most 1000000; 0 answers at once."),
    ("flushConsumerOffsetInterval", "Milliseconds between writes of consumer offsets and delay progress to `config/`. A crash may redeliver what was consumed since the last write."),
    ("registerNameServerPeriod", "Milliseconds between registrations with every name server (also sent at once after a topic change)."),
    ("registerBrokerTimeoutMills", "Milliseconds one registration waits for a name server's answer."),
    ("channelExpiredTimeout", "Milliseconds after which a silent client (no heartbeat) is dropped from its groups."),
    ("fileReservedTime", "Hours a CommitLog segment is kept after its last write; older ones are deleted at a `deleteWhen` hour, or at once when the disk is fuller than `diskMaxUsedSpaceRatio`. Fractions are accepted. ConsumeQueues follow: consumers behind the new start get OFFSET_TOO_SMALL and move on."),
    ("deleteWhen", "`;`-separated hours at which expired segments are deleted, in UTC (Java uses the host's local time), e.g. `\"04\"` or `\"04;16\"`."),
    ("diskMaxUsedSpaceRatio", "Percent of the store's disk in use above which expired segments are deleted at any hour (10 to 95)."),
    ("cleanFileForciblyEnable", "Above 85 % disk usage, delete the oldest segments even before `fileReservedTime` (never one still needed for recovery), as Java does."),
    ("cleanResourceInterval", "Milliseconds between retention checks; each deletes at most 10 segments."),
    ("commitLogCacheBytes", "Bytes of the CommitLog tail kept in memory for reads (Apogee); older messages are read from disk."),
    ("commitLogSpareSegments", "CommitLog segment files retention keeps for reuse instead of deleting (Apogee). A reused file needs no zero-fill, which otherwise writes the log twice; spares are deleted first when the disk passes `diskMaxUsedSpaceRatio`. 0 deletes every file at once."),
    (
        "shards",
        "Executor threads, each storing a share of the queues in `shard-<n>/` (Apogee); 0 = one per core, at most 8. A queue stays with the shard that created it: lowering the count below a shard that stores queues is refused at start.",
    ),
    ("maxFrameBytes", "Largest request frame accepted, checked before anything is allocated (Apogee); larger frames close the connection."),
    ("maxPendingRequests", "Requests waiting for the store at once before new ones get SYSTEM_BUSY (Apogee)."),
];

/// Settings UPDATE_BROKER_CONFIG changes at once; the others are kept in memory and apply
/// after a restart (with the file changed too).
const RUNTIME_SETTINGS: &[&str] = &[
    "brokerPermission",
    "autoCreateTopicEnable",
    "autoCreateSubscriptionGroup",
    "defaultTopicQueueNums",
    "maxMessageSize",
    "longPollingEnable",
    "shortPollingTimeMills",
    "pullBatchWindowMicros",
    "fileReservedTime",
    "deleteWhen",
    "diskMaxUsedSpaceRatio",
    "cleanFileForciblyEnable",
    "transactionTimeOut",
    "transactionCheckMax",
    "rejectTransactionMessage",
    "defaultQueryMaxNum",
    "maxPendingRequests",
];

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(flatten)]
    config: BrokerConfig,
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

impl BrokerConfig {
    /// Reads a TOML file; returns the config and the keys it ignored.
    pub fn load(path: &Path) -> Result<(Self, Vec<String>), BrokerError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| BrokerError::ConfigRead { path: path.to_path_buf(), source })?;
        Self::parse(&text).map_err(|reason| BrokerError::ConfigInvalid { path: path.to_path_buf(), reason })
    }

    /// Parses TOML text; returns the config and the keys it ignored.
    pub fn parse(text: &str) -> Result<(Self, Vec<String>), String> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| e.to_string())?;
        file.config.validate()?;
        Ok((file.config, file.unknown.into_keys().collect()))
    }

    pub fn validate(&self) -> Result<(), String> {
        if FlushDiskType::parse(&self.flush_disk_type).is_none() {
            return Err(format!("flushDiskType = {:?} must be ASYNC_FLUSH or SYNC_FLUSH", self.flush_disk_type));
        }
        if self.listen_port < 3 && self.listen_port != 0 {
            return Err(format!(
                "listenPort = {} leaves no room for the VIP channel (listenPort - 2)",
                self.listen_port
            ));
        }
        if !(1..=1024).contains(&self.default_topic_queue_nums) {
            return Err(format!("defaultTopicQueueNums = {} must be 1..=1024", self.default_topic_queue_nums));
        }
        if self.max_message_size == 0 {
            return Err("maxMessageSize must be above 0".into());
        }
        if self.shards > MAX_SHARDS {
            return Err(format!("shards = {} must be 0 (one per core) to {MAX_SHARDS}", self.shards));
        }
        if self.pull_batch_window_micros > MAX_PULL_BATCH_WINDOW_MICROS {
            return Err(format!(
                "pullBatchWindowMicros = {} must be at most {MAX_PULL_BATCH_WINDOW_MICROS}: it delays delivery",
                self.pull_batch_window_micros
            ));
        }
        if self.mapped_file_size_consume_queue < 20 {
            return Err("mappedFileSizeConsumeQueue must hold at least one 20-byte unit".into());
        }
        if !(self.file_reserved_time >= 0.0 && self.file_reserved_time.is_finite()) {
            return Err(format!("fileReservedTime = {} must be a number of hours, 0 or more", self.file_reserved_time));
        }
        self.delete_hours()?;
        if !(10..=95).contains(&self.disk_max_used_space_ratio) {
            return Err(format!("diskMaxUsedSpaceRatio = {} must be 10..=95", self.disk_max_used_space_ratio));
        }
        if self.broker_name.is_empty() || self.broker_cluster_name.is_empty() {
            return Err("brokerName and brokerClusterName must not be empty".into());
        }
        store::parse_delay_levels(&self.message_delay_level).map_err(|e| e.to_string())?;
        self.store_config(0).index.validate().map_err(|e| e.to_string())?;
        self.store_config(0).commitlog.validate().map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The hours of `deleteWhen`.
    pub fn delete_hours(&self) -> Result<Vec<u32>, String> {
        self.delete_when
            .split(';')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| {
                h.parse::<u32>()
                    .ok()
                    .filter(|h| *h < 24)
                    .ok_or_else(|| format!("deleteWhen entry {h:?} is not an hour 0..=23"))
            })
            .collect()
    }

    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.listen_address, self.listen_port)
    }

    /// The name server addresses, in order.
    pub fn namesrv_addrs(&self) -> Vec<String> {
        self.namesrv_addr.split(';').map(str::trim).filter(|a| !a.is_empty()).map(str::to_owned).collect()
    }

    pub fn flush_disk_type(&self) -> FlushDiskType {
        FlushDiskType::parse(&self.flush_disk_type).unwrap_or(FlushDiskType::AsyncFlush)
    }

    /// The store settings of shard `shard`.
    /// The shards to run: `shards`, or one per core when it is 0.
    pub fn shard_count(&self) -> usize {
        match self.shards {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_SHARDS),
            n => n,
        }
    }

    pub fn store_config(&self, shard: u8) -> MessageStoreConfig {
        let mut c = MessageStoreConfig::new(self.store_path_root_dir.join(format!("shard-{shard}")));
        c.commitlog.shard = shard;
        c.commitlog.segment_bytes = self.mapped_file_size_commit_log;
        c.commitlog.flush_disk_type = self.flush_disk_type();
        c.commitlog.flush_interval = Duration::from_millis(self.flush_interval_commit_log.max(1));
        c.commitlog.sync_flush_timeout = Duration::from_millis(self.sync_flush_timeout.max(1));
        c.commitlog.cache_bytes = self.commit_log_cache_bytes;
        c.commitlog.spare_segments = self.commit_log_spare_segments;
        c.units_per_consume_queue_file = (self.mapped_file_size_consume_queue / 20).max(1);
        c.flush_interval_consume_queue = Duration::from_millis(self.flush_interval_consume_queue.max(1));
        c.delay_levels_ms = store::parse_delay_levels(&self.message_delay_level).unwrap_or_default();
        c.index = store::IndexConfig {
            enabled: self.message_index_enable,
            hash_slots: self.max_hash_slot_num,
            max_entries: self.max_index_num,
        };
        c
    }

    /// The effective configuration as TOML, in the form `-c` reads.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
    }

    /// Every setting: its key, its default (as TOML) and what it does, in file order.
    pub fn reference() -> Result<Vec<namesrv::config::ReferenceRow>, String> {
        namesrv::config::reference(&Self::default(), MEANINGS)
    }

    /// This config with `changes` (`key=value` lines, Java `Properties` text) applied, validated;
    /// with the keys that take effect at once and those that wait for a restart.
    pub fn updated(&self, changes: &str) -> Result<(BrokerConfig, Vec<String>, Vec<String>), String> {
        let mut table = match toml::Value::try_from(self) {
            Ok(toml::Value::Table(table)) => table,
            _ => return Err("the current configuration cannot be rendered".into()),
        };
        let (mut now, mut later) = (Vec::new(), Vec::new());
        for line in changes.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (key, text) = line
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| format!("{line:?} is not key=value"))?;
            let value = match table.get(key) {
                None => return Err(format!("unknown setting {key:?}")),
                Some(toml::Value::Boolean(_)) => text
                    .parse()
                    .map(toml::Value::Boolean)
                    .map_err(|_| format!("{key} = {text:?} is not true or false"))?,
                Some(toml::Value::Integer(_)) => {
                    text.parse().map(toml::Value::Integer).map_err(|_| format!("{key} = {text:?} is not an integer"))?
                }
                Some(toml::Value::Float(_)) => {
                    text.parse().map(toml::Value::Float).map_err(|_| format!("{key} = {text:?} is not a number"))?
                }
                Some(_) => toml::Value::String(text.to_owned()),
            };
            table.insert(key.to_owned(), value);
            match RUNTIME_SETTINGS.contains(&key) {
                true => now.push(key.to_owned()),
                false => later.push(key.to_owned()),
            }
        }
        let config: BrokerConfig = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| e.to_string())?;
        config.validate()?;
        Ok((config, now, later))
    }

    /// `key=value` lines, as Java's GET_BROKER_CONFIG body.
    pub fn to_properties(&self) -> String {
        let value = toml::Value::try_from(self).unwrap_or(toml::Value::Table(Default::default()));
        let mut out = String::new();
        if let toml::Value::Table(table) = value {
            for (key, v) in table {
                let text = match v {
                    toml::Value::String(s) => s,
                    other => other.to_string(),
                };
                out.push_str(&format!("{key}={text}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_keys_parse_and_unknown_keys_are_reported() {
        let (c, unknown) = BrokerConfig::parse(
            "brokerClusterName = \"C1\"\nbrokerName = \"b1\"\nbrokerId = 0\nnamesrvAddr = \"10.0.0.1:9876;10.0.0.2:9876\"\n\
             listenPort = 20911\nbrokerIP1 = \"10.0.0.5\"\nflushDiskType = \"SYNC_FLUSH\"\nbrokerRole = \"ASYNC_MASTER\"\n",
        )
        .expect("parse");
        assert_eq!(c.broker_cluster_name, "C1");
        assert_eq!(c.namesrv_addrs(), ["10.0.0.1:9876", "10.0.0.2:9876"]);
        assert_eq!(c.broker_ip1.to_string(), "10.0.0.5");
        assert_eq!(c.flush_disk_type(), FlushDiskType::SyncFlush);
        assert_eq!(unknown, ["brokerRole"]);
        let (again, _) = BrokerConfig::parse(&c.to_toml()).expect("printed config reads back");
        assert_eq!(again, c);
        assert!(c.to_properties().contains("brokerIP1=10.0.0.5\n"));
    }

    #[test]
    fn every_setting_is_in_the_reference_and_nothing_else() {
        let rows = BrokerConfig::reference().expect("every setting documented");
        assert_eq!(rows.len(), MEANINGS.len());
    }

    #[test]
    fn bad_values_are_refused_with_the_key_named() {
        let err = BrokerConfig::parse("flushDiskType = \"SOMETIMES\"").expect_err("bad flush type");
        assert!(err.contains("flushDiskType"), "{err}");
        let err = BrokerConfig::parse("defaultTopicQueueNums = 0").expect_err("bad queue count");
        assert!(err.contains("defaultTopicQueueNums"), "{err}");
        let err = BrokerConfig::parse("deleteWhen = \"04;25\"").expect_err("bad hour");
        assert!(err.contains("deleteWhen"), "{err}");
        let err = BrokerConfig::parse("fileReservedTime = -1").expect_err("negative hours");
        assert!(err.contains("fileReservedTime"), "{err}");
        let (c, _) =
            BrokerConfig::parse("fileReservedTime = 48\ndeleteWhen = \"04;16\"").expect("Java's integer hours");
        assert_eq!((c.file_reserved_time, c.delete_hours()), (48.0, Ok(vec![4, 16])));
        let err = BrokerConfig::parse("messageDelayLevel = \"1x\"").expect_err("bad delay level");
        assert!(err.contains("messageDelayLevel"), "{err}");
        let err = BrokerConfig::parse("pullBatchWindowMicros = 2000000").expect_err("a two-second window");
        assert!(err.contains("pullBatchWindowMicros"), "{err}");
        let err = BrokerConfig::parse("listenPort = \"x\"").expect_err("bad type");
        assert!(err.contains("listenPort"), "{err}");
    }
}
