//! Runs orchestrator components: one hot wasm instance per orchestration instance,
//! replayed from its history, suspended inside `when-all` while its activities run.
//!
//! The guest drives the episode loop itself. When it waits on tasks that have not
//! finished, the `context` import commits the episode (new events, the work items they
//! cause, and the inbox messages consumed) in one transaction, then sleeps until
//! completions arrive in the instance's inbox and opens the next episode with all of them
//! at once. So a fan-in of N results costs O(N) work and no replays while the instance
//! stays hot; an instance evicted after waiting idle is replayed on its next message.

pub mod handover;
mod imports;
mod inbox;
mod sandbox;

use crate::bindings::orchestration::{
    Orchestration, OrchestrationPre, exports::weft::orchestration::orchestrator::RunError,
};
use crate::engine;
use crate::guest_output::StderrTail;
use crate::limits::{self, Budget, GuestLimits, HasBudget};
use crate::registry::{Provider, Registry};
use crate::replay::{self, Replay};
use crate::store::{self, Instance, RuntimeStatus, Store};
use chrono::Utc;
use sandbox::ReplayedClock;
use std::sync::Arc;
use tokio::sync::{Notify, mpsc};
use wasmtime::Engine;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Why an orchestration component could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{origin} is not an orchestration component (world weft:orchestration/orchestration): {reason}"
    )]
    WrongWorld { origin: String, reason: String },
    #[error("{origin} cannot start (its start function failed): {reason}")]
    Start { origin: String, reason: String },
    #[error("{origin}: listing its orchestrators failed: {reason}")]
    Names { origin: String, reason: String },
}

/// Why an instance could not be run to its next resting point. Store failures leave the
/// instance as it was committed, to be resumed later; they never fail it.
#[derive(Debug, thiserror::Error)]
pub enum RunFailure {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("wasm engine failure: {0}")]
    Engine(String),
}

/// An activity's outcome handed to a hot instance in memory. The episode that consumes
/// it records it and deletes its work item in one transaction, so a result is never
/// recorded twice; if the host dies first, the activity runs again.
#[derive(Debug)]
pub struct Delivery {
    pub item: store::WorkItem,
    pub completion: store::Event,
}

/// Hands the work items that an episode leases as it enqueues them straight to this
/// process's activity dispatcher, so that they start without a claim round trip.
#[derive(Clone)]
pub struct Eager {
    pub owner: String,
    pub items: mpsc::UnboundedSender<store::WorkItem>,
}

/// Does something for the instance of the given id: wakes it (one that a checkpoint
/// created or posted a message to), or cancels its activities.
pub type ForInstance = Arc<dyn Fn(&str) + Send + Sync>;

/// The most work items one episode leases eagerly; the rest wait to be claimed.
const EAGER_MAX: usize = 256;
/// How long eagerly leased work items stay leased (as for claimed ones).
const EAGER_LEASE: chrono::Duration = chrono::Duration::minutes(5);

/// A loaded orchestration component, ready to instantiate.
pub struct OrchestratorComponent {
    pre: OrchestrationPre<OrchestrationState>,
    /// Where it was loaded from, for messages.
    origin: String,
    names: Vec<String>,
}

impl OrchestratorComponent {
    /// Links `component` against the sandbox and asks it which orchestrators it provides.
    pub async fn new(engine: &Engine, component: &Component, origin: &str) -> Result<Self, Error> {
        let wrong_world = |e: wasmtime::Error| Error::WrongWorld {
            origin: origin.to_string(),
            reason: format!("{e:#}"),
        };
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wrong_world)?;
        sandbox::forbid_sleep(&mut linker).map_err(wrong_world)?;
        Orchestration::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(wrong_world)?;
        let pre = linker.instantiate_pre(component).map_err(wrong_world)?;
        let pre = OrchestrationPre::new(pre).map_err(wrong_world)?;

        let mut store = wasmtime::Store::new(engine, OrchestrationState::probe());
        limits::apply(&mut store);
        let names_failed = |e: wasmtime::Error| Error::Names {
            origin: origin.to_string(),
            reason: format!("{e:#}"),
        };
        let instance = pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| Error::Start {
                origin: origin.to_string(),
                reason: engine::describe_trap(&e),
            })?;
        let names = instance
            .weft_orchestration_orchestrator()
            .call_names(&mut store)
            .await
            .map_err(names_failed)?;
        Ok(Self {
            pre,
            origin: origin.to_string(),
            names,
        })
    }
}

impl Provider for OrchestratorComponent {
    fn origin(&self) -> &str {
        &self.origin
    }

    fn names(&self) -> &[String] {
        &self.names
    }
}

/// The host side of one orchestrator execution: its replay state, where its completions
/// arrive, and its deterministic WASI.
pub struct OrchestrationState {
    instance_id: String,
    input: String,
    replay: Replay,
    /// Inbox messages consumed by the episode in progress.
    consumed: Vec<i64>,
    /// The id of the last inbox message read: each read asks only for newer ones.
    inbox_cursor: i64,
    /// Completions read while the instance was suspended, delivered once it resumes; at
    /// most [`inbox::HELD_MAX`].
    held: Vec<store::InboxMessage>,
    /// The [`store::Event::weight`] of `held`.
    held_bytes: usize,
    /// Set while messages after `inbox_cursor` were left in the inbox because `held` was
    /// full: the id of the last message looked at for a resume or terminate.
    scan_cursor: Option<i64>,
    /// Whether the inbox may hold messages not read yet: set when the instance is woken
    /// (every writer of the inbox wakes it), cleared once everything is read, so that an
    /// episode opened by a result handed over in memory reads no database.
    inbox_dirty: bool,
    /// Outcomes handed over in memory by this process's dispatcher.
    deliveries: Option<handover::Receiver>,
    /// Deliveries received while waiting, not yet taken into an episode.
    arrived: Vec<Delivery>,
    /// Work items (and their task ids) whose delivered outcomes the episode in progress
    /// records.
    settled: Vec<(i64, u32)>,
    /// Until when the episode in progress may keep taking completions while the code
    /// waits (see [`inbox::GATHER`]); set by the first look, cleared by the checkpoint.
    gather_until: Option<tokio::time::Instant>,
    /// The bytes of the outcomes the episode in progress has gathered so far.
    gathered_bytes: usize,
    eager: Option<Eager>,
    wake_instance: Option<ForInstance>,
    custom_status: Option<String>,
    /// The input of the next execution, once the guest asked to continue as new.
    continued: Option<String>,
    guids: u64,
    store: Option<Arc<dyn Store>>,
    wake: Arc<Notify>,
    work_ready: Arc<Notify>,
    /// Notified when an episode stores a timer, so that the timer service looks again.
    timers_changed: Arc<Notify>,
    clock: ReplayedClock,
    wasi: WasiCtx,
    table: ResourceTable,
    budget: Budget,
    /// What the guest last wrote to stderr.
    stderr: StderrTail,
    evict_after: Option<std::time::Duration>,
}

impl OrchestrationState {
    /// A state for calls that must not touch `context` (listing names).
    fn probe() -> Self {
        let clock = ReplayedClock::default();
        Self {
            instance_id: String::new(),
            input: "null".to_string(),
            replay: Replay::new(&[])
                .unwrap_or_else(|_| unreachable!("an empty history is well-formed")),
            consumed: Vec::new(),
            inbox_cursor: 0,
            held: Vec::new(),
            held_bytes: 0,
            scan_cursor: None,
            inbox_dirty: true,
            deliveries: None,
            arrived: Vec::new(),
            settled: Vec::new(),
            gather_until: None,
            gathered_bytes: 0,
            eager: None,
            wake_instance: None,
            custom_status: None,
            continued: None,
            guids: 0,
            store: None,
            wake: Arc::new(Notify::new()),
            work_ready: Arc::new(Notify::new()),
            timers_changed: Arc::new(Notify::new()),
            wasi: sandbox::wasi_ctx("", &clock, &StderrTail::default()),
            stderr: StderrTail::default(),
            evict_after: None,
            clock,
            table: ResourceTable::new(),
            budget: Budget::new(GuestLimits::default()),
        }
    }

    /// Moves the WASI clocks to the replayed "now".
    fn sync_clock(&self) {
        if let Some(now) = self.replay.now() {
            self.clock.set(now.timestamp_millis());
        }
    }

    /// Commits the episode in progress with `status`.
    async fn checkpoint(
        &mut self,
        status: RuntimeStatus,
        output: Option<&str>,
    ) -> Result<(), store::Error> {
        let store = self.store_handle()?;
        self.gather_until = None;
        self.gathered_bytes = 0;
        let (first_seq, events) = self.replay.take_pending();
        if events.is_empty()
            && self.consumed.is_empty()
            && self.settled.is_empty()
            && !status.is_terminal()
        {
            return Ok(());
        }
        let scheduled = events
            .iter()
            .filter(|(_, event)| matches!(event, store::Event::TaskScheduled { .. }))
            .count();
        let timers = events
            .iter()
            .any(|(_, event)| matches!(event, store::Event::TimerCreated { .. }));
        let now = Utc::now();
        let lease = self.eager.as_ref().map(|eager| store::Lease {
            owner: eager.owner.clone(),
            until: now + EAGER_LEASE,
            max: EAGER_MAX,
        });
        let committed = store
            .checkpoint(store::Checkpoint {
                consumed: std::mem::take(&mut self.consumed),
                settled: self.settled.iter().map(|(item, _)| *item).collect(),
                lease,
                output: output.map(str::to_string),
                custom_status: self.custom_status.clone(),
                ..store::Checkpoint::new(&self.instance_id, first_seq, events, status, now)
            })
            .await?;
        self.wake_others(&committed.woken);
        let leased = committed.leased;
        for (_, task) in std::mem::take(&mut self.settled) {
            tracing::debug!(instance = %self.instance_id, task, "outcome recorded");
        }
        let handed = leased.len();
        if let Some(eager) = &self.eager {
            for item in leased {
                // A dispatcher that is gone leaves the item leased until the next start.
                let _ = eager.items.send(item);
            }
        }
        if scheduled > handed {
            self.work_ready.notify_one();
        }
        if timers && !status.is_terminal() {
            self.timers_changed.notify_one();
        }
        Ok(())
    }

    /// Ends the execution as Failed with `message`; returns the status and output to record.
    fn fail(&mut self, message: String) -> (RuntimeStatus, String) {
        tracing::info!(instance = %self.instance_id, "orchestration failed: {message}");
        let output = json_string(&message);
        self.replay.fail_or_complete(Err(message));
        (RuntimeStatus::Failed, output)
    }

    fn wake_others(&self, woken: &[String]) {
        if let Some(wake) = &self.wake_instance {
            for id in woken {
                wake(id);
            }
        }
    }

    /// Ends this execution and starts the instance over with `input` (see
    /// [`store::ContinueAsNew`]): what the last episode scheduled is abandoned, the events
    /// raised and not taken are carried over.
    async fn continue_as_new(&mut self, input: String) -> Result<(), store::Error> {
        let store = self.store_handle()?;
        let (first_seq, _abandoned) = self.replay.take_pending();
        let next = store::ContinueAsNew {
            input,
            first_task: self.replay.next_task(),
            carried: self.replay.untaken_events(),
        };
        let committed = store
            .checkpoint(store::Checkpoint {
                consumed: std::mem::take(&mut self.consumed),
                settled: std::mem::take(&mut self.settled)
                    .into_iter()
                    .map(|(item, _)| item)
                    .collect(),
                custom_status: self.custom_status.clone(),
                continue_as_new: Some(next),
                ..store::Checkpoint::new(
                    &self.instance_id,
                    first_seq,
                    Vec::new(),
                    RuntimeStatus::Running,
                    Utc::now(),
                )
            })
            .await?;
        self.wake_others(&committed.woken);
        Ok(())
    }

    /// The status to record while the instance has not ended.
    fn live_status(&self) -> RuntimeStatus {
        if self.replay.is_suspended() {
            RuntimeStatus::Suspended
        } else {
            RuntimeStatus::Running
        }
    }

    fn store_handle(&self) -> Result<Arc<dyn Store>, store::Error> {
        self.store
            .clone()
            .ok_or_else(|| store::Error::Corrupt("no store".to_string()))
    }
}

/// A client terminated the instance while its orchestrator waited; unwinds the guest.
#[derive(Debug, thiserror::Error)]
#[error("terminated: {0}")]
pub(crate) struct Terminated(pub String);

/// The instance waited longer than the idle time; unwinds the guest so that the wasm
/// instance and its slot are freed. Its state is all in the history.
#[derive(Debug, thiserror::Error)]
#[error("evicted while idle")]
pub(crate) struct Evicted;

impl HasBudget for OrchestrationState {
    fn budget(&mut self) -> &mut Budget {
        &mut self.budget
    }
}

impl WasiView for OrchestrationState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Everything an instance run needs from the runtime.
pub struct InstanceEnv {
    pub engine: Engine,
    pub store: Arc<dyn Store>,
    pub wake: Arc<Notify>,
    /// Notified when an episode enqueues activity work.
    pub work_ready: Arc<Notify>,
    /// Notified when an episode stores a durable timer.
    pub timers_changed: Arc<Notify>,
    pub limits: GuestLimits,
    /// Evict the instance after waiting this long; `None` keeps it hot until it ends.
    pub evict_after: Option<std::time::Duration>,
    /// Where this process's dispatcher hands outcomes to the instance.
    /// (Taken by each execution in turn.)
    pub deliveries: Option<handover::Receiver>,
    /// Where the instance hands eagerly leased work items to the dispatcher.
    pub eager: Option<Eager>,
    /// Wakes the instances that its checkpoints start or post messages to.
    pub wake_instance: Option<ForInstance>,
    /// Cancels the running activities of an instance whose execution continued as new:
    /// their work items went with the old execution, so nothing would take their results.
    pub abandon_activities: Option<ForInstance>,
}

/// How one execution of an instance stopped.
enum Execution {
    /// Ended, or resting (evicted while idle, suspended), with this status.
    Rested(RuntimeStatus),
    /// It continued as new: the next execution is stored and runs at once.
    ContinuedAsNew,
}

/// Runs `instance`, replaying its history first, until it ends or is evicted while idle
/// (each continue-as-new runs the next execution in turn). Returns its status then:
/// terminal if it ended.
pub async fn run_instance(
    env: InstanceEnv,
    registry: &Registry<OrchestratorComponent>,
    instance: &Instance,
) -> Result<RuntimeStatus, RunFailure> {
    let mut env = env;
    let mut instance = instance.clone();
    loop {
        match run_execution(&mut env, registry, &instance).await? {
            Execution::Rested(status) => return Ok(status),
            Execution::ContinuedAsNew => {
                if let Some(abandon) = &env.abandon_activities {
                    abandon(&instance.id);
                }
                // Let other instances have the thread between executions of a loop
                // that never waits.
                tokio::task::yield_now().await;
                instance = env
                    .store
                    .instance(&instance.id)
                    .await?
                    .ok_or_else(|| store::Error::UnknownInstance(instance.id.clone()))?;
            }
        }
    }
}

/// Runs one execution of `instance`: see [`run_instance`].
async fn run_execution(
    env: &mut InstanceEnv,
    registry: &Registry<OrchestratorComponent>,
    instance: &Instance,
) -> Result<Execution, RunFailure> {
    let history = env.store.history(&instance.id).await?;
    let replayed = Replay::new(&history);
    // The replay state keeps what it needs; the events themselves go now, not when the
    // execution ends.
    drop(history);
    let replay = match replayed {
        Ok(replay) => replay,
        Err(error) => {
            // The instance cannot be replayed; record why without touching its history.
            tracing::error!(instance = %instance.id, "{error}");
            let failed = RuntimeStatus::Failed;
            let woken =
                end_without_replay(&*env.store, instance, failed, &error.to_string()).await?;
            if let Some(wake) = &env.wake_instance {
                woken.iter().for_each(|id| wake(id));
            }
            return Ok(Execution::Rested(failed));
        }
    };
    if replay.is_finished() {
        return Ok(Execution::Rested(instance.status));
    }
    let (clock, stderr) = (ReplayedClock::default(), StderrTail::default());
    let mut state = OrchestrationState {
        instance_id: instance.id.clone(),
        input: instance.input.clone(),
        replay,
        custom_status: instance.custom_status.clone(),
        store: Some(env.store.clone()),
        wake: env.wake.clone(),
        work_ready: env.work_ready.clone(),
        timers_changed: env.timers_changed.clone(),
        wasi: sandbox::wasi_ctx(&instance.id, &clock, &stderr),
        clock,
        stderr,
        budget: Budget::new(env.limits),
        evict_after: env.evict_after,
        deliveries: env.deliveries.take(),
        eager: env.eager.clone(),
        wake_instance: env.wake_instance.clone(),
        ..OrchestrationState::probe()
    };
    if !state.take_inbox().await? {
        state.replay.begin_episode(Utc::now(), []);
    }
    if state.replay.is_suspended() && state.replay.termination().is_none() {
        // Suspended before it could run: record that, and run nothing until resumed.
        state.checkpoint(RuntimeStatus::Suspended, None).await?;
        if !state.next_episode().await? {
            return Ok(Execution::Rested(RuntimeStatus::Suspended));
        }
    }
    state.sync_clock();

    let ended = match (state.replay.termination(), registry.get(&instance.name)) {
        (Some(reason), _) => Ended::Terminated(reason.to_string()),
        (None, None) => Ended::Failed(format!(
            "unknown orchestrator '{}'; known orchestrators: {}",
            instance.name,
            registry.known()
        )),
        (None, Some(component)) => {
            let mut wasm = wasmtime::Store::new(&env.engine, state);
            limits::apply(&mut wasm);
            // A guest that cannot even start (initial memory over the limit, a trapping
            // start function) fails its instance: that is the guest's doing, and
            // retrying on every start would not change it.
            let result = match component.pre.instantiate_async(&mut wasm).await {
                Ok(bindings) => {
                    bindings
                        .weft_orchestration_orchestrator()
                        .call_run(&mut wasm, &instance.name)
                        .await
                }
                Err(error) => Ok(Err(RunError::Failed(
                    match limits::exceeded(&error, env.limits.memory) {
                        Some(exceeded) => format!("the orchestrator cannot start: it {exceeded}"),
                        None => format!(
                            "the orchestrator cannot start: {}",
                            engine::describe_trap(&error)
                        ),
                    },
                ))),
            };
            state = wasm.into_data();
            match result {
                // Its return value is ignored: the next execution starts instead.
                Ok(Ok(_)) if state.continued.is_some() => {
                    Ended::ContinuedAsNew(state.continued.take().unwrap_or_default())
                }
                Ok(Ok(output)) => match check_output(&env.limits, &output) {
                    Ok(()) => Ended::Completed(output),
                    Err(message) => Ended::Failed(message),
                },
                Ok(Err(error)) => Ended::Failed(describe_run_error(&instance.name, error)),
                Err(trap) if trap.downcast_ref::<Evicted>().is_some() => {
                    tracing::info!(instance = %instance.id, "evicted while idle; the next message replays it");
                    return Ok(Execution::Rested(state.live_status()));
                }
                Err(trap) => describe_failure(&trap, &env.limits, &state.stderr)?,
            }
        }
    };
    let (status, output) = match ended {
        Ended::Completed(output) => match state.replay.complete(Ok(output.clone())) {
            Ok(()) => (RuntimeStatus::Completed, output),
            Err(nondeterminism) => state.fail(nondeterminism.to_string()),
        },
        Ended::ContinuedAsNew(input) => match state.replay.complete(Ok("null".to_string())) {
            Ok(()) => {
                state.continue_as_new(input).await?;
                tracing::debug!(instance = %instance.id, "continued as new");
                env.deliveries = state.deliveries.take();
                return Ok(Execution::ContinuedAsNew);
            }
            Err(nondeterminism) => state.fail(nondeterminism.to_string()),
        },
        Ended::Failed(message) => state.fail(message),
        Ended::Terminated(reason) => {
            state.replay.terminate(&reason);
            (RuntimeStatus::Terminated, json_string(&reason))
        }
    };
    state.checkpoint(status, Some(&output)).await?;
    Ok(Execution::Rested(status))
}

/// How an execution ended.
enum Ended {
    /// With this output JSON (not yet checked against the history).
    Completed(String),
    /// By asking to start over with this input.
    ContinuedAsNew(String),
    Failed(String),
    Terminated(String),
}

fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// The orchestrator's output must be JSON within the payload limit.
fn check_output(limits: &GuestLimits, output: &str) -> Result<(), String> {
    limits
        .check_payload(|| "the orchestrator's output".to_string(), output)
        .map_err(|e| e.to_string())?;
    serde_json::from_str::<serde::de::IgnoredAny>(output)
        .map(drop)
        .map_err(|e| format!("the orchestrator returned invalid JSON: {e}"))
}

/// Turns a trap out of the orchestrator into how the instance ends, or into a host
/// failure that must leave the instance as committed.
fn describe_failure(
    trap: &wasmtime::Error,
    limits: &GuestLimits,
    stderr: &StderrTail,
) -> Result<Ended, RunFailure> {
    if let Some(store_error) = trap.downcast_ref::<store::Error>() {
        return Err(RunFailure::Engine(format!(
            "storage failed during the run: {store_error}"
        )));
    }
    if let Some(Terminated(reason)) = trap.downcast_ref::<Terminated>() {
        return Ok(Ended::Terminated(reason.clone()));
    }
    let message = if let Some(error) = trap.downcast_ref::<replay::Error>() {
        error.to_string()
    } else if let Some(error) = trap.downcast_ref::<limits::PayloadTooLarge>() {
        error.to_string()
    } else if let Some(error) = trap.downcast_ref::<limits::HistoryTooLarge>() {
        error.to_string()
    } else if let Some(exceeded) = limits::exceeded(trap, limits.memory) {
        format!("orchestrator {exceeded}")
    } else {
        stderr.describe(format!(
            "the orchestrator trapped: {}",
            engine::describe_trap(trap)
        ))
    };
    Ok(Ended::Failed(message))
}

/// Ends an instance without running its orchestrator, appending only the final event:
/// `ExecutionTerminated` for [`RuntimeStatus::Terminated`], else `ExecutionFailed`. Used
/// when the history cannot be replayed, or no task here can run the instance. Returns
/// the other instances to wake (see [`store::Committed::woken`]).
pub(crate) async fn end_without_replay(
    store: &dyn Store,
    instance: &Instance,
    status: RuntimeStatus,
    message: &str,
) -> Result<Vec<String>, store::Error> {
    let first_seq = store.history_len(&instance.id).await?;
    let event = match status {
        RuntimeStatus::Terminated => store::Event::ExecutionTerminated {
            reason: message.to_string(),
        },
        _ => store::Event::ExecutionFailed {
            message: message.to_string(),
        },
    };
    let now = Utc::now();
    let committed = store
        .checkpoint(store::Checkpoint {
            output: Some(json_string(message)),
            custom_status: instance.custom_status.clone(),
            ..store::Checkpoint::new(&instance.id, first_seq, vec![(now, event)], status, now)
        })
        .await?;
    Ok(committed.woken)
}

fn describe_run_error(name: &str, error: RunError) -> String {
    match error {
        RunError::UnknownName(known) => {
            format!(
                "unknown orchestrator '{name}'; this component provides: {}",
                known.join(", ")
            )
        }
        RunError::BadInput(message) => {
            format!("bad input: {}", limits::truncate_message(message))
        }
        RunError::Failed(message) => limits::truncate_message(message),
    }
}
