//! The blobs an activity copied that are in place but not yet durable: the activity's
//! guest goes on (and its slot goes to the next activity once it returns) while they
//! wait for their syncs, and its result is reported only once every one is durable.

use crate::blobs::Durability;
use std::collections::VecDeque;

/// How many of an activity's copies may wait for durability at once; a copy beyond it
/// first waits for the oldest. Each holds its blob's open file.
const MAX_WAITING: usize = 64;

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
