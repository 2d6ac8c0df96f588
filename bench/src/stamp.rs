//! Message bodies that carry their own intended send time, for end-to-end latency with
//! microsecond resolution (the born timestamp in the message has only milliseconds, and is
//! taken after any queueing in the sender).
//!
//! Layout: `APGB`, the run id (u32, big-endian), microseconds since the Unix epoch (u64,
//! big-endian), then filler up to the requested size.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

const MAGIC: &[u8; 4] = b"APGB";

/// Bytes a stamp takes; smaller bodies carry none.
pub const STAMP_LEN: usize = 16;

/// Maps the monotonic clock onto wall-clock microseconds, so a stamp written in one process
/// can be read in another on the same host.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
    base_epoch_us: u64,
}

impl Clock {
    pub fn new() -> Self {
        Self { base: Instant::now(), base_epoch_us: epoch_us() }
    }

    pub fn epoch_us(&self, at: Instant) -> u64 {
        self.base_epoch_us + at.saturating_duration_since(self.base).as_micros() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

pub fn epoch_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// A stamp read back from a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub run: u32,
    pub epoch_us: u64,
}

/// A body of `size` bytes, stamped when it is large enough.
pub fn body(size: usize, stamp: Stamp) -> Bytes {
    let mut buf = BytesMut::with_capacity(size);
    if size >= STAMP_LEN {
        buf.put_slice(MAGIC);
        buf.put_u32(stamp.run);
        buf.put_u64(stamp.epoch_us);
    }
    buf.resize(size, b'x');
    buf.freeze()
}

pub fn read(body: &[u8]) -> Option<Stamp> {
    if body.len() < STAMP_LEN || &body[..4] != MAGIC {
        return None;
    }
    let run = u32::from_be_bytes(body[4..8].try_into().ok()?);
    let epoch_us = u64::from_be_bytes(body[8..16].try_into().ok()?);
    Some(Stamp { run, epoch_us })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_bodies_have_the_requested_size() {
        let stamp = Stamp { run: 7, epoch_us: 1_700_000_000_123_456 };
        for size in [16, 128, 1024] {
            let b = body(size, stamp);
            assert_eq!(b.len(), size);
            assert_eq!(read(&b), Some(stamp));
        }
    }

    #[test]
    fn small_or_foreign_bodies_carry_no_stamp() {
        let small = body(10, Stamp { run: 1, epoch_us: 2 });
        assert_eq!(small.len(), 10);
        assert_eq!(read(&small), None);
        assert_eq!(read(b"hello, this is an ordinary message"), None);
    }

    #[test]
    fn the_clock_maps_instants_onto_the_epoch() {
        let clock = Clock::new();
        let later = clock.base + std::time::Duration::from_millis(250);
        let delta = clock.epoch_us(later) - clock.epoch_us(clock.base);
        assert_eq!(delta, 250_000);
        assert!(clock.base_epoch_us > 1_600_000_000_000_000);
    }
}
