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
