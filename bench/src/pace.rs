//! Fixed-rate pacing without coordinated omission.
//!
//! At a fixed rate every send has an intended start time, fixed in advance by the schedule and
//! not by when the previous send finished. Latency is measured from that intended time, so a
//! stalled broker shows up as the queueing delay its users would see, instead of silently
//! lowering the rate the benchmark offers.

use std::time::{Duration, Instant};

/// One sender's schedule.
#[derive(Debug, Clone)]
pub struct Pacer {
    first: Instant,
    interval: Option<Duration>,
    sent: u32,
}

impl Pacer {
    /// The schedule of sender `index` of `senders`, which together offer `rate` sends per second
    /// (0 = as fast as possible). Senders are spread evenly over one interval so that their sends
    /// do not arrive in bursts.
    pub fn new(start: Instant, rate: f64, index: usize, senders: usize) -> Self {
        if rate <= 0.0 || senders == 0 {
            return Self { first: start, interval: None, sent: 0 };
        }
        let interval = Duration::from_secs_f64(senders as f64 / rate);
        let phase = interval.mul_f64(index as f64 / senders as f64);
        Self { first: start + phase, interval: Some(interval), sent: 0 }
    }

    /// When the next send should start; `None` when unpaced (start it now).
    pub fn next_intended(&mut self) -> Option<Instant> {
        let interval = self.interval?;
        let at = self.first + interval * self.sent;
        self.sent = self.sent.saturating_add(1);
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpaced_senders_have_no_schedule() {
        let mut pacer = Pacer::new(Instant::now(), 0.0, 0, 4);
        assert_eq!(pacer.next_intended(), None);
        assert_eq!(pacer.next_intended(), None);
    }

    #[test]
    fn intended_times_follow_the_rate_whatever_the_sender_does() {
        let start = Instant::now();
        // 4 senders offering 1000/s together: each sends every 4 ms, phases 1 ms apart.
        let mut second = Pacer::new(start, 1000.0, 1, 4);
        let times: Vec<Duration> = (0..3).map(|_| second.next_intended().expect("paced") - start).collect();
        assert_eq!(times, [Duration::from_millis(1), Duration::from_millis(5), Duration::from_millis(9)]);
    }

    #[test]
    fn senders_together_offer_the_rate() {
        let start = Instant::now();
        let mut pacers: Vec<Pacer> = (0..3).map(|i| Pacer::new(start, 300.0, i, 3)).collect();
        let window = start + Duration::from_secs(1);
        let mut within = 0;
        for pacer in &mut pacers {
            while pacer.next_intended().expect("paced") < window {
                within += 1;
            }
        }
        assert_eq!(within, 300);
    }
}
