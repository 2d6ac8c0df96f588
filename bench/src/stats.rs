//! What the load records: latencies in HDR histograms, message and byte counts, errors by kind.
//!
//! Each sender owns a [`Tally`] behind its own mutex, so senders never contend with one another;
//! the reporter drains every tally once a second into the interval and run totals.

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
    /// One success covering `messages` messages of `bytes` bytes in all.
    pub fn success(&mut self, latency: Duration, messages: u64, bytes: u64) {
        self.latency.saturating_record(latency.as_micros().clamp(1, u128::from(MAX_LATENCY_US)) as u64);
        self.messages += messages;
        self.bytes += bytes;
    }

    /// A success whose latency is unknown (oneway sends) or not of interest.
    pub fn count(&mut self, messages: u64, bytes: u64) {
        self.messages += messages;
        self.bytes += bytes;
    }

    pub fn failure(&mut self, kind: String) {
        *self.errors.entry(kind).or_default() += 1;
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn merge(&mut self, other: &Tally) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.messages += other.messages;
        self.bytes += other.bytes;
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
    }

    /// Empties this tally, returning what it held.
    pub fn take(&mut self) -> Tally {
        std::mem::take(self)
    }

    /// Empties this tally in place: its histogram (a few hundred KB) is kept for reuse.
    pub fn clear(&mut self) {
        self.latency.reset();
        self.messages = 0;
        self.bytes = 0;
        self.errors.clear();
    }
}

/// A tally shared between the task that records and the reporter that drains it.
#[derive(Debug, Clone, Default)]
pub struct SharedTally(Arc<Mutex<Tally>>);

impl SharedTally {
    pub fn lock(&self) -> MutexGuard<'_, Tally> {
        // A panicking recorder leaves counts that are still counts.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn drain(&self) -> Tally {
        self.lock().take()
    }

    /// Adds what this tally holds to `into` and empties it, allocating nothing.
    pub fn drain_into(&self, into: &mut Tally) {
        let mut tally = self.lock();
        into.merge(&tally);
        tally.clear();
    }
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
        let mut tally = Tally::default();
        for us in 1..=1000u64 {
            tally.success(Duration::from_micros(us), 1, 100);
        }
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
    fn merging_adds_counts_errors_and_samples() {
        let mut a = Tally::default();
        a.success(Duration::from_millis(2), 4, 400);
        a.failure("SYSTEM_BUSY (2)".into());
        let mut b = Tally::default();
        b.success(Duration::from_millis(8), 1, 100);
        b.failure("SYSTEM_BUSY (2)".into());
        b.failure("timeout".into());
        a.merge(&b);
        assert_eq!(a.messages, 5);
        assert_eq!(a.bytes, 500);
        assert_eq!(a.errors["SYSTEM_BUSY (2)"], 2);
        assert_eq!(a.errors["timeout"], 1);
        assert_eq!(a.error_count(), 3);
        let p = Percentiles::of(&a.latency);
        assert_eq!(p.count, 2);
        assert!(p.max_us >= 8000 && p.max_us < 8010, "max {}", p.max_us);
    }

    #[test]
    fn draining_leaves_an_empty_tally() {
        let shared = SharedTally::default();
        shared.lock().success(Duration::from_secs(5000), 1, 1);
        let drained = shared.drain();
        assert_eq!(drained.messages, 1);
        // Beyond the bound, a latency saturates instead of being lost.
        assert_eq!(drained.latency.len(), 1);
        assert_eq!(shared.lock().messages, 0);
        assert!(shared.lock().latency.is_empty());
        assert_eq!(Percentiles::of(&shared.lock().latency), Percentiles::default());
    }
}
