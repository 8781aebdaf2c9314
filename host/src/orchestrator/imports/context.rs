//! `weft:orchestration/context`: everything an orchestrator may ask of the host. Each
//! answer comes from, or is recorded in, the replay state, never from the outside world.

use super::super::{Evicted, OrchestrationState, Terminated};
use crate::bindings::orchestration::weft::orchestration::context::{Host, Task};
use crate::bindings::orchestration::weft::orchestration::types::{
    LogLevel, RetryPolicy, TaskError,
};
use crate::replay::{Outcome, Wait};
use crate::{limits, store};

/// Wraps a host-side failure so that it traps the guest and the worker can recognise it.
fn trap<E: std::error::Error + Send + Sync + 'static>(error: E) -> wasmtime::Error {
    wasmtime::Error::new(error)
}

impl OrchestrationState {
    /// Blocks the guest until `ready` finds what it waits for: commit the episode, sleep
    /// until completions arrive, and open the next episode with them.
    async fn wait_for<T>(
        &mut self,
        mut ready: impl FnMut(&mut crate::replay::Replay) -> Result<Option<T>, crate::replay::Error>,
    ) -> wasmtime::Result<T> {
        self.budget.enter_host();
        let result = self.wait_for_now(&mut ready).await;
        self.budget.leave_host();
        result
    }

    async fn wait_for_now<T>(
        &mut self,
        ready: &mut impl FnMut(&mut crate::replay::Replay) -> Result<Option<T>, crate::replay::Error>,
    ) -> wasmtime::Result<T> {
        loop {
            if let Some(found) = ready(&mut self.replay).map_err(trap)? {
                self.sync_clock();
                // A wait that the history satisfies (a replayed one) is a real wait too:
                // the guest waited for it once. A wait on tasks that finished earlier in
                // this run is not, so looping on them does not reset the budget.
                if self.replay.is_replaying() {
                    self.budget.waited();
                }
                return Ok(found);
            }
            self.budget.waited();
            if self.gather().await.map_err(trap)? {
                continue;
            }
            let (size, limit) = (self.replay.history_bytes(), self.budget.limits().history);
            if size > limit {
                return Err(trap(limits::HistoryTooLarge { size, limit }));
            }
            self.checkpoint(self.live_status(), None)
                .await
                .map_err(trap)?;
            if !self.next_episode().await.map_err(trap)? {
                return Err(trap(Evicted));
            }
            if let Some(reason) = self.replay.termination() {
                return Err(trap(Terminated(reason.to_string())));
            }
        }
    }
}

impl OrchestrationState {
    /// A payload from the guest (`what`, for the message) must be JSON within the
    /// payload limit.
    fn check_json(&self, what: &str, text: &str) -> wasmtime::Result<()> {
        self.budget
            .limits()
            .check_payload(|| what.to_string(), text)
            .map_err(trap)?;
        if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
            return Err(wasmtime::Error::msg(format!(
                "{what} is not valid JSON: {text}"
            )));
        }
        Ok(())
    }

    /// What the host holds for the guest until the next commit is bounded: commands
    /// (activities, timers, event waits) and the bytes of their names and inputs.
    fn check_episode_size(&self) -> wasmtime::Result<()> {
        let (commands, bytes) = self.replay.pending_size();
        if commands > limits::MAX_EPISODE_COMMANDS || bytes > limits::MAX_EPISODE_BYTES {
            return Err(wasmtime::Error::msg(format!(
                "the orchestrator scheduled more than {} activities, timers or event waits, or {} MiB of names and inputs, without waiting",
                limits::MAX_EPISODE_COMMANDS,
                limits::MAX_EPISODE_BYTES >> 20
            )));
        }
        Ok(())
    }
}

impl Host for OrchestrationState {
    fn input(&mut self) -> wasmtime::Result<String> {
        Ok(self.input.clone())
    }

    fn instance_id(&mut self) -> wasmtime::Result<String> {
        Ok(self.instance_id.clone())
    }

    fn call_activity(
        &mut self,
        name: String,
        input: String,
        retry: Option<RetryPolicy>,
    ) -> wasmtime::Result<Task> {
        if name.len() > limits::MAX_NAME {
            return Err(wasmtime::Error::msg(format!(
                "call-activity: the activity name is {} bytes, over the limit of {} bytes",
                name.len(),
                limits::MAX_NAME
            )));
        }
        self.check_json(&format!("the input of call-activity {name}"), &input)?;
        let retry = retry.map(|policy| store::RetryPolicy {
            max_attempts: policy.max_attempts.max(1),
            first_retry_interval_ms: policy.first_retry_interval_ms,
            backoff_coefficient: if policy.backoff_coefficient.is_finite() {
                policy.backoff_coefficient.max(1.0)
            } else {
                1.0
            },
            max_retry_interval_ms: policy.max_retry_interval_ms,
            retry_timeout_ms: policy.retry_timeout_ms,
            timeout_ms: policy.timeout_ms,
        });
        let task = self
            .replay
            .call_activity(&name, &input, retry)
            .map_err(trap)?;
        self.check_episode_size()?;
        Ok(task)
    }

    fn create_timer(&mut self, fire_at: u64) -> wasmtime::Result<Task> {
        let fire_at = i64::try_from(fire_at)
            .ok()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .filter(|at| *at <= *limits::MAX_TIMER)
            .ok_or_else(|| {
                wasmtime::Error::msg(format!(
                    "create-timer: fire-at {fire_at} is not a time before {} (milliseconds since the Unix epoch)",
                    limits::MAX_TIMER.to_rfc3339()
                ))
            })?;
        let task = self.replay.create_timer(fire_at).map_err(trap)?;
        self.check_episode_size()?;
        Ok(task)
    }

    fn wait_for_external_event(&mut self, name: String) -> wasmtime::Result<Task> {
        if name.len() > limits::MAX_NAME {
            return Err(wasmtime::Error::msg(format!(
                "wait-for-external-event: the event name is {} bytes, over the limit of {} bytes",
                name.len(),
                limits::MAX_NAME
            )));
        }
        let task = self.replay.wait_for_event(&name).map_err(trap)?;
        self.check_episode_size()?;
        Ok(task)
    }

    fn call_sub_orchestrator(
        &mut self,
        name: String,
        input: String,
        instance_id: Option<String>,
    ) -> wasmtime::Result<Task> {
        let what = || format!("call-sub-orchestrator {name}");
        if name.len() > limits::MAX_NAME {
            return Err(wasmtime::Error::msg(format!(
                "{}: the orchestrator name is {} bytes, over the limit of {} bytes",
                what(),
                name.len(),
                limits::MAX_NAME
            )));
        }
        if let Some(id) = &instance_id
            && let Err(reason) = crate::runtime::check_instance_id(id)
        {
            return Err(wasmtime::Error::msg(format!("{}: {reason}", what())));
        }
        self.check_json(&format!("the input of {}", what()), &input)?;
        let task = self
            .replay
            .call_sub_orchestrator(&name, &input, instance_id, &self.instance_id)
            .map_err(trap)?;
        self.check_episode_size()?;
        Ok(task)
    }

    fn continue_as_new(&mut self, input: String) -> wasmtime::Result<()> {
        self.check_json("the input of continue-as-new", &input)?;
        self.continued = Some(input);
        Ok(())
    }

    async fn when_all(
        &mut self,
        tasks: Vec<Task>,
    ) -> wasmtime::Result<Vec<Result<String, TaskError>>> {
        let mut wait = Wait::limited(self.budget.limits().memory);
        let outcomes = self
            .wait_for(|replay| replay.when_all(&tasks, &mut wait))
            .await?;
        Ok(outcomes
            .into_iter()
            .zip(&tasks)
            .map(|(outcome, task)| match outcome {
                Outcome::Completed(result) => Ok(result),
                Outcome::Failed(message) => Err(TaskError {
                    name: self.replay.task_name(*task).unwrap_or_default().to_string(),
                    message,
                }),
            })
            .collect())
    }

    async fn when_any(&mut self, tasks: Vec<Task>) -> wasmtime::Result<u32> {
        if tasks.is_empty() {
            return Err(wasmtime::Error::msg("when-any needs at least one task"));
        }
        let mut wait = Wait::default();
        self.wait_for(|replay| replay.when_any(&tasks, &mut wait))
            .await
    }

    fn current_time(&mut self) -> wasmtime::Result<u64> {
        Ok(self
            .replay
            .now()
            .map_or(0, |now| now.timestamp_millis().max(0) as u64))
    }

    fn new_guid(&mut self) -> wasmtime::Result<String> {
        let seed = super::super::sandbox::seed(&self.instance_id, &format!("guid {}", self.guids));
        self.guids += 1;
        let bytes: [u8; 16] = seed[..16].try_into().unwrap_or_default();
        Ok(uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string())
    }

    fn set_custom_status(&mut self, status: String) -> wasmtime::Result<()> {
        self.check_json("the custom status", &status)?;
        // Not while replaying: a status an older host accepted must not fail its instance.
        if status.len() > limits::MAX_CUSTOM_STATUS && !self.replay.is_replaying() {
            return Err(trap(limits::PayloadTooLarge {
                what: "the custom status".to_string(),
                size: status.len(),
                limit: limits::MAX_CUSTOM_STATUS,
            }));
        }
        self.custom_status = Some(status);
        Ok(())
    }

    fn is_replaying(&mut self) -> wasmtime::Result<bool> {
        Ok(self.replay.is_replaying())
    }

    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        if !self.replay.is_replaying() {
            let level = match level {
                LogLevel::Trace => tracing::Level::TRACE,
                LogLevel::Debug => tracing::Level::DEBUG,
                LogLevel::Info => tracing::Level::INFO,
                LogLevel::Warn => tracing::Level::WARN,
                LogLevel::Error => tracing::Level::ERROR,
            };
            let writer = crate::guest_log::Writer {
                instance: &self.instance_id,
                task: None,
            };
            crate::guest_log::write(level, &writer, message);
        }
        Ok(())
    }
}
