//! What the load records: latencies in HDR histograms, message and byte counts, errors by kind.
//!
//! Each sender records into its own [`SharedTally`] behind its own mutex, so senders never
//! contend with one another; the reporter drains them every 100 ms into the interval and run
//! totals.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies are recorded in microseconds, up to this bound (larger ones saturate at it).
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Counts and latencies of one stream of events (sends, or deliveries) over some interval.
#[derive(Debug, Clone)]
pub struct Tally {
    pub latency: Histogram<u64>,
    pub messages: u64,
    pub bytes: u64,
    /// Failures by kind: the response code's Java name and number, or the transport failure.
    pub errors: BTreeMap<String, u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            // Three significant digits: 1 µs resolution below 1 ms, 1 ms near one second.
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds"),
            messages: 0,
            bytes: 0,
            errors: BTreeMap::new(),
        }
    }
}

impl Tally {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Empties this tally in place: its histogram (a few hundred KB) is kept for reuse.
    pub fn clear(&mut self) {
        self.latency.reset();
        self.messages = 0;
        self.bytes = 0;
        self.errors.clear();
    }
}

/// What a sender or the consumer recorded since the reporter last drained it. Latencies are
/// kept as raw samples, not in a histogram: a histogram of these bounds is ~270 KB, and merging
/// and clearing one per sender every second cost the bench 7 % of its CPU at 64 senders.
#[derive(Debug, Default)]
struct Recorded {
    latencies_us: Vec<u64>,
    messages: u64,
    bytes: u64,
    errors: BTreeMap<String, u64>,
}

/// A recorder's events, shared between the task that records and the reporter that drains them.
#[derive(Debug, Clone, Default)]
pub struct SharedTally(Arc<Mutex<Recorded>>);

impl SharedTally {
    fn lock(&self) -> MutexGuard<'_, Recorded> {
        // A panicking recorder leaves counts that are still counts.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One success covering `messages` messages of `bytes` bytes in all.
    pub fn success(&self, latency: Duration, messages: u64, bytes: u64) {
        let mut recorded = self.lock();
        recorded.latencies_us.push(latency_us(latency));
        recorded.messages += messages;
        recorded.bytes += bytes;
    }

    pub fn failure(&self, kind: String) {
        *self.lock().errors.entry(kind).or_default() += 1;
    }

    /// Adds everything recorded since the last drain to each of `into` and empties this tally,
    /// keeping its buffer for the next samples.
    pub fn drain_into(&self, into: &mut [&mut Tally]) {
        let mut recorded = self.lock();
        for tally in into.iter_mut() {
            for &us in &recorded.latencies_us {
                tally.latency.saturating_record(us);
            }
            tally.messages += recorded.messages;
            tally.bytes += recorded.bytes;
            for (kind, n) in &recorded.errors {
                *tally.errors.entry(kind.clone()).or_default() += n;
            }
        }
        recorded.latencies_us.clear();
        recorded.messages = 0;
        recorded.bytes = 0;
        recorded.errors.clear();
    }
}

/// A latency as the histograms hold it: microseconds, saturating at their bound.
fn latency_us(latency: Duration) -> u64 {
    latency.as_micros().clamp(1, u128::from(MAX_LATENCY_US)) as u64
}

/// A histogram reduced to the figures a report shows, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Percentiles {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            count: histogram.len(),
            mean_us: histogram.mean(),
            p50_us: histogram.value_at_quantile(0.50),
            p90_us: histogram.value_at_quantile(0.90),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
        }
    }
}

/// Milliseconds with enough decimals to read sub-millisecond latencies.
pub fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_the_recorded_latencies() {
        let shared = SharedTally::default();
        for us in 1..=1000u64 {
            shared.success(Duration::from_micros(us), 1, 100);
        }
        let mut tally = Tally::default();
        shared.drain_into(&mut [&mut tally]);
        let p = Percentiles::of(&tally.latency);
        assert_eq!(p.count, 1000);
        assert_eq!(p.p50_us, 500);
        assert_eq!(p.p90_us, 900);
        assert_eq!(p.p99_us, 990);
        assert_eq!(p.max_us, 1000);
        assert!((p.mean_us - 500.5).abs() < 1.0, "mean {}", p.mean_us);
        assert_eq!(tally.messages, 1000);
        assert_eq!(tally.bytes, 100_000);
    }

    #[test]
    fn draining_fills_every_target_and_leaves_the_shared_tally_empty() {
        let shared = SharedTally::default();
        shared.success(Duration::from_secs(5000), 1, 1);
        shared.success(Duration::from_micros(250), 2, 20);
        shared.failure("timeout".into());
        let (mut totals, mut second) = (Tally::default(), Tally::default());
        shared.drain_into(&mut [&mut totals, &mut second]);
        for tally in [&totals, &second] {
            assert_eq!(tally.messages, 3);
            assert_eq!(tally.bytes, 21);
            assert_eq!(tally.errors["timeout"], 1);
            // Beyond the bound, a latency saturates instead of being lost.
            assert_eq!(tally.latency.len(), 2);
            assert!(tally.latency.max() >= MAX_LATENCY_US * 999 / 1000);
            assert_eq!(tally.latency.value_at_quantile(0.0) / 10, 25);
        }
        let mut again = Tally::default();
        shared.drain_into(&mut [&mut again]);
        assert_eq!((again.messages, again.bytes, again.error_count()), (0, 0, 0));
        assert!(again.latency.is_empty());
    }
}
