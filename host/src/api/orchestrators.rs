//! `POST orchestrators/{name}[/{instanceId}]`: starts an instance. It answers 202 with
//! the check-status body and `Location`, or, with `?timeout=&pollingInterval=`, waits
//! up to `timeout` seconds and answers 200 with the output once the instance completes.

use super::{Call, Error, Listener};
use crate::status;
use crate::store::{Instance, RuntimeStatus};
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::time::Duration;

/// The longest a start or restart waits for its instance, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(3600);

pub async fn start(mut call: Call, name: &str, id: Option<&str>) -> Result<Response, Error> {
    let body = call.body().await?;
    let input = input(&body, call.listener)?;
    let instance = call.api.runtime.start(name, &input, id).await?;
    started(&call, &instance).await
}

/// The body is the input as JSON, whatever its content type (as in the extension); an
/// empty body is `null`.
///
/// The official Python client JSON-encodes the input twice (its worker decodes it once
/// more), so on the rpc listener, which only the official clients use, a body that is
/// a JSON string whose text is itself JSON is unwrapped once: `"{\"a\": 1}"` starts
/// with the object `{"a": 1}`. A string that does not hold JSON (`"\"x\""` unwrapped is
/// `"x"`, a JSON string, so it is unwrapped too; `"hello"` is kept) stays as sent. The
/// public listener never unwraps.
pub fn input(body: &[u8], listener: Listener) -> Result<String, Error> {
    let text = std::str::from_utf8(body)
        .map_err(|e| Error::BadRequest(format!("Invalid JSON content: not UTF-8: {e}")))?;
    if text.trim().is_empty() {
        return Ok("null".to_string());
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::BadRequest(format!("Invalid JSON content: {e}")))?;
    if listener == Listener::Rpc
        && let Value::String(inner) = &value
        && serde_json::from_str::<serde::de::IgnoredAny>(inner).is_ok()
    {
        return Ok(inner.clone());
    }
    Ok(text.to_string())
}

/// The answer to a start or restart: 202 with the check-status body, or the outcome if
/// the client asked to wait (`timeout` and `pollingInterval`, both in seconds) and the
/// instance ended in time.
pub async fn started(call: &Call, instance: &Instance) -> Result<Response, Error> {
    let wait = match (
        call.query.seconds("timeout"),
        call.query.seconds("pollingInterval"),
    ) {
        (Some(timeout), Some(_)) => {
            Some(Duration::from_secs_f64(timeout.min(MAX_WAIT.as_secs_f64())))
        }
        _ => None,
    };
    if let Some(wait) = wait
        && let Ok(Ok(ended)) = tokio::time::timeout(wait, call.api.runtime.wait(&instance.id)).await
    {
        if ended.status == RuntimeStatus::Completed {
            let output = ended.output.as_deref().unwrap_or("null");
            let output: Value = serde_json::from_str(output).unwrap_or(Value::Null);
            return Ok((StatusCode::OK, Json(output)).into_response());
        }
        return Ok((StatusCode::OK, Json(status::instance_json(&ended))).into_response());
    }
    let body = management_payload(call, &instance.id);
    let location = body["statusQueryGetUri"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Ok((
        StatusCode::ACCEPTED,
        [
            (header::LOCATION, location),
            (header::RETRY_AFTER, "10".into()),
        ],
        Json(body),
    )
        .into_response())
}

/// The management URLs of an instance, in the extension's `HttpManagementPayload`
/// shape: the check-status body, which also carries `rewindPostUri`.
pub fn management_payload(call: &Call, id: &str) -> Value {
    let (base, query) = call.links();
    let id_part = percent_encoding::utf8_percent_encode(id, super::URL_SAFE);
    let instance = format!("{base}/instances/{id_part}");
    json!({
        "id": id,
        "statusQueryGetUri": format!("{instance}?{query}"),
        "sendEventPostUri": format!("{instance}/raiseEvent/{{eventName}}?{query}"),
        "terminatePostUri": format!("{instance}/terminate?reason={{text}}&{query}"),
        "rewindPostUri": format!("{instance}/rewind?reason={{text}}&{query}"),
        "purgeHistoryDeleteUri": format!("{instance}?{query}"),
        "restartPostUri": format!("{instance}/restart?{query}"),
        "suspendPostUri": format!("{instance}/suspend?reason={{text}}&{query}"),
        "resumePostUri": format!("{instance}/resume?reason={{text}}&{query}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twice_encoded_inputs_are_unwrapped_on_the_rpc_listener_only() {
        let twice = br#""{\"a\": 1}""#;
        assert_eq!(
            input(twice, Listener::Rpc).ok().as_deref(),
            Some(r#"{"a": 1}"#)
        );
        assert_eq!(
            input(twice, Listener::Public).ok().as_deref(),
            Some(r#""{\"a\": 1}""#)
        );
        assert_eq!(
            input(br#""\"x\"""#, Listener::Rpc).ok().as_deref(),
            Some(r#""x""#)
        );
        assert_eq!(
            input(br#""hello""#, Listener::Rpc).ok().as_deref(),
            Some(r#""hello""#)
        );
        assert_eq!(input(b"", Listener::Rpc).ok().as_deref(), Some("null"));
        assert!(matches!(
            input(b"{nope", Listener::Public),
            Err(Error::BadRequest(_))
        ));
    }
}
