//! Broker-wide metadata: topic configs, subscription groups and consumer offsets, kept in
//! memory and persisted as JSON under `<storePathRootDir>/config/` in Java's shapes
//! (`TopicConfigSerializeWrapper`, `SubscriptionGroupWrapper`, `ConsumerOffsetSerializeWrapper`),
//! and which shard stores each queue (`queueOwners.json`, Apogee's own).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wire::body::perm;
use wire::body::{
    ConsumerOffsetSerializeWrapper, DataVersion, DelayOffsetSerializeWrapper, JsonBody, SubscriptionGroupConfig,
    SubscriptionGroupWrapper, TopicConfig, TopicConfigSerializeWrapper,
};
use wire::message::topic;

use crate::config::BrokerConfig;
use crate::error::BrokerError;

/// `OFFSET_MOVED_EVENT`, `SELF_TEST_TOPIC`: system topics every Java broker carries.
const OFFSET_MOVED_EVENT: &str = "OFFSET_MOVED_EVENT";
const SELF_TEST_TOPIC: &str = "SELF_TEST_TOPIC";
/// Queues of SCHEDULE_TOPIC_XXXX: one per delay level.
const SCHEDULE_QUEUES: i32 = 18;

pub struct Metadata {
    pub topics: TopicConfigSerializeWrapper,
    pub groups: SubscriptionGroupWrapper,
    /// `topic@group` → queue id → offset.
    pub offsets: ConsumerOffsetSerializeWrapper,
    /// Delay level → next offset to deliver in its SCHEDULE_TOPIC_XXXX queue.
    pub delay_offsets: DelayOffsetSerializeWrapper,
    /// Topic → the shard that stores each of its queues, recorded when the queue is created so
    /// that a queue never moves when the shard count changes.
    pub owners: BTreeMap<String, Vec<u8>>,
    shards: usize,
    dir: PathBuf,
}

/// Which persisted file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaFile {
    Topics,
    Groups,
    Offsets,
    DelayOffsets,
    Owners,
}

/// Topics whose queues shard 0 always stores: the delay and transaction machinery runs there.
fn pinned_to_shard_0(name: &str) -> bool {
    matches!(name, topic::SCHEDULE_TOPIC | topic::TRANS_HALF_TOPIC | topic::TRANS_OP_HALF_TOPIC)
}

/// The shard of a new queue: queues of one topic take the shards in turn, from a start that
/// depends on the topic's name, so that topics spread over the shards.
fn new_owner(name: &str, queue_id: usize, shards: usize) -> u8 {
    if pinned_to_shard_0(name) || shards <= 1 {
        return 0;
    }
    let start = name.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193)) as usize;
    ((start + queue_id) % shards) as u8
}

impl Metadata {
    /// Loads the three files (missing ones start empty; corrupt ones refuse the start) and
    /// adds the system topics.
    pub fn load(config: &BrokerConfig) -> Result<Metadata, BrokerError> {
        let dir = config.store_path_root_dir.join("config");
        let mut topics: TopicConfigSerializeWrapper = read_json(&dir.join("topics.json"))?.unwrap_or_default();
        let groups = read_json_or_old(&dir, GROUPS_FILE, "subscriptionGroups.json")?.unwrap_or_default();
        let offsets = read_json_or_old(&dir, OFFSETS_FILE, "consumerOffsets.json")?.unwrap_or_default();
        let delay_offsets = read_json(&dir.join("delayOffset.json"))?.unwrap_or_default();
        let table = &mut topics.topic_config_table;
        let mut system = |name: &str, queues: i32, perm: i32| {
            table.entry(name.to_owned()).or_insert_with(|| {
                let mut t = TopicConfig::new(name, queues);
                t.perm = perm;
                t
            });
        };
        let rw = perm::READ | perm::WRITE;
        system(SELF_TEST_TOPIC, 1, rw);
        if config.auto_create_topic_enable {
            system(topic::AUTO_CREATE_TOPIC_KEY, config.default_topic_queue_nums, rw | perm::INHERIT);
        }
        system(&config.broker_cluster_name, 16, config.broker_permission | perm::INHERIT);
        system(&config.broker_name, 1, config.broker_permission | perm::INHERIT);
        system(OFFSET_MOVED_EVENT, 1, rw | perm::INHERIT);
        system(topic::SCHEDULE_TOPIC, SCHEDULE_QUEUES, rw);
        system(&format!("{}_REPLY_TOPIC", config.broker_cluster_name), 1, rw | perm::INHERIT);
        let mut owners: BTreeMap<String, Vec<u8>> = read_owners(&dir.join(OWNERS_FILE))?;
        // A topic with no record predates sharding (or is a system topic): shard 0 has its data.
        for (name, t) in &topics.topic_config_table {
            let queues = t.read_queue_nums.max(t.write_queue_nums).max(0) as usize;
            let record = owners.entry(name.clone()).or_default();
            if record.len() < queues {
                record.resize(queues, 0);
            }
        }
        let shards = config.shards.max(1);
        for (name, record) in &owners {
            if let Some((queue_id, owner)) = record.iter().enumerate().find(|(_, o)| usize::from(**o) >= shards) {
                return Err(BrokerError::Config(format!(
                    "queue {queue_id} of topic {name} is stored by shard {owner}, but shards = {shards}; \
                     start with shards = {} or more",
                    owner + 1
                )));
            }
        }
        Ok(Metadata { topics, groups, offsets, delay_offsets, owners, shards, dir })
    }

    /// The shard that stores `(topic, queue_id)`; 0 for unknown queues.
    pub fn owner(&self, name: &str, queue_id: i32) -> usize {
        let record = self.owners.get(name);
        usize::try_from(queue_id).ok().and_then(|q| record?.get(q)).map_or(0, |o| usize::from(*o))
    }

    /// Records owners for the queues of `config` that have none yet.
    fn assign_owners(&mut self, config: &TopicConfig) {
        let queues = config.read_queue_nums.max(config.write_queue_nums).max(0) as usize;
        let record = self.owners.entry(config.topic_name.clone()).or_default();
        for queue_id in record.len()..queues {
            record.push(new_owner(&config.topic_name, queue_id, self.shards));
        }
    }

    /// The topic's permission; a missing topic is created read-write with `queues` queues
    /// (retry and dead-letter topics). The flag says whether it was created.
    pub fn ensure_topic(&mut self, name: &str, queues: i32, now_ms: i64) -> (i32, bool) {
        if let Some(existing) = self.topic(name) {
            return (existing.perm, false);
        }
        let mut config = TopicConfig::new(name, queues);
        config.perm = perm::READ | perm::WRITE;
        self.put_topic(config, now_ms);
        (perm::READ | perm::WRITE, true)
    }

    pub fn topic(&self, name: &str) -> Option<&TopicConfig> {
        self.topics.topic_config_table.get(name)
    }

    /// Adds or replaces a topic and bumps the data version.
    pub fn put_topic(&mut self, config: TopicConfig, now_ms: i64) {
        self.assign_owners(&config);
        self.topics.topic_config_table.insert(config.topic_name.clone(), config);
        self.topics.data_version = self.topics.data_version.next(now_ms);
    }

    /// A new data version for the topics, so the name servers take the next registration.
    pub fn touch_topics(&mut self, now_ms: i64) {
        self.topics.data_version = self.topics.data_version.next(now_ms);
    }

    pub fn remove_topic(&mut self, name: &str, now_ms: i64) -> bool {
        let removed = self.topics.topic_config_table.remove(name).is_some();
        if removed {
            self.topics.data_version = self.topics.data_version.next(now_ms);
        }
        removed
    }

    /// The group's settings, created with Java's defaults when auto-creation is on.
    pub fn group_or_create(&mut self, group: &str, auto_create: bool, now_ms: i64) -> Option<&SubscriptionGroupConfig> {
        if !self.groups.subscription_group_table.contains_key(group) {
            if !auto_create {
                return None;
            }
            let config = SubscriptionGroupConfig { group_name: group.to_owned(), ..Default::default() };
            self.groups.subscription_group_table.insert(group.to_owned(), config);
            self.groups.data_version = self.groups.data_version.next(now_ms);
        }
        self.groups.subscription_group_table.get(group)
    }

    /// The committed offset of `group` on `(topic, queue_id)`; −1 if none.
    pub fn query_offset(&self, group: &str, topic: &str, queue_id: i32) -> i64 {
        self.offsets
            .offset_table
            .get(&offset_key(topic, group))
            .and_then(|queues| queues.get(&queue_id))
            .copied()
            .unwrap_or(-1)
    }

    pub fn commit_offset(&mut self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        self.offsets.offset_table.entry(offset_key(topic, group)).or_default().insert(queue_id, offset);
    }

    /// `dest` takes `src`'s offsets on `topic`, replacing its own (Java's `cloneOffset`); false
    /// when `src` has none there.
    pub fn clone_offsets(&mut self, src: &str, dest: &str, topic: &str) -> bool {
        let Some(offsets) = self.offsets.offset_table.get(&offset_key(topic, src)).cloned() else { return false };
        self.offsets.offset_table.insert(offset_key(topic, dest), offsets);
        true
    }

    /// `(path, contents)` of one file, ready to be written off the executor.
    pub fn snapshot(&self, file: MetaFile) -> (PathBuf, Vec<u8>) {
        match file {
            MetaFile::Topics => (self.dir.join("topics.json"), self.topics.encode()),
            MetaFile::Groups => (self.dir.join(GROUPS_FILE), self.groups.encode()),
            MetaFile::Offsets => (self.dir.join(OFFSETS_FILE), self.offsets.encode()),
            MetaFile::DelayOffsets => (self.dir.join("delayOffset.json"), self.delay_offsets.encode_fastjson()),
            MetaFile::Owners => {
                (self.dir.join(OWNERS_FILE), serde_json::to_vec_pretty(&self.owners).unwrap_or_default())
            }
        }
    }

    /// The topic table as registration sends it.
    pub fn topic_wrapper(&self) -> TopicConfigSerializeWrapper {
        self.topics.clone()
    }

    pub fn data_version(&self) -> DataVersion {
        self.topics.data_version
    }
}

impl Metadata {
    /// Topics `group` has committed offsets for (Java's `whichTopicByConsumer`).
    pub fn topics_consumed_by(&self, group: &str) -> Vec<String> {
        self.offsets
            .offset_table
            .keys()
            .filter_map(|key| key.rsplit_once('@').filter(|(_, g)| *g == group).map(|(t, _)| t.to_owned()))
            .collect()
    }

    /// Groups with committed offsets on `topic` (Java's `whichGroupByTopic`).
    pub fn groups_consuming<'a>(&'a self, topic: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.offsets.offset_table.keys().filter_map(move |key| match key.rsplit_once('@') {
            Some((t, group)) if t == topic => Some(group),
            _ => None,
        })
    }
}

fn offset_key(topic: &str, group: &str) -> String {
    format!("{topic}@{group}")
}

/// Java's file names (`BrokerPathConfigHelper`), so a store's `config/` reads the same to both.
const GROUPS_FILE: &str = "subscriptionGroup.json";
const OFFSETS_FILE: &str = "consumerOffset.json";
const OWNERS_FILE: &str = "queueOwners.json";

fn read_owners(path: &Path) -> Result<BTreeMap<String, Vec<u8>>, BrokerError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| BrokerError::MetadataCorrupt { path: path.to_path_buf(), reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(BrokerError::MetadataCorrupt { path: path.to_path_buf(), reason: e.to_string() }),
    }
}

/// Reads `name`, or `old_name` when only that exists: Apogee builds before 2026-11 wrote
/// `subscriptionGroups.json` and `consumerOffsets.json`, and their groups and consumer offsets
/// must not be lost; the next write uses the Java name.
fn read_json_or_old<T: JsonBody>(dir: &Path, name: &str, old_name: &str) -> Result<Option<T>, BrokerError> {
    match read_json(&dir.join(name))? {
        Some(found) => Ok(Some(found)),
        None => read_json(&dir.join(old_name)),
    }
}

fn read_json<T: JsonBody>(path: &Path) -> Result<Option<T>, BrokerError> {
    match std::fs::read(path) {
        Ok(bytes) => T::decode(&bytes)
            .map(Some)
            .map_err(|e| BrokerError::MetadataCorrupt { path: path.to_path_buf(), reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BrokerError::MetadataCorrupt { path: path.to_path_buf(), reason: e.to_string() }),
    }
}

/// Writes `contents` to `path` atomically (temp file, fsync, rename, fsync of the folder).
pub fn persist(path: &Path, contents: &[u8]) -> Result<(), BrokerError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|source| BrokerError::MetadataWrite { path: dir.to_path_buf(), source })?;
    }
    namesrv::kv::persist(path, contents).map_err(|e| BrokerError::MetadataWrite {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_in(dir: &Path) -> BrokerConfig {
        BrokerConfig { store_path_root_dir: dir.to_path_buf(), ..Default::default() }
    }

    /// Files as a Java 4.9 broker leaves them in `store/config/` (fastjson, pretty-printed, queue
    /// ids as bare numbers).
    #[test]
    fn a_java_brokers_config_files_read_under_their_java_names() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("config");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            dir.join("topics.json"),
            "{\n\t\"dataVersion\":{\n\t\t\"counter\":3,\n\t\t\"timestamp\":1700000000000\n\t},\n\t\"topicConfigTable\":{\n\t\t\
             \"TopicTest\":{\n\t\t\t\"order\":false,\n\t\t\t\"perm\":6,\n\t\t\t\"readQueueNums\":4,\n\t\t\t\
             \"topicFilterType\":\"SINGLE_TAG\",\n\t\t\t\"topicName\":\"TopicTest\",\n\t\t\t\"topicSysFlag\":0,\n\t\t\t\
             \"writeQueueNums\":4\n\t\t}\n\t}\n}",
        )
        .expect("write");
        std::fs::write(
            dir.join("consumerOffset.json"),
            "{\n\t\"offsetTable\":{\n\t\t\"TopicTest@CG_java\":{0:250,1:251,2:250,3:249\n\t\t}\n\t}\n}",
        )
        .expect("write");
        std::fs::write(
            dir.join("subscriptionGroup.json"),
            "{\n\t\"dataVersion\":{\n\t\t\"counter\":1,\n\t\t\"timestamp\":1700000000000\n\t},\n\t\
             \"subscriptionGroupTable\":{\n\t\t\"CG_java\":{\n\t\t\t\"brokerId\":0,\n\t\t\t\
             \"consumeBroadcastEnable\":true,\n\t\t\t\"consumeEnable\":true,\n\t\t\t\"consumeFromMinEnable\":true,\n\t\t\t\
             \"groupName\":\"CG_java\",\n\t\t\t\"notifyConsumerIdsChangedEnable\":true,\n\t\t\t\"retryMaxTimes\":5,\n\t\t\t\
             \"retryQueueNums\":1,\n\t\t\t\"whichBrokerWhenConsumeSlowly\":1\n\t\t}\n\t}\n}",
        )
        .expect("write");
        let meta = Metadata::load(&config_in(root.path())).expect("load");
        assert_eq!(meta.topics.topic_config_table["TopicTest"].write_queue_nums, 4);
        assert_eq!(meta.groups.subscription_group_table["CG_java"].retry_max_times, 5);
        assert_eq!(meta.query_offset("CG_java", "TopicTest", 1), 251);
        assert_eq!(meta.snapshot(MetaFile::Offsets).0, dir.join("consumerOffset.json"));
        assert_eq!(meta.snapshot(MetaFile::Groups).0, dir.join("subscriptionGroup.json"));
    }

    #[test]
    fn offsets_under_the_old_apogee_file_name_are_still_read() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut meta = Metadata::load(&config_in(root.path())).expect("empty store");
        meta.commit_offset("CG_old", "TopicOld", 2, 42);
        let (_, contents) = meta.snapshot(MetaFile::Offsets);
        persist(&root.path().join("config/consumerOffsets.json"), &contents).expect("write the old name");
        let meta = Metadata::load(&config_in(root.path())).expect("load");
        assert_eq!(meta.query_offset("CG_old", "TopicOld", 2), 42);
    }
}
