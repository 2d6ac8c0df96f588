//! KV config: namespace → key → value, persisted as Java's `kvConfig.json`
//! (`{"configTable":{namespace:{key:value}}}`).
//!
//! The file is replaced atomically (temp file, fsync, rename, fsync of the directory), so a crash
//! leaves either the old table or the new one. A file that exists but does not parse stops the
//! start-up: silently serving an empty table would drop every order-topic setting.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wire::body::{JsonBody, KvTable};

use crate::error::NamesrvError;

/// Namespace whose keys are topics and values their order config (`brokerName:queueNums;…`).
pub const NAMESPACE_ORDER_TOPIC_CONFIG: &str = "ORDER_TOPIC_CONFIG";

pub type Table = BTreeMap<String, BTreeMap<String, String>>;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KvConfigFile {
    #[serde(default)]
    config_table: Table,
}

#[derive(Debug, Default)]
pub struct KvConfig {
    table: Table,
}

impl KvConfig {
    /// Loads `path`; a missing file is an empty table, as on a first start.
    pub fn load(path: &Path) -> Result<Self, NamesrvError> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(NamesrvError::KvRead { path: path.to_path_buf(), source }),
        };
        let corrupt = |reason: String| NamesrvError::KvCorrupt { path: path.to_path_buf(), reason };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(corrupt("the file is empty".into()));
        }
        let normalized = wire::body::fastjson::normalize_keys(&bytes);
        let file: KvConfigFile = serde_json::from_slice(&normalized).map_err(|e| corrupt(e.to_string()))?;
        Ok(Self { table: file.config_table })
    }

    pub fn get(&self, namespace: &str, key: &str) -> Option<&str> {
        self.table.get(namespace)?.get(key).map(String::as_str)
    }

    pub fn put(&mut self, namespace: &str, key: &str, value: &str) {
        self.table.entry(namespace.to_owned()).or_default().insert(key.to_owned(), value.to_owned());
    }

    /// Removes `key`; true if it was there.
    pub fn delete(&mut self, namespace: &str, key: &str) -> bool {
        let Some(keys) = self.table.get_mut(namespace) else {
            return false;
        };
        let removed = keys.remove(key).is_some();
        if keys.is_empty() {
            self.table.remove(namespace);
        }
        removed
    }

    /// The namespace as a KVTable body; `None` when the namespace has no entries.
    pub fn namespace_body(&self, namespace: &str) -> Option<Vec<u8>> {
        let keys = self.table.get(namespace).filter(|keys| !keys.is_empty())?;
        Some(KvTable { table: keys.clone() }.encode())
    }

    /// The bytes `persist` writes for the current table.
    pub fn snapshot(&self) -> Vec<u8> {
        let file = KvConfigFile { config_table: self.table.clone() };
        serde_json::to_vec_pretty(&file).unwrap_or_default()
    }
}

/// Replaces `path` with `contents` atomically and durably. Blocking: run it off the executor.
pub fn persist(path: &Path, contents: &[u8]) -> Result<(), NamesrvError> {
    let err = |source| NamesrvError::KvWrite { path: path.to_path_buf(), source };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(err)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = File::create(&tmp).map_err(err)?;
    file.write_all(contents).map_err(err)?;
    file.sync_all().map_err(err)?;
    drop(file);
    fs::rename(&tmp, path).map_err(err)?;
    File::open(&dir).and_then(|d| d.sync_all()).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_persist_load_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("kvConfig.json");
        let mut kv = KvConfig::load(&path).expect("missing file is empty");
        kv.put(NAMESPACE_ORDER_TOPIC_CONFIG, "TopicA", "broker-a:4");
        kv.put("ns", "k", "v");
        assert!(kv.delete("ns", "k"));
        assert!(!kv.delete("ns", "k"));
        persist(&path, &kv.snapshot()).expect("persist");
        let back = KvConfig::load(&path).expect("load");
        assert_eq!(back.get(NAMESPACE_ORDER_TOPIC_CONFIG, "TopicA"), Some("broker-a:4"));
        assert_eq!(back.get("ns", "k"), None);
        let body = back.namespace_body(NAMESPACE_ORDER_TOPIC_CONFIG).expect("namespace present");
        assert_eq!(body, br#"{"table":{"TopicA":"broker-a:4"}}"#);
        assert!(back.namespace_body("ns").is_none());
        assert!(!dir.path().join("sub").join("kvConfig.json.tmp").exists());
    }

    #[test]
    fn java_written_file_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kvConfig.json");
        fs::write(
            &path,
            "{\n\t\"configTable\":{\n\t\t\"ORDER_TOPIC_CONFIG\":{\n\t\t\t\"T\":\"broker-a:8\"\n\t\t}\n\t}\n}",
        )
        .expect("write");
        let kv = KvConfig::load(&path).expect("load");
        assert_eq!(kv.get("ORDER_TOPIC_CONFIG", "T"), Some("broker-a:8"));
    }

    #[test]
    fn corrupt_or_empty_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kvConfig.json");
        fs::write(&path, "{\"configTable\":{\"ns\":").expect("write");
        let err = KvConfig::load(&path).expect_err("corrupt");
        assert!(matches!(err, NamesrvError::KvCorrupt { .. }), "{err}");
        assert!(err.to_string().contains("kvConfig.json"), "{err}");
        fs::write(&path, "").expect("write");
        assert!(matches!(KvConfig::load(&path), Err(NamesrvError::KvCorrupt { .. })));
    }
}
