//! The figures of one run: printed for people, written as JSON for scripts and for
//! `apogee-bench compare`, which prints the ratio of every figure between two runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};
use crate::stats::{ms, Percentiles};

/// Everything a run measured. Counts and rates cover the measured phase only (after warm-up).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub scenario: Scenario,
    /// Length of the measured phase.
    pub elapsed_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub produce: Option<ProduceFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume: Option<ConsumeFigures>,
    /// The broker's CPU and memory, when its process could be watched (`--embedded` or
    /// `--broker-pid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<ProcessFigures>,
    /// This program's own CPU and memory: on a shared machine it competes with the broker.
    pub bench: ProcessFigures,
    /// The whole machine's CPU time over the measured phase, when `/proc/stat` could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostFigures>,
}

/// What was asked for, so a report can be read (and compared) on its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    pub command: String,
    pub namesrv: String,
    pub topic: String,
    pub size: usize,
    pub producers: usize,
    pub connections: usize,
    /// Offered sends per second; 0 = as fast as possible.
    pub rate: f64,
    pub batch: usize,
    pub mode: String,
    pub serialize: String,
    pub tags: Option<String>,
    pub warmup_s: f64,
    pub embedded: bool,
    /// The embedded broker's settings (`key=value`), as this program chose or was told them.
    #[serde(default)]
    pub broker_settings: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProduceFigures {
    /// Messages the broker acknowledged (oneway: messages written to the connection).
    pub messages: u64,
    pub bytes: u64,
    pub msgs_per_s: f64,
    pub mb_per_s: f64,
    /// Failed sends by response code or transport failure.
    pub errors: BTreeMap<String, u64>,
    /// From the intended send time (with `--rate`) or the actual one, to the acknowledgement.
    pub latency: Percentiles,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsumeFigures {
    pub messages: u64,
    pub bytes: u64,
    pub msgs_per_s: f64,
    pub mb_per_s: f64,
    /// From the intended send time stamped in the body (or the born timestamp) to delivery to
    /// the handler.
    pub end_to_end: Percentiles,
    /// e2e only: measured-phase messages that were acknowledged but never delivered before
    /// the drain timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessFigures {
    pub cpu_s: f64,
    /// CPU per message handled (sent plus consumed), in microseconds.
    pub cpu_us_per_msg: f64,
    pub rss_mb: f64,
}

/// How the machine's CPU time was spent, in percent of all its CPUs' time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HostFigures {
    /// Running anything: the broker, this program, everything else.
    pub busy_pct: f64,
    /// Taken by the hypervisor for other guests while a CPU had work. Above a few percent the
    /// run was disturbed: latency tails grow and throughput drops by more than the share taken.
    pub steal_pct: f64,
}

impl Report {
    /// A summary for people.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let s = &self.scenario;
        let _ = writeln!(
            out,
            "{} against {}{}: topic {}, {} B bodies, {} producers on {} connections, {} mode, batch {}, {}, {} headers",
            s.command,
            s.namesrv,
            match (s.embedded, s.broker_settings.is_empty()) {
                (false, _) => String::new(),
                (true, true) => " (embedded)".into(),
                (true, false) => format!(" (embedded: {})", s.broker_settings.join(", ")),
            },
            s.topic,
            s.size,
            s.producers,
            s.connections,
            s.mode,
            s.batch,
            if s.rate > 0.0 { format!("{} sends/s offered", s.rate) } else { "unpaced".into() },
            s.serialize,
        );
        let _ = writeln!(out, "measured for {:.1} s after {:.0} s of warm-up", self.elapsed_s, s.warmup_s);
        if let Some(p) = &self.produce {
            let _ = writeln!(
                out,
                "produce: {} messages, {:.0} msg/s, {:.1} MB/s, {} errors",
                p.messages,
                p.msgs_per_s,
                p.mb_per_s,
                p.errors.values().sum::<u64>()
            );
            for (kind, n) in &p.errors {
                let _ = writeln!(out, "  error {kind}: {n}");
            }
            let _ = writeln!(out, "  send latency   {}", latency_line(&p.latency));
        }
        if let Some(c) = &self.consume {
            let _ =
                writeln!(out, "consume: {} messages, {:.0} msg/s, {:.1} MB/s", c.messages, c.msgs_per_s, c.mb_per_s);
            if let Some(missing) = c.missing {
                let _ = writeln!(out, "  not delivered: {missing}");
            }
            let _ = writeln!(out, "  end-to-end     {}", latency_line(&c.end_to_end));
        }
        if let Some(b) = &self.broker {
            let _ =
                writeln!(out, "broker CPU: {:.2} s, {:.2} µs/msg; RSS {:.0} MB", b.cpu_s, b.cpu_us_per_msg, b.rss_mb);
        }
        let _ = writeln!(
            out,
            "bench CPU:  {:.2} s, {:.2} µs/msg; RSS {:.0} MB",
            self.bench.cpu_s, self.bench.cpu_us_per_msg, self.bench.rss_mb
        );
        if let Some(h) = &self.host {
            let _ =
                writeln!(out, "host CPU:   busy {:.0} %, stolen by the hypervisor {:.1} %", h.busy_pct, h.steal_pct);
        }
        out
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|source| BenchError::Json { context: "encoding the report".into(), source })?;
        std::fs::write(path, text + "\n").map_err(|e| BenchError::io(format!("writing {}", path.display()), e))
    }
}

fn latency_line(p: &Percentiles) -> String {
    if p.count == 0 {
        return "no samples".into();
    }
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {}, {} samples)",
        ms(p.p50_us),
        ms(p.p90_us),
        ms(p.p99_us),
        ms(p.p999_us),
        ms(p.max_us),
        ms(p.mean_us as u64),
        p.count
    )
}

/// Every numeric figure of a report JSON, by its path (`produce.latency.p99_us`). The scenario
/// is left out: it is what was asked, not what was measured.
pub fn figures(report: &serde_json::Value) -> BTreeMap<String, f64> {
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, f64>) {
        match value {
            serde_json::Value::Number(n) => {
                if let Some(f) = n.as_f64() {
                    out.insert(prefix.to_string(), f);
                }
            }
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    if prefix.is_empty() && key == "scenario" {
                        continue;
                    }
                    let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    walk(&path, v, out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    walk("", report, &mut out);
    out
}

/// A table of the figures of `base` and `other` and their ratio (other / base); figures
/// only one side has are listed with a dash.
pub fn compare(base: &serde_json::Value, other: &serde_json::Value) -> String {
    let a = figures(base);
    let b = figures(other);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let width = keys.iter().map(|k| k.len()).max().unwrap_or(6).max(6);
    let mut out = format!("{:width$}  {:>14}  {:>14}  {:>9}\n", "figure", "base", "other", "other/base");
    for key in keys {
        let cell = |v: Option<&f64>| v.map_or("-".to_string(), |v| format_figure(*v));
        let ratio = match (a.get(key), b.get(key)) {
            (Some(x), Some(y)) if *x != 0.0 => format!("{:.2}x", y / x),
            _ => "-".to_string(),
        };
        let _ = writeln!(out, "{key:width$}  {:>14}  {:>14}  {ratio:>9}", cell(a.get(key)), cell(b.get(key)));
    }
    out
}

fn format_figure(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Reads a report written with `--json`.
pub fn load(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(format!("reading {}", path.display()), e))?;
    serde_json::from_str(&text)
        .map_err(|source| BenchError::Json { context: format!("{} is not a report", path.display()), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(msgs_per_s: f64, p99_us: u64) -> Report {
        Report {
            scenario: Scenario { command: "produce".into(), size: 1024, ..Default::default() },
            elapsed_s: 10.0,
            produce: Some(ProduceFigures {
                messages: (msgs_per_s * 10.0) as u64,
                msgs_per_s,
                latency: Percentiles { count: 5, p99_us, ..Default::default() },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn figures_are_flattened_without_the_scenario() {
        let value = serde_json::to_value(report(1000.0, 800)).expect("serializable");
        let f = figures(&value);
        assert_eq!(f["produce.msgs_per_s"], 1000.0);
        assert_eq!(f["produce.latency.p99_us"], 800.0);
        assert_eq!(f["elapsed_s"], 10.0);
        assert!(!f.keys().any(|k| k.starts_with("scenario")));
        assert!(!f.keys().any(|k| k.starts_with("consume")), "absent sections stay absent");
    }

    #[test]
    fn compare_prints_the_ratio_of_each_figure() {
        let base = serde_json::to_value(report(1000.0, 800)).expect("serializable");
        let mut other = serde_json::to_value(report(3000.0, 400)).expect("serializable");
        other["consume"] = serde_json::json!({ "msgs_per_s": 10.0 });
        let table = compare(&base, &other);
        let line = |name: &str| table.lines().find(|l| l.starts_with(name)).map(str::to_string).unwrap_or_default();
        assert!(line("produce.msgs_per_s").ends_with("3.00x"), "{table}");
        assert!(line("produce.latency.p99_us").ends_with("0.50x"), "{table}");
        assert!(line("consume.msgs_per_s").ends_with('-'), "{table}");
    }

    #[test]
    fn a_report_survives_its_json() {
        let original = report(1234.5, 999);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.json");
        original.write_json(&path).expect("written");
        let back: Report = serde_json::from_value(load(&path).expect("loaded")).expect("a report");
        assert_eq!(back, original);
        assert!(original.render().contains("1234 msg/s") || original.render().contains("1235 msg/s"));
    }
}
