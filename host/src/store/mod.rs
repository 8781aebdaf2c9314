//! Durable state behind a trait: instances, their append-only histories, the activity
//! work queue and each instance's inbox of completions.
//!
//! Every method that changes state is one transaction. [`Store::checkpoint`] is the
//! heart: the events an orchestration episode produced, the work items they cause and the
//! acknowledgement of the inbox messages it consumed are committed together, so a crash
//! either keeps the whole episode or none of it.

pub mod sqlite;
#[cfg(test)]
pub(crate) mod suite;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An instance with this id exists already.
    #[error("an instance with id '{0}' exists and has not ended")]
    InstanceExists(String),
    /// No instance has this id.
    #[error("no instance with id '{0}'")]
    UnknownInstance(String),
    /// The operation needs an instance that has ended.
    #[error("instance '{0}' has not ended; terminate it first")]
    NotEnded(String),
    /// The operation needs a Failed instance (a rewind).
    #[error("instance '{id}' is {}, not Failed", status.as_str())]
    NotFailed { id: String, status: RuntimeStatus },
    /// The operation needs an instance that has not ended.
    #[error("instance '{id}' has already ended ({})", status.as_str())]
    Ended { id: String, status: RuntimeStatus },
    /// Another writer appended to this history: the episode must be replayed, not committed.
    #[error(
        "history of '{instance}' was changed by another writer (expected sequence {expected}, found {found})"
    )]
    Conflict {
        instance: String,
        expected: u64,
        found: u64,
    },
    /// The stored data does not decode; the database is damaged or from a newer Weft.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database file cannot be used (damaged, or not a Weft database).
    #[error("cannot use the database {path}: {reason}")]
    Unusable { path: String, reason: String },
    /// The database schema is newer than this build understands.
    #[error(
        "the database schema version {found} is newer than this weft supports ({supported}); upgrade weft"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The transaction that held this change could not be committed; nothing of it was
    /// kept.
    #[error("cannot commit to the database: {0}")]
    Commit(String),
    /// The storage thread is gone (the store was closed or its thread failed).
    #[error("the store is closed")]
    Closed,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where an orchestration instance is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuntimeStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Terminated,
    Suspended,
}

impl RuntimeStatus {
    pub const ALL: [RuntimeStatus; 6] = [
        Self::Pending,
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Terminated,
        Self::Suspended,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
            Self::Terminated => "Terminated",
            Self::Suspended => "Suspended",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(text))
    }

    /// Completed, Failed and Terminated instances never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Terminated)
    }
}

/// An orchestration instance as clients see it. JSON payloads are kept as text.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    pub id: String,
    pub name: String,
    pub status: RuntimeStatus,
    pub input: String,
    pub output: Option<String>,
    pub custom_status: Option<String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    /// The instance that started this one as a sub-orchestration.
    pub parent: Option<String>,
}

/// One history event, in the Durable Task Framework's vocabulary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "eventType", rename_all_fields = "camelCase")]
pub enum Event {
    ExecutionStarted {
        name: String,
        input: String,
        /// The number of this execution's first task: 0, or after a continue-as-new the
        /// number after the last task of the execution before, so that a late outcome of
        /// an abandoned task can never be taken for one of this execution's.
        #[serde(default, skip_serializing_if = "is_zero")]
        first_task: u32,
    },
    /// Opens an episode; its timestamp is the orchestration's "now" for that episode.
    OrchestratorStarted,
    TaskScheduled {
        task_id: u32,
        name: String,
        input: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry: Option<RetryPolicy>,
    },
    /// An attempt of a task failed and another is due at `retry_at` (informational:
    /// replay ignores it).
    TaskRetrying {
        task_id: u32,
        attempt: u32,
        message: String,
        retry_at: DateTime<Utc>,
    },
    TaskCompleted {
        task_id: u32,
        result: String,
    },
    TaskFailed {
        task_id: u32,
        message: String,
    },
    /// The orchestrator created a durable timer, task `task_id`, due at `fire_at`.
    TimerCreated {
        task_id: u32,
        fire_at: DateTime<Utc>,
    },
    /// A durable timer came due (posted by the timer service, never before `fire_at`).
    TimerFired {
        task_id: u32,
        fire_at: DateTime<Utc>,
    },
    /// The orchestrator began waiting for the external event `name`, as task `task_id`.
    /// Waits take raised events of their name in the order both happened.
    EventWaitStarted {
        task_id: u32,
        name: String,
    },
    /// The orchestrator started the sub-orchestration `instance_id`, an instance of the
    /// orchestrator `name`, as task `task_id`. The checkpoint that records it creates the
    /// instance.
    SubOrchestrationScheduled {
        task_id: u32,
        name: String,
        instance_id: String,
        input: String,
    },
    /// A sub-orchestration completed with `result` (posted by its final checkpoint).
    SubOrchestrationCompleted {
        task_id: u32,
        result: String,
    },
    /// A sub-orchestration failed or was terminated, or could not be started.
    SubOrchestrationFailed {
        task_id: u32,
        message: String,
    },
    /// A client raised the external event `name` with `input` (JSON). Recorded when
    /// delivered; kept (buffered) until a wait for its name takes it.
    EventRaised {
        name: String,
        input: String,
    },
    ExecutionCompleted {
        result: String,
    },
    ExecutionFailed {
        message: String,
    },
    /// A client asked the instance to pause: completions wait until it is resumed.
    ExecutionSuspended {
        reason: String,
    },
    ExecutionResumed {
        reason: String,
    },
    /// A client ended the instance.
    ExecutionTerminated {
        reason: String,
    },
    /// A client rewound a Failed instance: the failures recorded before this event no
    /// longer count, the failed (and unfinished) tasks are scheduled again, and the
    /// `ExecutionFailed` before it is not the end.
    ExecutionRewound {
        reason: String,
    },
}

impl Event {
    /// About the bytes this event takes, in memory and in the store: its texts and a
    /// fixed allowance for the rest. What the history limit counts.
    pub fn weight(&self) -> usize {
        const FIXED: usize = 64;
        let texts = match self {
            Self::OrchestratorStarted | Self::TimerCreated { .. } | Self::TimerFired { .. } => 0,
            Self::ExecutionStarted { name, input, .. } => name.len() + input.len(),
            Self::TaskScheduled { name, input, .. } => name.len() + input.len(),
            Self::SubOrchestrationScheduled {
                name,
                instance_id,
                input,
                ..
            } => name.len() + instance_id.len() + input.len(),
            Self::EventWaitStarted { name, .. } => name.len(),
            Self::EventRaised { name, input } => name.len() + input.len(),
            Self::TaskCompleted { result, .. }
            | Self::SubOrchestrationCompleted { result, .. }
            | Self::ExecutionCompleted { result } => result.len(),
            Self::TaskRetrying { message, .. }
            | Self::TaskFailed { message, .. }
            | Self::SubOrchestrationFailed { message, .. }
            | Self::ExecutionFailed { message } => message.len(),
            Self::ExecutionSuspended { reason }
            | Self::ExecutionResumed { reason }
            | Self::ExecutionTerminated { reason }
            | Self::ExecutionRewound { reason } => reason.len(),
        };
        FIXED + texts
    }

    /// The event type's name, as stored and shown.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ExecutionStarted { .. } => "ExecutionStarted",
            Self::OrchestratorStarted => "OrchestratorStarted",
            Self::TaskScheduled { .. } => "TaskScheduled",
            Self::TaskRetrying { .. } => "TaskRetrying",
            Self::TaskCompleted { .. } => "TaskCompleted",
            Self::TaskFailed { .. } => "TaskFailed",
            Self::TimerCreated { .. } => "TimerCreated",
            Self::TimerFired { .. } => "TimerFired",
            Self::EventWaitStarted { .. } => "EventWaitStarted",
            Self::EventRaised { .. } => "EventRaised",
            Self::SubOrchestrationScheduled { .. } => "SubOrchestrationScheduled",
            Self::SubOrchestrationCompleted { .. } => "SubOrchestrationCompleted",
            Self::SubOrchestrationFailed { .. } => "SubOrchestrationFailed",
            Self::ExecutionCompleted { .. } => "ExecutionCompleted",
            Self::ExecutionFailed { .. } => "ExecutionFailed",
            Self::ExecutionSuspended { .. } => "ExecutionSuspended",
            Self::ExecutionResumed { .. } => "ExecutionResumed",
            Self::ExecutionTerminated { .. } => "ExecutionTerminated",
            Self::ExecutionRewound { .. } => "ExecutionRewound",
        }
    }
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// The longest wait before a retry: a year.
const MAX_RETRY_DELAY_MS: i64 = 365 * 24 * 3600 * 1000;

/// How a failed activity is retried (the Durable Task Framework's shape).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
    pub first_retry_interval_ms: u64,
    pub backoff_coefficient: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retry_interval_ms: Option<u64>,
    /// No retry is due later than this after the first attempt began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_timeout_ms: Option<u64>,
    /// Each attempt's time limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl RetryPolicy {
    /// When the retry after failed attempt number `attempt` (1-based) is due, or `None`
    /// if the policy allows no more.
    pub fn next_retry(
        &self,
        attempt: u32,
        first_attempt_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if attempt >= self.max_attempts {
            return None;
        }
        let factor = self
            .backoff_coefficient
            .max(1.0)
            .powi(attempt.saturating_sub(1) as i32);
        let mut delay = self.first_retry_interval_ms as f64 * factor;
        if let Some(max) = self.max_retry_interval_ms {
            delay = delay.min(max as f64);
        }
        // Guest-chosen numbers: anything past a year is a year, and nothing overflows.
        let delay = delay.clamp(0.0, MAX_RETRY_DELAY_MS as f64) as i64;
        let retry_at = now.checked_add_signed(chrono::Duration::milliseconds(delay))?;
        let deadline = self.retry_timeout_ms.and_then(|timeout| {
            let timeout = timeout.min(i64::MAX as u64) as i64;
            first_attempt_at.checked_add_signed(chrono::Duration::try_milliseconds(timeout)?)
        });
        match deadline {
            Some(deadline) if retry_at > deadline => None,
            _ => Some(retry_at),
        }
    }
}

/// An event at its place in an instance's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// 0, 1, 2, ... without gaps within one instance.
    pub seq: u64,
    pub timestamp: DateTime<Utc>,
    #[serde(flatten)]
    pub event: Event,
}

/// A message waiting for its orchestration to consume it (a task's completion).
#[derive(Clone, Debug, PartialEq)]
pub struct InboxMessage {
    pub id: i64,
    pub event: Event,
}

/// An activity call waiting for, or leased to, an activity worker.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkItem {
    pub id: i64,
    pub instance_id: String,
    pub task_id: u32,
    pub name: String,
    pub input: String,
    /// This lease's attempt number: the attempts that ended (failed), plus one. A lease
    /// that a host crash cut short does not count.
    pub attempt: u32,
    /// The item was leased when a host died: it must be recorded as running before it
    /// runs again, so that an activity that takes the host down every time is caught.
    pub recovered: bool,
    /// How many hosts died while the item ran.
    pub crashes: u32,
    pub retry: Option<RetryPolicy>,
    /// When the first attempt was leased.
    pub first_attempt_at: DateTime<Utc>,
}

/// What one orchestration episode commits, in one transaction.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub instance_id: String,
    /// The sequence number of the first new event: the history's length before the commit.
    pub first_seq: u64,
    /// New events; every `TaskScheduled` among them also enqueues its work item.
    pub events: Vec<(DateTime<Utc>, Event)>,
    /// Inbox messages this episode consumed; they are deleted.
    pub consumed: Vec<i64>,
    /// Work items whose outcomes reached the instance in memory and are recorded in
    /// `events`; they are deleted.
    pub settled: Vec<i64>,
    /// Lease the first of the work items this episode enqueues to this owner at once
    /// (eager dispatch), so that they need no separate claim.
    pub lease: Option<Lease>,
    pub status: RuntimeStatus,
    pub output: Option<String>,
    pub custom_status: Option<String>,
    pub now: DateTime<Utc>,
    /// End this execution and start the instance over (see [`ContinueAsNew`]); `events`
    /// are then not recorded and start no work.
    pub continue_as_new: Option<ContinueAsNew>,
}

impl Checkpoint {
    /// A checkpoint of `events` that consumes, settles and leases nothing.
    pub fn new(
        instance_id: &str,
        first_seq: u64,
        events: Vec<(DateTime<Utc>, Event)>,
        status: RuntimeStatus,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            instance_id: instance_id.to_string(),
            first_seq,
            events,
            consumed: Vec::new(),
            settled: Vec::new(),
            lease: None,
            status,
            output: None,
            custom_status: None,
            now,
            continue_as_new: None,
        }
    }
}

/// A new execution of an instance: its history is replaced by `ExecutionStarted` with
/// `input` and `first_task`, followed by the external events the old execution received
/// but never took (`carried`, name and data, in the order raised). Its work items and
/// timers are dropped; its inbox is kept.
#[derive(Clone, Debug, PartialEq)]
pub struct ContinueAsNew {
    pub input: String,
    pub first_task: u32,
    pub carried: Vec<(String, String)>,
}

/// How deep sub-orchestrations may nest: the root instance and at most this many levels
/// below it. An orchestrator that calls itself without end gets its task failed there,
/// instead of filling the store with instances.
pub const MAX_NESTING: usize = 64;

/// What a checkpoint did besides recording its events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Committed {
    /// The work items it leased (see [`Checkpoint::lease`]).
    pub leased: Vec<WorkItem>,
    /// Other instances it created or posted a message to (sub-orchestrations started or
    /// terminated, a parent told that its sub-orchestration ended): they should be woken.
    pub woken: Vec<String>,
}

/// Work items leased as they are enqueued: to `owner`, until `until`, at most `max`.
#[derive(Clone, Debug)]
pub struct Lease {
    pub owner: String,
    pub until: DateTime<Utc>,
    pub max: usize,
}

/// How many activities an instance has scheduled and how many have finished.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub scheduled: u64,
    pub finished: u64,
}

/// Which instances a listing or a purge covers; empty fields select everything. The
/// store applies every field itself, so a filter that matches few instances costs one
/// pass over the rows, never a page of instances read per match.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceFilter {
    pub statuses: Vec<RuntimeStatus>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    /// Ids that start with this (case-sensitive, as the extension's `instanceIdPrefix`).
    pub id_prefix: String,
    /// Names that contain this, ignoring ASCII case.
    pub name_contains: String,
}

/// One page of a listing, newest first: from offset `skip`, at most `limit` instances.
/// Payloads are read only where asked (`input`; `output` covers the output and the custom
/// status); an instance's payloads not read are empty (`input`) or `None`. The page also
/// ends after the instance whose payloads bring what it read to `max_bytes` or more, so
/// the memory a page takes is bounded whatever its instances hold (always at least one).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Listing {
    pub skip: usize,
    pub limit: usize,
    pub input: bool,
    pub output: bool,
    pub max_bytes: usize,
}

/// What [`Store::list_instances`] found: the page, and whether instances follow it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Listed {
    pub instances: Vec<Instance>,
    pub more: bool,
}

/// How a leased work item is settled: its final outcome, or another attempt later.
#[derive(Clone, Debug, PartialEq)]
pub enum Settlement {
    /// Deletes the item and posts `completion` (`TaskCompleted` or `TaskFailed`) to the
    /// instance's inbox.
    Complete { completion: Event },
    /// Puts the item back for another attempt at `retry_at` and posts `notice` (a
    /// `TaskRetrying` event) to the instance's inbox.
    Retry {
        retry_at: DateTime<Utc>,
        notice: Event,
    },
}

/// Durable storage for Weft. Every method that changes state is atomic, and returns only
/// once its change is durable. Implementations may commit the changes of concurrent
/// callers together (group commit), but never make one caller's change depend on
/// another's: each succeeds or fails on its own.
///
/// The interface is async so that a backend can do its I/O off the caller's thread (the
/// SQLite backend uses a writer thread and a pool of readers; a PostgreSQL backend would
/// use its own connection pool).
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates an instance in `Pending` with its `ExecutionStarted` event. An ended
    /// instance with the same id is replaced (as in Durable Functions); one that has not
    /// ended is an [`Error::InstanceExists`].
    async fn create_instance(
        &self,
        id: &str,
        name: &str,
        input: &str,
        now: DateTime<Utc>,
    ) -> Result<Instance>;
    async fn instance(&self, id: &str) -> Result<Option<Instance>>;
    /// A page of the instances that `filter` selects (see [`Listing`]).
    async fn list_instances(&self, filter: &InstanceFilter, listing: Listing) -> Result<Listed>;
    /// Posts a control message (suspend, resume, terminate) or a raised event to an
    /// instance's inbox.
    /// [`Error::UnknownInstance`] if there is none, [`Error::Ended`] if it has ended.
    async fn post_message(&self, id: &str, event: &Event, now: DateTime<Utc>) -> Result<()>;
    /// Deletes an ended instance and its history. False if there is no such instance;
    /// [`Error::NotEnded`] if it has not ended.
    async fn purge(&self, id: &str) -> Result<bool>;
    /// Deletes every ended instance that `filter` selects; returns how many.
    async fn purge_many(&self, filter: &InstanceFilter) -> Result<usize>;
    /// Ids of the instances that are not in a terminal state, oldest first.
    async fn unfinished_instances(&self) -> Result<Vec<String>>;
    /// Whether an instance is pending or running (neither ended nor suspended) whose
    /// orchestrator is one of `names` and whose id is not one of `except`; found by one
    /// query that stops at the first, reading no payload.
    async fn any_runnable(&self, names: &[String], except: &[String]) -> Result<bool>;
    async fn history(&self, id: &str) -> Result<Vec<HistoryEvent>>;
    /// How many events the history of instance `id` holds (0 for an unknown instance),
    /// without reading them.
    async fn history_len(&self, id: &str) -> Result<u64>;
    /// The first `max` messages waiting for an instance with an id above `after`, oldest
    /// first; fewer if their events' [`Event::weight`] reaches `max_bytes` (the message
    /// that reaches it is the last; there is always one if any waits).
    async fn inbox(
        &self,
        id: &str,
        after: i64,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<InboxMessage>>;
    /// Commits an episode; fails with [`Error::Conflict`] if `first_seq` is not the
    /// history's length. A terminal status also drops the instance's pending work.
    ///
    /// Sub-orchestrations: a `SubOrchestrationScheduled` creates its instance (or, if the
    /// id is taken by one that has not ended, posts `SubOrchestrationFailed` back); a
    /// terminal checkpoint of a sub-orchestration posts its outcome to its parent's inbox,
    /// and a `Terminated` one posts `ExecutionTerminated` to its own unfinished
    /// sub-orchestrations.
    async fn checkpoint(&self, checkpoint: Checkpoint) -> Result<Committed>;
    /// Leases up to `max` work items that are due and not leased: never one that `owner`
    /// holds already, and another owner's only once its lease has expired.
    async fn claim_work(
        &self,
        owner: &str,
        max: usize,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<WorkItem>>;
    /// Forgets every lease: used at start-up by the only process that owns the data dir.
    /// The leases that a crash cut short do not count as attempts; items that were leased
    /// are marked recovered, and those recorded as running count one more crash.
    async fn release_leases(&self) -> Result<()>;
    /// Records that a leased item is about to run (see [`WorkItem::recovered`]). False if
    /// `owner` no longer holds this attempt's lease.
    async fn mark_running(&self, item: &WorkItem, owner: &str) -> Result<bool>;
    /// Forgets the leases of one instance's work items, so that they are claimed and run
    /// again: used when results handed to the instance in memory may have been lost.
    async fn release_instance_leases(&self, id: &str) -> Result<()>;
    /// Settles a leased work item and posts the message that says so to its instance's
    /// inbox. Returns false, and changes nothing, unless `owner` still holds this
    /// attempt's lease (the item was finished or retried by another attempt, or its
    /// instance ended).
    async fn settle_work(
        &self,
        item: &WorkItem,
        owner: &str,
        settlement: Settlement,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    async fn progress(&self, id: &str) -> Result<Progress>;
    /// Rewinds a Failed instance in one transaction: appends `event` (an
    /// `ExecutionRewound`) at `first_seq`, enqueues the work of `reschedule` (the
    /// `TaskScheduled` events, from its history, of the tasks to run again, and the
    /// `TimerCreated` events of the timers to set again, and the
    /// `SubOrchestrationScheduled` events of the sub-orchestrations to start over) and
    /// sets the instance Pending without an output. Returns the sub-orchestrations it
    /// started, to be woken. [`Error::UnknownInstance`] if there is none,
    /// [`Error::NotFailed`] if it is not Failed, [`Error::Conflict`] if `first_seq` is
    /// not the history's length.
    async fn rewind(
        &self,
        id: &str,
        first_seq: u64,
        event: Event,
        reschedule: Vec<Event>,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>>;
    /// Fires up to `max` durable timers due at `now` (their `fire_at` is not after it), in
    /// one transaction: each timer is deleted and a `TimerFired` posted to its instance's
    /// inbox. Returns the instance of each fired timer. A timer is stored by the
    /// checkpoint that records its `TimerCreated`, and dropped when its instance ends.
    async fn fire_due_timers(&self, now: DateTime<Utc>, max: usize) -> Result<Vec<String>>;
    /// When the earliest stored timer is due, if there is one.
    async fn next_timer(&self) -> Result<Option<DateTime<Utc>>>;
    /// Up to `max` inbox messages with an id above `after`, oldest first, as (id, instance
    /// id): how a host notices messages that another process posted.
    async fn inbox_since(&self, after: i64, max: usize) -> Result<Vec<(i64, String)>>;
    /// Whether work item `id` is still queued or leased (it is gone once settled, or once
    /// its instance ended).
    async fn work_item_exists(&self, id: i64) -> Result<bool>;
}

/// `time` as a store keeps it: to the millisecond.
#[cfg(test)]
pub(crate) fn stored_time(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(time.timestamp_millis()).unwrap_or(time)
}

#[cfg(test)]
mod tests {
    use super::RetryPolicy;
    use chrono::{Duration, TimeZone, Utc};

    fn policy(max_attempts: u32, first: u64, coefficient: f64) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            first_retry_interval_ms: first,
            backoff_coefficient: coefficient,
            max_retry_interval_ms: None,
            retry_timeout_ms: None,
            timeout_ms: None,
        }
    }

    #[test]
    fn retries_back_off_up_to_their_limits() {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let now = start + Duration::seconds(10);
        let p = policy(4, 1000, 2.0);
        assert_eq!(
            p.next_retry(1, start, now),
            Some(now + Duration::seconds(1))
        );
        assert_eq!(
            p.next_retry(3, start, now),
            Some(now + Duration::seconds(4))
        );
        assert_eq!(p.next_retry(4, start, now), None, "no attempts left");
        let capped = RetryPolicy {
            max_retry_interval_ms: Some(1500),
            ..p.clone()
        };
        assert_eq!(
            capped.next_retry(3, start, now),
            Some(now + Duration::milliseconds(1500))
        );
        let timed = RetryPolicy {
            retry_timeout_ms: Some(10_500),
            ..p
        };
        assert_eq!(
            timed.next_retry(1, start, now),
            None,
            "the retry would be due after the timeout"
        );
    }

    #[test]
    fn absurd_guest_policies_neither_panic_nor_overflow() {
        let now = Utc::now();
        let huge = RetryPolicy {
            retry_timeout_ms: Some(u64::MAX),
            ..policy(u32::MAX, u64::MAX, f64::MAX)
        };
        let due = huge.next_retry(7, now, now).expect("a retry");
        assert!(due <= now + Duration::days(366));
    }
}
