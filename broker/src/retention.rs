//! Retention, as Java's `CleanCommitLogService`: every `cleanResourceInterval` the broker asks
//! whether segments should go — at a `deleteWhen` hour, or at any hour once the store's disk is
//! fuller than `diskMaxUsedSpaceRatio` — and the store deletes up to 10 expired segments, its
//! ConsumeQueues following. Above 85 % (Java's `diskSpaceCleanForciblyRatio`) with
//! `cleanFileForciblyEnable`, segments go before they expire, oldest first.
//!
//! Unlike Java, a deleted segment's file is kept as a spare (up to `commitLogSpareSegments`) and
//! becomes a later segment without being zero-filled first. Spares go before any segment once the
//! disk is fuller than `diskMaxUsedSpaceRatio`.

use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use crate::config::BrokerConfig;
use crate::server::Broker;

/// Segments deleted per pass at most (Java's `DELETE_FILES_BATCH_MAX`).
const SEGMENTS_PER_PASS: usize = 10;
/// Disk usage above which segments go before they expire (Java's default).
const FORCIBLE_RATIO: f64 = 0.85;

/// What one pass should delete: nothing, expired segments, or the oldest whatever their age.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Plan {
    Nothing,
    /// Segments last written before this time.
    Expired(SystemTime),
    /// The oldest segments, expired or not: the disk is nearly full.
    Oldest,
}

/// Passes that delete expired segments whatever the hour after a DELETE_EXPIRED_COMMITLOG
/// (Java's `MAX_MANUAL_DELETE_FILE_TIMES`).
pub const MANUAL_DELETE_PASSES: u32 = 20;

/// Decides a pass from the time, the hour (UTC), the fraction of the disk in use, and whether
/// an admin asked for expired segments to go now (`manual`).
pub fn plan(config: &BrokerConfig, now: SystemTime, disk_used: f64, manual: bool) -> Plan {
    let hour = now.duration_since(UNIX_EPOCH).map_or(0, |d| (d.as_secs() / 3600 % 24) as u32);
    let time_up = manual || config.delete_hours().unwrap_or_default().contains(&hour);
    let space_full = disk_used > f64::from(config.disk_max_used_space_ratio) / 100.0;
    if config.clean_file_forcibly_enable && disk_used > FORCIBLE_RATIO {
        return Plan::Oldest;
    }
    if !(time_up || space_full) {
        return Plan::Nothing;
    }
    let reserved = Duration::from_secs_f64(config.file_reserved_time * 3600.0);
    Plan::Expired(now.checked_sub(reserved).unwrap_or(UNIX_EPOCH))
}

/// Whether a pass keeps the files of the segments it deletes as spares (up to
/// `commitLogSpareSegments`): only when it deletes for age, not for space.
pub fn keeps_spares(plan: Plan, space_needed: bool) -> bool {
    matches!(plan, Plan::Expired(_)) && !space_needed
}

/// The fraction of the filesystem holding `path` that is in use, as `df` counts it: used over
/// used plus available. Blocks reserved for root, or not backed on a thin-provisioned disk, count
/// as neither; counting them as used (total − available) read 79 % on a disk `df` shows 43 %
/// full, close to deleting unexpired messages.
pub fn disk_used(path: &Path) -> Option<f64> {
    let stat = nix::sys::statvfs::statvfs(path).ok()?;
    let used = stat.blocks().saturating_sub(stat.blocks_free()) as f64;
    let available = stat.blocks_available() as f64;
    (used + available > 0.0).then(|| used / (used + available))
}

pub async fn retention_loop(broker: Rc<Broker>) {
    let interval = Duration::from_millis(broker.config.borrow().clean_resource_interval.max(100));
    loop {
        glommio::timer::sleep(interval).await;
        let used = disk_used(&broker.config.borrow().store_path_root_dir).unwrap_or(0.0);
        // A disk past its ratio needs space, which spare segments hold without holding messages.
        let space_needed = used > f64::from(broker.config.borrow().disk_max_used_space_ratio) / 100.0;
        if space_needed {
            match broker.store.drop_spare_segments().await {
                Ok(0) => {}
                Ok(n) => {
                    info!(
                        spares = n,
                        disk_used = format!("{:.0}%", used * 100.0),
                        "disk filling up: spare segments deleted"
                    );
                    // The next pass measures again before deleting messages.
                    continue;
                }
                Err(e) => warn!(error = %e, "deleting spare segments failed; retrying next pass"),
            }
        }
        let manual = broker.manual_deletes.get();
        broker.manual_deletes.set(manual.saturating_sub(1));
        let plan = plan(&broker.config.borrow(), SystemTime::now(), used, manual > 0);
        let expired_before = match plan {
            Plan::Nothing => continue,
            Plan::Expired(before) => Some(before),
            Plan::Oldest => {
                warn!(disk_used = format!("{:.0}%", used * 100.0), "disk nearly full: deleting the oldest segments");
                None
            }
        };
        match broker.store.delete_expired(expired_before, SEGMENTS_PER_PASS, keeps_spares(plan, space_needed)).await {
            Ok(r) if !r.segments.is_empty() => info!(
                segments = r.segments.len(),
                consume_queue_files = r.queue_files,
                log_starts_at = r.log_min_offset,
                "retention deleted old messages"
            ),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "retention failed; retrying next pass"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_hour(hour: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(20_000 * 86_400 + hour * 3600 + 120)
    }

    #[test]
    fn segments_go_at_the_hour_or_when_the_disk_fills() {
        let config = BrokerConfig { delete_when: "04;16".into(), ..Default::default() };
        let reserved = Duration::from_secs(72 * 3600);
        assert_eq!(plan(&config, at_hour(4), 0.1, false), Plan::Expired(at_hour(4) - reserved));
        assert_eq!(plan(&config, at_hour(16), 0.1, false), Plan::Expired(at_hour(16) - reserved));
        assert_eq!(plan(&config, at_hour(5), 0.1, false), Plan::Nothing);
        assert_eq!(plan(&config, at_hour(5), 0.80, false), Plan::Expired(at_hour(5) - reserved), "past 75 %");
        assert_eq!(plan(&config, at_hour(5), 0.90, false), Plan::Oldest, "past 85 %");
        let gentle = BrokerConfig { clean_file_forcibly_enable: false, ..config };
        assert_eq!(plan(&gentle, at_hour(5), 0.90, false), Plan::Expired(at_hour(5) - reserved));
        // DELETE_EXPIRED_COMMITLOG: expired segments go at any hour, unexpired ones still stay.
        assert_eq!(plan(&gentle, at_hour(5), 0.1, true), Plan::Expired(at_hour(5) - reserved));
    }

    #[test]
    fn only_deletions_for_age_keep_spares() {
        assert!(keeps_spares(Plan::Expired(at_hour(4)), false));
        assert!(!keeps_spares(Plan::Expired(at_hour(5)), true), "past diskMaxUsedSpaceRatio");
        assert!(!keeps_spares(Plan::Oldest, false), "forcible deletion frees space");
        assert!(!keeps_spares(Plan::Oldest, true));
    }

    #[test]
    fn disk_usage_is_a_fraction() {
        let used = disk_used(Path::new("/")).expect("statvfs /");
        assert!((0.0..=1.0).contains(&used), "{used}");
        assert_eq!(disk_used(Path::new("/no/such/folder")), None);
    }
}
