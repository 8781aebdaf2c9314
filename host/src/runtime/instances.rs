//! Instance tasks and control: one task per instance that is running here, woken when its
//! inbox has news; and the client requests (terminate, suspend, resume) that reach an
//! instance through its inbox.

use super::{Error, Runtime, SETTLE_RETRIES, lock};
use crate::orchestrator::{self, Delivery, InstanceEnv};
use crate::store::{self, Event, RuntimeStatus};
use chrono::Utc;
use futures::FutureExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit};

/// How many times in a row an instance whose task failed for the host's reasons is run
/// again in process (after 0.5, 1, 2, 4 and 8 s) before it is reported as failed to run.
const HOST_RETRIES: u32 = 5;

/// What the runtime keeps of an instance that has a task here.
pub(super) struct Hot {
    wake: Arc<Notify>,
    deliveries: orchestrator::handover::Sender,
}

impl Runtime {
    /// Asks a running instance to end now, as Terminated.
    pub async fn terminate(self: &Arc<Self>, id: &str, reason: &str) -> Result<(), Error> {
        let event = Event::ExecutionTerminated {
            reason: reason.to_string(),
        };
        self.control(id, event).await
    }

    /// Pauses an instance: it records completions only once resumed.
    pub async fn suspend(self: &Arc<Self>, id: &str, reason: &str) -> Result<(), Error> {
        let event = Event::ExecutionSuspended {
            reason: reason.to_string(),
        };
        self.control(id, event).await
    }

    /// Lets a suspended instance go on.
    pub async fn resume(self: &Arc<Self>, id: &str, reason: &str) -> Result<(), Error> {
        let event = Event::ExecutionResumed {
            reason: reason.to_string(),
        };
        self.control(id, event).await
    }

    /// Raises the external event `name` with `data` (JSON) on instance `id`: it reaches
    /// the instance through its inbox, and waits there until a wait takes it.
    pub async fn raise_event(
        self: &Arc<Self>,
        id: &str,
        name: &str,
        data: &str,
    ) -> Result<(), Error> {
        let event = event_to_raise(&self.config.guest_limits, name, data)?;
        self.control(id, event).await
    }

    /// Posts a control message (`ExecutionTerminated`, `ExecutionSuspended` or
    /// `ExecutionResumed`) and wakes the instance, starting a task for it if none runs
    /// (an evicted or host-failed instance is replayed to read it).
    pub async fn control(self: &Arc<Self>, id: &str, event: Event) -> Result<(), Error> {
        let instance = self
            .store
            .instance(id)
            .await?
            .ok_or_else(|| store::Error::UnknownInstance(id.to_string()))?;
        if instance.status.is_terminal() {
            return Err(Error::Ended {
                id: id.to_string(),
                status: instance.status,
            });
        }
        // No task here can read a terminate message if the instance's orchestrator is not
        // loaded (a task for it exits without reading or writing): end it directly.
        if let (None, Event::ExecutionTerminated { reason }) =
            (self.orchestrators.get(&instance.name), &event)
        {
            let woken = orchestrator::end_without_replay(
                &*self.store,
                &instance,
                RuntimeStatus::Terminated,
                reason,
            )
            .await?;
            for other in woken {
                self.wake(&other);
            }
            self.cancel_activities(id);
            self.note_end(id);
            return Ok(());
        }
        match self.store.post_message(id, &event, Utc::now()).await {
            Ok(()) => {}
            Err(store::Error::Ended { id, status }) => return Err(Error::Ended { id, status }),
            Err(other) => return Err(other.into()),
        }
        self.wake(id);
        Ok(())
    }

    /// Releases the leases of an instance's work items, retrying with back-off through a
    /// passing storage fault (a full disk, a lock held by another program): a lease left
    /// to this process would keep its item from ever running again until a restart, and
    /// the instance replayed after a host failure would wait for it forever.
    async fn release_leases_patiently(&self, id: &str) {
        let mut pause = Duration::from_millis(50);
        for attempt in 1..=SETTLE_RETRIES {
            match self.store.release_instance_leases(id).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::error!(instance = %id, attempt, "cannot release its leases: {error}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Runs instance `id` here, unless a task here already does: at once if an
    /// orchestration slot is free, else once one is (see [`Queued`]).
    pub(super) fn spawn_instance(self: &Arc<Self>, id: String) {
        if lock(&self.hot).contains_key(&id) {
            return;
        }
        // A failure of an earlier instance with this id says nothing about this run.
        lock(&self.host_failures).remove(&id);
        lock(&self.queued).push(id);
        self.start_queued();
    }

    /// Starts queued instances while orchestration slots are free. Whoever queues an
    /// instance or frees a slot calls it, so no instance waits in the queue while a slot
    /// is free.
    fn start_queued(self: &Arc<Self>) {
        loop {
            // The queue is looked at before a slot is taken, under its lock: a slot taken
            // for an empty queue and given back would miss an instance queued meanwhile.
            let (id, slot) = {
                let mut queued = lock(&self.queued);
                if queued.order.is_empty() {
                    return;
                }
                let Ok(slot) = self.orchestration_slots.clone().try_acquire_owned() else {
                    return;
                };
                let Some(id) = queued.pop() else {
                    return;
                };
                (id, slot)
            };
            self.start_instance(id, slot);
        }
    }

    /// Starts a task that runs instance `id` in `slot`.
    fn start_instance(self: &Arc<Self>, id: String, slot: OwnedSemaphorePermit) {
        let (wake, deliveries) = {
            let mut hot = lock(&self.hot);
            if hot.contains_key(&id) {
                return;
            }
            let wake = Arc::new(Notify::new());
            let (sender, deliveries) = orchestrator::handover::channel(&self.handover);
            hot.insert(
                id.clone(),
                Hot {
                    wake: wake.clone(),
                    deliveries: sender,
                },
            );
            (wake, deliveries)
        };
        let runtime = self.clone();
        tokio::spawn(async move {
            let result = runtime.run_instance(&id, wake.clone(), deliveries).await;
            drop(slot);
            lock(&runtime.hot).remove(&id);
            runtime.start_queued();
            // Outcomes handed to a task that did not end its instance may be lost with
            // it (an instance that evicts itself first drains them): run them again.
            if !matches!(result, Ok(Some(status)) if status.is_terminal() || status == RuntimeStatus::Running || status == RuntimeStatus::Suspended)
            {
                runtime.release_leases_patiently(&id).await;
            }
            if result.is_ok() {
                lock(&runtime.host_retries).remove(&id);
            }
            match result {
                // A passing fault (a full disk, a lock held by another program): run the
                // instance again after a pause, a bounded number of times, before telling
                // whoever waits for it.
                Err(reason) => {
                    let retries = {
                        let mut retries = lock(&runtime.host_retries);
                        let count = retries.entry(id.clone()).or_insert(0);
                        *count += 1;
                        *count
                    };
                    if retries <= HOST_RETRIES {
                        let pause = Duration::from_millis(250 << retries);
                        tracing::warn!(instance = %id, "{reason}; running it again in {pause:?}");
                        let (again, again_id) = (runtime.clone(), id.clone());
                        tokio::spawn(async move {
                            tokio::time::sleep(pause).await;
                            again.spawn_instance(again_id);
                        });
                    } else {
                        tracing::error!(instance = %id, "{reason}");
                        lock(&runtime.host_retries).remove(&id);
                        lock(&runtime.host_failures).insert(id.clone(), reason);
                    }
                }
                // The instance ended, but its id was reused by a new instance while this
                // task still held it: run the new one.
                Ok(Some(status)) if status.is_terminal() => {
                    runtime.cancel_activities(&id);
                    if matches!(runtime.store.instance(&id).await, Ok(Some(now)) if !now.status.is_terminal())
                    {
                        runtime.spawn_instance(id.clone());
                    }
                }
                // Evicted while idle. A message that came after it stopped listening left
                // a permit; later ones find it gone and start it themselves.
                Ok(Some(_)) => {
                    if wake.notified().now_or_never().is_some() {
                        runtime.spawn_instance(id.clone());
                    }
                }
                Ok(None) => {}
            }
            runtime.note_end(&id);
        });
    }

    /// Runs an instance until it ends; `None` if it cannot run in this process.
    async fn run_instance(
        self: &Arc<Self>,
        id: &str,
        wake: Arc<Notify>,
        deliveries: orchestrator::handover::Receiver,
    ) -> Result<Option<RuntimeStatus>, String> {
        let instance = match self.store.instance(id).await {
            Ok(Some(instance)) => instance,
            Ok(None) => return Err(format!("instance {id} vanished")),
            Err(error) => return Err(error.to_string()),
        };
        // A sub-orchestration of an orchestrator that no loaded component provides fails,
        // and its parent learns why; an instance a client started waits for a host with it.
        if self.orchestrators.get(&instance.name).is_none() && instance.parent.is_some() {
            let message = format!(
                "unknown orchestrator '{}'; known orchestrators: {}",
                instance.name,
                self.orchestrators.known()
            );
            let failed = RuntimeStatus::Failed;
            let woken = orchestrator::end_without_replay(&*self.store, &instance, failed, &message)
                .await
                .map_err(|e| e.to_string())?;
            for other in woken {
                self.wake(&other);
            }
            return Ok(Some(failed));
        }
        if self.orchestrators.get(&instance.name).is_none() {
            tracing::warn!(
                instance = %id,
                "orchestrator {} is not loaded; the instance stays {} until a host with it runs",
                instance.name,
                instance.status.as_str()
            );
            return Ok(None);
        }
        let env = InstanceEnv {
            engine: self.engine.clone(),
            store: self.store.clone(),
            wake,
            work_ready: self.work_ready.clone(),
            timers_changed: self.timers_changed.clone(),
            limits: self.config.guest_limits,
            evict_after: self.config.evict_after,
            deliveries: Some(deliveries),
            eager: Some(self.eager.clone()),
            wake_instance: Some(self.waker()),
            abandon_activities: Some(self.abandoner()),
        };
        let status = orchestrator::run_instance(env, &self.orchestrators, &instance)
            .await
            .map_err(|e| e.to_string())?;
        tracing::debug!(instance = %id, "instance ended {}", status.as_str());
        Ok(Some(status))
    }

    /// A handle that wakes instances (see [`Runtime::wake`]) without keeping the runtime
    /// alive.
    fn waker(self: &Arc<Self>) -> orchestrator::ForInstance {
        let runtime = Arc::downgrade(self);
        Arc::new(move |id: &str| {
            if let Some(runtime) = runtime.upgrade() {
                runtime.wake(id);
            }
        })
    }

    /// A handle that cancels an instance's running activities when its execution
    /// continues as new (see [`Runtime::cancel_activities`]), without keeping the
    /// runtime alive.
    fn abandoner(self: &Arc<Self>) -> orchestrator::ForInstance {
        let runtime = Arc::downgrade(self);
        Arc::new(move |id: &str| {
            if let Some(runtime) = runtime.upgrade() {
                runtime.cancel_activities(id);
            }
        })
    }

    /// Tells an instance that its inbox has news, starting it if it is not running here.
    pub(super) fn wake(self: &Arc<Self>, instance_id: &str) {
        let hot = lock(&self.hot);
        match hot.get(instance_id) {
            Some(hot) => hot.wake.notify_one(),
            None => {
                drop(hot);
                self.spawn_instance(instance_id.to_string());
            }
        }
    }
}

impl Runtime {
    /// Hands an activity's outcome to its instance in memory, if a task here runs it and
    /// takes deliveries; gives the delivery back otherwise.
    pub(super) fn deliver(&self, delivery: Delivery) -> Option<Delivery> {
        let hot = lock(&self.hot);
        match hot.get(&delivery.item.instance_id) {
            Some(hot) => hot.deliveries.send(delivery),
            None => Some(delivery),
        }
    }
}

/// The `EventRaised` message for event `name` with `data`, checked as a guest's payloads
/// are: a name of at most [`crate::limits::MAX_NAME`] bytes, JSON data within the payload
/// limit.
pub fn event_to_raise(
    limits: &crate::limits::GuestLimits,
    name: &str,
    data: &str,
) -> Result<Event, Error> {
    if name.is_empty() || name.len() > crate::limits::MAX_NAME {
        return Err(Error::BadEventName(name.chars().take(64).collect()));
    }
    limits.check_payload(|| format!("the data of event {name}"), data)?;
    serde_json::from_str::<serde::de::IgnoredAny>(data)
        .map_err(|e| Error::BadInput(e.to_string()))?;
    Ok(Event::EventRaised {
        name: name.to_string(),
        input: data.to_string(),
    })
}

/// The instances waiting for an orchestration slot, in the order they asked, each once.
/// An instance waits here, not as a task: a fan-out of many sub-orchestrations costs an
/// id each until a slot frees, and their messages wait in their (durable) inboxes.
#[derive(Default)]
pub(super) struct Queued {
    order: std::collections::VecDeque<String>,
    members: std::collections::HashSet<String>,
}

impl Queued {
    fn push(&mut self, id: String) {
        if self.members.insert(id.clone()) {
            self.order.push_back(id);
        }
    }

    fn pop(&mut self) -> Option<String> {
        let id = self.order.pop_front()?;
        self.members.remove(&id);
        Some(id)
    }
}
