//! The operator docs that are generated or checked against the code: the configuration
//! reference is rendered from the config types, and every example config must be read by the
//! servers without an unknown key.

use std::path::{Path, PathBuf};

use broker::BrokerConfig;
use namesrv::NamesrvConfig;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A table of settings; defaults under the running user's home (`.` without one, as the config
/// types do) are shown as `$HOME/…`, so the page does not depend on who generated it.
fn table(out: &mut String, rows: Vec<(&'static str, String, &'static str)>) {
    let home = std::env::var("HOME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| ".".into());
    out.push_str("| key | default | meaning |\n| --- | --- | --- |\n");
    for (key, default, meaning) in rows {
        let default = match default.strip_prefix(&format!("\"{home}/")) {
            Some(rest) => format!("\"$HOME/{rest}"),
            None => default,
        };
        out.push_str(&format!("| `{key}` | `{default}` | {meaning} |\n"));
    }
}

fn configuration_reference() -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         <!-- Generated from the config types (broker/src/config.rs, namesrv/src/config.rs) by\n     \
         `APOGEE_WRITE_DOCS=1 cargo test -p apogee-tests --test docs`. Do not edit by hand. -->\n\n\
         Both servers read a TOML file given with `-c FILE`. The keys are RocketMQ's property names, so a\n\
         Java `broker.conf` or `namesrv.properties` carries over: write `key = value`, with strings in\n\
         quotes (`brokerName = \"broker-a\"`, `listenPort = 10911`, `autoCreateTopicEnable = true`).\n\
         A key Apogee does not know is logged as a warning and ignored; a value of the wrong type or out\n\
         of range stops the server with the key named. `-p` prints the effective configuration in the\n\
         same form. Keys marked (Apogee) do not exist in Java RocketMQ. Times are in milliseconds, sizes\n\
         in bytes. Examples: `deploy/examples/`.\n\n\
         ## Broker: `apogee-broker -c FILE`\n\n\
         `-n ADDRS` overrides `namesrvAddr`; `--standalone` also runs a name server in the process,\n\
         listening on the first `namesrvAddr`.\n\n",
    );
    table(&mut out, BrokerConfig::reference().expect("broker settings documented"));
    out.push_str("\n## Name server: `apogee-namesrv -c FILE`\n\n");
    table(&mut out, NamesrvConfig::reference().expect("name server settings documented"));
    out
}

#[test]
fn the_configuration_reference_is_generated_from_the_config_types() {
    let path = repo().join("docs/configuration.md");
    let expected = configuration_reference();
    if std::env::var_os("APOGEE_WRITE_DOCS").is_some() {
        std::fs::write(&path, &expected).expect("write docs/configuration.md");
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/configuration.md is out of date with the config types; regenerate it with \
         `APOGEE_WRITE_DOCS=1 cargo test -p apogee-tests --test docs`"
    );
}

fn example_configs() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![repo().join("deploy/examples")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read deploy/examples") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn is_namesrv(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("namesrv"))
}

#[test]
fn every_example_config_is_read_without_unknown_keys() {
    let examples = example_configs();
    assert!(examples.len() >= 5, "expected the single-node and cluster examples, found {examples:?}");
    for path in examples {
        let unknown = if is_namesrv(&path) {
            NamesrvConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).1
        } else {
            let (config, unknown) = BrokerConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let instance = path.file_stem().expect("file name").to_string_lossy().into_owned();
            // apogee-broker@.service lets instance X write /var/lib/apogee/X only.
            assert_eq!(
                config.store_path_root_dir,
                PathBuf::from("/var/lib/apogee").join(&instance),
                "{}: the unit can only write its own state directory",
                path.display()
            );
            assert_eq!(config.broker_name, instance, "{}: file named after its broker", path.display());
            unknown
        };
        assert!(unknown.is_empty(), "{}: unknown keys {unknown:?}", path.display());
    }
}
