//! `POST /orchestrators/{name}[/{instanceId}]`: starts an instance and answers 202 with
//! the status URL in `Location` and the management URLs in the body.

use super::{Error, INSTANCES, Shared, base_url, header};
use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header as headers};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub async fn start(
    state: Shared,
    Path(name): Path<String>,
    request: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    start_instance(state, name, None, request, body).await
}

pub async fn start_with_id(
    state: Shared,
    Path((name, id)): Path<(String, String)>,
    request: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    start_instance(state, name, Some(id), request, body).await
}

/// The body is the input as JSON; an empty body (with no content type) means `null`.
fn input(request: &HeaderMap, body: &[u8]) -> Result<String, Error> {
    let content_type = header(request, "content-type");
    let is_json = content_type.as_deref().is_some_and(|value| {
        value
            .split(';')
            .next()
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
    });
    if body.is_empty() && content_type.is_none() {
        return Ok("null".to_string());
    }
    if !is_json {
        return Err(Error::UnsupportedMediaType(format!(
            "the body must be JSON with Content-Type: application/json, not {}",
            content_type.as_deref().unwrap_or("no content type")
        )));
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| Error::BadRequest(format!("the body is not UTF-8: {e}")))?;
    if text.trim().is_empty() {
        return Ok("null".to_string());
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map_err(|e| Error::BadRequest(format!("the body is not valid JSON: {e}")))?;
    Ok(text.to_string())
}

async fn start_instance(
    state: Shared,
    name: String,
    id: Option<String>,
    request: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let api = state.0;
    let input = input(&request, &body)?;
    let instance = api.runtime.start(&name, &input, id.as_deref()).await?;

    let base = base_url(&request);
    let code = &api.key;
    let instance_url = format!("{base}{INSTANCES}/{}", instance.id);
    let status_url = format!("{instance_url}?code={code}");
    let body = json!({
        "id": instance.id,
        "statusQueryGetUri": status_url,
        "sendEventPostUri": format!("{instance_url}/raiseEvent/{{eventName}}?code={code}"),
        "terminatePostUri": format!("{instance_url}/terminate?reason={{text}}&code={code}"),
        "purgeHistoryDeleteUri": format!("{instance_url}?code={code}"),
        "rewindPostUri": format!("{instance_url}/rewind?reason={{text}}&code={code}"),
        "suspendPostUri": format!("{instance_url}/suspend?reason={{text}}&code={code}"),
        "resumePostUri": format!("{instance_url}/resume?reason={{text}}&code={code}"),
    });
    Ok((
        StatusCode::ACCEPTED,
        [(headers::LOCATION, status_url)],
        Json(body),
    )
        .into_response())
}
