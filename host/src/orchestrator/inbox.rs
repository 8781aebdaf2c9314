//! How an orchestration instance takes its inbox: the messages (completions, fired
//! timers, raised events, control requests) that open its next episode, the outcomes
//! handed over in memory, and what a suspended instance holds until it resumes.

use super::{Delivery, OrchestrationState};
use crate::store::{self, RuntimeStatus};
use chrono::Utc;

/// The most inbox messages one episode takes: what the host holds at once for an
/// instance stays bounded however many messages clients post (the rest are taken by the
/// next episodes, which open without sleeping while the inbox has more).
const INBOX_BATCH: usize = 10_000;
/// The most bytes of messages ([`store::Event::weight`]) one read of the inbox takes, and
/// one suspended instance holds: each message may be as large as the payload limit.
const INBOX_BYTES: usize = 64 << 20;
/// The most messages a suspended instance holds in memory until it resumes; the rest
/// wait in the inbox.
pub(super) const HELD_MAX: usize = 1_024;
/// How long an episode that only delivers activity outcomes, to code that still waits,
/// keeps taking the outcomes that follow before it commits. A wide fan-out then records
/// its results in a few large transactions instead of one small one per moment, each
/// with its fsync; an outcome the code waits for ends the gathering at once, so no wait
/// lasts longer for it. A crash loses at most this much of finished work, which runs again.
pub(super) const GATHER: std::time::Duration = std::time::Duration::from_millis(10);
/// The most outcomes, and bytes of outcomes, one episode gathers: the memory held for an
/// instance until its commit stays bounded.
const GATHER_MAX: usize = 1_024;
const GATHER_BYTES: usize = 8 << 20;

impl OrchestrationState {
    /// Opens an episode with what the inbox holds that may be delivered now: control
    /// messages always, completions only while the instance is not suspended (the rest
    /// are held until it resumes). Returns false if there was nothing to take.
    ///
    /// Only messages newer than the last one read are fetched, so a suspended instance
    /// that keeps receiving completions never reads one twice; they are read
    /// [`INBOX_BATCH`] at a time. A suspended instance holds at most [`HELD_MAX`] of them
    /// in memory: past that, it reads on only to find a resume or terminate, leaving the
    /// other messages in the (durable) inbox, and reads them again once resumed, so that
    /// the host's memory stays bounded however many messages arrive while it is suspended,
    /// and every message is still delivered in the order it arrived.
    pub(super) async fn take_inbox(&mut self) -> Result<bool, store::Error> {
        let mut suspended = self.replay.is_suspended();
        let mut taken = Vec::new();
        // Where the reading stopped when messages were left in the inbox: reading goes on
        // from there (for control messages only) while the instance stays suspended.
        let mut scan = self.scan_cursor.take();
        let was_scanning = scan.is_some();
        if !suspended {
            taken.append(&mut self.held);
            self.held_bytes = 0;
            if scan.take().is_some() {
                self.inbox_dirty = true;
            }
        }
        // One batch at a time. A batch that a suspended instance only holds is followed
        // by the next, so that a resume or terminate behind it is not left unread.
        'read: loop {
            let new = if self.inbox_dirty {
                self.store_handle()?
                    .inbox(
                        &self.instance_id,
                        scan.unwrap_or(self.inbox_cursor),
                        INBOX_BATCH,
                        INBOX_BYTES,
                    )
                    .await?
            } else {
                Vec::new()
            };
            let read: usize = new.iter().map(|message| message.event.weight()).sum();
            let full = new.len() == INBOX_BATCH || read >= INBOX_BYTES;
            self.inbox_dirty = full;
            for message in new {
                let control = matches!(
                    message.event,
                    store::Event::ExecutionSuspended { .. }
                        | store::Event::ExecutionResumed { .. }
                        | store::Event::ExecutionTerminated { .. }
                );
                let held_full = self.held.len() >= HELD_MAX || self.held_bytes >= INBOX_BYTES;
                if suspended && !control && scan.is_none() && held_full {
                    // Held enough: this message and the ones after it stay in the inbox.
                    scan = Some(self.inbox_cursor);
                }
                match &mut scan {
                    Some(at) => *at = message.id,
                    None => self.inbox_cursor = message.id,
                }
                // A control message taken past the held ones is deleted only by the
                // episode's checkpoint; reading from the cursor again must skip it.
                if self.consumed.contains(&message.id) {
                    continue;
                }
                match &message.event {
                    store::Event::ExecutionSuspended { .. } => suspended = true,
                    store::Event::ExecutionResumed { .. } => {
                        suspended = false;
                        // What arrived while suspended comes right after the resume, in
                        // order: the held messages, then those left in the inbox, read
                        // again from the cursor by the next episodes.
                        taken.push(message);
                        taken.append(&mut self.held);
                        self.held_bytes = 0;
                        if scan.take().is_some() {
                            self.inbox_dirty = true;
                            break 'read;
                        }
                        continue;
                    }
                    store::Event::ExecutionTerminated { .. } => {
                        taken.push(message);
                        break 'read;
                    }
                    _ if suspended => {
                        if scan.is_none() {
                            self.held_bytes += message.event.weight();
                            self.held.push(message);
                        }
                        continue;
                    }
                    _ => {}
                }
                taken.push(message);
            }
            if !full || !taken.is_empty() {
                break;
            }
        }
        if scan.is_some() && !was_scanning {
            tracing::info!(instance = %self.instance_id, held = self.held.len(), "suspended with more messages than it holds; the rest wait in the inbox until it resumes");
        }
        self.scan_cursor = scan;
        // Outcomes handed over in memory come after the inbox's messages. While the
        // instance is suspended they are recorded in the inbox instead, durably, to be
        // read with the held ones once it resumes.
        let terminated = taken
            .last()
            .is_some_and(|m| matches!(m.event, store::Event::ExecutionTerminated { .. }));
        let mut delivered = Vec::new();
        if !terminated {
            if let Some(deliveries) = &mut self.deliveries {
                while let Ok(delivery) = deliveries.try_recv() {
                    self.arrived.push(delivery);
                }
            }
            for delivery in std::mem::take(&mut self.arrived) {
                if suspended {
                    self.record_delivery(delivery).await?;
                } else {
                    self.settled.push((delivery.item.id, delivery.item.task_id));
                    delivered.push(delivery.completion);
                }
            }
        }
        if taken.is_empty() && delivered.is_empty() {
            return Ok(false);
        }
        self.consumed.extend(taken.iter().map(|m| m.id));
        let events = taken.into_iter().map(|m| m.event).chain(delivered);
        self.replay.begin_episode(Utc::now(), events);
        Ok(true)
    }

    /// While the code waits and the episode in progress delivers only outcomes handed over
    /// in memory, takes the next ones into the same episode, for up to [`GATHER`]. Returns
    /// true if it took some (the wait looks again); false when the episode should be
    /// committed: the time or the room is up, or anything else arrived (a wake means
    /// news in the inbox, which the next episode reads).
    pub(super) async fn gather(&mut self) -> Result<bool, store::Error> {
        if !self.consumed.is_empty()
            || !self.arrived.is_empty()
            || self.replay.is_suspended()
            || self.settled.len() >= GATHER_MAX
            || self.gathered_bytes >= GATHER_BYTES
            || !self.replay.holds_only_completions()
        {
            return Ok(false);
        }
        let Some(deliveries) = &mut self.deliveries else {
            return Ok(false);
        };
        let until = *self
            .gather_until
            .get_or_insert_with(|| tokio::time::Instant::now() + GATHER);
        let wake = self.wake.clone();
        let first = tokio::select! {
            biased;
            () = wake.notified() => {
                self.inbox_dirty = true;
                return Ok(false);
            }
            delivery = tokio::time::timeout_at(until, deliveries.recv()) => match delivery {
                Ok(Some(delivery)) => delivery,
                // Out of time, or the dispatcher is gone.
                Ok(None) | Err(_) => return Ok(false),
            },
        };
        let mut taken = vec![first];
        while self.settled.len() + taken.len() < GATHER_MAX {
            match deliveries.try_recv() {
                Ok(delivery) => taken.push(delivery),
                Err(_) => break,
            }
        }
        let mut outcomes = Vec::with_capacity(taken.len());
        for delivery in taken {
            self.gathered_bytes += match &delivery.completion {
                store::Event::TaskCompleted { result, .. } => result.len(),
                store::Event::TaskFailed { message, .. } => message.len(),
                // Anything else opens the next episode, the way it always does.
                _ => {
                    self.arrived.push(delivery);
                    continue;
                }
            };
            self.settled.push((delivery.item.id, delivery.item.task_id));
            outcomes.push(delivery.completion);
        }
        if outcomes.is_empty() {
            return Ok(false);
        }
        // The episode held only completions when this began, and still does.
        self.replay.extend_episode(outcomes);
        Ok(true)
    }

    /// Records a delivered outcome the way the dispatcher would have: in the inbox.
    async fn record_delivery(&mut self, delivery: Delivery) -> Result<(), store::Error> {
        let owner = self
            .eager
            .as_ref()
            .map(|eager| eager.owner.clone())
            .unwrap_or_default();
        let settlement = store::Settlement::Complete {
            completion: delivery.completion,
        };
        self.store_handle()?
            .settle_work(&delivery.item, &owner, settlement, Utc::now())
            .await?;
        Ok(())
    }

    /// Waits until the inbox holds something deliverable and opens an episode with it.
    /// While the instance is suspended, it records that and keeps waiting.
    ///
    /// Returns false if nothing arrived within the idle time: everything is committed,
    /// and the instance should be evicted (a later message replays it anew).
    pub(super) async fn next_episode(&mut self) -> Result<bool, store::Error> {
        loop {
            if self.take_inbox().await? {
                if self.replay.termination().is_some() || !self.replay.is_suspended() {
                    return Ok(true);
                }
                self.checkpoint(RuntimeStatus::Suspended, None).await?;
                continue;
            }
            // A message posted after the read above stores a permit, so none is lost.
            let wake = self.wake.clone();
            let news = async {
                match &mut self.deliveries {
                    Some(deliveries) => tokio::select! {
                        () = wake.notified() => None,
                        delivery = deliveries.recv() => delivery,
                    },
                    None => {
                        wake.notified().await;
                        None
                    }
                }
            };
            let arrived = match self.evict_after {
                None => news.await,
                Some(idle) => match tokio::time::timeout(idle, news).await {
                    Ok(arrived) => arrived,
                    Err(_) => {
                        // Idle: refuse further deliveries (they go to the inbox), and keep
                        // running if one slipped in meanwhile.
                        // The closed channel is dropped: a closed one would answer every
                        // later wait at once, and the instance would spin on its inbox.
                        if let Some(mut deliveries) = self.deliveries.take() {
                            deliveries.close();
                            while let Ok(delivery) = deliveries.try_recv() {
                                self.arrived.push(delivery);
                            }
                        }
                        if self.arrived.is_empty() {
                            return Ok(false);
                        }
                        None
                    }
                },
            };
            // Woken (not handed a result): the inbox has news to read.
            if arrived.is_none() {
                self.inbox_dirty = true;
            }
            self.arrived.extend(arrived);
        }
    }
}
