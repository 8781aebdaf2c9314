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
            }
            | Event::SubOrchestrationScheduled {
                task_id,
                name,
                input,
                ..
            } => {
                scheduled.insert(*task_id, (name, input, event.timestamp));
            }
            Event::TaskCompleted { task_id, .. }
            | Event::SubOrchestrationCompleted { task_id, .. } => {
                finished.insert(*task_id);
            }
            Event::TaskFailed { task_id, .. } | Event::SubOrchestrationFailed { task_id, .. } => {
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
            Event::ExecutionStarted {
                name, input: text, ..
            } => {
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
            // The extension's names for a sub-orchestration's events.
            Event::SubOrchestrationScheduled {
                task_id,
                name,
                instance_id,
                input: text,
            } => {
                if finished.contains(task_id) {
                    continue;
                }
                fields.insert("EventType".into(), json!("SubOrchestrationInstanceCreated"));
                fields.insert("Name".into(), json!(name));
                fields.insert("InstanceId".into(), json!(instance_id));
                input(&mut fields, text);
            }
            Event::SubOrchestrationCompleted { task_id, result } => {
                fields.insert(
                    "EventType".into(),
                    json!("SubOrchestrationInstanceCompleted"),
                );
                merge(&mut fields, task_id);
                if show_output {
                    fields.insert("Result".into(), payload(Some(result)));
                }
            }
            Event::SubOrchestrationFailed { task_id, message } => {
                fields.insert("EventType".into(), json!("SubOrchestrationInstanceFailed"));
                merge(&mut fields, task_id);
                fields.insert("Reason".into(), json!(message));
                fields.insert("Details".into(), Value::Null);
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
            // The extension's shapes: timers carry `FireAt`, raised events `Name` and
            // `Input`. Waits for an event are Weft's own record and are not shown.
            Event::TimerCreated { fire_at, .. } | Event::TimerFired { fire_at, .. } => {
                fields.insert("FireAt".into(), time(*fire_at));
            }
            Event::EventWaitStarted { .. } => continue,
            Event::EventRaised { name, input: text } => {
                fields.insert("Name".into(), json!(name));
                input(&mut fields, text);
            }
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

#[cfg(test)]
mod tests {
    use super::history_events;
    use crate::store::{Event, HistoryEvent};
    use chrono::{TimeZone, Utc};
    use serde_json::{Value, json};

    fn history(events: Vec<Event>) -> Vec<HistoryEvent> {
        events
            .into_iter()
            .enumerate()
            .map(|(seq, event)| HistoryEvent {
                seq: seq as u64,
                timestamp: Utc
                    .with_ymd_and_hms(2026, 1, 1, 0, 0, seq as u32)
                    .single()
                    .unwrap_or_default(),
                event,
            })
            .collect()
    }

    fn scheduled(task_id: u32, input: &str) -> Event {
        Event::TaskScheduled {
            task_id,
            name: "Copy".into(),
            input: input.into(),
            retry: None,
        }
    }

    fn events() -> Vec<HistoryEvent> {
        history(vec![
            Event::ExecutionStarted {
                name: "Backup".into(),
                input: "\"/r\"".into(),
                first_task: 0,
            },
            Event::OrchestratorStarted,
            scheduled(0, "\"a\""),
            scheduled(1, "\"b\""),
            scheduled(2, "\"c\""),
            Event::OrchestratorStarted,
            Event::TaskCompleted {
                task_id: 0,
                result: "10".into(),
            },
            Event::TaskFailed {
                task_id: 1,
                message: "denied".into(),
            },
            Event::ExecutionFailed {
                message: "copying b failed".into(),
            },
            Event::ExecutionRewound {
                reason: "fixed".into(),
            },
        ])
    }

    #[test]
    fn history_events_take_the_extensions_shape() {
        let shown = history_events(&events(), true, true);
        let types: Vec<&str> = shown
            .as_array()
            .map(|events| {
                events
                    .iter()
                    .map(|e| e["EventType"].as_str().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        // Episode markers are left out; a finished task's schedule is merged into its
        // completion; tasks pending after the rewind (b, failed) and before (c) stay.
        assert_eq!(
            types,
            [
                "ExecutionStarted",
                "TaskScheduled",
                "TaskScheduled",
                "TaskCompleted",
                "TaskFailed",
                "ExecutionCompleted",
                "ExecutionRewound"
            ]
        );
        assert_eq!(shown[0]["FunctionName"], "Backup");
        assert_eq!(shown[0]["Input"], "\"/r\"");
        assert_eq!(shown[1]["Name"], "Copy");
        assert_eq!(shown[1]["Input"], "\"b\"");
        assert_eq!(shown[3]["FunctionName"], "Copy");
        assert_eq!(shown[3]["Input"], "\"a\"");
        assert_eq!(shown[3]["Result"], json!(10));
        assert_eq!(shown[3]["ScheduledTime"], "2026-01-01T00:00:02Z");
        assert_eq!(shown[3]["Timestamp"], "2026-01-01T00:00:06Z");
        assert_eq!(shown[4]["Reason"], "denied");
        assert_eq!(shown[5]["OrchestrationStatus"], "Failed");
        assert_eq!(shown[6]["Reason"], "fixed");
    }

    #[test]
    fn inputs_and_results_are_shown_only_when_asked_for() {
        let shown = history_events(&events(), false, false);
        for event in shown.as_array().cloned().unwrap_or_default() {
            assert!(event.get("Input").is_none(), "{event}");
            assert!(event.get("Result").is_none(), "{event}");
        }
        assert_eq!(history_events(&[], true, true), Value::Array(vec![]));
    }
}
