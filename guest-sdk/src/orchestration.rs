//! Orchestrations: the [`Context`] an orchestrator receives, typed [`Task`] handles, and
//! [`RetryOptions`], over the WIT `context` import.

use crate::LogLevel;
use crate::error::{Error, TaskError, excerpt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The wit-bindgen bindings of the `orchestration` world.
///
/// The export macro is public so that [`orchestrators!`](crate::orchestrators) can use it
/// from the guest's crate. With it public, wit-bindgen embeds only the world's imports
/// here and the exports where the macro is expanded, so a component that links this
/// crate exports only the world its registration macro names.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "orchestration",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "export_orchestration",
    });
}

use bindings::weft::orchestration::context;
use bindings::weft::orchestration::types as wit;

/// Longest excerpt of a payload that an error message quotes.
const QUOTED: usize = 200;

/// What an orchestrator can do: schedule activities, timers, event waits and
/// sub-orchestrations, wait for them, and read the values the host records for replay.
///
/// Every method returns the same value on every replay of the same history, so an
/// orchestrator that only decides through its `Context` (never through the clock, files
/// or randomness of its own) is deterministic, as replay requires. The registration
/// macro [`orchestrators!`](crate::orchestrators) hands one to each run.
#[derive(Debug)]
pub struct Context {
    _private: (),
}

impl Context {
    /// The context of the orchestration under way; only the registration macro makes
    /// one, so that orchestrator code runs inside a run.
    #[doc(hidden)]
    pub fn __new() -> Self {
        Self { _private: () }
    }

    /// The orchestration's input, decoded as `T`; a [`Error::BadInput`] with serde's
    /// message when it is not a `T`.
    ///
    /// Orchestrators registered with an input parameter receive it decoded already;
    /// this is for the ones that read it themselves, to say what they expected with
    /// [`Error::context`].
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_str(&context::input()).map_err(|e| Error::BadInput(e.to_string()))
    }

    /// The id of this orchestration instance.
    pub fn instance_id(&self) -> String {
        context::instance_id()
    }

    /// Schedules the activity `name` with `input` and returns at once; the activity runs
    /// in parallel with everything else scheduled until the task is waited for.
    pub fn call_activity<R>(&self, name: &str, input: &impl Serialize) -> Task<R> {
        self.schedule(name, input, |json| context::call_activity(name, json, None))
    }

    /// As [`call_activity`](Self::call_activity), retrying failed attempts per `retry`.
    /// The host stores each retry's due time, so back-off survives a restart.
    pub fn call_activity_with_retry<R>(
        &self,
        name: &str,
        input: &impl Serialize,
        retry: RetryOptions,
    ) -> Task<R> {
        self.schedule(name, input, |json| {
            context::call_activity(name, json, Some(retry.policy()))
        })
    }

    /// Starts the orchestrator `name` as a sub-orchestration with `input`: an instance
    /// of its own, with its own history. Its id is `instance_id`, or when `None` one the
    /// host derives from this instance's id and the task's number (the same on every
    /// replay). The task's result is the sub-orchestration's output; its failure is the
    /// task's error.
    pub fn call_sub_orchestrator<R>(
        &self,
        name: &str,
        input: &impl Serialize,
        instance_id: Option<&str>,
    ) -> Task<R> {
        self.schedule(name, input, |json| {
            context::call_sub_orchestrator(name, json, instance_id)
        })
    }

    /// A durable timer that fires at `fire_at` (never before); its task's result is `()`.
    /// It is stored, fires after a restart too, and holds nothing while it waits.
    /// Compute `fire_at` from [`current_time`](Self::current_time), never from the real
    /// clock.
    pub fn create_timer(&self, fire_at: SystemTime) -> Task<()> {
        let millis = fire_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, saturating_millis);
        Task::scheduled("timer", context::create_timer(millis))
    }

    /// A durable timer that fires `delay` after the orchestration's current time.
    pub fn create_timer_after(&self, delay: Duration) -> Task<()> {
        let fire_at = context::current_time().saturating_add(saturating_millis(delay));
        Task::scheduled("timer", context::create_timer(fire_at))
    }

    /// The orchestration's current time plus `delay`, to the millisecond. Unlike
    /// `current_time() + delay` it cannot overflow (and panic) on a delay taken from the
    /// input: it saturates at the last millisecond a timer can name.
    pub fn time_after(&self, delay: Duration) -> SystemTime {
        let millis = context::current_time().saturating_add(saturating_millis(delay));
        UNIX_EPOCH + Duration::from_millis(millis)
    }

    /// A task that finishes when a client raises the external event `name`, with the
    /// event's data decoded as `T`. An event raised before the wait is kept for it;
    /// waits for one name take its events in the order they were raised.
    pub fn wait_for_external_event<T>(&self, name: &str) -> Task<T> {
        Task::scheduled(name, context::wait_for_external_event(name))
    }

    /// Waits until every task has finished and returns their results, in order.
    ///
    /// The tasks stay usable: waiting for a finished task again returns its result at
    /// once. To fail on the first error, collect: `ctx.when_all(&tasks).into_iter()
    /// .collect::<Result<Vec<_>, _>>()?`.
    pub fn when_all<R: DeserializeOwned>(&self, tasks: &[Task<R>]) -> Vec<Result<R, TaskError>> {
        let ids: Vec<u32> = tasks.iter().filter_map(Task::id).collect();
        let mut results = context::when_all(&ids).into_iter();
        tasks
            .iter()
            .map(|task| match &task.state {
                State::Unscheduled(error) => Err(error.clone()),
                State::Scheduled(_) => match results.next() {
                    Some(result) => task.decode(result),
                    None => Err(task.error("the host returned no result for it".to_string())),
                },
            })
            .collect()
    }

    /// Waits until one of `tasks`, of any kinds, has finished and returns its index in
    /// `tasks`; read its result with [`Task::get`], which then returns at once.
    ///
    /// ```no_run
    /// # fn f(ctx: &weft_sdk::Context) -> Result<(), weft_sdk::Error> {
    /// let answer = ctx.wait_for_external_event::<u32>("Answer");
    /// let timeout = ctx.create_timer_after(std::time::Duration::from_secs(90));
    /// if ctx.when_any(&[&answer, &timeout]) == 0 {
    ///     let code = answer.get()?;
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// A task whose input could not be serialized counts as finished. `tasks` must not be
    /// empty: the host refuses to wait for nothing.
    pub fn when_any(&self, tasks: &[&dyn AnyTask]) -> usize {
        if let Some(index) = tasks.iter().position(|task| task.task_id().is_none()) {
            return index;
        }
        let ids: Vec<u32> = tasks.iter().filter_map(|task| task.task_id()).collect();
        context::when_any(&ids) as usize
    }

    /// Asks that this execution end by starting over with `input` once the orchestrator
    /// returns (its output is then ignored): the instance keeps its id, its history
    /// restarts, and external events not yet taken carry over. This keeps the history of
    /// an eternal orchestration small.
    pub fn continue_as_new(&self, input: &impl Serialize) -> Result<(), Error> {
        context::continue_as_new(&to_json(input)?);
        Ok(())
    }

    /// Replaces the status that clients see beside the runtime status.
    pub fn set_custom_status(&self, status: &impl Serialize) -> Result<(), Error> {
        context::set_custom_status(&to_json(status)?);
        Ok(())
    }

    /// The orchestration's current time: when the host started the current episode, the
    /// same on every replay.
    pub fn current_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(context::current_time())
    }

    /// [`current_time`](Self::current_time) in milliseconds since the Unix epoch.
    pub fn current_time_millis(&self) -> u64 {
        context::current_time()
    }

    /// A new UUID, deterministic for this instance and call.
    pub fn new_guid(&self) -> String {
        context::new_guid()
    }

    /// True while the code re-executes steps whose outcome is already in the history.
    pub fn is_replaying(&self) -> bool {
        context::is_replaying()
    }

    /// Logs `message`; the host drops it while replaying, so each line appears once.
    pub fn log(&self, level: LogLevel, message: &str) {
        context::log(wit_level(level), message);
    }

    /// Logs `message` at the `info` level.
    pub fn info(&self, message: &str) {
        self.log(LogLevel::Info, message);
    }

    /// Logs `message` at the `warn` level.
    pub fn warn(&self, message: &str) {
        self.log(LogLevel::Warn, message);
    }

    fn schedule<R>(
        &self,
        name: &str,
        input: &impl Serialize,
        schedule: impl FnOnce(&str) -> u32,
    ) -> Task<R> {
        match serde_json::to_string(input) {
            Ok(json) => Task::scheduled(name, schedule(&json)),
            Err(e) => Task {
                name: name.to_string(),
                state: State::Unscheduled(TaskError {
                    name: name.to_string(),
                    message: format!("its input could not be serialized: {e}"),
                }),
                output: PhantomData,
            },
        }
    }
}

/// A handle to scheduled work (an activity, a timer, an event wait or a
/// sub-orchestration) whose result is an `R`.
///
/// Wait for it alone with [`get`](Self::get), with others of its type with
/// [`Context::when_all`], or with tasks of any type with [`Context::when_any`].
#[derive(Debug)]
#[must_use = "a task does nothing for the orchestration until it is waited for"]
pub struct Task<R> {
    name: String,
    state: State,
    output: PhantomData<fn() -> R>,
}

#[derive(Debug)]
enum State {
    /// Scheduled with the host under this task number.
    Scheduled(u32),
    /// Never scheduled: its input could not be serialized, so it failed at once.
    Unscheduled(TaskError),
}

impl<R> Task<R> {
    fn scheduled(name: &str, id: u32) -> Self {
        Self {
            name: name.to_string(),
            state: State::Scheduled(id),
            output: PhantomData,
        }
    }

    fn id(&self) -> Option<u32> {
        match self.state {
            State::Scheduled(id) => Some(id),
            State::Unscheduled(_) => None,
        }
    }

    fn error(&self, message: String) -> TaskError {
        TaskError {
            name: self.name.clone(),
            message,
        }
    }

    /// The name the task was scheduled under: the activity's, the sub-orchestrator's or
    /// the event's, or `timer`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<R: DeserializeOwned> Task<R> {
    /// Waits until the task has finished and returns its result.
    pub fn get(&self) -> Result<R, TaskError> {
        match &self.state {
            State::Unscheduled(error) => Err(error.clone()),
            State::Scheduled(id) => match context::when_all(&[*id]).pop() {
                Some(result) => self.decode(result),
                None => Err(self.error("the host returned no result for it".to_string())),
            },
        }
    }

    fn decode(&self, result: Result<String, wit::TaskError>) -> Result<R, TaskError> {
        let output = result.map_err(|e| TaskError {
            name: e.name,
            message: e.message,
        })?;
        serde_json::from_str(&output).map_err(|e| {
            self.error(format!(
                "its output {} is not what the orchestrator expects: {e}",
                excerpt(&output, QUOTED)
            ))
        })
    }
}

/// A task of any result type, for [`Context::when_any`]. Only [`Task`] implements it.
pub trait AnyTask: sealed::Sealed {
    /// The host's task number, or `None` for a task that failed before it was scheduled.
    #[doc(hidden)]
    fn task_id(&self) -> Option<u32>;
}

impl<R> AnyTask for Task<R> {
    fn task_id(&self) -> Option<u32> {
        self.id()
    }
}

mod sealed {
    /// Keeps [`AnyTask`](super::AnyTask) implemented by [`Task`](super::Task) alone.
    pub trait Sealed {}
    impl<R> Sealed for super::Task<R> {}
}

/// How a failed activity is retried, as Durable Functions' `RetryOptions`: at most
/// `max_number_of_attempts` attempts in all, the first retry `first_retry_interval` after
/// the failure, each later one `backoff_coefficient` times longer than the one before.
///
/// ```
/// use std::time::Duration;
/// use weft_sdk::RetryOptions;
///
/// const COPY_RETRY: RetryOptions =
///     RetryOptions::new(Duration::from_millis(500), 3).with_backoff_coefficient(2.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryOptions {
    first_retry_interval: Duration,
    max_number_of_attempts: u32,
    backoff_coefficient: f64,
    max_retry_interval: Option<Duration>,
    retry_timeout: Option<Duration>,
    timeout: Option<Duration>,
}

impl RetryOptions {
    /// At most `max_number_of_attempts` attempts (the first included), the first retry
    /// `first_retry_interval` after the first failure, with a back-off coefficient of 1.
    pub const fn new(first_retry_interval: Duration, max_number_of_attempts: u32) -> Self {
        Self {
            first_retry_interval,
            max_number_of_attempts,
            backoff_coefficient: 1.0,
            max_retry_interval: None,
            retry_timeout: None,
            timeout: None,
        }
    }

    /// Each retry waits `coefficient` times longer than the one before (at least 1.0).
    pub const fn with_backoff_coefficient(mut self, coefficient: f64) -> Self {
        self.backoff_coefficient = coefficient;
        self
    }

    /// No retry waits longer than `interval`.
    pub const fn with_max_retry_interval(mut self, interval: Duration) -> Self {
        self.max_retry_interval = Some(interval);
        self
    }

    /// No retry starts later than `timeout` after the first attempt began.
    pub const fn with_retry_timeout(mut self, timeout: Duration) -> Self {
        self.retry_timeout = Some(timeout);
        self
    }

    /// Each attempt fails (and may be retried) when it runs longer than `timeout`.
    pub const fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn policy(&self) -> wit::RetryPolicy {
        wit::RetryPolicy {
            max_attempts: self.max_number_of_attempts,
            first_retry_interval_ms: saturating_millis(self.first_retry_interval),
            backoff_coefficient: self.backoff_coefficient,
            max_retry_interval_ms: self.max_retry_interval.map(saturating_millis),
            retry_timeout_ms: self.retry_timeout.map(saturating_millis),
            timeout_ms: self.timeout.map(saturating_millis),
        }
    }
}

/// An orchestrator function the registration macro can run: `fn(&Context) -> Result<O,
/// Error>`, or `fn(&Context, I) -> Result<O, Error>` whose input `I` the SDK decodes from
/// the orchestration's input. `Marker` only tells the two forms apart.
pub trait Orchestrator<Marker> {
    /// Runs the orchestrator and encodes its output.
    #[doc(hidden)]
    fn run(self, name: &str, ctx: &Context) -> Result<String, Error>;
}

impl<F, O> Orchestrator<fn() -> O> for F
where
    F: FnOnce(&Context) -> Result<O, Error>,
    O: Serialize,
{
    fn run(self, _name: &str, ctx: &Context) -> Result<String, Error> {
        to_json(&self(ctx)?)
    }
}

impl<F, I, O> Orchestrator<fn(I) -> O> for F
where
    F: FnOnce(&Context, I) -> Result<O, Error>,
    I: DeserializeOwned,
    O: Serialize,
{
    fn run(self, name: &str, ctx: &Context) -> Result<String, Error> {
        let text = context::input();
        let input = serde_json::from_str(&text).map_err(|e| {
            Error::BadInput(format!(
                "{name} cannot take the input {}: {e}",
                excerpt(&text, QUOTED)
            ))
        })?;
        to_json(&self(ctx, input)?)
    }
}

/// Runs one registered orchestrator; the code [`orchestrators!`](crate::orchestrators)
/// generates calls it.
#[doc(hidden)]
pub fn __run<M>(name: &str, orchestrator: impl Orchestrator<M>) -> Result<String, wit::RunError> {
    orchestrator
        .run(name, &Context::__new())
        .map_err(|error| match error {
            Error::BadInput(message) => wit::RunError::BadInput(message),
            Error::Failed(message) => wit::RunError::Failed(message),
        })
}

/// The error for a name no registered orchestrator has.
#[doc(hidden)]
pub fn __unknown_name(names: Vec<String>) -> wit::RunError {
    wit::RunError::UnknownName(names)
}

fn to_json(value: &impl Serialize) -> Result<String, Error> {
    serde_json::to_string(value)
        .map_err(|e| Error::Failed(format!("a value could not be serialized as JSON: {e}")))
}

fn wit_level(level: LogLevel) -> wit::LogLevel {
    match level {
        LogLevel::Trace => wit::LogLevel::Trace,
        LogLevel::Debug => wit::LogLevel::Debug,
        LogLevel::Info => wit::LogLevel::Info,
        LogLevel::Warn => wit::LogLevel::Warn,
        LogLevel::Error => wit::LogLevel::Error,
    }
}

/// `duration` in whole milliseconds, at most `u64::MAX`.
fn saturating_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_options_become_the_hosts_policy() {
        let options = RetryOptions::new(Duration::from_millis(500), 3)
            .with_backoff_coefficient(2.0)
            .with_max_retry_interval(Duration::from_secs(5))
            .with_timeout(Duration::MAX);
        let policy = options.policy();
        assert_eq!(policy.max_attempts, 3);
        assert_eq!(policy.first_retry_interval_ms, 500);
        assert_eq!(policy.backoff_coefficient, 2.0);
        assert_eq!(policy.max_retry_interval_ms, Some(5000));
        assert_eq!(policy.retry_timeout_ms, None);
        assert_eq!(policy.timeout_ms, Some(u64::MAX));
    }

    #[test]
    fn results_decode_into_the_tasks_type_or_say_why_not() {
        let task: Task<u64> = Task::scheduled("E2_CopyFileToBlob", 7);
        assert_eq!(task.decode(Ok("42".to_string())), Ok(42));
        let error = task.decode(Ok("\"x\"".to_string())).unwrap_err();
        assert_eq!(error.name, "E2_CopyFileToBlob");
        assert!(
            error.message.starts_with("its output \"x\" is not what"),
            "{error}"
        );
        let failed = task.decode(Err(wit::TaskError {
            name: "E2_CopyFileToBlob".to_string(),
            message: "denied (after 3 attempts)".to_string(),
        }));
        assert_eq!(
            failed.unwrap_err().to_string(),
            "E2_CopyFileToBlob failed: denied (after 3 attempts)"
        );
    }

    #[test]
    fn an_input_that_cannot_be_serialized_fails_its_task_without_scheduling_it() {
        let ctx = Context::__new();
        // A map with non-string keys has no JSON form.
        let input = std::collections::BTreeMap::from([((1, 2), 3)]);
        let task: Task<u64> = ctx.call_activity("A", &input);
        assert_eq!(task.task_id(), None);
        let error = task.get().unwrap_err();
        assert!(error.message.contains("could not be serialized"), "{error}");
        let timer = Task::<()>::scheduled("timer", 3);
        assert_eq!(ctx.when_any(&[&timer, &task]), 1);
    }
}
