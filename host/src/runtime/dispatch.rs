//! The activity dispatcher: claims due work items in batches, runs each in a fresh
//! activity instance with bounded concurrency, and settles it: its result, its final
//! failure, or a retry at the time its policy says.

use super::{Runtime, SETTLE_RETRIES, lock};
use crate::activity::Pending;
use crate::orchestrator::Delivery;
use crate::store::{self, Event, Settlement, WorkItem};
use chrono::Utc;
use futures::FutureExt;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

/// How long a claimed work item stays leased. Only another process sharing the store
/// would take it over after that; this one keeps running it.
const LEASE: Duration = Duration::from_secs(300);
/// How often the dispatcher looks for due work when nothing woke it.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How long an ended instance's queued items are checked before they start.
const ENDED_MEMORY: Duration = Duration::from_secs(600);
/// How many claimed items the dispatcher keeps ready at most (or the number of activity
/// slots, if that is more); it claims more when fewer than half remain.
const CLAIM_AHEAD: usize = 256;

impl Runtime {
    /// Keeps a queue of claimed items a little ahead of the free activity slots, so that
    /// a slot that frees up never waits for a claim to commit, and starts an item in
    /// every free slot. Claims are batches, one transaction each; the dispatcher sleeps
    /// when there is nothing due.
    pub(super) async fn dispatch_activities(
        self: Arc<Self>,
        mut eager: mpsc::UnboundedReceiver<WorkItem>,
    ) {
        let slots = self.activity_slots.clone();
        let ahead = CLAIM_AHEAD.max(self.config.max_activities);
        let mut stopping = self.stopping.subscribe();
        let mut queue: VecDeque<WorkItem> = VecDeque::new();
        // Claims run one at a time beside the loop, so that the loop keeps starting
        // queued items while a claim commits.
        let mut claiming: Option<JoinHandle<Result<Vec<WorkItem>, store::Error>>> = None;
        let mut idle = false;
        loop {
            if *stopping.borrow() {
                return;
            }
            if claiming.is_none() && queue.len() < ahead / 2 && !idle {
                let (runtime, max) = (self.clone(), ahead - queue.len());
                claiming = Some(tokio::spawn(async move {
                    let now = Utc::now();
                    runtime
                        .store
                        .claim_work(&runtime.owner, max, now, now + LEASE)
                        .await
                }));
            }
            tokio::select! {
                biased;
                _ = stopping.wait_for(|stop| *stop) => return,
                claimed = async { claiming.as_mut().expect("checked").await }, if claiming.is_some() => {
                    claiming = None;
                    match claimed {
                        Ok(Ok(items)) => {
                            idle = items.is_empty();
                            queue.extend(items);
                        }
                        Ok(Err(error)) => {
                            tracing::error!("cannot claim work: {error}");
                            idle = true;
                        }
                        Err(error) => {
                            tracing::error!("the claim failed: {error}");
                            idle = true;
                        }
                    }
                }
                Some(item) = eager.recv() => queue.push_back(item),
                permit = slots.clone().acquire_owned(), if !queue.is_empty() => {
                    let Ok(permit) = permit else { return };
                    if let Some(item) = queue.pop_front() {
                        let cancel = self.register(&item);
                        tokio::spawn(self.clone().supervise(item, permit, cancel));
                    }
                }
                () = self.work_ready.notified(), if idle => idle = false,
                () = tokio::time::sleep(IDLE_POLL), if idle => idle = false,
            }
        }
    }

    /// Runs a work item; should the host itself fail (panic) while running it, the task
    /// fails with that instead of leaving its lease held until a restart.
    async fn supervise(
        self: Arc<Self>,
        item: WorkItem,
        permit: OwnedSemaphorePermit,
        cancel: Arc<Notify>,
    ) {
        let _registered = Registered {
            runtime: &self,
            item: &item,
        };
        // From here until its outcome is recorded (or it is dropped), a graceful stop
        // waits for it: its slot is let go before that (see `run_work_item`).
        let _settling = Settling::new(&self.settling);
        if self.ended_lately(&item.instance_id)
            && !matches!(self.store.work_item_exists(item.id).await, Ok(true))
        {
            return;
        }
        // An item that was leased when a host died is recorded as running before it runs
        // again; one that was running when hosts died too often is failed instead.
        if item.recovered {
            if item.crashes >= self.config.max_host_crashes {
                let message = format!(
                    "activity {} was running when the host died {} times; it is failed so that it stops taking the host down",
                    item.name, item.crashes
                );
                tracing::error!(instance = %item.instance_id, task = item.task_id, "{message}");
                drop(permit);
                let failed = Settlement::Complete {
                    completion: Event::TaskFailed {
                        task_id: item.task_id,
                        message,
                    },
                };
                return self.settle(&item, failed).await;
            }
            match self.store.mark_running(&item, &self.owner).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(error) => {
                    tracing::error!(instance = %item.instance_id, task = item.task_id, "cannot record that {} runs: {error}", item.name);
                    return;
                }
            }
        }
        let run = AssertUnwindSafe(self.run_work_item(&item, permit)).catch_unwind();
        let outcome = tokio::select! {
            biased;
            () = cancel.notified() => {
                tracing::info!(instance = %item.instance_id, task = item.task_id, "activity {} cancelled: its instance ended or continued as new", item.name);
                return;
            }
            outcome = run => outcome,
        };
        let settlement = match outcome {
            Ok(settlement) => settlement,
            Err(_) => {
                tracing::error!(instance = %item.instance_id, task = item.task_id, "the host failed running {}", item.name);
                Settlement::Complete {
                    completion: Event::TaskFailed {
                        task_id: item.task_id,
                        message: format!("the host failed while running activity {}", item.name),
                    },
                }
            }
        };
        self.settle(&item, settlement).await;
    }

    /// Registers a work item as running, with the handle that cancels it.
    fn register(&self, item: &WorkItem) -> Arc<Notify> {
        let cancel = Arc::new(Notify::new());
        lock(&self.running)
            .entry(item.instance_id.clone())
            .or_default()
            .insert(item.id, cancel.clone());
        cancel
    }

    /// Cancels the running activities of an instance that has ended or continued as new
    /// (their work items are gone with its execution), and remembers it for a while, so
    /// that a queued item of it starts only if its work item still exists.
    pub(super) fn cancel_activities(&self, instance_id: &str) {
        let now = std::time::Instant::now();
        {
            let mut ended = lock(&self.recently_ended);
            ended.retain(|_, at| now.duration_since(*at) < ENDED_MEMORY);
            ended.insert(instance_id.to_string(), now);
        }
        if let Some(running) = lock(&self.running).get(instance_id) {
            for cancel in running.values() {
                cancel.notify_one();
            }
        }
    }

    fn ended_lately(&self, instance_id: &str) -> bool {
        lock(&self.recently_ended)
            .get(instance_id)
            .is_some_and(|at| at.elapsed() < ENDED_MEMORY)
    }

    /// Runs one attempt of a work item in its activity `slot` and says how to settle it.
    async fn run_work_item(&self, item: &WorkItem, slot: OwnedSemaphorePermit) -> Settlement {
        if let Some(delay) = self.config.activity_delay {
            tokio::time::sleep(delay).await;
        }
        tracing::info!(
            instance = %item.instance_id,
            task = item.task_id,
            attempt = item.attempt,
            "activity started: {}({})",
            item.name,
            item.input
        );
        let failed = |message| Settlement::Complete {
            completion: Event::TaskFailed {
                task_id: item.task_id,
                message,
            },
        };
        let Some(component) = self.activities.get(&item.name) else {
            // Retrying cannot help: no loaded component provides this name.
            return failed(format!(
                "unknown activity '{}'; known activities: {}",
                item.name,
                self.activities.known()
            ));
        };
        let run = component.run(
            &self.engine,
            self.io.clone(),
            self.config.guest_limits,
            &item.instance_id,
            item.task_id,
            &item.name,
            &item.input,
        );
        // Every attempt has a deadline: its policy's, or the host's. The host's is also
        // the longest a policy may ask for, so that no guest holds a slot longer than
        // the operator allows. It holds even while the guest sits in a host call.
        let timeout = item
            .retry
            .as_ref()
            .and_then(|policy| policy.timeout_ms)
            .map_or(self.config.activity_timeout, |ms| {
                Duration::from_millis(ms).min(self.config.activity_timeout)
            });
        let deadline = tokio::time::Instant::now() + timeout;
        let timed_out = || {
            format!(
                "activity {} timed out after {} ms",
                item.name,
                timeout.as_millis()
            )
        };
        let (outcome, pending) = tokio::time::timeout_at(deadline, run)
            .await
            .unwrap_or_else(|_| (Err(timed_out()), Pending::default()));
        // The guest is done: its slot goes to the next activity while the blobs it copied
        // become durable, as its result waits for them. What the activities that wait so
        // hold is bounded in bytes (as their blobs are in number: see `blobs`), and the
        // wait is within the attempt's deadline.
        let outcome = match outcome {
            Ok(result) if !pending.is_empty() => {
                let durable = async {
                    let held = result.len() + item.input.len();
                    let weight = held.clamp(1 << 10, super::WAITING_RESULTS);
                    let _waiting = self.waiting_results.acquire_many(weight as u32).await;
                    drop(slot);
                    pending.wait_all().await
                };
                match tokio::time::timeout_at(deadline, durable).await {
                    Ok(Ok(())) => Ok(result),
                    Ok(Err(failed)) => Err(format!("activity {}: {failed}", item.name)),
                    Err(_) => Err(timed_out()),
                }
            }
            outcome => outcome,
        };
        let message = match outcome {
            Ok(result) => {
                return Settlement::Complete {
                    completion: Event::TaskCompleted {
                        task_id: item.task_id,
                        result,
                    },
                };
            }
            Err(message) => message,
        };
        let now = Utc::now();
        let retry_at = item
            .retry
            .as_ref()
            .and_then(|policy| policy.next_retry(item.attempt, item.first_attempt_at, now));
        let Some(retry_at) = retry_at else {
            return failed(match item.attempt {
                1 => message,
                attempts => format!("{message} (after {attempts} attempts)"),
            });
        };
        tracing::info!(
            instance = %item.instance_id,
            task = item.task_id,
            attempt = item.attempt,
            "activity failed, retrying at {retry_at}: {message}"
        );
        Settlement::Retry {
            retry_at,
            notice: Event::TaskRetrying {
                task_id: item.task_id,
                attempt: item.attempt,
                message,
                retry_at,
            },
        }
    }

    /// Commits how a work item ended and wakes its instance. A storage failure is retried
    /// with back-off for a while, so that a passing fault (a full disk, a lock held by
    /// another program) does not leave the item leased to this process until a restart.
    async fn settle(self: &Arc<Self>, item: &WorkItem, settlement: Settlement) {
        // A final outcome goes to a hot instance in memory: the episode that consumes it
        // records it, with no transaction of its own. Not for a recovered item: it is
        // recorded as running, and only a durable settlement tells a later start that it
        // finished rather than took the host down.
        let settlement = match settlement {
            Settlement::Complete { completion } if !item.recovered => {
                let delivery = Delivery {
                    item: item.clone(),
                    completion,
                };
                match self.deliver(delivery) {
                    None => return,
                    Some(refused) => Settlement::Complete {
                        completion: refused.completion,
                    },
                }
            }
            retry => retry,
        };
        let retry = matches!(settlement, Settlement::Retry { .. });
        let mut pause = Duration::from_millis(50);
        for attempt in 1..=SETTLE_RETRIES {
            match self
                .store
                .settle_work(item, &self.owner, settlement.clone(), Utc::now())
                .await
            {
                Ok(true) => {
                    tracing::debug!(instance = %item.instance_id, task = item.task_id, "outcome recorded");
                    self.wake(&item.instance_id);
                    if retry {
                        self.work_ready.notify_one();
                    }
                    return;
                }
                Ok(false) => {
                    tracing::debug!(instance = %item.instance_id, task = item.task_id, "settlement dropped: the lease was lost");
                    return;
                }
                Err(error) => {
                    tracing::error!(instance = %item.instance_id, task = item.task_id, attempt, "cannot record the outcome of {}: {error}", item.name);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// Counts a work item as not settled yet, until dropped.
struct Settling<'a>(&'a tokio::sync::watch::Sender<usize>);

impl<'a> Settling<'a> {
    fn new(settling: &'a tokio::sync::watch::Sender<usize>) -> Self {
        settling.send_modify(|count| *count += 1);
        Self(settling)
    }
}

impl Drop for Settling<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|count| *count -= 1);
    }
}

/// Unregisters a running work item however its task ends (cancelled, panicked, done).
struct Registered<'a> {
    runtime: &'a Runtime,
    item: &'a WorkItem,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut running = lock(&self.runtime.running);
        if let Some(items) = running.get_mut(&self.item.instance_id) {
            items.remove(&self.item.id);
            if items.is_empty() {
                running.remove(&self.item.instance_id);
                drop(running);
                self.runtime.let_go.send_modify(|count| *count += 1);
            }
        }
    }
}
