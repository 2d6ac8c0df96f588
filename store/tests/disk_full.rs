//! A full disk: the store on a small tmpfs is appended to until the disk runs out. Appends then
//! fail with a clear error and the store turns read-only; what was acknowledged stays readable,
//! and once space is freed a restart finds every acknowledged message intact and appends again.
//!
//! Mounting needs CAP_SYS_ADMIN (CI runs as root). Without it the test says so and does nothing.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::rc::Rc;

use common::{config, keyed, message, on_executor, query_seqs, seq_of};
use store::{FlushDiskType, GetMessageStatus, MessageStore, StoreError};

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        match out.status.success() {
            true => Ok(Tmpfs { dir }),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Frees space, as an operator would.
    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .expect("remount");
        assert!(status.success(), "remount the tmpfs larger");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: the finished executors may not have closed every file yet.
        let _ = Command::new("umount").arg("--lazy").arg(self.dir.path()).status();
    }
}

fn acked_from(store: &MessageStore, acked: &BTreeMap<u64, (i32, i64)>) -> impl std::future::Future<Output = ()> {
    let (store, acked) = (store.clone(), acked.clone());
    async move {
        for (seq, (queue, offset)) in acked {
            let r = store.get_message("FullTopic", queue, offset, 1, &|_| true).await.expect("get");
            assert_eq!(r.status, GetMessageStatus::Found, "acknowledged seq {seq} at {queue}/{offset}");
            assert_eq!(seq_of(&r.messages[0]), seq, "intact at {queue}/{offset}");
        }
    }
}

#[test]
fn a_full_disk_fails_appends_clearly_keeps_what_was_acknowledged_and_recovers_after_space_is_freed() {
    for flush in [FlushDiskType::AsyncFlush, FlushDiskType::SyncFlush] {
        let fs = match Tmpfs::mount("1600k") {
            Ok(fs) => fs,
            Err(e) => {
                eprintln!("SKIPPED: cannot mount a tmpfs here ({}); the disk-full test needs CAP_SYS_ADMIN", e.trim());
                return;
            }
        };
        let dir = fs.path().join("store");
        let mut c = config(&dir, flush);
        c.index.hash_slots = 61;
        c.index.max_entries = 500;
        let first = c.clone();
        let acked = on_executor(move || async move {
            let (store, _) = MessageStore::open(first).await.expect("open on the small disk");
            let acked = Rc::new(RefCell::new(BTreeMap::new()));
            let errors = Rc::new(RefCell::new(Vec::new()));
            let mut tasks = Vec::new();
            for appender in 0..8u64 {
                let (store, acked, errors) = (store.clone(), acked.clone(), errors.clone());
                tasks.push(glommio::spawn_local(async move {
                    // Bounded: 8 × 2,000 records of ~0.5 KiB is five times the disk.
                    for seq in (appender..16_000).step_by(8) {
                        let queue = (seq % 4) as i32;
                        let put = match store.put_message(keyed(message("FullTopic", queue, seq, "t"), seq)) {
                            Ok(put) => put,
                            Err(e) => return errors.borrow_mut().push(e),
                        };
                        let offset = put.queue_offset;
                        match put.durable.wait().await {
                            Ok(_) => drop(acked.borrow_mut().insert(seq, (queue, offset))),
                            Err(e) => return errors.borrow_mut().push(e),
                        }
                    }
                }));
            }
            for task in tasks {
                task.await;
            }
            let acked = acked.borrow().clone();
            let errors = errors.borrow().clone();
            assert!(acked.len() > 100, "{flush:?}: appends succeeded until the disk filled ({})", acked.len());
            assert_eq!(errors.len(), 8, "{flush:?}: every appender stopped at an error");
            for e in &errors {
                assert!(matches!(e, StoreError::ReadOnly(_)), "{flush:?}: {e}");
                assert!(e.to_string().contains("No space left on device"), "{flush:?}: says why: {e}");
            }
            let failure = store.commitlog().failure().expect("the log says it is read-only");
            assert!(failure.contains("No space left on device"), "{failure}");
            assert!(matches!(store.put_message(message("FullTopic", 0, 99_999, "t")), Err(StoreError::ReadOnly(_))));
            // Read-only, not down: consumers still get every acknowledged message.
            acked_from(&store, &acked).await;
            let _ = store.close().await; // may fail: the checkpoint has no room either
            acked
        });
        eprintln!("{flush:?}: {} appends acknowledged before the disk filled", acked.len());

        // The operator frees space; the broker restarts.
        fs.grow("16m");
        let check = acked.clone();
        on_executor(move || async move {
            let (store, recovery) = MessageStore::open(c).await.expect("open after space was freed");
            eprintln!("{flush:?}: recovery {:?}", recovery.commitlog);
            acked_from(&store, &check).await;
            for seq in check.keys().step_by(37) {
                assert_eq!(query_seqs(&store, "FullTopic", &format!("k{seq}"), 32).await, [*seq], "index: k{seq}");
            }
            let put = store.put_message(message("FullTopic", 0, 100_000, "t")).expect("appends work again");
            put.durable.wait().await.expect("durable again");
            store.close().await.expect("clean close");
        });
    }
}
