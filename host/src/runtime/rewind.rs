//! Rewinding a Failed instance: it runs again from its failures. The activities that
//! failed (or never finished) are scheduled again; those that completed are not re-run,
//! their results replay from the history.
//!
//! The history stays append-only: an `ExecutionRewound` event marks the point after
//! which the earlier `TaskFailed` events and the `ExecutionFailed` no longer count (see
//! [`Replay`]), and the same transaction enqueues the rescheduled tasks' work items.

use super::{Error, Runtime};
use crate::replay::Replay;
use crate::store::{self, Event};
use chrono::Utc;
use std::sync::Arc;

impl Runtime {
    /// Rewinds instance `id`, which must be Failed, and runs it.
    pub async fn rewind(self: &Arc<Self>, id: &str, reason: &str) -> Result<(), Error> {
        let history = self.store.history(id).await?;
        if history.is_empty() {
            return Err(store::Error::UnknownInstance(id.to_string()).into());
        }
        let reschedule = Replay::rewind_plan(&history).map_err(|error| {
            store::Error::Corrupt(format!("the history of '{id}' cannot be replayed: {error}"))
        })?;
        let event = Event::ExecutionRewound {
            reason: reason.to_string(),
        };
        let tasks = reschedule.len();
        let children = self
            .store
            .rewind(id, history.len() as u64, event, reschedule, Utc::now())
            .await?;
        tracing::info!(instance = %id, "rewound; {tasks} task(s) scheduled again");
        self.work_ready.notify_one();
        self.wake(id);
        for child in children {
            self.wake(&child);
        }
        Ok(())
    }

    /// The largest JSON payload (input, output, custom status) in bytes: also the
    /// largest request body the HTTP API reads.
    pub fn payload_limit(&self) -> usize {
        self.config.guest_limits.payload
    }
}
