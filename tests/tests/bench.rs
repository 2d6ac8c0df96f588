//! `apogee-bench` against real brokers: the embedded one it starts itself, and one started here.
//! These check that every figure is measured and counted right, not how fast anything is.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use apogee_tests::{run_bin, workspace_bin, TestBroker};
use serde_json::Value;

const BENCH_TIMEOUT: Duration = Duration::from_secs(90);

fn bench(args: &[&str]) -> Output {
    run_bin(&workspace_bin("bench", "apogee-bench"), args, "", BENCH_TIMEOUT)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a scenario that must succeed and returns its JSON report.
fn report(args: &[&str], json: &PathBuf) -> Value {
    let mut all: Vec<&str> = args.to_vec();
    let json_arg = json.to_str().expect("utf-8 path");
    all.extend(["--json", json_arg, "--quiet"]);
    let out = bench(&all);
    assert!(out.status.success(), "apogee-bench {all:?} failed: {}", stderr(&out));
    serde_json::from_str(&std::fs::read_to_string(json).expect("report written")).expect("report JSON")
}

fn u(value: &Value) -> u64 {
    value.as_u64().unwrap_or_else(|| panic!("not a count: {value}"))
}

fn assert_ordered(latency: &Value) {
    let (p50, p99, p999, max) =
        (u(&latency["p50_us"]), u(&latency["p99_us"]), u(&latency["p999_us"]), u(&latency["max_us"]));
    assert!(0 < p50 && p50 <= p99 && p99 <= p999 && p999 <= max, "latency figures out of order: {latency}");
}

#[test]
fn embedded_produce_measures_sends_and_the_brokers_cost() {
    // The embedded broker is the release or debug sibling of the bench binary.
    workspace_bin("broker", "apogee-broker");
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("produce.json");
    let store = dir.path().to_str().expect("utf-8 path");
    let r = report(
        &["produce", "--embedded", "--store-dir", store, "--count", "600", "--producers", "4", "--batch", "2"],
        &json,
    );
    let produce = &r["produce"];
    assert_eq!(u(&produce["messages"]), 600, "{r}");
    assert_eq!(u(&produce["bytes"]), 600 * 1024);
    assert_eq!(produce["errors"], serde_json::json!({}));
    // One latency sample per send of two messages.
    assert_eq!(u(&produce["latency"]["count"]), 300);
    assert_ordered(&produce["latency"]);
    assert!(produce["msgs_per_s"].as_f64().expect("rate") > 0.0);
    let broker = &r["broker"];
    assert!(broker["rss_mb"].as_f64().expect("rss") > 1.0, "broker usage missing: {r}");
    assert!(broker["cpu_s"].as_f64().expect("cpu") >= 0.0);
    assert!(r["bench"]["rss_mb"].as_f64().expect("rss") > 1.0);
    assert_eq!(r["scenario"]["embedded"], true);
    // The broker was given the cores the bench leaves free: one shard at least, named in the report.
    let settings = r["scenario"]["broker_settings"].as_array().expect("broker settings");
    let shards = settings.iter().filter_map(|s| s.as_str()?.strip_prefix("shards=")?.parse::<usize>().ok());
    assert_eq!(shards.filter(|&n| n >= 1).count(), 1, "{r}");
    // The embedded broker's store went away with it.
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("readable").flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("produce.json")]);
}

#[test]
fn e2e_at_a_fixed_rate_delivers_every_acknowledged_message() {
    let broker = TestBroker::start();
    let ns = broker.namesrv().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("e2e.json");
    let r = report(
        &["e2e", "-n", &ns, "--rate", "200", "--duration", "2s", "--producers", "2", "--size", "64", "--queues", "2"],
        &json,
    );
    let sent = u(&r["produce"]["messages"]);
    let received = u(&r["consume"]["messages"]);
    assert!(sent > 0, "{r}");
    assert_eq!(received, sent, "every acknowledged message is delivered: {r}");
    assert_eq!(u(&r["consume"]["missing"]), 0);
    assert_ordered(&r["consume"]["end_to_end"]);
    // The schedule caps what is offered: never more than the rate over the measured time.
    let elapsed = r["elapsed_s"].as_f64().expect("elapsed");
    assert!((sent as f64) <= (200.0 * elapsed).ceil() + 2.0, "{sent} sends in {elapsed:.2} s exceed the offered 200/s");
    // The machine's share of busy and stolen CPU time over those seconds: both programs ran.
    let busy = r["host"]["busy_pct"].as_f64().expect("host figures over a 2 s phase");
    let steal = r["host"]["steal_pct"].as_f64().expect("steal");
    assert!(busy > 0.0 && steal >= 0.0 && busy + steal <= 100.0 + 1e-9, "{r}");
}

#[test]
fn consume_drains_a_backlog_and_failed_sends_are_counted_by_code() {
    let broker = TestBroker::start_in(tempfile::tempdir().expect("tempdir"), |c| c.max_message_size = 512);
    let ns = broker.namesrv().to_string();
    let dir = tempfile::tempdir().expect("tempdir");

    let backlog = dir.path().join("backlog.json");
    let r = report(&["produce", "-n", &ns, "-t", "Backlog", "--count", "300", "--size", "100"], &backlog);
    assert_eq!(u(&r["produce"]["messages"]), 300);

    let drained = dir.path().join("drain.json");
    let r = report(
        &["consume", "-n", &ns, "-t", "Backlog", "--from-beginning", "--count", "300", "-g", "drainers"],
        &drained,
    );
    assert_eq!(u(&r["consume"]["messages"]), 300, "{r}");
    assert_eq!(u(&r["consume"]["bytes"]), 300 * 100);
    assert_eq!(u(&r["consume"]["end_to_end"]["count"]), 300);
    assert!(r.get("produce").is_none());

    // Bodies over the broker's maxMessageSize: every send refused, counted by response code,
    // and a run where nothing got through exits non-zero.
    let refused = dir.path().join("refused.json");
    let all = ["produce", "-n", &ns, "-t", "Backlog", "--count", "20", "--size", "1024", "--producers", "2"];
    let json_arg = refused.to_str().expect("utf-8 path");
    let out = bench(&[&all[..], &["--json", json_arg, "-q"]].concat());
    assert!(!out.status.success(), "a run with no successful send must fail");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&refused).expect("report")).expect("JSON");
    assert_eq!(r["produce"]["messages"], 0);
    assert_eq!(r["produce"]["errors"], serde_json::json!({ "MESSAGE_ILLEGAL (13)": 20 }), "{r}");

    // Two reports side by side: the ratio of each figure.
    let out = bench(&["compare", backlog.to_str().expect("path"), refused.to_str().expect("path")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let line = table.lines().find(|l| l.starts_with("produce.messages ")).unwrap_or_else(|| panic!("{table}"));
    assert!(line.contains("300") && line.ends_with("0.00x"), "{line}");
}

#[test]
fn consume_backlog_fills_a_fresh_broker_then_measures_reading_all_of_it() {
    workspace_bin("broker", "apogee-broker");
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("backlog.json");
    let store = dir.path().to_str().expect("utf-8 path");
    let r =
        report(&["consume", "--embedded", "--store-dir", store, "--backlog", "1000", "--backlog-size", "200"], &json);
    let consume = &r["consume"];
    assert_eq!(u(&consume["messages"]), 1000, "the whole backlog and nothing else: {r}");
    assert_eq!(u(&consume["bytes"]), 1000 * 200);
    assert_eq!(u(&consume["end_to_end"]["count"]), 1000);
    assert!(r.get("produce").is_none(), "the filling is not in the figures: {r}");
    assert!(r["broker"]["cpu_us_per_msg"].as_f64().expect("broker cost") > 0.0, "{r}");

    // A warm-up would eat part of the backlog the run claims to measure.
    let out = bench(&["consume", "-n", "127.0.0.1:1", "--backlog", "10", "--warmup", "1s"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("leave out --warmup"), "{}", stderr(&out));
}

#[test]
fn contradictory_or_impossible_runs_fail_with_a_reason() {
    let out = bench(&["produce", "-n", "127.0.0.1:1", "--mode", "oneway", "--batch", "4"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("oneway sends carry one message each"), "{}", stderr(&out));

    let out = bench(&["produce", "--embedded", "--broker-bin", "/nonexistent/apogee-broker", "--count", "1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot run /nonexistent/apogee-broker"), "{}", stderr(&out));

    let out = bench(&["produce", "-n", "127.0.0.1:1", "--count", "1", "--timeout", "500ms"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("127.0.0.1:1"), "the unreachable name server is named: {}", stderr(&out));
}

#[test]
fn compare_script_runs_one_scenario_against_two_clusters() {
    let (a, b) = (TestBroker::start(), TestBroker::start());
    let out_dir = tempfile::tempdir().expect("tempdir");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/compare.sh");
    let out = std::process::Command::new("sh")
        .arg(script)
        .args([&a.namesrv().to_string(), &b.namesrv().to_string()])
        .args(["produce", "--count", "50", "--producers", "2", "-q"])
        .env("APOGEE_BENCH", workspace_bin("bench", "apogee-bench"))
        .env("OUT_DIR", out_dir.path())
        .output()
        .expect("run compare.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", stderr(&out));
    let line = stdout.lines().find(|l| l.starts_with("produce.messages ")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.ends_with("1.00x"), "both clusters took the 50 messages: {line}");
    for side in ["base.json", "other.json"] {
        let r: Value =
            serde_json::from_str(&std::fs::read_to_string(out_dir.path().join(side)).expect("report")).expect("JSON");
        assert_eq!(r["produce"]["messages"], 50);
    }
    let base: Value = serde_json::from_str(&std::fs::read_to_string(out_dir.path().join("base.json")).expect("report"))
        .expect("JSON");
    assert_eq!(base["scenario"]["namesrv"], a.namesrv().to_string());
}
