//! Instances and history as clients see them: the JSON shape of Durable Functions'
//! status API, shared by the CLI and the HTTP API.

use crate::store::{HistoryEvent, Instance};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Stored JSON text as a JSON value (stored payloads are validated on the way in).
fn payload(text: Option<&str>) -> Value {
    text.map_or(Value::Null, |text| {
        serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
    })
}

/// `{name, instanceId, runtimeStatus, input, customStatus, output, createdTime, lastUpdatedTime}`.
pub fn instance_json(instance: &Instance) -> Value {
    json!({
        "name": instance.name,
        "instanceId": instance.id,
        "runtimeStatus": instance.status.as_str(),
        "input": payload(Some(&instance.input)),
        "customStatus": payload(instance.custom_status.as_deref()),
        "output": payload(instance.output.as_deref()),
        "createdTime": timestamp(instance.created),
        "lastUpdatedTime": timestamp(instance.updated),
    })
}

/// One history event: `{seq, timestamp, eventType, ...its fields}`.
pub fn event_json(event: &HistoryEvent) -> Value {
    let mut fields = serde_json::Map::new();
    fields.insert("seq".to_string(), json!(event.seq));
    fields.insert(
        "timestamp".to_string(),
        json!(event.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true)),
    );
    if let Ok(Value::Object(event)) = serde_json::to_value(&event.event) {
        fields.extend(event);
    }
    Value::Object(fields)
}

/// `historyEvents` in the shape of the Durable Functions extension's status API:
/// PascalCase fields; episode markers (`OrchestratorStarted`) and retry notices left out;
/// each finished task's `TaskScheduled` merged into its `TaskCompleted`/`TaskFailed`
/// (`FunctionName`, `ScheduledTime`, `Input`) and kept only while the task is pending;
/// task and orchestration results only with `show_output`; every `Input` only with
/// `show_input`; a failed orchestration's end as `ExecutionCompleted` with
/// `OrchestrationStatus: "Failed"`.
pub fn history_events(history: &[HistoryEvent], show_input: bool, show_output: bool) -> Value {
    use crate::store::Event;
    use std::collections::HashMap;
    let time = |time: DateTime<Utc>| json!(time.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    // Each task's schedule (name, input, time), and which tasks finished.
    let mut scheduled: HashMap<u32, (&str, &str, DateTime<Utc>)> = HashMap::new();
    let mut finished = std::collections::HashSet::new();
    let mut failed = Vec::new();
    for event in history {
        match &event.event {
            Event::TaskScheduled {
                task_id,
                name,
                input,
                ..
            } => {
                scheduled.insert(*task_id, (name, input, event.timestamp));
            }
            Event::TaskCompleted { task_id, .. } => {
                finished.insert(*task_id);
            }
            Event::TaskFailed { task_id, .. } => {
                finished.insert(*task_id);
                failed.push(*task_id);
            }
            // A rewind schedules the failed tasks again: they are pending once more.
            Event::ExecutionRewound { .. } => {
                for task_id in failed.drain(..) {
                    finished.remove(&task_id);
                }
            }
            _ => {}
        }
    }
    let mut events = Vec::new();
    for event in history {
        let mut fields = serde_json::Map::new();
        fields.insert("EventType".into(), json!(event.event.kind()));
        let input = |fields: &mut serde_json::Map<String, Value>, text: &str| {
            if show_input {
                fields.insert("Input".into(), json!(text));
            }
        };
        let merge = |fields: &mut serde_json::Map<String, Value>, task_id: &u32| {
            if let Some((name, text, at)) = scheduled.get(task_id) {
                fields.insert("ScheduledTime".into(), time(*at));
                fields.insert("FunctionName".into(), json!(name));
                if show_input {
                    fields.insert("Input".into(), json!(text));
                }
            }
        };
        match &event.event {
            Event::OrchestratorStarted | Event::TaskRetrying { .. } => continue,
            Event::ExecutionStarted { name, input: text } => {
                fields.insert("FunctionName".into(), json!(name));
                input(&mut fields, text);
                fields.insert("Correlation".into(), Value::Null);
                fields.insert("ScheduledStartTime".into(), Value::Null);
                fields.insert("Generation".into(), json!(0));
            }
            Event::TaskScheduled {
                task_id,
                name,
                input: text,
                ..
            } => {
                if finished.contains(task_id) {
                    continue;
                }
                fields.insert("Name".into(), json!(name));
                input(&mut fields, text);
            }
            Event::TaskCompleted { task_id, result } => {
                merge(&mut fields, task_id);
                if show_output {
                    fields.insert("Result".into(), payload(Some(result)));
                }
            }
            Event::TaskFailed { task_id, message } => {
                merge(&mut fields, task_id);
                fields.insert("Reason".into(), json!(message));
                fields.insert("Details".into(), Value::Null);
                fields.insert("FailureDetails".into(), Value::Null);
            }
            Event::ExecutionCompleted { result } => {
                fields.insert("OrchestrationStatus".into(), json!("Completed"));
                if show_output {
                    fields.insert("Result".into(), payload(Some(result)));
                }
                fields.insert("FailureDetails".into(), Value::Null);
            }
            Event::ExecutionFailed { message } => {
                fields.insert("EventType".into(), json!("ExecutionCompleted"));
                fields.insert("OrchestrationStatus".into(), json!("Failed"));
                if show_output {
                    fields.insert("Result".into(), json!(message));
                }
                fields.insert(
                    "FailureDetails".into(),
                    json!({ "ErrorType": "OrchestrationFailure", "ErrorMessage": message }),
                );
            }
            Event::ExecutionTerminated { reason } => input(&mut fields, reason),
            Event::ExecutionSuspended { reason }
            | Event::ExecutionResumed { reason }
            | Event::ExecutionRewound { reason } => {
                fields.insert("Reason".into(), json!(reason));
            }
        }
        fields.insert("Timestamp".into(), time(event.timestamp));
        events.push(Value::Object(fields));
    }
    Value::Array(events)
}
