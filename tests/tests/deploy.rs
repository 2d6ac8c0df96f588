//! `deploy/`: the install script into a temporary staging root (dry run, install, reinstall over
//! an operator's edits, uninstall, purge) and the systemd units checked by `systemd-analyze
//! verify` as installed there.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use apogee_tests::{run_bin, workspace_bin};

const INSTALL_TIMEOUT: Duration = Duration::from_secs(60);

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// The folder holding freshly built server binaries and the CLI.
fn bin_dir() -> PathBuf {
    workspace_bin("namesrv", "apogee-namesrv");
    workspace_bin("broker", "apogee-broker");
    workspace_bin("client", "apogee").parent().expect("target folder").to_path_buf()
}

fn install(args: &[&str]) -> Output {
    let script = deploy_dir().join("install.sh");
    let mut all = vec![script.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    run_bin(Path::new("bash"), &all, "", INSTALL_TIMEOUT)
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn succeeded(out: Output) -> String {
    assert!(out.status.success(), "install.sh failed ({}):\n{}", out.status, text(&out));
    text(&out)
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() && !path.is_symlink() {
                dirs.push(path.clone());
            }
            found.push(path.strip_prefix(root).expect("below root").to_path_buf());
        }
    }
    found.sort();
    found
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("run id");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// `systemd-analyze verify` of units in `root`, resolved against the host's system units
/// (copied in, since a staging root has no sysinit.target). Returns the exit status and output.
fn verify(root: &Path, units: &[&str]) -> (bool, String) {
    let system_units = root.join("usr/lib/systemd/system");
    if !system_units.exists() {
        std::fs::create_dir_all(root.join("usr/lib/systemd")).expect("mkdir");
        let copied =
            Command::new("cp").args(["-a", "/usr/lib/systemd/system"]).arg(&system_units).status().expect("run cp");
        assert!(copied.success(), "copy the host's system units (is systemd installed? .ci/run installs it)");
    }
    let out = Command::new("systemd-analyze")
        .arg(format!("--root={}", root.display()))
        .arg("verify")
        .args(units)
        .output()
        .expect("systemd-analyze missing: install Debian's systemd package (.ci/run does)");
    (out.status.success(), text(&out))
}

#[test]
fn install_verify_reinstall_and_uninstall_in_a_staging_root() {
    assert!(is_root(), "installing creates a user and chowns its directories: run as root, as CI does");
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let bins = bin_dir();
    let bins = bins.to_str().expect("utf-8 path");
    let staging = r.to_str().expect("utf-8 path");

    // A dry run names every action and touches nothing.
    let plan = succeeded(install(&["--root", staging, "--bin-dir", bins, "--dry-run"]));
    assert!(files_under(r).is_empty(), "a dry run created {:?}", files_under(r));
    for expected in [
        "usr/local/bin/apogee-broker",
        "usr/local/bin/apogee-namesrv",
        "usr/local/bin/apogee\n",
        "etc/systemd/system/apogee-broker@.service",
        "etc/systemd/system/apogee-namesrv.service",
        "etc/apogee/broker-a.toml",
        "etc/apogee/namesrv.toml",
        "usr/local/share/doc/apogee/operations.md",
        "systemd-sysusers",
    ] {
        assert!(plan.contains(expected), "the dry run does not mention {expected:?}:\n{plan}");
    }

    let log = succeeded(install(&["--root", staging, "--bin-dir", bins]));
    for bin in ["apogee-namesrv", "apogee-broker", "apogee"] {
        let installed = r.join("usr/local/bin").join(bin);
        let mode = std::fs::metadata(&installed).expect(bin).permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{bin} mode");
        let same = std::fs::read(&installed).expect("read") == std::fs::read(Path::new(bins).join(bin)).expect("read");
        assert!(same, "{bin} is not the given binary");
    }
    let passwd = std::fs::read_to_string(r.join("etc/passwd")).expect("passwd in the root");
    let user = passwd.lines().find(|l| l.starts_with("apogee:")).expect("the apogee user");
    assert!(user.ends_with(":/var/lib/apogee:/usr/sbin/nologin"), "{user}");
    let uid: u32 = user.split(':').nth(2).and_then(|u| u.parse().ok()).expect("uid");
    let data = std::fs::metadata(r.join("var/lib/apogee")).expect("data folder");
    assert_eq!((data.uid(), data.mode() & 0o777), (uid, 0o750), "data folder owner and mode");
    assert!(log.contains("systemctl enable --now apogee-namesrv.service"), "{log}");
    assert!(r.join("usr/local/share/doc/apogee/configuration.md").exists(), "the docs the units point to");
    assert!(log.contains("systemctl enable --now apogee-broker@broker-a.service"), "{log}");

    // The units as installed: clean under systemd-analyze verify (no warning at all), and the
    // check does fail on a broken unit.
    let (ok, said) = verify(r, &["apogee-namesrv.service", "apogee-broker@broker-a.service"]);
    assert!(ok && said.trim().is_empty(), "systemd-analyze verify: {said}");
    let unit = std::fs::read_to_string(r.join("etc/systemd/system/apogee-namesrv.service")).expect("unit");
    std::fs::write(r.join("etc/systemd/system/broken.service"), unit.replace("ProtectHome=yes", "ProtectHome=maybe"))
        .expect("write");
    let (_, said) = verify(r, &["broken.service"]);
    assert!(said.contains("broken.service") && said.contains("maybe"), "verify did not catch a bad value: {said}");
    std::fs::remove_file(r.join("etc/systemd/system/broken.service")).expect("rm");

    // The installed binary reads the installed config.
    let printed = run_bin(
        &r.join("usr/local/bin/apogee-broker"),
        &["-c", r.join("etc/apogee/broker-a.toml").to_str().expect("utf-8"), "-p"],
        "",
        INSTALL_TIMEOUT,
    );
    assert!(printed.status.success(), "{}", text(&printed));
    assert!(text(&printed).contains("storePathRootDir = \"/var/lib/apogee/broker-a\""), "{}", text(&printed));

    // Reinstall over an operator's edit and a store with data: both are kept.
    let config = r.join("etc/apogee/broker-a.toml");
    let edited = format!("{}\nmaxMessageSize = 1048576\n", std::fs::read_to_string(&config).expect("config"));
    std::fs::write(&config, &edited).expect("edit config");
    let message_data = r.join("var/lib/apogee/broker-a/shard-0/commitlog/00000000000000000000");
    std::fs::create_dir_all(message_data.parent().expect("parent")).expect("mkdir");
    std::fs::write(&message_data, b"acknowledged messages").expect("data");
    let log = succeeded(install(&["--root", staging, "--bin-dir", bins]));
    assert_eq!(std::fs::read_to_string(&config).expect("config"), edited, "an edited config was overwritten");
    assert!(r.join("etc/apogee/broker-a.toml.new").exists(), "the shipped config lands beside it: {log}");
    assert!(log.contains("etc/apogee/namesrv.toml is up to date"), "{log}");

    // Uninstall keeps configs and data; enablement links go with the units.
    let wants = r.join("etc/systemd/system/multi-user.target.wants");
    std::fs::create_dir_all(&wants).expect("mkdir");
    std::os::unix::fs::symlink("../apogee-broker@.service", wants.join("apogee-broker@broker-a.service"))
        .expect("link");
    let log = succeeded(install(&["--root", staging, "--uninstall"]));
    for gone in [
        "usr/local/bin/apogee-broker",
        "usr/local/bin/apogee-namesrv",
        "usr/local/bin/apogee",
        "etc/systemd/system/apogee-broker@.service",
        "etc/systemd/system/apogee-namesrv.service",
        "etc/systemd/system/multi-user.target.wants/apogee-broker@broker-a.service",
        "usr/lib/sysusers.d/apogee.conf",
        "usr/lib/tmpfiles.d/apogee.conf",
        "usr/local/share/doc/apogee",
    ] {
        assert!(!r.join(gone).exists() && !r.join(gone).is_symlink(), "{gone} survived uninstall:\n{log}");
    }
    assert_eq!(std::fs::read(&message_data).expect("data kept"), b"acknowledged messages");
    assert_eq!(std::fs::read_to_string(&config).expect("config kept"), edited);

    // Only --purge deletes them, and only with --uninstall.
    let refused = install(&["--root", staging, "--purge"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(message_data.exists());
    succeeded(install(&["--root", staging, "--uninstall", "--purge"]));
    assert!(!r.join("var/lib/apogee").exists() && !r.join("etc/apogee").exists(), "{:?}", files_under(r));
}

#[test]
fn bad_arguments_are_refused_with_usage() {
    let out = install(&["--frobnicate"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("unknown option --frobnicate") && text(&out).contains("Usage:"), "{}", text(&out));
    let root = tempfile::tempdir().expect("tempdir");
    let staging = root.path().to_str().expect("utf-8");
    let out = install(&["--root", staging, "--bin-dir", "/nonexistent", "--config", "/nonexistent.toml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("/nonexistent/apogee-namesrv is missing"), "{}", text(&out));
    assert!(files_under(root.path()).is_empty(), "a refused install left {:?}", files_under(root.path()));
}
