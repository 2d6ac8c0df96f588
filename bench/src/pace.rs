//! Fixed-rate pacing without coordinated omission.
//!
//! At a fixed rate every send has an intended start time, fixed in advance by the schedule and
//! not by when the previous send finished. Latency is measured from that intended time, so a
//! stalled broker shows up as the queueing delay its users would see, instead of silently
//! lowering the rate the benchmark offers.

use std::time::{Duration, Instant};

/// The schedule all senders share: send number `n` (its ticket) is due at `start + n / rate`.
/// Whichever sender is free takes the next ticket, so one slow answer delays one send instead of
/// every later send of a sender with its own fixed share of the schedule (which then never
/// catches up, and reports its backlog as latency).
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    rate: f64,
}

impl Pacer {
    /// `rate` sends per second from `start` on; 0 = as fast as possible.
    pub fn new(start: Instant, rate: f64) -> Self {
        Self { start, rate }
    }

    /// When send number `ticket` is due; `None` when unpaced (start it now).
    pub fn intended(&self, ticket: u64) -> Option<Instant> {
        (self.rate > 0.0).then(|| self.start + Duration::from_secs_f64(ticket as f64 / self.rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpaced_sends_have_no_schedule() {
        let pacer = Pacer::new(Instant::now(), 0.0);
        assert_eq!(pacer.intended(0), None);
        assert_eq!(pacer.intended(7), None);
    }

    #[test]
    fn send_n_is_due_at_n_over_the_rate() {
        let start = Instant::now();
        let pacer = Pacer::new(start, 1000.0);
        let due: Vec<Duration> = [0, 1, 250, 1000].iter().map(|&n| pacer.intended(n).expect("paced") - start).collect();
        assert_eq!(due, [Duration::ZERO, Duration::from_millis(1), Duration::from_millis(250), Duration::from_secs(1)]);
    }

    #[test]
    fn the_schedule_offers_the_rate() {
        let start = Instant::now();
        let pacer = Pacer::new(start, 300.0);
        let window = start + Duration::from_secs(1);
        let within = (0..).take_while(|&n| pacer.intended(n).expect("paced") < window).count();
        assert_eq!(within, 300);
    }
}
