//! `--embedded`: a standalone Apogee (broker plus name server, `apogee-broker --standalone`)
//! started as a child process on free loopback ports, its store in a temporary folder, so a
//! new user measures with one command. A child process rather than in-process: the broker's
//! CPU time is then its own in `/proc`, and the bench crate stays a plain client.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::error::{BenchError, Result};

const BROKER_BIN: &str = "apogee-broker";

/// How to start the embedded broker.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedOptions {
    /// The `apogee-broker` binary; found next to this program or on PATH when not given.
    pub broker_bin: Option<PathBuf>,
    /// Folder in which the temporary store folder is made (the system temp folder by default).
    /// It must be on a file system that supports O_DIRECT (not tmpfs).
    pub parent_dir: Option<PathBuf>,
    /// Extra config lines, `key=value` with RocketMQ key names (flushDiskType=SYNC_FLUSH, …).
    pub settings: Vec<(String, String)>,
}

/// A running standalone broker; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Embedded {
    child: Child,
    dir: tempfile::TempDir,
    pub namesrv_addr: String,
    pub broker_addr: String,
}

impl Embedded {
    pub fn start(options: &EmbeddedOptions) -> Result<Embedded> {
        let bin = match &options.broker_bin {
            Some(bin) => bin.clone(),
            None => find_broker_bin(),
        };
        let parent = options.parent_dir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("apogee-bench-")
            .tempdir_in(&parent)
            .map_err(|e| BenchError::io(format!("creating a store folder in {}", parent.display()), e))?;
        let config = dir.path().join("broker.toml");
        std::fs::write(&config, config_text(&dir.path().join("store"), &options.settings))
            .map_err(|e| BenchError::io(format!("writing {}", config.display()), e))?;
        let log_path = dir.path().join("broker.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| BenchError::io(format!("creating {}", log_path.display()), e))?;
        let mut child = Command::new(&bin)
            .arg("--standalone")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| {
                BenchError::Embedded(format!(
                    "cannot run {}: {e}; build it (cargo build --release -p broker) or pass --broker-bin",
                    bin.display()
                ))
            })?;
        let Some(stdout) = child.stdout.take() else {
            return Err(BenchError::Embedded("the broker's standard output is not a pipe".into()));
        };
        let (tx, rx) = mpsc::channel();
        // Reads the boot lines, then keeps draining so the broker never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                let _ = tx.send(line);
            }
        });
        let mut embedded = Embedded { child, dir, namesrv_addr: String::new(), broker_addr: String::new() };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while embedded.broker_addr.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("The Name Server boot success. listening on ") {
                        embedded.namesrv_addr = addr.trim().to_string();
                    } else if let Some(addr) = broker_addr_of(&line) {
                        embedded.broker_addr = addr;
                    }
                }
                Err(_) => {
                    let status = embedded.child.try_wait().ok().flatten();
                    return Err(BenchError::Embedded(format!(
                        "the broker did not start ({}); its log:\n{}",
                        status.map_or("no boot line within 30 s".to_string(), |s| format!("exited: {s}")),
                        embedded.log_tail()
                    )));
                }
            }
        }
        if embedded.namesrv_addr.is_empty() {
            return Err(BenchError::Embedded("the broker started without its name server".into()));
        }
        tracing::info!(namesrv = %embedded.namesrv_addr, broker = %embedded.broker_addr,
            store = %embedded.dir.path().display(), "embedded broker started");
        Ok(embedded)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines the broker logged, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stops the broker cleanly (SIGTERM: flush, checkpoint, unregister), killing it when it
    /// has not exited within `grace`.
    pub fn stop(mut self, grace: Duration) {
        self.terminate(grace);
    }

    fn terminate(&mut self, grace: Duration) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        // std can only SIGKILL; kill(1) sends the polite signal without unsafe code here.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!("the embedded broker did not stop within {grace:?}; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(30));
    }
}

/// Next to this program first (a cargo build puts both binaries in one folder), then PATH.
fn find_broker_bin() -> PathBuf {
    let sibling = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|d| d.join(BROKER_BIN)));
    match sibling {
        Some(path) if path.is_file() => path,
        _ => PathBuf::from(BROKER_BIN),
    }
}

/// Free ports (0) on loopback, the store in `store`; `settings` after, so they win.
fn config_text(store: &Path, settings: &[(String, String)]) -> String {
    let mut text = Vec::new();
    let _ = writeln!(text, "brokerClusterName = \"BenchCluster\"");
    let _ = writeln!(text, "brokerName = \"bench-broker\"");
    let _ = writeln!(text, "namesrvAddr = \"127.0.0.1:0\"");
    let _ = writeln!(text, "listenAddress = \"127.0.0.1\"");
    let _ = writeln!(text, "listenPort = 0");
    let _ = writeln!(text, "brokerIP1 = \"127.0.0.1\"");
    let _ = writeln!(text, "storePathRootDir = {}", toml_string(&store.display().to_string()));
    for (key, value) in settings {
        let _ = writeln!(text, "{key} = {}", toml_value(value));
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// Numbers and booleans as they are; anything else as a string.
fn toml_value(value: &str) -> String {
    let bare = value.parse::<i64>().is_ok() || value.parse::<f64>().is_ok() || value == "true" || value == "false";
    if bare {
        value.to_string()
    } else {
        toml_string(value)
    }
}

fn toml_string(value: &str) -> String {
    serde_json::Value::String(value.to_string()).to_string()
}

/// `The broker[NAME, ADDR] boot success.` → ADDR.
fn broker_addr_of(line: &str) -> Option<String> {
    let inner = line.strip_prefix("The broker[")?.strip_suffix("] boot success.")?;
    Some(inner.rsplit_once(", ")?.1.to_string())
}

/// Parses `key=value`.
pub fn parse_setting(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_string(), value.trim().to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_puts_everything_on_free_loopback_ports_and_settings_last() {
        let text = config_text(
            Path::new("/data/a \"b\""),
            &[("flushDiskType".into(), "SYNC_FLUSH".into()), ("defaultTopicQueueNums".into(), "4".into())],
        );
        let parsed: toml::Table = toml::from_str(&text).expect("valid TOML");
        assert_eq!(parsed["listenPort"].as_integer(), Some(0));
        assert_eq!(parsed["namesrvAddr"].as_str(), Some("127.0.0.1:0"));
        assert_eq!(parsed["storePathRootDir"].as_str(), Some("/data/a \"b\""));
        assert_eq!(parsed["flushDiskType"].as_str(), Some("SYNC_FLUSH"));
        assert_eq!(parsed["defaultTopicQueueNums"].as_integer(), Some(4));
    }

    #[test]
    fn boot_lines_give_the_addresses() {
        assert_eq!(
            broker_addr_of("The broker[bench-broker, 127.0.0.1:40123] boot success."),
            Some("127.0.0.1:40123".into())
        );
        assert_eq!(broker_addr_of("something else"), None);
    }

    #[test]
    fn settings_are_key_value_pairs() {
        assert_eq!(parse_setting("a = b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_setting("novalue").is_err());
        assert!(parse_setting("=x").is_err());
    }
}
