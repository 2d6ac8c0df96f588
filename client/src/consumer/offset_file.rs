//! Where a broadcasting consumer keeps its offsets between runs: Java's `LocalFileOffsetStore`.
//!
//! In broadcasting every consumer reads every queue, so the broker keeps no offsets for the
//! group; each consumer keeps its own in `<dir>/<ip>@<instanceName>/<group>/offsets.json`, as
//! Java does (`dir` is Java's `rocketmq.client.localOffsetStoreDir`, `~/.rocketmq_offsets` by
//! default; broadcasting consumers keep the instance name `DEFAULT`). The file holds Java's
//! `OffsetSerializeWrapper` in fastjson's form (queue objects as bare keys), so a Java consumer
//! switched to this client, or back, resumes where the other stopped.
//!
//! A write goes to `offsets.json.tmp`, is synced, and replaces the file; the previous file is
//! kept as `offsets.json.bak`. Reading, a missing, empty or unreadable file falls back to the
//! `.bak`, as Java does, so a crash mid-write costs at most one period of redelivery.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use wire::body::{JsonBody, MessageQueue, ResetOffsetBody};

use crate::error::{ClientError, Result};

/// Java's default directory: `$HOME/.rocketmq_offsets`.
pub(crate) fn default_dir() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".rocketmq_offsets")
}

/// The offsets file of `group` for the client `ip@instance_name` under `dir`.
pub(crate) fn path(dir: &Path, client_name: &str, group: &str) -> PathBuf {
    dir.join(client_name).join(group).join("offsets.json")
}

fn backup_of(path: &Path) -> PathBuf {
    with_suffix(path, ".bak")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

fn error(path: &Path, reason: impl std::fmt::Display) -> ClientError {
    ClientError::OffsetFile { path: path.to_path_buf(), reason: reason.to_string() }
}

/// The offsets kept at `path`: from the file, else from its `.bak`; empty when neither exists.
/// Fails only when a file is there but neither can be read, so that a consumer does not start
/// over from its `consume_from` point and deliver everything again without saying so.
pub(crate) fn load(path: &Path) -> Result<BTreeMap<MessageQueue, i64>> {
    let backup = backup_of(path);
    match read(path) {
        Ok(Some(table)) => Ok(table),
        Ok(None) => Ok(read(&backup)?.unwrap_or_default()),
        Err(e) => match read(&backup) {
            Ok(Some(table)) => {
                tracing::warn!(error = %e, backup = %backup.display(), "offsets file unreadable; using its backup");
                Ok(table)
            }
            _ => Err(e),
        },
    }
}

/// `None` when the file is missing or empty (Java treats both as "no offsets here").
fn read(path: &Path) -> Result<Option<BTreeMap<MessageQueue, i64>>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(error(path, e)),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    ResetOffsetBody::decode(&bytes).map(|body| Some(body.offset_table)).map_err(|e| error(path, e))
}

/// Replaces the file at `path` with `table`, keeping the previous file as the `.bak`.
pub(crate) fn store(path: &Path, table: &BTreeMap<MessageQueue, i64>) -> Result<()> {
    let dir = path.parent().ok_or_else(|| error(path, "no parent directory"))?;
    std::fs::create_dir_all(dir).map_err(|e| error(dir, e))?;
    let body = ResetOffsetBody { offset_table: table.clone() }.encode_fastjson();
    let tmp = with_suffix(path, ".tmp");
    let mut file = std::fs::File::create(&tmp).map_err(|e| error(&tmp, e))?;
    file.write_all(&body).and_then(|()| file.sync_data()).map_err(|e| error(&tmp, e))?;
    drop(file);
    // The current file becomes the backup by a rename, so that one of the two is always whole.
    match std::fs::rename(path, backup_of(path)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(error(path, e)),
    }
    std::fs::rename(&tmp, path).map_err(|e| error(path, e))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| error(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(topic: &str, id: i32) -> MessageQueue {
        MessageQueue { topic: topic.into(), broker_name: "broker-a".into(), queue_id: id }
    }

    #[test]
    fn offsets_round_trip_and_the_previous_file_becomes_the_backup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = path(dir.path(), "10.0.0.1@DEFAULT", "group-a");
        assert!(load(&file).expect("nothing yet").is_empty());

        let first: BTreeMap<_, _> = [(queue("T", 0), 5), (queue("T", 1), 7)].into();
        store(&file, &first).expect("first write");
        assert_eq!(load(&file).expect("load"), first);

        let second: BTreeMap<_, _> = [(queue("T", 0), 9), (queue("T", 1), 7)].into();
        store(&file, &second).expect("second write");
        assert_eq!(load(&file).expect("load"), second);
        assert_eq!(read(&backup_of(&file)).expect("backup").expect("present"), first);
        assert!(!with_suffix(&file, ".tmp").exists());
    }

    #[test]
    fn java_files_are_read_pretty_printed_or_compact() {
        // What 4.9.8's LocalFileOffsetStore writes (OffsetSerializeWrapper.toJson(true)).
        let java = "{\n\t\"offsetTable\":{{\n\t\t\t\"brokerName\":\"broker-a\",\n\t\t\t\"queueId\":1,\n\t\t\t\"topic\":\"T\"\n\t\t}:42,{\n\t\t\t\"brokerName\":\"broker-a\",\n\t\t\t\"queueId\":0,\n\t\t\t\"topic\":\"T\"\n\t\t}:40\n\t}\n}";
        let dir = tempfile::tempdir().expect("tempdir");
        let file = path(dir.path(), "10.0.0.1@DEFAULT", "g");
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&file, java).expect("write");
        let table = load(&file).expect("Java's form");
        assert_eq!(table, [(queue("T", 0), 40), (queue("T", 1), 42)].into());

        store(&file, &table).expect("rewrite");
        let written = std::fs::read_to_string(&file).expect("read");
        assert!(written.starts_with("{\"offsetTable\":{{\""), "queue keys bare, as fastjson reads them: {written}");
    }

    #[test]
    fn a_torn_or_empty_file_falls_back_to_the_backup_and_fails_only_without_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = path(dir.path(), "h@DEFAULT", "g");
        let kept: BTreeMap<_, _> = [(queue("T", 0), 3)].into();
        store(&file, &kept).expect("write");
        store(&file, &kept).expect("write again, so a backup exists");

        std::fs::write(&file, b"{\"offsetTable\":{{\"brokerName\"").expect("tear");
        assert_eq!(load(&file).expect("from the backup"), kept);
        std::fs::write(&file, b"").expect("empty");
        assert_eq!(load(&file).expect("from the backup"), kept);

        std::fs::remove_file(backup_of(&file)).expect("drop backup");
        std::fs::write(&file, b"{\"offsetTable\":{{\"brokerName\"").expect("tear");
        let err = load(&file).expect_err("nothing readable left");
        assert!(err.to_string().contains("offsets.json"), "{err}");
    }
}
