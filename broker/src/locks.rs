//! Queue locks for orderly consumers (LOCK_BATCH_MQ / UNLOCK_BATCH_MQ): one client of a group
//! holds a queue at a time. A lock not renewed for 60 s lapses, so a consumer that died without
//! unlocking does not hold its queues forever (Java's `RebalanceLockManager`).

use std::collections::{BTreeSet, HashMap};

use wire::body::MessageQueue;

/// How long a lock lives without renewal (`rocketmq.broker.rebalance.lockMaxLiveTime`).
pub const LOCK_MAX_LIVE_MS: i64 = 60_000;

struct LockEntry {
    client_id: String,
    last_update_ms: i64,
}

#[derive(Default)]
pub struct QueueLocks {
    by_group: HashMap<String, HashMap<MessageQueue, LockEntry>>,
}

impl QueueLocks {
    /// Locks (or renews) what it can of `queues` for `client_id`; returns the queues it holds.
    pub fn try_lock(
        &mut self,
        group: &str,
        queues: &BTreeSet<MessageQueue>,
        client_id: &str,
        now_ms: i64,
    ) -> BTreeSet<MessageQueue> {
        let table = self.by_group.entry(group.to_owned()).or_default();
        let mut locked = BTreeSet::new();
        for queue in queues {
            let entry = table
                .entry(queue.clone())
                .or_insert_with(|| LockEntry { client_id: client_id.to_owned(), last_update_ms: now_ms });
            let expired = now_ms - entry.last_update_ms > LOCK_MAX_LIVE_MS;
            if entry.client_id == client_id || expired {
                if entry.client_id != client_id {
                    tracing::warn!(group, ?queue, old = %entry.client_id, new = client_id, "queue lock expired; taken over");
                    entry.client_id = client_id.to_owned();
                }
                entry.last_update_ms = now_ms;
                locked.insert(queue.clone());
            }
        }
        locked
    }

    /// Releases those of `queues` that `client_id` holds.
    pub fn unlock(&mut self, group: &str, queues: &BTreeSet<MessageQueue>, client_id: &str) {
        if let Some(table) = self.by_group.get_mut(group) {
            for queue in queues {
                if table.get(queue).is_some_and(|e| e.client_id == client_id) {
                    table.remove(queue);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(ids: &[i32]) -> BTreeSet<MessageQueue> {
        ids.iter().map(|&i| MessageQueue { topic: "T".into(), broker_name: "b".into(), queue_id: i }).collect()
    }

    #[test]
    fn one_client_holds_a_queue_until_it_unlocks_or_the_lock_lapses() {
        let mut locks = QueueLocks::default();
        assert_eq!(locks.try_lock("g", &queues(&[0, 1]), "a", 0), queues(&[0, 1]));
        assert_eq!(locks.try_lock("g", &queues(&[1, 2]), "b", 1_000), queues(&[2]));
        assert_eq!(locks.try_lock("other", &queues(&[0]), "b", 1_000), queues(&[0]), "groups are separate");
        // a renews queue 0 but not 1; b takes 1 once it lapses.
        assert_eq!(locks.try_lock("g", &queues(&[0]), "a", 50_000), queues(&[0]));
        assert_eq!(locks.try_lock("g", &queues(&[0, 1]), "b", 60_500), queues(&[1]));
        locks.unlock("g", &queues(&[0]), "b");
        assert_eq!(locks.try_lock("g", &queues(&[0]), "b", 60_600), BTreeSet::new(), "b cannot unlock a's queue");
        locks.unlock("g", &queues(&[0]), "a");
        assert_eq!(locks.try_lock("g", &queues(&[0]), "b", 60_700), queues(&[0]));
    }
}
