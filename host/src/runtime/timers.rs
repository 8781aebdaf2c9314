//! The timer service and the inbox watcher: the two ways an instance is woken by time or
//! by another process rather than by this process's own work.
//!
//! Durable timers live in the store. One task sleeps until the earliest is due (woken
//! sooner when an episode stores a nearer one), fires every due timer in one transaction
//! (each becomes a `TimerFired` in its instance's inbox) and wakes those instances,
//! starting the evicted ones. A timer fires only once the clock has reached its time.
//!
//! Other processes (`weft raise-event`, `weft terminate` ... on the same data dir) post
//! to the inbox directly; the watcher reads the inbox rows added since its last look,
//! twice a second, and wakes their instances.

use super::Runtime;
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;

/// The most timers fired in one transaction; more are fired in the next.
const FIRE_BATCH: usize = 1000;
/// The longest the timer service sleeps without looking: a safety net against a wall
/// clock that jumps (a timer never fires early; this only bounds how late).
const LONGEST_SLEEP: Duration = Duration::from_secs(30);
/// How often the inbox is checked for messages that another process posted.
const INBOX_POLL: Duration = Duration::from_millis(500);
/// The most new inbox rows read per look.
const INBOX_BATCH: usize = 10_000;

impl Runtime {
    /// Fires due timers until the runtime stops.
    pub(super) async fn run_timers(self: Arc<Self>) {
        let mut stopping = self.stopping.subscribe();
        loop {
            if *stopping.borrow() {
                return;
            }
            let sleep = match self.fire_timers().await {
                Ok(sleep) => sleep,
                Err(error) => {
                    tracing::error!("cannot fire timers: {error}");
                    Duration::from_secs(1)
                }
            };
            if sleep.is_zero() {
                continue;
            }
            tokio::select! {
                _ = stopping.wait_for(|stop| *stop) => return,
                () = self.timers_changed.notified() => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Fires what is due now and says how long to sleep until the next timer.
    async fn fire_timers(self: &Arc<Self>) -> Result<Duration, crate::store::Error> {
        let fired = self.store.fire_due_timers(Utc::now(), FIRE_BATCH).await?;
        let full = fired.len() == FIRE_BATCH;
        let mut woken = std::collections::HashSet::new();
        for instance in fired {
            if woken.insert(instance.clone()) {
                tracing::debug!(instance = %instance, "timer fired");
                self.wake(&instance);
            }
        }
        if full {
            return Ok(Duration::ZERO);
        }
        Ok(match self.store.next_timer().await? {
            None => LONGEST_SLEEP,
            Some(next) => {
                // One millisecond more: timers are stored to the millisecond, and the
                // next look must find this one due.
                let until = (next - Utc::now()).to_std().unwrap_or_default();
                (until + Duration::from_millis(1)).min(LONGEST_SLEEP)
            }
        })
    }

    /// Wakes the instances that another process posted messages to, until the runtime
    /// stops. Messages this process posted wake their instance already; waking it again
    /// only makes it read its inbox.
    pub(super) async fn watch_inbox(self: Arc<Self>, mut cursor: i64) {
        let mut stopping = self.stopping.subscribe();
        loop {
            tokio::select! {
                _ = stopping.wait_for(|stop| *stop) => return,
                () = tokio::time::sleep(INBOX_POLL) => {}
            }
            match self.store.inbox_since(cursor, INBOX_BATCH).await {
                Ok(rows) => {
                    let mut woken = std::collections::HashSet::new();
                    for (id, instance) in rows {
                        cursor = cursor.max(id);
                        if woken.insert(instance.clone()) {
                            self.wake(&instance);
                        }
                    }
                }
                Err(error) => tracing::error!("cannot read the inbox: {error}"),
            }
        }
    }

    /// The id of the newest inbox message: the watcher starts after it, because every
    /// unfinished instance is started (and reads its inbox) anyway.
    pub(super) async fn inbox_end(&self) -> Result<i64, crate::store::Error> {
        let mut cursor = 0;
        loop {
            let rows = self.store.inbox_since(cursor, INBOX_BATCH).await?;
            let Some((last, _)) = rows.last() else {
                return Ok(cursor);
            };
            cursor = *last;
            if rows.len() < INBOX_BATCH {
                return Ok(cursor);
            }
        }
    }
}
