//! CPU time and memory of a process, from `/proc` (Linux): the broker's cost per message is a
//! figure every throughput figure is reported with. And the machine's CPU time by kind: on a
//! virtual machine the time the hypervisor gave to someone else (steal) tells a disturbed run
//! from a slow one.

use std::time::Duration;

use crate::report::HostFigures;

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

/// The machine's CPU time, summed over its CPUs, in clock ticks since boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostCpu {
    /// Every tick of every CPU: busy, idle, waiting for I/O and stolen.
    pub total: u64,
    /// Ticks spent running something (user, nice, system, irq, softirq).
    pub busy: u64,
    /// Ticks a virtual CPU was ready to run while the hypervisor ran something else.
    pub steal: u64,
}

impl HostCpu {
    /// The busy and stolen shares since `before`; `None` when no tick passed (readings too
    /// close together to say anything).
    pub fn shares_since(&self, before: &HostCpu) -> Option<HostFigures> {
        let total = self.total.checked_sub(before.total).filter(|t| *t > 0)? as f64;
        let share = |now: u64, then: u64| now.saturating_sub(then) as f64 * 100.0 / total;
        Some(HostFigures { busy_pct: share(self.busy, before.busy), steal_pct: share(self.steal, before.steal) })
    }
}

/// Reads the machine's CPU time; `None` when `/proc/stat` is not there.
pub fn host() -> Option<HostCpu> {
    host_from_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// The first line adds up every CPU: user nice system idle iowait irq softirq steal, then
/// guest time, which user already counts. Kernels before 2.6.11 have no steal column.
fn host_from_stat(stat: &str) -> Option<HostCpu> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line.split_whitespace().take(8).map(str::parse).collect::<Result<_, _>>().ok()?;
    if ticks.len() < 4 {
        return None;
    }
    let field = |i: usize| ticks.get(i).copied().unwrap_or(0);
    Some(HostCpu {
        total: ticks.iter().sum(),
        busy: field(0) + field(1) + field(2) + field(5) + field(6),
        steal: field(7),
    })
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
    fn host_time_is_split_into_busy_idle_and_stolen() {
        let stat = "cpu  100 5 20 800 40 3 2 30 7 0\ncpu0 50 2 10 400 20 1 1 15 3 0\nintr 12345\n";
        let before = host_from_stat(stat).expect("a cpu line");
        assert_eq!(before, HostCpu { total: 1000, busy: 130, steal: 30 });
        let after = HostCpu { total: 1200, busy: 230, steal: 80 };
        let shares = after.shares_since(&before).expect("ticks passed");
        assert_eq!((shares.busy_pct, shares.steal_pct), (50.0, 25.0));
        assert_eq!(before.shares_since(&before), None);
        assert_eq!(host_from_stat("cpu0 1 2 3 4\n"), None, "the summary line comes first");
        assert_eq!(host_from_stat("cpu  1 x 3 4\n"), None);
        let old_kernel = host_from_stat("cpu  10 0 5 85\n").expect("four columns suffice");
        assert_eq!(old_kernel, HostCpu { total: 100, busy: 15, steal: 0 });
    }

    #[test]
    fn this_process_can_be_measured() {
        let usage = of_self().expect("/proc/self is readable on Linux");
        assert!(usage.rss_bytes > 0);
        assert_eq!(of(u32::MAX), None);
        let host = host().expect("/proc/stat is readable on Linux");
        assert!(host.total >= host.busy + host.steal && host.total > 0, "{host:?}");
    }
}
