//! Name server configuration: a TOML file with the Java property names (`listenPort`,
//! `kvConfigPath`, …), so the keys of a user's `namesrv.properties` carry over.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::NamesrvError;

/// Keys that UPDATE_NAMESRV_CONFIG may never change (Java's `configBlackList` default plus the
/// entries Java always adds).
const ALWAYS_BLACKLISTED: &[&str] = &["configBlackList", "configStorePath", "kvConfigPath", "rocketmqHome"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NamesrvConfig {
    /// Address to listen on. Java binds every interface; tests and single-host setups narrow it.
    pub listen_address: IpAddr,
    pub listen_port: u16,
    /// Where PUT_KV_CONFIG entries persist (JSON, as Java's `kvConfig.json`).
    pub kv_config_path: PathBuf,
    /// Kept for compatibility with Java configs; Apogee writes no properties file.
    pub config_store_path: PathBuf,
    pub rocketmq_home: String,
    pub product_env_name: String,
    pub cluster_test: bool,
    /// Attach `orderTopicConf` from the ORDER_TOPIC_CONFIG KV namespace to topic routes.
    pub order_message_enable: bool,
    /// `;`-separated keys UPDATE_NAMESRV_CONFIG refuses to change.
    pub config_black_list: String,
    /// A broker silent for longer than this is removed (Java: 120 s, fixed).
    pub broker_channel_expired_time: u64,
    /// How often silent brokers are looked for, in milliseconds.
    pub scan_not_active_broker_interval: u64,
    /// Largest frame accepted from a peer, checked before allocating.
    pub max_frame_bytes: usize,
}

impl Default for NamesrvConfig {
    fn default() -> Self {
        let home =
            std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        Self {
            listen_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            listen_port: 9876,
            kv_config_path: home.join("namesrv").join("kvConfig.json"),
            config_store_path: home.join("namesrv").join("namesrv.properties"),
            rocketmq_home: std::env::var("ROCKETMQ_HOME").unwrap_or_default(),
            product_env_name: "center".into(),
            cluster_test: false,
            order_message_enable: false,
            config_black_list: "configBlackList;configStorePath;kvConfigPath".into(),
            broker_channel_expired_time: 120_000,
            scan_not_active_broker_interval: 5_000,
            max_frame_bytes: wire::MAX_FRAME_BYTES_DEFAULT,
        }
    }
}

/// What each setting does, for the configuration reference (`docs/configuration.md`, generated
/// from this table and the defaults above; a unit test keeps the table and the fields in step).
const MEANINGS: &[(&str, &str)] = &[
    ("listenAddress", "Address to listen on (Apogee). Java binds every interface; name one address to narrow it."),
    ("listenPort", "Port brokers register on and clients ask for routes. 0 picks a free port (tests)."),
    ("kvConfigPath", "File where PUT_KV_CONFIG entries persist (JSON, Java's `kvConfig.json` shape)."),
    ("configStorePath", "Accepted for compatibility with Java configs; Apogee writes no properties file."),
    ("rocketmqHome", "Accepted for compatibility (Java's `ROCKETMQ_HOME`); reported by GET_NAMESRV_CONFIG only."),
    ("productEnvName", "Reported by GET_NAMESRV_CONFIG, as Java does."),
    ("clusterTest", "Reported by GET_NAMESRV_CONFIG, as Java does."),
    ("orderMessageEnable", "Attach `orderTopicConf` from the ORDER_TOPIC_CONFIG KV namespace to topic routes."),
    ("configBlackList", "`;`-separated keys UPDATE_NAMESRV_CONFIG refuses to change (`configBlackList`, `configStorePath`, `kvConfigPath` and `rocketmqHome` always are)."),
    ("brokerChannelExpiredTime", "Milliseconds after which a broker that has not registered again is removed from the routes (Java: 120 s, fixed). A broker whose connection closes is removed at once."),
    ("scanNotActiveBrokerInterval", "Milliseconds between scans for silent brokers."),
    ("maxFrameBytes", "Largest request frame accepted, checked before anything is allocated (Apogee); larger frames close the connection."),
];

/// The file form: the config plus whatever keys it does not know, reported as warnings (a
/// `namesrv.properties` carries many Java-only settings that have no meaning here).
#[derive(Deserialize)]
struct ConfigFile {
    #[serde(flatten)]
    config: NamesrvConfig,
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

impl NamesrvConfig {
    /// Reads a TOML file; returns the config and the keys it ignored.
    pub fn load(path: &Path) -> Result<(Self, Vec<String>), NamesrvError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| NamesrvError::ConfigRead { path: path.to_path_buf(), source })?;
        Self::parse(&text).map_err(|reason| NamesrvError::ConfigInvalid { path: path.to_path_buf(), reason })
    }

    /// Parses TOML text; returns the config and the keys it ignored.
    pub fn parse(text: &str) -> Result<(Self, Vec<String>), String> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let config = file.config;
        config.validate()?;
        Ok((config, file.unknown.into_keys().collect()))
    }

    fn validate(&self) -> Result<(), String> {
        if self.broker_channel_expired_time == 0 {
            return Err("brokerChannelExpiredTime must be above 0".into());
        }
        if self.scan_not_active_broker_interval == 0 {
            return Err("scanNotActiveBrokerInterval must be above 0".into());
        }
        if self.max_frame_bytes < 1024 {
            return Err(format!("maxFrameBytes = {} is below the minimum of 1024", self.max_frame_bytes));
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.listen_address, self.listen_port)
    }

    pub fn broker_expiry(&self) -> Duration {
        Duration::from_millis(self.broker_channel_expired_time)
    }

    pub fn scan_interval(&self) -> Duration {
        Duration::from_millis(self.scan_not_active_broker_interval)
    }

    /// The effective configuration as TOML, in the form `-c` reads.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
    }

    /// Every setting: its key, its default (as TOML) and what it does, in file order.
    pub fn reference() -> Result<Vec<ReferenceRow>, String> {
        reference(&Self::default(), MEANINGS)
    }

    /// `key=value` lines, as Java's `getAllConfigsFormatString` (GET_NAMESRV_CONFIG).
    pub fn to_properties(&self) -> String {
        let mut out = String::new();
        for (key, value) in self.entries() {
            let _ = writeln!(out, "{key}={value}");
        }
        out
    }

    fn entries(&self) -> Vec<(&'static str, String)> {
        vec![
            ("brokerChannelExpiredTime", self.broker_channel_expired_time.to_string()),
            ("clusterTest", self.cluster_test.to_string()),
            ("configBlackList", self.config_black_list.clone()),
            ("configStorePath", self.config_store_path.display().to_string()),
            ("kvConfigPath", self.kv_config_path.display().to_string()),
            ("listenAddress", self.listen_address.to_string()),
            ("listenPort", self.listen_port.to_string()),
            ("maxFrameBytes", self.max_frame_bytes.to_string()),
            ("orderMessageEnable", self.order_message_enable.to_string()),
            ("productEnvName", self.product_env_name.clone()),
            ("rocketmqHome", self.rocketmq_home.clone()),
            ("scanNotActiveBrokerInterval", self.scan_not_active_broker_interval.to_string()),
        ]
    }

    /// True when `key` may not be changed at runtime.
    pub fn is_blacklisted(&self, key: &str) -> bool {
        ALWAYS_BLACKLISTED.contains(&key) || self.config_black_list.split(';').any(|k| k.trim() == key)
    }

    /// Applies UPDATE_NAMESRV_CONFIG properties. Keys that are not settings are ignored, as Java
    /// does; a value that does not parse is an error and changes nothing.
    pub fn update(&mut self, properties: &BTreeMap<String, String>) -> Result<(), String> {
        let mut next = self.clone();
        for (key, value) in properties {
            let value = value.trim();
            let bad = |what: &str| format!("{key} = {value:?} is not a valid {what}");
            match key.as_str() {
                "brokerChannelExpiredTime" => {
                    next.broker_channel_expired_time = value.parse().map_err(|_| bad("number of milliseconds"))?
                }
                "scanNotActiveBrokerInterval" => {
                    next.scan_not_active_broker_interval = value.parse().map_err(|_| bad("number of milliseconds"))?
                }
                "clusterTest" => next.cluster_test = parse_bool(value).ok_or_else(|| bad("boolean"))?,
                "orderMessageEnable" => next.order_message_enable = parse_bool(value).ok_or_else(|| bad("boolean"))?,
                "productEnvName" => next.product_env_name = value.to_owned(),
                "listenPort" => next.listen_port = value.parse().map_err(|_| bad("port"))?,
                "maxFrameBytes" => next.max_frame_bytes = value.parse().map_err(|_| bad("byte count"))?,
                _ => {}
            }
        }
        next.validate()?;
        *self = next;
        Ok(())
    }
}

/// One row of the configuration reference: key, default as TOML, meaning.
pub type ReferenceRow = (&'static str, String, &'static str);

/// The reference rows of a config type, from its defaults and a table of meanings (the broker's
/// too). An error names every field without a meaning and every meaning without a field, so a
/// new setting cannot go undocumented.
pub fn reference<T: Serialize>(
    defaults: &T,
    meanings: &[(&'static str, &'static str)],
) -> Result<Vec<ReferenceRow>, String> {
    let value = toml::Value::try_from(defaults).map_err(|e| format!("defaults do not render: {e}"))?;
    let table = value.as_table().ok_or("defaults are not a table")?;
    let undocumented: Vec<&String> = table.keys().filter(|k| !meanings.iter().any(|(m, _)| m == k)).collect();
    let unknown: Vec<&str> = meanings.iter().map(|&(m, _)| m).filter(|m| !table.contains_key(*m)).collect();
    if !undocumented.is_empty() || !unknown.is_empty() {
        return Err(format!("settings without a meaning: {undocumented:?}; meanings without a setting: {unknown:?}"));
    }
    Ok(meanings.iter().map(|&(key, meaning)| (key, table[key].to_string(), meaning)).collect())
}

fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Parses Java properties text as UPDATE_NAMESRV_CONFIG sends it: `key=value` lines, `#` and
/// `!` comments, `:` also accepted as the separator.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('!'))
        .filter_map(|line| {
            let at = line.find(['=', ':'])?;
            Some((line[..at].trim().to_owned(), line[at + 1..].trim().to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_keys_are_java_names_and_unknown_keys_are_reported() {
        let (config, unknown) =
            NamesrvConfig::parse("listenPort = 9999\nkvConfigPath = \"/tmp/kv.json\"\nserverWorkerThreads = 8\n")
                .expect("valid");
        assert_eq!(config.listen_port, 9999);
        assert_eq!(config.kv_config_path, PathBuf::from("/tmp/kv.json"));
        assert_eq!(unknown, vec!["serverWorkerThreads".to_owned()]);
    }

    #[test]
    fn every_setting_is_in_the_reference_and_nothing_else() {
        let rows = NamesrvConfig::reference().expect("every setting documented");
        let printed: Vec<&str> = NamesrvConfig::default().entries().into_iter().map(|(key, _)| key).collect();
        let mut documented: Vec<&str> = rows.iter().map(|(key, _, _)| *key).collect();
        documented.sort_unstable();
        assert_eq!(printed, documented, "GET_NAMESRV_CONFIG must print every setting");
        let err = reference(&NamesrvConfig::default(), &MEANINGS[1..]).expect_err("a missing meaning");
        assert!(err.contains("listenAddress"), "{err}");
    }

    #[test]
    fn bad_values_are_errors() {
        let err = NamesrvConfig::parse("listenPort = \"x\"\n").expect_err("bad port");
        assert!(err.contains("listenPort"), "{err}");
        let err = NamesrvConfig::parse("listenPort = 70000\n").expect_err("port out of range");
        assert!(err.contains("listenPort"), "{err}");
        assert!(NamesrvConfig::parse("brokerChannelExpiredTime = 0\n").is_err());
    }

    #[test]
    fn printed_config_reads_back() {
        let config = NamesrvConfig { listen_port: 1234, order_message_enable: true, ..Default::default() };
        let (back, unknown) = NamesrvConfig::parse(&config.to_toml()).expect("round trip");
        assert_eq!(back, config);
        assert!(unknown.is_empty());
    }

    #[test]
    fn runtime_update_refuses_bad_values_and_keeps_the_old_config() {
        let mut config = NamesrvConfig::default();
        let props = parse_properties("# comment\norderMessageEnable=true\nbrokerChannelExpiredTime = 5000\nfoo=bar\n");
        config.update(&props).expect("valid update");
        assert!(config.order_message_enable);
        assert_eq!(config.broker_channel_expired_time, 5000);
        let before = config.clone();
        assert!(config.update(&parse_properties("clusterTest=yes\norderMessageEnable=false")).is_err());
        assert_eq!(config, before);
        assert!(config.is_blacklisted("kvConfigPath"));
        assert!(config.is_blacklisted("rocketmqHome"));
        assert!(!config.is_blacklisted("orderMessageEnable"));
    }
}
