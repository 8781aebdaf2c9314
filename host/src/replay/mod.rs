//! The pure orchestration state machine: history events and the guest's commands in, new
//! events out. No wasm, no SQLite, no clock: the worker around it does the I/O.
//!
//! An instance's history is a series of *episodes*. Each opens with `OrchestratorStarted`
//! (whose timestamp is the orchestration's "now" during that episode), then holds the
//! completions delivered in it and the commands the code issued until it blocked again.
//! Replaying means running the code from the start against that history: a command whose
//! number was already recorded must match the record (else [`NonDeterminism`]), and a
//! wait whose results are recorded returns them at once, moving "now" to the episode in
//! which the last of them arrived. The first command past the recorded ones is new work.

#[cfg(test)]
mod tests;

use crate::store::{Event, HistoryEvent, RetryPolicy};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};
use std::fmt;

/// The orchestrator did something other than what its history records: a code change
/// or a nondeterministic orchestrator. The instance cannot continue.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error(
    "NonDeterminism at task {task_id} (history sequence {seq}): the history records {recorded}, but the orchestrator now {now}"
)]
pub struct NonDeterminism {
    pub task_id: u32,
    pub seq: u64,
    pub recorded: String,
    pub now: String,
}

/// Why replay cannot go on.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    NonDeterminism(#[from] NonDeterminism),
    /// The guest passed a task handle it was never given.
    #[error("the orchestrator waited on task {0}, which it never scheduled")]
    UnknownTask(u32),
    /// The history itself is malformed.
    #[error("the history is malformed: {0}")]
    BadHistory(String),
    /// The instance has used every task number (continue-as-new keeps counting).
    #[error(
        "the orchestration has scheduled {} tasks, the most an instance can",
        u32::MAX
    )]
    TasksExhausted,
    /// A `when-all` would hand the guest more bytes than its memory may hold (a task
    /// listed many times counts each time).
    #[error(
        "when-all would return {} MiB of results, more than the orchestrator's memory limit of {} MiB",
        .bytes >> 20,
        .limit >> 20
    )]
    ResultsTooLarge { bytes: usize, limit: usize },
}

/// How a task ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Completed(String),
    Failed(String),
}

/// What a task is: the command that created it.
#[derive(Clone, Debug, PartialEq)]
enum Command {
    Activity {
        name: String,
        input: String,
        retry: Option<RetryPolicy>,
    },
    Timer {
        fire_at: DateTime<Utc>,
    },
    Event {
        name: String,
    },
    SubOrchestration {
        name: String,
        instance_id: String,
        input: String,
    },
}

impl Command {
    /// Whether the code issued the same command as the history records (a retry policy
    /// may change between versions without changing what the task is).
    fn same_as(&self, other: &Command) -> bool {
        match (self, other) {
            (
                Command::Activity { name, input, .. },
                Command::Activity {
                    name: other_name,
                    input: other_input,
                    ..
                },
            ) => name == other_name && input == other_input,
            (a, b) => a == b,
        }
    }

    /// The event that records this command as task `task_id`.
    fn event(&self, task_id: u32) -> Event {
        match self.clone() {
            Command::Activity { name, input, retry } => Event::TaskScheduled {
                task_id,
                name,
                input,
                retry,
            },
            Command::Timer { fire_at } => Event::TimerCreated { task_id, fire_at },
            Command::Event { name } => Event::EventWaitStarted { task_id, name },
            Command::SubOrchestration {
                name,
                instance_id,
                input,
            } => Event::SubOrchestrationScheduled {
                task_id,
                name,
                instance_id,
                input,
            },
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Activity { name, input, .. } => write!(f, "call-activity {name}({input})"),
            Command::Timer { fire_at } => write!(
                f,
                "create-timer(fire-at {})",
                fire_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            ),
            Command::Event { name } => write!(f, "wait-for-external-event({name})"),
            Command::SubOrchestration {
                name,
                instance_id,
                input,
            } => write!(
                f,
                "call-sub-orchestrator {name}({input}) as '{instance_id}'"
            ),
        }
    }
}

#[derive(Clone, Debug)]
struct Scheduled {
    command: Command,
    /// The history sequence number of the event that records it, if recorded.
    seq: Option<u64>,
}

impl fmt::Display for Scheduled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.command.fmt(f)
    }
}

#[derive(Clone, Debug)]
struct Completion {
    episode: usize,
    /// Position among all completions, in history order.
    order: usize,
    outcome: Outcome,
}

/// One orchestration instance's replay state.
#[derive(Clone, Debug)]
pub struct Replay {
    /// Events committed so far; the next event's sequence number.
    committed_len: u64,
    /// The number of this execution's first task (see `Event::ExecutionStarted`).
    base: u32,
    /// Every task scheduled, recorded or new; the index is the task id less `base`.
    scheduled: Vec<Scheduled>,
    /// How many of `scheduled` come from the history.
    recorded_tasks: usize,
    completions: HashMap<u32, Completion>,
    /// The start time of every episode, recorded and current.
    episodes: Vec<DateTime<Utc>>,
    committed_episodes: usize,
    current_episode: usize,
    next_task: u32,
    pending: Vec<(DateTime<Utc>, Event)>,
    finished: bool,
    /// A client suspended the instance: completions wait until it is resumed.
    suspended: bool,
    /// A client asked to terminate the instance, with this reason.
    termination: Option<String>,
    /// Bytes of names and inputs scheduled since the last checkpoint.
    pending_bytes: usize,
    /// The [`Event::weight`] of the whole history, committed and pending.
    history_bytes: usize,
    /// Tasks whose completion was recorded since a wait last looked: a wait that is
    /// already under way checks only these, so each episode costs what it delivers.
    fresh: Vec<u32>,
    /// Raised events that no wait has taken yet, by name, oldest first.
    buffered: HashMap<String, VecDeque<String>>,
    /// Event waits that no raised event has reached yet, by name, oldest first.
    waiting: HashMap<String, VecDeque<u32>>,
    /// Completions recorded so far, forgotten ones included: the next one's `order`.
    completions_seen: usize,
}

/// A `when-all` or `when-any` under way: the tasks it still waits for. It is built once
/// per wait (O(tasks)) and then only told of fresh completions (O(delivered)).
#[derive(Debug, Default)]
pub struct Wait {
    /// `None` until the first look.
    missing: Option<std::collections::HashSet<u32>>,
    /// Whether one of the tasks has finished.
    any_done: bool,
    /// The most bytes a `when-all` may return, if limited.
    max_bytes: Option<usize>,
}

impl Wait {
    /// A wait whose `when-all` returns at most `max_bytes` of results and task names:
    /// the host builds them before the guest can refuse them.
    pub fn limited(max_bytes: usize) -> Self {
        Self {
            max_bytes: Some(max_bytes),
            ..Self::default()
        }
    }
}

impl Replay {
    /// Rebuilds the state from an instance's committed history.
    pub fn new(history: &[HistoryEvent]) -> Result<Self, Error> {
        let mut replay = Replay {
            committed_len: 0,
            base: 0,
            scheduled: Vec::new(),
            recorded_tasks: 0,
            completions: HashMap::new(),
            episodes: Vec::new(),
            committed_episodes: 0,
            current_episode: 0,
            next_task: 0,
            pending: Vec::new(),
            finished: false,
            suspended: false,
            termination: None,
            fresh: Vec::new(),
            buffered: HashMap::new(),
            waiting: HashMap::new(),
            pending_bytes: 0,
            history_bytes: 0,
            completions_seen: 0,
        };
        for (index, event) in history.iter().enumerate() {
            if event.seq != index as u64 {
                return Err(Error::BadHistory(format!(
                    "sequence {} where {index} was expected",
                    event.seq
                )));
            }
            replay.apply(event.seq, event.timestamp, &event.event)?;
            replay.history_bytes += event.event.weight();
        }
        replay.committed_len = history.len() as u64;
        replay.recorded_tasks = replay.scheduled.len();
        replay.committed_episodes = replay.episodes.len();
        Ok(replay)
    }

    fn apply(&mut self, seq: u64, timestamp: DateTime<Utc>, event: &Event) -> Result<(), Error> {
        match event {
            Event::OrchestratorStarted => self.episodes.push(timestamp),
            Event::TaskScheduled {
                task_id,
                name,
                input,
                retry,
            } => self.record_command(
                seq,
                *task_id,
                Command::Activity {
                    name: name.clone(),
                    input: input.clone(),
                    retry: retry.clone(),
                },
            )?,
            Event::TimerCreated { task_id, fire_at } => {
                self.record_command(seq, *task_id, Command::Timer { fire_at: *fire_at })?
            }
            Event::EventWaitStarted { task_id, name } => {
                self.record_command(seq, *task_id, Command::Event { name: name.clone() })?
            }
            Event::SubOrchestrationScheduled {
                task_id,
                name,
                instance_id,
                input,
            } => self.record_command(
                seq,
                *task_id,
                Command::SubOrchestration {
                    name: name.clone(),
                    instance_id: instance_id.clone(),
                    input: input.clone(),
                },
            )?,
            Event::TaskCompleted { .. }
            | Event::TaskFailed { .. }
            | Event::TimerFired { .. }
            | Event::SubOrchestrationCompleted { .. }
            | Event::SubOrchestrationFailed { .. } => {
                self.record_completion(event);
            }
            Event::EventRaised { name, input } => self.raise(name, input),
            Event::ExecutionCompleted { .. } | Event::ExecutionFailed { .. } => {
                self.finished = true
            }
            Event::ExecutionSuspended { .. } => self.suspended = true,
            Event::ExecutionResumed { .. } => self.suspended = false,
            Event::ExecutionTerminated { .. } => self.finished = true,
            Event::ExecutionRewound { .. } => self.rewind(),
            Event::ExecutionStarted { first_task, .. } => {
                if seq != 0 {
                    return Err(Error::BadHistory(format!(
                        "ExecutionStarted at sequence {seq}"
                    )));
                }
                self.base = *first_task;
                self.next_task = *first_task;
            }
            Event::TaskRetrying { .. } => {}
        }
        Ok(())
    }

    /// Records a command read from the history as task `task_id`.
    fn record_command(&mut self, seq: u64, task_id: u32, command: Command) -> Result<(), Error> {
        if task_id.checked_sub(self.base) != Some(self.scheduled.len() as u32) {
            return Err(Error::BadHistory(format!(
                "task {task_id} scheduled out of order at sequence {seq}"
            )));
        }
        let name = match &command {
            Command::Event { name } => Some(name.clone()),
            _ => None,
        };
        self.scheduled.push(Scheduled {
            command,
            seq: Some(seq),
        });
        if let Some(name) = name {
            self.begin_event_wait(task_id, name);
        }
        Ok(())
    }

    /// A new wait for event `name` takes the oldest buffered one, or waits in line.
    fn begin_event_wait(&mut self, task_id: u32, name: String) {
        let taken = self.buffered.get_mut(&name).and_then(VecDeque::pop_front);
        match taken {
            Some(input) => {
                self.complete_task(task_id, Outcome::Completed(input));
            }
            None => self.waiting.entry(name).or_default().push_back(task_id),
        }
    }

    /// A raised event completes the oldest wait for its name, or is buffered.
    fn raise(&mut self, name: &str, input: &str) {
        let waiter = self.waiting.get_mut(name).and_then(VecDeque::pop_front);
        match waiter {
            Some(task_id) => {
                self.complete_task(task_id, Outcome::Completed(input.to_string()));
            }
            None => self
                .buffered
                .entry(name.to_string())
                .or_default()
                .push_back(input.to_string()),
        }
    }

    /// Records a completion unless its task is unknown, of another kind, or already
    /// complete; says whether it did.
    fn record_completion(&mut self, event: &Event) -> bool {
        let (task_id, outcome) = match event {
            Event::TaskCompleted { task_id, result } => {
                (*task_id, Outcome::Completed(result.clone()))
            }
            Event::TaskFailed { task_id, message } => (*task_id, Outcome::Failed(message.clone())),
            Event::TimerFired { task_id, .. } => (*task_id, Outcome::Completed("null".to_string())),
            Event::SubOrchestrationCompleted { task_id, result } => {
                (*task_id, Outcome::Completed(result.clone()))
            }
            Event::SubOrchestrationFailed { task_id, message } => {
                (*task_id, Outcome::Failed(message.clone()))
            }
            _ => return false,
        };
        let kind_matches = match (self.task(task_id), event) {
            (None, _) => false,
            (Some(task), Event::TimerFired { .. }) => matches!(task.command, Command::Timer { .. }),
            (
                Some(task),
                Event::SubOrchestrationCompleted { .. } | Event::SubOrchestrationFailed { .. },
            ) => matches!(task.command, Command::SubOrchestration { .. }),
            (Some(task), _) => matches!(task.command, Command::Activity { .. }),
        };
        if !kind_matches {
            return false;
        }
        self.complete_task(task_id, outcome)
    }

    /// The task with this id, if this execution scheduled it.
    fn task(&self, task_id: u32) -> Option<&Scheduled> {
        let index = task_id.checked_sub(self.base)?;
        self.scheduled.get(index as usize)
    }

    /// Records that a task finished, unless it had already.
    fn complete_task(&mut self, task_id: u32, outcome: Outcome) -> bool {
        if self.completions.contains_key(&task_id) {
            return false;
        }
        let completion = Completion {
            episode: self.episodes.len().saturating_sub(1),
            order: self.completions_seen,
            outcome,
        };
        self.completions_seen += 1;
        self.completions.insert(task_id, completion);
        self.fresh.push(task_id);
        true
    }

    /// A rewind: failures recorded so far no longer count (their tasks are pending again,
    /// to be delivered anew) and the execution is no longer finished.
    fn rewind(&mut self) {
        self.completions
            .retain(|_, completion| matches!(completion.outcome, Outcome::Completed(_)));
        let completions = &self.completions;
        self.fresh.retain(|task| completions.contains_key(task));
        self.finished = false;
    }

    /// What a rewind of a failed instance with this history must schedule again: the
    /// `TaskScheduled` or `TimerCreated` event of every recorded activity or timer that
    /// failed or never finished.
    pub fn rewind_plan(history: &[HistoryEvent]) -> Result<Vec<Event>, Error> {
        let replay = Self::new(history)?;
        Ok(replay
            .scheduled
            .iter()
            .enumerate()
            .map(|(index, task)| (replay.base + index as u32, task))
            .filter(|(task_id, _)| {
                !matches!(
                    replay.completions.get(task_id),
                    Some(Completion {
                        outcome: Outcome::Completed(_),
                        ..
                    })
                )
            })
            // Activities run again and timers are set again; an event wait needs nothing
            // stored (its events arrive through the inbox).
            .filter(|(_, task)| !matches!(task.command, Command::Event { .. }))
            .map(|(task_id, task)| task.command.event(task_id))
            .collect())
    }

    /// True once the history holds `ExecutionCompleted` or `ExecutionFailed`.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Opens a new episode at `now` that delivers `messages` (task completions, fired
    /// timers, raised events, and notices of retries, which are recorded but change
    /// nothing). Duplicates and
    /// messages about unknown or finished tasks are dropped.
    pub fn begin_episode(&mut self, now: DateTime<Utc>, messages: impl IntoIterator<Item = Event>) {
        self.episodes.push(now);
        self.push((now, Event::OrchestratorStarted));
        self.deliver(now, messages);
    }

    /// Adds activity outcomes to the episode that is open and not yet committed, as if
    /// they had opened it with the others. For code that waits, an episode that delivers
    /// outcomes one batch after another and one that delivers them all at once are the
    /// same, since its wait looks at them only once it is satisfied. Only for an episode
    /// that [holds only completions](Self::holds_only_completions).
    pub fn extend_episode(&mut self, outcomes: impl IntoIterator<Item = Event>) {
        let now = self.episodes.last().copied().unwrap_or_default();
        self.deliver(now, outcomes);
    }

    /// Whether the uncommitted events are one episode's start and the activity outcomes
    /// it delivers, and nothing the code did or the outside asked for.
    pub fn holds_only_completions(&self) -> bool {
        matches!(self.pending.first(), Some((_, Event::OrchestratorStarted)))
            && self.pending[1..].iter().all(|(_, event)| {
                matches!(
                    event,
                    Event::TaskCompleted { .. } | Event::TaskFailed { .. }
                )
            })
    }

    fn deliver(&mut self, now: DateTime<Utc>, messages: impl IntoIterator<Item = Event>) {
        for event in messages {
            let keep = match &event {
                Event::TaskRetrying { task_id, .. } => {
                    self.task(*task_id).is_some() && !self.completions.contains_key(task_id)
                }
                Event::ExecutionSuspended { .. } => !std::mem::replace(&mut self.suspended, true),
                Event::ExecutionResumed { .. } => std::mem::replace(&mut self.suspended, false),
                // Recorded by `terminate`, as the instance's last event.
                Event::ExecutionTerminated { reason } => {
                    self.termination.get_or_insert_with(|| reason.clone());
                    false
                }
                // Always recorded: taken by a wait now, or buffered for a later one.
                Event::EventRaised { name, input } => {
                    self.raise(name, input);
                    true
                }
                _ => self.record_completion(&event),
            };
            if keep {
                self.push((now, event));
            }
        }
    }

    /// The orchestration's "now": the start of the episode the code has reached.
    pub fn now(&self) -> Option<DateTime<Utc>> {
        self.episodes.get(self.current_episode).copied()
    }

    /// True while the code re-executes episodes that are already committed.
    pub fn is_replaying(&self) -> bool {
        self.current_episode < self.committed_episodes
    }

    /// The code schedules an activity. Returns its task id, or the mismatch with the
    /// history if this task was recorded differently.
    pub fn call_activity(
        &mut self,
        name: &str,
        input: &str,
        retry: Option<RetryPolicy>,
    ) -> Result<u32, Error> {
        self.command(Command::Activity {
            name: name.to_string(),
            input: input.to_string(),
            retry,
        })
    }

    /// The code creates a durable timer due at `fire_at`.
    pub fn create_timer(&mut self, fire_at: DateTime<Utc>) -> Result<u32, Error> {
        self.command(Command::Timer { fire_at })
    }

    /// The code waits for the external event `name`: the oldest raised one that no
    /// earlier wait took completes it, now or when it is raised.
    pub fn wait_for_event(&mut self, name: &str) -> Result<u32, Error> {
        self.command(Command::Event {
            name: name.to_string(),
        })
    }

    /// The code starts a sub-orchestration of `name`, with the id `instance_id` or, if
    /// none is given, `<parent>:<task id>`.
    pub fn call_sub_orchestrator(
        &mut self,
        name: &str,
        input: &str,
        instance_id: Option<String>,
        parent: &str,
    ) -> Result<u32, Error> {
        let instance_id = instance_id.unwrap_or_else(|| format!("{parent}:{}", self.next_task));
        self.command(Command::SubOrchestration {
            name: name.to_string(),
            instance_id,
            input: input.to_string(),
        })
    }

    /// Issues a command: checked against the history if recorded there, else new work.
    fn command(&mut self, command: Command) -> Result<u32, Error> {
        let task_id = self.next_task;
        self.next_task = task_id.checked_add(1).ok_or(Error::TasksExhausted)?;
        match self.task(task_id) {
            Some(recorded) => {
                if !recorded.command.same_as(&command) {
                    let verb = match command {
                        Command::Activity { .. } => "called",
                        Command::Timer { .. } => "created",
                        Command::Event { .. } => "began",
                        Command::SubOrchestration { .. } => "called",
                    };
                    return Err(NonDeterminism {
                        task_id,
                        seq: recorded.seq.unwrap_or(self.committed_len),
                        recorded: recorded.to_string(),
                        now: format!("{verb} {command}"),
                    }
                    .into());
                }
            }
            None => {
                let now = self.episode_start();
                self.pending_bytes += match &command {
                    Command::Activity { name, input, .. } => name.len() + input.len(),
                    Command::Timer { .. } => 16,
                    Command::Event { name } => name.len(),
                    Command::SubOrchestration {
                        name,
                        instance_id,
                        input,
                    } => name.len() + instance_id.len() + input.len(),
                };
                self.push((now, command.event(task_id)));
                let wait = match &command {
                    Command::Event { name } => Some(name.clone()),
                    _ => None,
                };
                self.scheduled.push(Scheduled { command, seq: None });
                if let Some(name) = wait {
                    self.begin_event_wait(task_id, name);
                }
            }
        }
        Ok(task_id)
    }

    fn episode_start(&self) -> DateTime<Utc> {
        self.episodes.last().copied().unwrap_or_default()
    }

    fn check_known(&self, tasks: &[u32]) -> Result<(), Error> {
        match tasks
            .iter()
            .find(|task| **task >= self.next_task || **task < self.base)
        {
            Some(task) => Err(Error::UnknownTask(*task)),
            None => Ok(()),
        }
    }

    /// The outcomes of all `tasks` in order, if every one has finished; `None` means the
    /// code must wait for another episode. Call it again with the same `wait` after each
    /// episode: only the completions delivered since are looked at.
    pub fn when_all(
        &mut self,
        tasks: &[u32],
        wait: &mut Wait,
    ) -> Result<Option<Vec<Outcome>>, Error> {
        if !self.narrow(tasks, wait)?.is_empty() {
            return Ok(None);
        }
        if let Some(limit) = wait.max_bytes {
            let mut bytes = 0usize;
            for task in tasks {
                let Some(completion) = self.completions.get(task) else {
                    return Ok(None);
                };
                bytes = bytes.saturating_add(match &completion.outcome {
                    Outcome::Completed(result) => result.len() + 16,
                    Outcome::Failed(message) => {
                        message.len() + self.task_name(*task).map_or(0, str::len) + 32
                    }
                });
                if bytes > limit {
                    return Err(Error::ResultsTooLarge { bytes, limit });
                }
            }
        }
        let mut outcomes = Vec::with_capacity(tasks.len());
        let mut last_episode = self.current_episode;
        for task in tasks {
            let Some(completion) = self.completions.get(task) else {
                return Ok(None);
            };
            last_episode = last_episode.max(completion.episode);
            outcomes.push(completion.outcome.clone());
        }
        self.current_episode = last_episode;
        Ok(Some(outcomes))
    }

    /// The index in `tasks` of the one that finished first (in history order), if any
    /// has. Like [`Replay::when_all`], it looks only at fresh completions on later calls.
    pub fn when_any(&mut self, tasks: &[u32], wait: &mut Wait) -> Result<Option<u32>, Error> {
        self.narrow(tasks, wait)?;
        if !wait.any_done {
            return Ok(None);
        }
        let first = tasks
            .iter()
            .enumerate()
            .filter_map(|(index, task)| {
                self.completions
                    .get(task)
                    .map(|c| (c.order, c.episode, index))
            })
            .min();
        Ok(first.map(|(_, episode, index)| {
            self.current_episode = self.current_episode.max(episode);
            index as u32
        }))
    }

    /// Brings `wait` up to date and returns the tasks it still misses.
    fn narrow<'w>(
        &mut self,
        tasks: &[u32],
        wait: &'w mut Wait,
    ) -> Result<&'w std::collections::HashSet<u32>, Error> {
        let fresh = std::mem::take(&mut self.fresh);
        match &mut wait.missing {
            Some(missing) => {
                for task in fresh {
                    wait.any_done |= missing.remove(&task);
                }
            }
            None => {
                self.check_known(tasks)?;
                let missing: std::collections::HashSet<u32> = tasks
                    .iter()
                    .copied()
                    .filter(|task| !self.completions.contains_key(task))
                    .collect();
                wait.any_done = tasks.iter().any(|task| !missing.contains(task));
                wait.missing = Some(missing);
            }
        }
        Ok(wait.missing.get_or_insert_default())
    }

    /// The code returned. Fails if the history recorded tasks the code no longer schedules.
    pub fn complete(&mut self, result: Result<String, String>) -> Result<(), Error> {
        let issued = (self.next_task - self.base) as usize;
        if let Some(recorded) = self
            .scheduled
            .get(issued)
            .filter(|_| issued < self.recorded_tasks)
        {
            return Err(NonDeterminism {
                task_id: self.next_task,
                seq: recorded.seq.unwrap_or(self.committed_len),
                recorded: recorded.to_string(),
                now: "returned without scheduling it".to_string(),
            }
            .into());
        }
        self.fail_or_complete(result);
        Ok(())
    }

    /// Ends the execution with `result` without checks (used for failures found outside).
    /// True while a client has the instance suspended.
    pub fn is_suspended(&self) -> bool {
        self.suspended
    }

    /// The reason a client gave for terminating the instance, once one has.
    pub fn termination(&self) -> Option<&str> {
        self.termination.as_deref()
    }

    /// Ends the execution as terminated by a client.
    pub fn terminate(&mut self, reason: &str) {
        let now = self.episode_start();
        self.push((
            now,
            Event::ExecutionTerminated {
                reason: reason.to_string(),
            },
        ));
        self.finished = true;
    }

    pub fn fail_or_complete(&mut self, result: Result<String, String>) {
        let now = self.episode_start();
        let event = match result {
            Ok(result) => Event::ExecutionCompleted { result },
            Err(message) => Event::ExecutionFailed { message },
        };
        self.push((now, event));
        self.finished = true;
    }

    /// Appends a new event to the episode in progress.
    fn push(&mut self, (now, event): (DateTime<Utc>, Event)) {
        self.history_bytes += event.weight();
        self.pending.push((now, event));
    }

    /// The [`Event::weight`] of the whole history, the events not yet committed included.
    pub fn history_bytes(&self) -> usize {
        self.history_bytes
    }

    /// Hands out the events produced since the last checkpoint with the sequence number
    /// of the first, and treats them as committed. An episode in which nothing happened
    /// is dropped rather than recorded.
    pub fn take_pending(&mut self) -> (u64, Vec<(DateTime<Utc>, Event)>) {
        if matches!(self.pending.as_slice(), [(_, Event::OrchestratorStarted)])
            && self.committed_episodes > 0
        {
            self.history_bytes -= Event::OrchestratorStarted.weight();
            self.pending.clear();
            self.episodes.pop();
        }
        let first_seq = self.committed_len;
        let events = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        self.committed_len += events.len() as u64;
        self.committed_episodes = self.episodes.len();
        (first_seq, events)
    }

    /// How many events and how many bytes of names and inputs wait for the next
    /// checkpoint.
    pub fn pending_size(&self) -> (usize, usize) {
        (self.pending.len(), self.pending_bytes)
    }

    /// The activity name of a scheduled task (the event's name for an event wait,
    /// "timer" for a timer).
    pub fn task_name(&self, task_id: u32) -> Option<&str> {
        self.task(task_id).map(|task| match &task.command {
            Command::Activity { name, .. }
            | Command::Event { name }
            | Command::SubOrchestration { name, .. } => name.as_str(),
            Command::Timer { .. } => "timer",
        })
    }

    /// The number the next task gets: a new execution after continue-as-new starts there.
    pub fn next_task(&self) -> u32 {
        self.next_task
    }

    /// The raised events that no wait has taken, by name (sorted), each name's in the
    /// order raised: what a continue-as-new carries over.
    pub fn untaken_events(&self) -> Vec<(String, String)> {
        let mut names: Vec<&String> = self.buffered.keys().collect();
        names.sort();
        names
            .into_iter()
            .flat_map(|name| {
                self.buffered[name]
                    .iter()
                    .map(move |input| (name.clone(), input.clone()))
            })
            .collect()
    }
}
