//! The blobs an activity copied that are in place but not yet durable: the activity's
//! guest goes on (and its slot goes to the next activity once it returns) while they
//! wait for their syncs, and its result is reported only once every one is durable.

use crate::blobs::Durability;
use std::collections::VecDeque;

/// How many of an activity's copies may wait for durability at once; a copy beyond it
/// first waits for the oldest. (Each blob's open file waits in its sync's queue, which
/// is bounded host-wide: see `blobs`.)
const MAX_WAITING: usize = 16;

/// An activity's copies that wait for durability, oldest first, and the first failure
/// to make one durable: it fails the activity, whatever its guest then returns (the guest
/// was told the copy succeeded).
#[derive(Default)]
pub struct Pending {
    waiting: VecDeque<Durability>,
    failed: Option<String>,
}

impl Pending {
    /// Adds a copy's durability; if [`MAX_WAITING`] are waiting, waits for the oldest
    /// first, and fails if that one (or any before) could not be made durable.
    pub(super) async fn push(&mut self, durability: Durability) -> Result<(), String> {
        if durability.is_durable() {
            return self.failed.clone().map_or(Ok(()), Err);
        }
        if self.waiting.len() >= MAX_WAITING
            && let Some(oldest) = self.waiting.pop_front()
            && let Err(error) = oldest.wait().await
        {
            self.failed.get_or_insert(error.to_string());
        }
        self.waiting.push_back(durability);
        self.failed.clone().map_or(Ok(()), Err)
    }

    /// Whether no copy waits, and none failed to be made durable.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.failed.is_none()
    }

    /// Waits until every copy is durable; fails with the first that could not be made so.
    pub async fn wait_all(self) -> Result<(), String> {
        let mut failed = self.failed;
        for durability in self.waiting {
            if let Err(error) = durability.wait().await {
                failed.get_or_insert(error.to_string());
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::{Blobs, Options};
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_max_waiting_copies_wait_and_all_are_durable_when_waited_for() {
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("blobs");
        let blobs = Blobs::open_dir(&root, &Options::default()).unwrap();
        let source = work.path().join("source");
        std::fs::write(&source, b"bytes").unwrap();
        let mut pending = Pending::default();
        assert!(pending.is_empty());
        for i in 0..MAX_WAITING * 2 {
            let source = source.clone();
            let open = move || std::fs::File::open(&source).map(|file| (file, 5));
            let (_, durability) = blobs
                .copy_deferred(open, &format!("b{i}"))
                .await
                .unwrap()
                .unwrap();
            pending.push(durability).await.unwrap();
            assert!(pending.waiting.len() <= MAX_WAITING);
        }
        pending.wait_all().await.unwrap();
        for i in 0..MAX_WAITING * 2 {
            let mode = std::fs::metadata(root.join(format!("b{i}")))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o1000, 0, "b{i} is durable, so unmarked");
        }
    }
}
