//! CPU time and memory of a process, from `/proc` (Linux): the broker's cost per message is a
//! figure every throughput figure is reported with.

use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on every Linux architecture
/// this runs on).
const TICKS_PER_SECOND: u64 = 100;

/// A process's resource use at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// User plus system CPU time of all its threads, finished ones included.
    pub cpu: Duration,
    /// Resident memory.
    pub rss_bytes: u64,
}

/// Reads `pid`'s usage; `None` when the process is gone or `/proc` is not there.
pub fn of(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Usage { cpu: cpu_from_stat(&stat)?, rss_bytes: rss_from_status(&status)? })
}

pub fn of_self() -> Option<Usage> {
    of(std::process::id())
}

/// utime and stime are fields 14 and 15; the command name (field 2) may hold spaces and
/// parentheses, so fields are counted from its closing parenthesis.
fn cpu_from_stat(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

fn rss_from_status(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (apogee (broker) x) S 1 4242 4242 0 -1 4194304 1500 0 0 0 250 75 0 0 20 0 3 0 \
                    12345 1000000 2000 18446744073709551615";
        assert_eq!(cpu_from_stat(stat), Some(Duration::from_millis(3250)));
        assert_eq!(cpu_from_stat("garbage"), None);
    }

    #[test]
    fn rss_is_read_in_bytes() {
        let status = "Name:\tapogee-broker\nVmPeak:\t  900 kB\nVmRSS:\t   20480 kB\nThreads:\t4\n";
        assert_eq!(rss_from_status(status), Some(20 * 1024 * 1024));
    }

    #[test]
    fn this_process_can_be_measured() {
        let usage = of_self().expect("/proc/self is readable on Linux");
        assert!(usage.rss_bytes > 0);
        assert_eq!(of(u32::MAX), None);
    }
}
